import { createHash } from 'node:crypto';
import type { z } from 'zod';
import type { Request, RequestHandler, Response, Router } from 'express';
import { ErrorCode, JobgateError, fieldErrorsFromZod, findUnstorable, methodNotAllowed } from '../support/index.ts';
import { SignedRoutes, type Lane, type PathParams, type Side, type SignedRoute, type SignedRouteOf } from './routes.ts';
import { HEADER_SIGNATURE, TOLERANCE_SECONDS, checkHeaderSignature, checkSignature, precheck, type Precheck, type Purpose, type SigningKey } from './signing.ts';

declare module 'express-serve-static-core' {
  interface Request {
    /** The verified raw body, parsed as JSON (undefined for a GET). */
    signedBody?: unknown;
  }
}

/** Remembers accepted signed requests (see store/replay-store.ts's createReplayStore). */
export interface ReplayGuard {
  /** Takes `id` for this request ({ seen: false }), or answers what the request that took it got. */
  check(id: string, bodyHash: Buffer, expiresAt: Date): Promise<{ seen: false } | { seen: true; sameBody: boolean; answer: { status: number; type: string; body: string } | null }>;
  /** Writes the answer of an id taken. */
  record(id: string, answer: { status: number; type: string; body: string }): Promise<void>;
  /** Lets an id taken go (its handling failed on our side). */
  release(id: string): Promise<void>;
}

export interface SignedRouteOptions {
  /** The largest body this route takes, in bytes: 413 on a larger Content-Length, or as soon as more arrives. */
  limitBytes: number;
  /** The resource the message must name after its purpose (`get_<jobId>_<nonce>`), so a signature cannot be moved to another. */
  resource?: (req: Request) => string;
  /** For state-changing routes: a replay of an accepted id gets the stored answer and does nothing again. */
  replay?: ReplayGuard;
  /** The lane the body is read in once the header signature checked out (BodyBudgets; default control). */
  lane?: Lane;
  /**
   * Refuse a request without the header signature (HEADER_SIGNATURE) instead of serving it in the
   * legacy lane. Off while peers of a version before the header signature may still be running.
   */
  requireHeaderSignature?: boolean;
}

/** A body must keep coming at this average rate once the grace has passed, or it is cut off (408). */
export const BODY_FLOOR_BYTES_PER_SECOND = 64 * 1024;
const BODY_GRACE_MS = 2_000;

/** Bytes of signed bodies being read at once, per process, in one lane: more senders wait (503) instead of holding memory. */
export interface BodyBudget {
  readonly limitBytes: number;
  /** Reserves `bytes`, or false when that would pass the limit. */
  take(bytes: number): boolean;
  give(bytes: number): void;
}

function createBodyBudget(limitBytes: number): BodyBudget {
  let inFlight = 0;
  return {
    limitBytes,
    take(bytes) {
      if (inFlight + bytes > limitBytes) return false;
      inFlight += bytes;
      return true;
    },
    give(bytes) {
      inFlight -= bytes;
    },
  };
}

/**
 * The lanes of signed bodies being read (each body counts its declared length, or its route's
 * limit when it declares none). Only a request whose header signature checked out (a peer that
 * holds the secret) reserves from `bulk` or `control`, so a stranger can take none of them; the
 * small routes (claims, events, pauses, reads) never wait behind forwards and children; a peer
 * that does not send the header signature yet (an older version, during a rolling deploy) reads
 * from `legacy`, apart, so strangers posing as one cannot starve the others.
 */
export const BodyBudgets = {
  /** The routes whose SignedRoutes entry says `lane: 'bulk'` (forwards and children). */
  bulk: createBodyBudget(32 * 2 ** 20),
  /** Every other signed route (`lane: 'control'`). */
  control: createBodyBudget(8 * 2 ** 20),
  /** Requests signed over their body only. */
  legacy: createBodyBudget(16 * 2 ** 20),
} as const;

const header = (value: string | string[] | undefined) => (Array.isArray(value) ? value[0] : value);

/** The most of a refused body that is read (and dropped) so the sender can take in the answer. */
const DRAIN_CAP_BYTES = 16 * 2 ** 20;

/**
 * Reads and drops what is left of a refused body, so an honest sender finishes writing and reads
 * the 4xx instead of a broken pipe; never buffers a byte, stops at DRAIN_CAP_BYTES or the floor
 * rate (the connection is then closed under the sender).
 */
function drain(req: Request): Promise<void> {
  return new Promise((resolve) => {
    if (req.complete) return resolve();
    let seen = 0;
    const started = Date.now();
    const finish = () => {
      clearInterval(pace);
      req.off('data', onData).off('end', finish).off('close', finish);
      resolve();
    };
    const onData = (chunk: Buffer) => {
      seen += chunk.length;
      if (seen > DRAIN_CAP_BYTES) finish();
    };
    const pace = setInterval(() => {
      const elapsed = Date.now() - started;
      if (elapsed > BODY_GRACE_MS && seen < (BODY_FLOOR_BYTES_PER_SECOND * (elapsed - BODY_GRACE_MS)) / 1000) finish();
    }, 250);
    req.on('data', onData).on('end', finish).on('close', finish);
    req.resume();
  });
}

/** Refuses a body: what is left of it is drained (not kept), then `err` is the answer. */
async function refuse(req: Request, err: JobgateError): Promise<never> {
  await drain(req);
  throw err;
}

/** The body's declared length (null: chunked), and whether there is a body at all. */
function declaredBody(req: Request): { declared: number | null; hasBody: boolean } {
  const declared = req.headers['content-length'] === undefined ? null : Number(req.headers['content-length']);
  return { declared, hasBody: (declared !== null && declared > 0) || req.headers['transfer-encoding'] !== undefined };
}

/** What the headers alone tell about a body: no content coding (a bomb is never inflated), JSON only, within the route's limit. */
async function checkBodyHeaders(req: Request, limitBytes: number): Promise<void> {
  const coding = header(req.headers['content-encoding'])?.trim().toLowerCase();
  if (coding && coding !== 'identity') await refuse(req, new JobgateError(ErrorCode.unsupportedMediaType, 'Signed requests take no Content-Encoding.'));
  const { declared, hasBody } = declaredBody(req);
  if (!hasBody) return;
  // A body must be JSON (FAULTS.md row 30); checked before it is read.
  if (!req.is('application/json')) await refuse(req, new JobgateError(ErrorCode.unsupportedMediaType, 'Send the body as application/json.'));
  if (declared !== null && (!Number.isSafeInteger(declared) || declared > limitBytes)) await refuse(req, tooLarge(limitBytes));
}

/**
 * Reads a signed route's raw body (its headers already checked) with every bound applied before a
 * byte is buffered beyond it: the route's own size limit, a floor rate, and its lane's cap on the
 * bytes of bodies read at once.
 */
async function readBody(req: Request, limitBytes: number, budget: BodyBudget): Promise<Buffer> {
  const { declared, hasBody } = declaredBody(req);
  if (!hasBody) return Buffer.alloc(0);
  const reserved = declared ?? limitBytes;
  if (!budget.take(reserved)) throw new JobgateError(ErrorCode.busy, 'Too many requests are sending bodies right now; retry shortly.');
  const read = new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    const started = Date.now();
    const done = (err: Error | null, body?: Buffer) => {
      clearInterval(pace);
      req.off('data', onData).off('end', onEnd).off('error', onError).off('aborted', onAborted);
      budget.give(reserved);
      if (err) reject(err);
      else resolve(body!);
    };
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received > limitBytes) return done(tooLarge(limitBytes));
      chunks.push(chunk);
    };
    const onEnd = () => done(null, Buffer.concat(chunks, received));
    const onError = (err: Error) => done(err);
    const onAborted = () => done(new JobgateError(ErrorCode.requestTimeout, 'The body did not arrive.'));
    const pace = setInterval(() => {
      const elapsed = Date.now() - started;
      if (elapsed > BODY_GRACE_MS && received < (BODY_FLOOR_BYTES_PER_SECOND * (elapsed - BODY_GRACE_MS)) / 1000) {
        done(new JobgateError(ErrorCode.requestTimeout, `The body arrived slower than ${BODY_FLOOR_BYTES_PER_SECOND / 1024} KiB/s.`));
      }
    }, 250);
    req.on('data', onData).on('end', onEnd).on('error', onError).on('aborted', onAborted);
  });
  try {
    return await read;
  } catch (err) {
    // past the limit: the rest is dropped, not kept; a slow one is simply cut off
    if ((err as JobgateError).code === ErrorCode.bodyTooLarge) await drain(req);
    throw err;
  }
}

const tooLarge = (limitBytes: number) => new JobgateError(ErrorCode.bodyTooLarge, `This route takes at most ${limitBytes} bytes.`);

/** Sends an answer stored for an earlier delivery of the same signed request. */
function replayAnswer(res: Response, answer: { status: number; type: string; body: string }): void {
  res.status(answer.status).type(answer.type).setHeader('webhook-replayed', 'true');
  res.send(answer.body);
}

/**
 * Wraps `res.send` so the answer of a request whose id was taken is written as it is sent (nothing
 * waits for that write but a copy of the message: see createReplayStore). An answer that failed on
 * our side (5xx) lets the id go, so a retry under it may do the work. A write that fails is logged:
 * a copy of that message is then told it is still being handled, until the id's window passes.
 */
function answerWhenSent(req: Request, res: Response, replay: ReplayGuard, id: string): void {
  const send = res.send.bind(res);
  res.send = ((body?: unknown) => {
    res.send = send;
    const status = res.statusCode;
    const text = typeof body === 'string' ? body : Buffer.isBuffer(body) ? body.toString('utf8') : JSON.stringify(body ?? '');
    const type = String(res.getHeader('content-type') ?? 'application/json');
    (status >= 500 ? replay.release(id) : replay.record(id, { status, type, body: text })).catch((err: unknown) => req.log.warn({ err, webhookId: id }, 'could not record the answer of a signed request'));
    return send(body);
  }) as Response['send'];
}

/** Rejected signatures logged in the current second, and those left out of the log since the last line. */
const rejections = { second: 0, logged: 0, suppressed: 0 };

/**
 * Logs a rejected signature, with its reason: a few a second at most, then one line saying how
 * many were left out, so a stranger's flood cannot turn into a flood of log lines (the refusals
 * metric counts every one of them).
 */
function rejectionLog(req: Request, reason: string, webhookId: string | undefined): void {
  const second = Math.floor(Date.now() / 1000);
  if (second !== rejections.second) Object.assign(rejections, { second, logged: 0 });
  if (rejections.logged >= 5) {
    rejections.suppressed++;
    return;
  }
  rejections.logged++;
  const suppressed = rejections.suppressed;
  rejections.suppressed = 0;
  req.log.warn({ reason, webhookId: webhookId?.slice(0, 128), ...(suppressed ? { notLoggedSinceLast: suppressed } : {}) }, 'signature rejected');
}

/** When a peer without the header signature was last logged (once a minute at most). */
let legacyLoggedAt = 0;

/**
 * The lane a message's body is read in, once its header signature (if any) checked out: refused
 * (401, before a byte of the body is read) when it is wrong, or missing while required.
 */
async function laneFor(req: Request, pre: Extract<Precheck, { ok: true }>, keys: SigningKey[], options: SignedRouteOptions, refused: (reason: string) => JobgateError): Promise<BodyBudget> {
  const given = header(req.headers[HEADER_SIGNATURE]);
  if (given === undefined) {
    if (options.requireHeaderSignature) return refuse(req, refused(`no ${HEADER_SIGNATURE}`));
    if (Date.now() - legacyLoggedAt > 60_000) {
      legacyLoggedAt = Date.now();
      req.log.warn({ webhookId: pre.id }, `a peer signs without ${HEADER_SIGNATURE} (a version before it): served in the legacy lane until it is upgraded`);
    }
    return BodyBudgets.legacy;
  }
  // the signature covers the declared length: a body of unknown length cannot have been signed
  if (req.headers['transfer-encoding'] !== undefined) return refuse(req, refused('a header-signed request must declare its Content-Length'));
  const { declared } = declaredBody(req);
  // req.url: the path below the router's mount point, as the sender named it (client/peer.ts)
  const check = checkHeaderSignature(pre, keys, given, { method: req.method, path: req.url }, declared ?? 0);
  if (!check.ok) return refuse(req, refused(check.reason));
  return BodyBudgets[options.lane ?? 'control'];
}

/**
 * A signed route's guard: reads the raw body within the route's bounds (readBody), checks the
 * Standard Webhooks signature for `purpose` (and the resource, if the route names one), only then
 * parses the body, and for a state-changing route makes a replay act at most once. Every signature
 * failure is the same 401 "Invalid signature"; the reason goes to the log only.
 */
export function requireSignature(keys: SigningKey[], purpose: Purpose, options: SignedRouteOptions): RequestHandler[] {
  return [
    async (req, res, next) => {
      // A body parser of the host app's ran first: the raw bytes the signature covers are gone.
      // Say so, rather than wait for a body that never comes (a 408 that would name the wrong cause).
      if ((req as Request & { _body?: boolean })._body) {
        next(new JobgateError(ErrorCode.internal, 'the request body was read before jobgate could check its signature', { cause: new Error("mount jobgate's routers before any body parser (express.json() and the like)") }));
        return;
      }
      const headers = { id: header(req.headers['webhook-id']), timestamp: header(req.headers['webhook-timestamp']), signature: header(req.headers['webhook-signature']) };
      const refused = (reason: string) => {
        rejectionLog(req, reason, headers.id);
        return new JobgateError(ErrorCode.invalidSignature, 'Invalid signature');
      };
      let body: Buffer;
      let pre: Precheck;
      try {
        // what can be checked without the body is, before a byte of it is read: a sender without
        // a fresh, well-formed message for this route (and resource) never has its body buffered,
        // and one without the secret (no valid header signature) never reserves any of the budget
        await checkBodyHeaders(req, options.limitBytes);
        pre = precheck({ headers, purpose });
        const resource = options.resource?.(req);
        const reason = !pre.ok ? pre.reason : resource !== undefined && !pre.id.startsWith(`${purpose}_${resource}_`) ? 'message signed for another resource' : null;
        if (reason !== null) await refuse(req, refused(reason));
        const lane = await laneFor(req, pre as Extract<Precheck, { ok: true }>, keys, options, refused);
        body = await readBody(req, options.limitBytes, lane);
      } catch (err) {
        next(err);
        return;
      }
      // (pre is ok here: anything else was refused above)
      const result = checkSignature(pre as Extract<Precheck, { ok: true }>, keys, body);
      if (!result.ok) {
        next(refused(result.reason));
        return;
      }
      if (body.length > 0) {
        try {
          req.signedBody = JSON.parse(body.toString('utf8'));
        } catch {
          next(new JobgateError(ErrorCode.bodyMalformed, 'The body is not valid JSON.', { errors: [{ path: '(body)', message: 'invalid JSON' }] }));
          return;
        }
        const found = findUnstorable(req.signedBody);
        if (found !== null) {
          next(new JobgateError(ErrorCode.requestInvalid, `The body cannot be stored: ${found.path} ${found.problem}.`, { errors: [{ path: found.path, message: found.problem }] }));
          return;
        }
      }
      if (!options.replay) return next();
      const id = headers.id!;
      try {
        const expiresAt = new Date((Number(header(req.headers['webhook-timestamp'])) + TOLERANCE_SECONDS + 60) * 1000);
        const bodyHash = createHash('sha256').update(body).digest();
        const check = await options.replay.check(id, bodyHash, expiresAt);
        if (!check.seen) {
          answerWhenSent(req, res, options.replay, id);
          return next();
        }
        if (!check.sameBody) throw new JobgateError(ErrorCode.replayConflict, 'This webhook-id was already used for another body.');
        if (!check.answer) throw new JobgateError(ErrorCode.busy, 'The first delivery of this message is still being handled; retry shortly.');
        req.log.info({ webhookId: id, status: check.answer.status }, 'signed request seen before: answered from the store, nothing done again');
        replayAnswer(res, check.answer);
      } catch (err) {
        next(err);
      }
    },
  ];
}

/** What a signed route's handler gets: the request (its path parameters typed), the response, and the body parsed with the route's schema. */
export type SignedHandler<R extends SignedRoute> = (
  req: Request<Record<PathParams<R['path']>, string>>,
  res: Response,
  body: R['request'] extends z.ZodType ? z.output<R['request']> : undefined,
) => Promise<z.input<R['answer']>>;

/** A handler for every route `side` serves, keyed by its SignedRoutes name (a missing one does not compile). */
export type SignedHandlers<S extends Side> = { [K in SignedRouteOf<S>]: SignedHandler<(typeof SignedRoutes)[K]> };

export interface MountSignedOptions {
  keys: SigningKey[];
  /** Used by the routes whose entry is `replayGuarded`. */
  replay: ReplayGuard;
  requireHeaderSignature?: boolean;
}

/**
 * Mounts on `router` every SignedRoutes entry `side` serves, each with its handler: the signature
 * guard set up from the entry (purpose, limit, lane, replay, resource), then the body checked
 * against the entry's request schema (a 422 naming each field), then the handler, whose answer is
 * sent with the entry's status. Another method on the path gets a 405.
 */
export function mountSignedRoutes<S extends Side>(router: Router, side: S, handlers: SignedHandlers<S>, options: MountSignedOptions): void {
  for (const [name, route] of Object.entries(SignedRoutes) as [keyof typeof SignedRoutes, SignedRoute][]) {
    if (route.side !== side) continue;
    const handler = (handlers as unknown as Record<string, SignedHandler<SignedRoute>>)[name]!;
    const param = route.resource;
    const guard = requireSignature(options.keys, route.purpose, {
      limitBytes: route.limitBytes,
      lane: route.lane,
      requireHeaderSignature: options.requireHeaderSignature ?? false,
      ...(route.replayGuarded ? { replay: options.replay } : {}),
      ...(param ? { resource: (req: Request) => String(req.params[param]) } : {}),
    });
    const serve: RequestHandler = async (req, res) => {
      let body: unknown;
      if (route.request) {
        const parsed = route.request.safeParse(req.signedBody);
        if (!parsed.success) throw new JobgateError(ErrorCode.requestInvalid, route.invalid ?? 'The request is invalid.', { errors: fieldErrorsFromZod(parsed.error.issues) });
        body = parsed.data;
      }
      const answer = await handler(req as Request<Record<string, string>>, res, body as undefined);
      res.status(route.status).json(answer);
    };
    const at = router.route(route.path);
    (route.method === 'GET' ? at.get(...guard, serve) : at.post(...guard, serve)).all(methodNotAllowed([route.method]));
  }
}


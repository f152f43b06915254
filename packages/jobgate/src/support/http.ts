import { randomUUID } from 'node:crypto';
import express, { Router, type ErrorRequestHandler, type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import type { Logger } from './logger.ts';
import { ErrorCode, JobgateError, httpStatusFor, isDatabaseUnavailable, type FieldError } from './errors.ts';
import { newTraceparent, parseTraceparent, traceIdOf } from './trace.ts';
import { findUnstorable } from './text.ts';
import { Counter, type Registry } from 'prom-client';

declare module 'express-serve-static-core' {
  interface Request {
    id: string;
    log: Logger;
    /** This request's span: the caller's trace (its `traceparent` header) or a new one. */
    traceparent: string;
  }
}

const titles: Partial<Record<number, string>> = {
  400: 'Malformed request body',
  401: 'Unauthorized',
  404: 'Not found',
  405: 'Method not allowed',
  403: 'Forbidden',
  409: 'Conflict',
  413: 'Request body too large',
  415: 'Unsupported media type',
  422: 'Validation failed',
  429: 'Too many requests',
  503: 'Service unavailable',
  500: 'Internal server error',
};

/** Titles that say more than the status's, where the code is always the same situation. */
const titleByCode: Partial<Record<string, string>> = {
  [ErrorCode.invalidSignature]: 'Invalid signature',
  [ErrorCode.idConflict]: 'Job id reused',
};

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The answers counted as refusals (jobgate_http_refusals_total), so an operator sees an attack or a quota at work. */
const REFUSAL_STATUSES = new Set([401, 408, 413, 415, 429, 503]);

/** The refusals counter of `registry` (one per registry, however many routers count into it). */
export function refusalCounter(registry: Registry): Counter<'route' | 'status' | 'reason'> {
  const name = 'jobgate_http_refusals_total';
  return (
    (registry.getSingleMetric(name) as Counter<'route' | 'status' | 'reason'> | undefined) ??
    new Counter({ name, help: 'Requests refused (401, 408, 413, 415, 429, 503), by route, status and reason (the problem code)', labelNames: ['route', 'status', 'reason'], registers: [registry] })
  );
}

/**
 * A bounded name for the route a request took: the route's own pattern (`/admin/api/jobs/:id/retry`)
 * when one matched, else the first segment below the mount point (`/api/*`), so a stranger's
 * made-up paths cannot grow the metric's labels. `relative` is the path below jobgate's mount.
 */
export function routeLabel(req: Request, relative: string): string {
  const segments = relative.split('/').filter(Boolean);
  const pattern = (req.route as { path?: unknown } | undefined)?.path;
  if (typeof pattern === 'string') {
    // a route of a nested router names only its own part: the routers above it are literal prefixes
    const own = pattern.split('/').filter(Boolean);
    return `/${[...segments.slice(0, Math.max(0, segments.length - own.length)), ...own].join('/')}`;
  }
  return segments.length > 0 ? `/${segments[0]}/*` : '/';
}

/**
 * Gives each request an id (the caller's `x-request-id` when it is sane), a span in the caller's
 * W3C trace (its `traceparent`) or a new trace, and a child logger carrying both. Logs each
 * request with its full path (mount prefix included) and, given a registry, counts refusals.
 */
export function requestContext(logger: Logger, options: { registry?: Registry } = {}): RequestHandler {
  const refusals = options.registry ? refusalCounter(options.registry) : null;
  return (req, res, next) => {
    // once per request: the host app (or the reference app) may have set it up already
    if (res.locals.jobgateContext) return next();
    res.locals.jobgateContext = true;
    const given = req.get('x-request-id');
    req.id = given && REQUEST_ID.test(given) ? given : randomUUID();
    req.traceparent = newTraceparent(parseTraceparent(req.get('traceparent'))?.traceId);
    req.log = logger.child({ requestId: req.id, traceId: traceIdOf(req.traceparent) });
    res.setHeader('x-request-id', req.id);
    const started = performance.now();
    const path = req.originalUrl.split('?', 1)[0]!;
    // where the router that set this up is mounted (req.baseUrl ends with its own path, e.g. /internal)
    const base = req.baseUrl.slice(0, Math.max(0, req.baseUrl.lastIndexOf('/')));
    res.on('finish', () => {
      // a poll that a route marks quiet (res.locals.jobgateQuiet) is logged at debug while it succeeds
      const level = res.locals.jobgateQuiet && res.statusCode < 400 ? 'debug' : 'info';
      req.log[level]({ method: req.method, path, status: res.statusCode, ms: Math.round(performance.now() - started) }, 'request');
      if (refusals && REFUSAL_STATUSES.has(res.statusCode)) {
        const mount = (res.locals.jobgateMount as string | undefined) ?? base;
        refusals.inc({ route: routeLabel(req, path.slice(mount.length)), status: String(res.statusCode), reason: (res.locals.jobgateProblem as string | undefined) ?? 'http' });
      }
    });
    next();
  };
}

export interface Problem {
  type?: string;
  title?: string;
  status: number;
  detail?: string;
  code?: string;
  errors?: FieldError[];
}

/** Answers RFC 9457 problem+json; `instance` and `requestId` carry the request id (when requestContext gave one). */
export function sendProblem(req: Request, res: Response, problem: Problem): void {
  const body = {
    type: problem.type ?? 'about:blank',
    title: problem.title ?? titles[problem.status] ?? 'Error',
    status: problem.status,
    ...(problem.detail ? { detail: problem.detail } : {}),
    ...(problem.code ? { code: problem.code } : {}),
    ...(problem.errors && problem.errors.length > 0 ? { errors: problem.errors } : {}),
    // (a host app's route without requestContext has no request id)
    ...(req.id ? { instance: `urn:request:${req.id}`, requestId: req.id } : {}),
  };
  // the refusals metric's reason (requestContext)
  res.locals.jobgateProblem = problem.code ?? 'http';
  res.status(problem.status).type('application/problem+json').send(JSON.stringify(body));
}

/**
 * What both apps answer while shutting down: `/healthz` turns 503 (the platform's check, and the
 * fetcher's wake-up target) and each connection is closed after its response.
 */
export function healthRoutes(isDraining: () => boolean): Router {
  const router = Router();
  router.use((_req, res, next) => {
    if (isDraining()) res.setHeader('Connection', 'close');
    next();
  });
  router
    .route('/healthz')
    .get((_req, res) => {
      if (isDraining()) res.status(503).json({ status: 'stopping' });
      else res.json({ status: 'ok' });
    })
    .all(methodNotAllowed(['GET']));
  return router;
}

/** 415 for a state-changing request whose body is not JSON. */
export function requireJson(): RequestHandler {
  return (req, _res, next) => {
    const hasBody = req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0' || req.headers['transfer-encoding'] !== undefined;
    if (['POST', 'PUT', 'PATCH'].includes(req.method) && hasBody && !req.is('application/json')) {
      next(new JobgateError(ErrorCode.unsupportedMediaType, 'Send the body as application/json.'));
      return;
    }
    next();
  };
}

/**
 * 422 naming the field for a query value or a JSON body that PostgreSQL could not store (a NUL, a
 * lone surrogate) or that nests too deep: it would fail the query as a 500. The query is checked
 * before the routes, the body once the body parser has read it.
 */
export function rejectUnstorable(part: 'query' | 'body'): RequestHandler {
  return (req, _res, next) => {
    const found = part === 'query' ? findUnstorable(req.query ?? {}, ['query']) : req.body !== undefined && !Buffer.isBuffer(req.body) ? findUnstorable(req.body, []) : null;
    if (found !== null) {
      next(new JobgateError(ErrorCode.requestInvalid, `The request cannot be stored: ${found.path} ${found.problem}.`, { errors: [{ path: found.path, message: found.problem }] }));
      return;
    }
    next();
  };
}

/** The largest JSON body the jobs API and the admin API read. */
const JSON_BODY_LIMIT_BYTES = 2 ** 20;

/**
 * A JSON body as the jobs API and the admin API read it, after the caller is known: JSON only,
 * at most 1 MiB, strict, with nothing PostgreSQL could not store.
 */
export function jsonBody(): RequestHandler[] {
  return [requireJson(), express.json({ limit: JSON_BODY_LIMIT_BYTES, strict: true }), rejectUnstorable('body')];
}

/** 405 with `Allow` for a known path asked with the wrong method; put after the routes of that path. */
export function methodNotAllowed(allowed: string[]): RequestHandler {
  return (_req, res, next) => {
    res.setHeader('Allow', allowed.join(', '));
    next(new JobgateError(ErrorCode.methodNotAllowed, `Use ${allowed.join(' or ')}.`));
  };
}

export function notFound(): RequestHandler {
  return (_req, _res, next) => next(new JobgateError(ErrorCode.notFound, 'No such endpoint.'));
}

/**
 * The last middleware. Everything becomes problem+json; a stack or an internal message never
 * reaches the client, whatever NODE_ENV says (express's default handler would print both).
 */
export function problemErrorHandler(): ErrorRequestHandler {
  return (err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const log = req.log ?? console;
    if (res.headersSent) {
      log.error({ err }, 'error after the response started');
      res.destroy();
      return;
    }
    if (err instanceof JobgateError) {
      const status = httpStatusFor(err.code);
      // a 503 is a state (busy, stopping, the database away), said once by the request line: no
      // stack per refused request (a stranger's flood must not become a flood of error lines)
      if (status >= 500 && status !== 503) log.error({ err, code: err.code }, 'request failed');
      // a lost connection is most often back within a second (a killed or failed-over connection: the
      // pool opens another); a longer outage is met by the caller's own growing backoff
      if (err.code === ErrorCode.databaseUnavailable) res.setHeader('Retry-After', '1');
      if (err.code === ErrorCode.shuttingDown) res.setHeader('Retry-After', '5');
      if (err.code === ErrorCode.busy) res.setHeader('Retry-After', '1');
      // a body too large (drained only so far) or too slow: the connection goes with the answer
      if (err.code === ErrorCode.bodyTooLarge || err.code === ErrorCode.requestTimeout) res.setHeader('Connection', 'close');
      const title = titleByCode[err.code];
      // An internal message stays in the log; a titled problem says all there is in its title.
      const detail = err.code === ErrorCode.internal || title === err.message ? undefined : err.message;
      sendProblem(req, res, { status, code: err.code, title, detail, errors: err.errors });
      return;
    }
    const bodyError = err as { type?: string; status?: number };
    if (bodyError.type === 'entity.too.large') {
      // body-parser has read (and dropped) the rest of the body; don't keep the connection.
      res.setHeader('Connection', 'close');
      sendProblem(req, res, { status: 413, code: ErrorCode.bodyTooLarge, detail: 'The body is larger than the 1 MiB limit.' });
      return;
    }
    if (bodyError.type === 'entity.parse.failed') {
      sendProblem(req, res, { status: 400, code: ErrorCode.bodyMalformed, detail: 'The body is not valid JSON.', errors: [{ path: '(body)', message: 'invalid JSON' }] });
      return;
    }
    if (bodyError.type === 'encoding.unsupported' || bodyError.type === 'charset.unsupported') {
      sendProblem(req, res, { status: 415, code: ErrorCode.unsupportedMediaType, detail: 'Unsupported body encoding.' });
      return;
    }
    if (typeof bodyError.status === 'number' && bodyError.status >= 400 && bodyError.status < 500) {
      sendProblem(req, res, { status: bodyError.status, code: ErrorCode.requestInvalid, detail: titles[bodyError.status] });
      return;
    }
    if (isDatabaseUnavailable(err)) {
      log.warn({ err }, 'database unavailable');
      res.setHeader('Retry-After', '1');
      sendProblem(req, res, { status: 503, code: ErrorCode.databaseUnavailable, detail: 'The database is unreachable; nothing was accepted. Retry later.' });
      return;
    }
    log.error({ err }, 'unhandled error');
    sendProblem(req, res, { status: 500, code: ErrorCode.internal });
  };
}

/** Where jobgate's router is mounted (`''` at the root): every link, redirect and cookie path starts with it. */
export const mountOf = (res: Response): string => (res.locals.jobgateMount as string | undefined) ?? '';

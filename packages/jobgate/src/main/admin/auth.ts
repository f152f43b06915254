import { createHash, createHmac, scrypt, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import type { NextFunction, Request, Response } from 'express';
import { ErrorCode, JobgateError, mountOf } from '../../support/index.ts';
import type { AdminStore } from '../../store/index.ts';
import { bearerOf, createApiTokens, type ApiToken, type ApiTokenScope, type FoundToken } from './api-tokens.ts';

export const ADMIN_USER = 'admin';
export const SESSION_COOKIE = 'jobgate_admin';

declare module 'express-serve-static-core' {
  interface Request {
    /** Set once the request is an admin's: by dashboard session (with its CSRF token), HTTP Basic, an API token or the host app's authorize(). */
    admin?: {
      via: 'session' | 'basic' | 'token' | 'host';
      actor: string;
      csrfToken?: string;
      sessionId?: string;
      /** Which of the API tokens (its place in the list): each has its own request quota. */
      token?: number;
      /** The API token's scope: only `admin` reaches /admin/api/*. */
      scope?: ApiTokenScope;
    };
  }
}

const scryptAsync = promisify(scrypt) as (password: string, salt: string, keylen: number, options: { N: number; r: number; p: number; maxmem: number }) => Promise<Buffer>;
const digest = (s: string) => createHash('sha256').update(s).digest();
const sameSecret = (a: string, b: string) => timingSafeEqual(digest(a), digest(b));

/** An Origin's host; `null` (sandboxed or privacy-stripped) and garbage never match. */
function hostOf(origin: string): string | null {
  try {
    return new URL(origin).host || null;
  } catch {
    return null;
  }
}

function cookie(req: Request, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k !== name) continue;
    try {
      return decodeURIComponent(v.join('='));
    } catch {
      return undefined; // a malformed cookie is no session
    }
  }
  return undefined;
}

/**
 * Who may use the admin surface and the jobs API, and how: a login form that opens a dashboard
 * session (cookie HttpOnly, SameSite=Strict, expiring, ended by a password change), HTTP Basic for
 * scripts, and bearer tokens (apiTokens) for /api/* and, those of scope `admin`, /admin/api/*.
 * Wrong passwords and tokens are counted in PostgreSQL per client address, atomically across
 * requests and instances: at most `maxFailures` in `windowMs` are answered 401; beyond, or once all
 * addresses together hold `maxFailuresInAll` (each at most `maxFailures` of them), 429 with
 * Retry-After until the window passes, even for the right password (a right API token costs no
 * query and is always let in).
 */
export function createAdminAuth(deps: {
  password?: string;
  /** The host app's own check instead of a password: true (or the actor's name, for the audit) lets the request in. */
  authorize?: AuthorizeAdmin;
  apiTokens?: readonly ApiToken[];
  store: AdminStore;
  sessionTtlSeconds?: number;
  maxFailures?: number;
  maxFailuresInAll?: number;
  windowMs?: number;
}) {
  const ttl = deps.sessionTtlSeconds ?? 8 * 3_600;
  const maxFailures = deps.maxFailures ?? 5;
  const maxFailuresInAll = deps.maxFailuresInAll ?? 100;
  const windowSeconds = Math.ceil((deps.windowMs ?? 60_000) / 1000);
  // A session is bound to the password it was opened with: scrypt of it under this install's salt,
  // slow on purpose (someone who can read the database must not be able to guess the password
  // from it quickly); worked out once per process.
  let passwordHashP: Promise<string> | undefined;
  const passwordHash = () =>
    (passwordHashP ??= deps.store
      .sessionSalt()
      .then((salt) => scryptAsync(deps.password ?? '', salt, 32, { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 2 ** 20 }).then((key) => (key as Buffer).toString('hex')))
      // a database that did not answer once must not keep the admin shut: ask again next time
      .catch((err: unknown) => {
        passwordHashP = undefined;
        throw err;
      }));
  const tokens = createApiTokens(deps.apiTokens ?? []);
  // Under the host app's auth there is no jobgate session: the pages carry a CSRF token made from
  // this install's secret salt and the name authorize() gave (the same in every process, so any
  // of them checks what another rendered), which a cross-site request can neither read nor send.
  let saltP: Promise<string> | undefined;
  const salt = () =>
    (saltP ??= deps.store.sessionSalt().catch((err: unknown) => {
      saltP = undefined;
      throw err;
    }));
  const hostCsrf = async (actor: string) => createHmac('sha256', await salt()).update(`csrf:${actor}`).digest('base64url');

  // Checks from one address take turns in this process (and then on the address's row in
  // PostgreSQL): a flood from one address holds one pooled connection at a time, so everyone else's
  // requests find one free, and a right guess sees every wrong one sent before it through this
  // process counted. (One check in flight per other instance may be unseen: a flood spread over
  // N instances gets at most the budget plus N - 1 guesses answered.)
  const lanes = new Map<string, Promise<unknown>>();
  function inLane<T>(address: string, fn: () => Promise<T>): Promise<T> {
    const run = (lanes.get(address) ?? Promise.resolve()).then(fn);
    const tail = run.then(() => undefined, () => undefined);
    lanes.set(address, tail);
    void tail.then(() => lanes.get(address) === tail && lanes.delete(address));
    return run;
  }
  /**
   * Whether a credential check may be answered, decided in PostgreSQL before anything about the
   * credential is revealed: a wrong one (`failed`) is counted while its address has budget left (one
   * statement, so simultaneous guesses cannot all get in under the count), a right one is let in
   * unless its address has none. Otherwise 429 with Retry-After, right or wrong alike.
   */
  async function admit(req: Request, res: Response, failed: boolean): Promise<void> {
    const address = (req.ip ?? '').slice(0, 100);
    const verdict = await inLane(address, () => deps.store.authAttempt(address, failed, { windowSeconds, perAddress: maxFailures, inAll: maxFailuresInAll }));
    if (!verdict.allowed) {
      res.setHeader('Retry-After', String(verdict.retryAfterSeconds));
      throw new JobgateError(ErrorCode.tooManyRequests, 'Too many wrong passwords or tokens; try again later.');
    }
  }
  function enabled(): string {
    if (!deps.password) throw new JobgateError(ErrorCode.adminDisabled, deps.authorize ? 'The admin uses the host app\'s own sign-in.' : 'The admin surface is off: set ADMIN_PASSWORD.');
    return deps.password;
  }
  /** Lets in the request of an API token that `tokens.find` named. */
  function asToken(req: Request, next: NextFunction, found: FoundToken): void {
    req.admin = { via: 'token', actor: `${found.name} (${req.ip})`, token: found.index, scope: found.scope };
    next();
  }

  const refusedByHost = () => {
    throw new JobgateError(ErrorCode.forbidden, "The host app's authorize() refused this request.");
  };
  /**
   * Sets req.admin from authorize(), a session cookie or Basic credentials; `onMissing` decides what
   * no credentials mean, `onRefused` what authorize() saying no means (403 unless told otherwise).
   */
  function authenticate(onMissing: (req: Request, res: Response) => void, onRefused: (req: Request, res: Response) => void = refusedByHost) {
    return async (req: Request, res: Response, next: NextFunction) => {
      if (deps.authorize) {
        const verdict = await deps.authorize(req);
        if (!verdict) return onRefused(req, res);
        // a name from authorize() ties the token to that user; a bare `true` shares one token
        req.admin = { via: 'host', actor: typeof verdict === 'string' ? verdict : `host app user (${req.ip})`, csrfToken: await hostCsrf(typeof verdict === 'string' ? verdict : '') };
        return next();
      }
      const password = enabled();
      const sessionId = cookie(req, SESSION_COOKIE);
      if (sessionId) {
        const session = await deps.store.getSession(sessionId, await passwordHash());
        if (session) {
          req.admin = { via: 'session', actor: `${ADMIN_USER} (dashboard, ${req.ip})`, csrfToken: session.csrfToken, sessionId };
          return next();
        }
      }
      const header = req.headers.authorization ?? '';
      if (header.startsWith('Basic ')) {
        const given = Buffer.from(header.slice(6), 'base64').toString('utf8');
        const right = sameSecret(given, `${ADMIN_USER}:${password}`);
        await admit(req, res, !right);
        if (!right) {
          res.setHeader('WWW-Authenticate', 'Basic realm="jobgate admin", charset="UTF-8"');
          throw new JobgateError(ErrorCode.unauthorized, 'Admin credentials are wrong.');
        }
        req.admin = { via: 'basic', actor: `${ADMIN_USER} (${req.ip})` };
        return next();
      }
      onMissing(req, res);
    };
  }

  /**
   * Every state change: never from another site (Sec-Fetch-Site, Origin), and from the dashboard
   * only with its session's CSRF token (header `x-csrf-token`).
   */
  function guardChange(req: Request): void {
    if (['GET', 'HEAD', 'OPTIONS'].includes(req.method)) return;
    const site = req.headers['sec-fetch-site'];
    const origin = req.headers.origin;
    // req.host: the Host the client used (X-Forwarded-Host behind a trusted proxy)
    if ((site && site !== 'same-origin' && site !== 'none') || (origin !== undefined && hostOf(origin) !== req.host)) {
      throw new JobgateError(ErrorCode.forbidden, 'Cross-site requests may not change state.');
    }
    if (req.admin?.via === 'session' || req.admin?.via === 'host') {
      const given = req.headers['x-csrf-token'];
      if (typeof given !== 'string' || !sameSecret(given, req.admin.csrfToken!)) {
        throw new JobgateError(ErrorCode.forbidden, 'The CSRF token is missing or wrong.');
      }
    }
  }

  const adminApiSignIn = authenticate((req, res) => {
    // The dashboard's own requests (they carry x-csrf-token) get no Basic challenge: a browser
    // would show its password prompt instead of the script sending the user to the login page.
    if (req.headers['x-csrf-token'] === undefined) res.setHeader('WWW-Authenticate', 'Basic realm="jobgate admin", charset="UTF-8"');
    throw new JobgateError(ErrorCode.unauthorized, 'Admin credentials are missing or the session expired.');
  });

  return {
    /**
     * For /admin/api/*: an API token of scope `admin` (no CSRF token: a browser never sends a
     * bearer token on its own), else the admin's sign-in. Another API token is 403. A bearer token
     * that is none of them is 401, counted as a wrong password is; under authorize() it goes to the
     * host app's check instead (which may take bearer tokens of its own). No credentials → 401 with
     * a Basic challenge.
     */
    adminApi: [
      async (req: Request, res: Response, next: NextFunction) => {
        const given = bearerOf(req.headers.authorization);
        if (given === undefined) return adminApiSignIn(req, res, next);
        const found = tokens.find(given);
        if (found?.scope === 'admin') return asToken(req, next, found);
        if (found) throw new JobgateError(ErrorCode.forbidden, "This API token may use /api/* only; the admin API takes a token of scope 'admin'.");
        if (deps.authorize) return adminApiSignIn(req, res, next);
        await admit(req, res, true);
        res.setHeader('WWW-Authenticate', 'Bearer realm="jobgate admin"');
        throw new JobgateError(ErrorCode.unauthorized, 'The API token is wrong.');
      },
      (req: Request, _res: Response, next: NextFunction) => {
        guardChange(req);
        next();
      },
    ],
    /**
     * For /api/*: `Authorization: Bearer <one of API_TOKENS>`, or the admin's own credentials
     * (Basic or the dashboard's session), or the host's sign-in under authorize(). None of these
     * (authorize() saying no included) is 401 with a Bearer challenge. A wrong token counts as a
     * failure for its address; one beyond the limit is 429. A right token costs no query.
     */
    api: async (req: Request, res: Response, next: NextFunction) => {
      const header = req.headers.authorization ?? '';
      const given = bearerOf(header);
      if (given !== undefined) {
        const found = tokens.find(given);
        if (found) return asToken(req, next, found);
        // as with passwords: past the budget 429, else the failure counts and 401
        await admit(req, res, true);
        res.setHeader('WWW-Authenticate', 'Bearer realm="jobgate api"');
        throw new JobgateError(ErrorCode.unauthorized, 'The API token is wrong.');
      }
      // what /api/* answers without a credential it takes: 401 and a Bearer challenge
      const noCredential = (message: string) => {
        res.setHeader('WWW-Authenticate', 'Bearer realm="jobgate api"');
        throw new JobgateError(ErrorCode.unauthorized, message);
      };
      if (deps.authorize || (deps.password && (header.startsWith('Basic ') || cookie(req, SESSION_COOKIE)))) {
        // a browser sends cached Basic credentials (or the cookie) cross-site too: the same guard as the admin API
        return authenticate(
          () => noCredential('The session expired; send a bearer token.'),
          // the host's sign-in did not let this request in: for the API that means no credential
          // (its own is a bearer token), 401 as without one, not the pages' 403
          () => noCredential(tokens.count ? "The host app's sign-in refused this request; send Authorization: Bearer <an API token>." : "The host app's sign-in refused this request."),
        )(req, res, (err?: unknown) => {
          if (err) return next(err);
          try {
            guardChange(req);
            next();
          } catch (e) {
            next(e);
          }
        });
      }
      noCredential(tokens.count ? 'Send Authorization: Bearer <an API token>.' : 'The jobs API needs a credential: set API_TOKENS (or use the admin credentials).');
    },
    /** For the HTML pages: no credentials → the login form. */
    page: authenticate((req, res) => res.redirect(303, `${mountOf(res)}/admin/login?next=${encodeURIComponent(req.originalUrl)}`)),
    /** Whether jobgate's own login form is in use (not under the host app's authorize()). */
    ownLogin: !deps.authorize,
    /** POST /admin/login (form): a new session, or 401 / 429. */
    async login(req: Request, res: Response): Promise<boolean> {
      const password = enabled();
      guardChange(req);
      const given = typeof req.body?.password === 'string' ? req.body.password : '';
      const right = sameSecret(given, password);
      await admit(req, res, !right);
      if (!right) return false;
      const session = await deps.store.createSession(ttl, await passwordHash());
      res.setHeader('Set-Cookie', `${SESSION_COOKIE}=${session.id}; Path=${mountOf(res)}/admin; HttpOnly; SameSite=Strict; Max-Age=${ttl}${req.secure ? '; Secure' : ''}`);
      return true;
    },
    async logout(req: Request, res: Response): Promise<void> {
      guardChange(req);
      if (req.admin?.sessionId) await deps.store.deleteSession(req.admin.sessionId);
      res.setHeader('Set-Cookie', `${SESSION_COOKIE}=; Path=${mountOf(res)}/admin; HttpOnly; SameSite=Strict; Max-Age=0`);
    },
  };
}

export type AdminAuth = ReturnType<typeof createAdminAuth>;

/**
 * The host app's check for the admin pages, the admin API and /api/*: true, or the actor's name
 * (it goes into the audit log), lets the request in; false answers 403. It runs after the host
 * app's own middleware, so `req.user` (or whatever that sets) is there.
 */
export type AuthorizeAdmin = (req: Request) => boolean | string | Promise<boolean | string>;

import { createHash, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { ErrorCode, JobgateError } from '@jobgate/runtime';
import type { AdminStore } from '@jobgate/queue';

export const ADMIN_USER = 'admin';
export const SESSION_COOKIE = 'jobgate_admin';

declare module 'express-serve-static-core' {
  interface Request {
    /** Set once the request is an admin's: by dashboard session (with its CSRF token) or HTTP Basic. */
    admin?: { via: 'session' | 'basic'; actor: string; csrfToken?: string; sessionId?: string };
  }
}

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
 * Who may use the admin surface, and how: a login form that opens a dashboard session (cookie
 * HttpOnly, SameSite=Strict, expiring), or HTTP Basic for scripts. Failed passwords are counted
 * per client address: beyond `maxFailures` in `windowMs`, 429 until the window passes.
 */
export function createAdminAuth(deps: { password?: string; store: AdminStore; sessionTtlSeconds?: number; maxFailures?: number; windowMs?: number }) {
  const ttl = deps.sessionTtlSeconds ?? 8 * 3_600;
  const maxFailures = deps.maxFailures ?? 5;
  const windowMs = deps.windowMs ?? 60_000;
  const failures = new Map<string, number[]>();

  function recentFailures(ip: string): number[] {
    const now = Date.now();
    const kept = (failures.get(ip) ?? []).filter((t) => now - t < windowMs);
    if (kept.length > 0) failures.set(ip, kept);
    else failures.delete(ip);
    return kept;
  }
  function throttle(req: Request, res: Response): void {
    const recent = recentFailures(req.ip ?? '');
    if (recent.length >= maxFailures) {
      res.setHeader('Retry-After', String(Math.ceil((recent[0]! + windowMs - Date.now()) / 1000)));
      throw new JobgateError(ErrorCode.tooManyRequests, 'Too many wrong passwords; try again later.');
    }
  }
  function fail(req: Request): void {
    const ip = req.ip ?? '';
    failures.set(ip, [...recentFailures(ip), Date.now()]);
  }
  function enabled(): string {
    if (!deps.password) throw new JobgateError(ErrorCode.adminDisabled, 'The admin surface is off: set ADMIN_PASSWORD.');
    return deps.password;
  }

  /** Sets req.admin from a session cookie or Basic credentials; `onMissing` decides what no credentials mean. */
  function authenticate(onMissing: (req: Request, res: Response) => void) {
    return async (req: Request, res: Response, next: NextFunction) => {
      const password = enabled();
      const sessionId = cookie(req, SESSION_COOKIE);
      if (sessionId) {
        const session = await deps.store.getSession(sessionId);
        if (session) {
          req.admin = { via: 'session', actor: `${ADMIN_USER} (dashboard, ${req.ip})`, csrfToken: session.csrfToken, sessionId };
          return next();
        }
      }
      const header = req.headers.authorization ?? '';
      if (header.startsWith('Basic ')) {
        throttle(req, res);
        const given = Buffer.from(header.slice(6), 'base64').toString('utf8');
        if (!sameSecret(given, `${ADMIN_USER}:${password}`)) {
          fail(req);
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
    if (req.admin?.via === 'session') {
      const given = req.headers['x-csrf-token'];
      if (typeof given !== 'string' || !sameSecret(given, req.admin.csrfToken!)) {
        throw new JobgateError(ErrorCode.forbidden, 'The CSRF token is missing or wrong.');
      }
    }
  }

  return {
    /** For /admin/api/*: no credentials → 401 with a Basic challenge. */
    api: [
      authenticate((req, res) => {
        // The dashboard's own requests (they carry x-csrf-token) get no Basic challenge: a browser
        // would show its password prompt instead of the script sending the user to the login page.
        if (req.headers['x-csrf-token'] === undefined) res.setHeader('WWW-Authenticate', 'Basic realm="jobgate admin", charset="UTF-8"');
        throw new JobgateError(ErrorCode.unauthorized, 'Admin credentials are missing or the session expired.');
      }),
      (req: Request, _res: Response, next: NextFunction) => {
        guardChange(req);
        next();
      },
    ],
    /** For the HTML pages: no credentials → the login form. */
    page: authenticate((req, res) => res.redirect(303, `/admin/login?next=${encodeURIComponent(req.originalUrl)}`)),
    /** POST /admin/login (form): a new session, or 401 / 429. */
    async login(req: Request, res: Response): Promise<boolean> {
      const password = enabled();
      guardChange(req);
      throttle(req, res);
      const given = typeof req.body?.password === 'string' ? req.body.password : '';
      if (!sameSecret(given, password)) {
        fail(req);
        return false;
      }
      const session = await deps.store.createSession(ttl);
      res.setHeader('Set-Cookie', `${SESSION_COOKIE}=${session.id}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=${ttl}${req.secure ? '; Secure' : ''}`);
      return true;
    },
    async logout(req: Request, res: Response): Promise<void> {
      guardChange(req);
      if (req.admin?.sessionId) await deps.store.deleteSession(req.admin.sessionId);
      res.setHeader('Set-Cookie', `${SESSION_COOKIE}=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0`);
    },
  };
}

export type AdminAuth = ReturnType<typeof createAdminAuth>;

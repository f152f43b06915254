// The app's own sign-in (a demo: HTTP Basic against two fixed users). jobgate's admin sits behind
// it and only asks, through `authorize`, whether the signed-in user may use it.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { config } from './config.ts';

export interface User {
  name: string;
  staff: boolean;
}

declare global {
  namespace Express {
    interface Request {
      /** Set by signIn. */
      user?: User;
    }
  }
}

const USERS = new Map<string, { password: string; staff: boolean }>();
if (config.OPS_PASSWORD) USERS.set('ops', { password: config.OPS_PASSWORD, staff: true });
if (config.CLERK_PASSWORD) USERS.set('clerk', { password: config.CLERK_PASSWORD, staff: false });

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Who is asking: `Authorization: Basic …` of a known user, else 401 (and the browser's login prompt). */
export function signIn(req: Request, res: Response, next: NextFunction): void {
  const [scheme, encoded = ''] = (req.headers.authorization ?? '').split(' ');
  const [name = '', ...rest] = Buffer.from(encoded, 'base64').toString('utf8').split(':');
  const user = USERS.get(name);
  if (scheme !== 'Basic' || !user || !timingSafeEqual(digest(rest.join(':')), digest(user.password))) {
    res.setHeader('WWW-Authenticate', 'Basic realm="orders-app ops", charset="UTF-8"');
    res.status(401).json({ error: 'sign in first' });
    return;
  }
  req.user = { name, staff: user.staff };
  next();
}

/** jobgate's `admin.authorize`: staff get in (their name goes into jobgate's audit log); others get 403. */
export const staffOnly = (req: Request): string | false => (req.user?.staff ? req.user.name : false);

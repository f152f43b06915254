import { createHash, timingSafeEqual } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import { z } from 'zod';
import { ErrorCode, JobgateError, methodNotAllowed } from '@jobgate/runtime';
import type { Ledger } from '@jobgate/queue';
import type { JobRuntime } from '@jobgate/jobs';
import type { FetcherClient } from '@jobgate/fetcher-client';
import type { FetcherMonitor } from './keep-awake.ts';
import type { OverrideControl } from './override.ts';
import { parseOrThrow } from './validation.ts';

export interface AdminDeps {
  jobs: JobRuntime;
  ledger: Ledger;
  override: OverrideControl;
  /** Absent when no fetcher is configured. */
  fetcher?: { client: FetcherClient; monitor: FetcherMonitor; wakeTimeoutMs: number };
  /** Unset: the admin surface answers 503 (nobody can log in). */
  password?: string;
}

const ADMIN_USER = 'admin';
const OverrideBody = z.strictObject({
  enabled: z.boolean(),
  reason: z.string().trim().min(1, 'say why').max(500),
  expiresInMinutes: z.number().positive().max(7 * 24 * 60).optional(),
});
const RunBody = z.strictObject({
  payload: z.unknown().default({}),
  runOnMain: z.boolean().default(false),
  priority: z.number().int().min(-1_000_000).max(1_000_000).optional(),
  delaySeconds: z.number().int().min(0).max(31_536_000).optional(),
});

const digest = (s: string) => createHash('sha256').update(s).digest();
/** An Origin's host; `null` (sandboxed or privacy-stripped) and garbage never match. */
function hostOf(origin: string): string | null {
  try {
    return new URL(origin).host || null;
  } catch {
    return null;
  }
}

/**
 * HTTP Basic (`admin` / ADMIN_PASSWORD) for scripts, compared in constant time. State changes
 * must not come from another site: a browser's Origin and Sec-Fetch-Site are checked.
 */
function requireAdmin(password: string | undefined) {
  const expected = password ? digest(`${ADMIN_USER}:${password}`) : null;
  return (req: Request, res: Response, next: NextFunction) => {
    if (!expected) throw new JobgateError(ErrorCode.adminDisabled, 'The admin surface is off: set ADMIN_PASSWORD.');
    const header = req.headers.authorization ?? '';
    const given = header.startsWith('Basic ') ? Buffer.from(header.slice(6), 'base64').toString('utf8') : null;
    if (given === null || !timingSafeEqual(digest(given), expected)) {
      res.setHeader('WWW-Authenticate', 'Basic realm="jobgate admin", charset="UTF-8"');
      throw new JobgateError(ErrorCode.unauthorized, 'Admin credentials are missing or wrong.');
    }
    if (!['GET', 'HEAD'].includes(req.method)) {
      const site = req.headers['sec-fetch-site'];
      const origin = req.headers.origin;
      if ((site && site !== 'same-origin' && site !== 'none') || (origin !== undefined && hostOf(origin) !== req.headers.host)) {
        throw new JobgateError(ErrorCode.forbidden, 'Cross-site requests may not change state.');
      }
    }
    req.log = req.log.child({ actor: ADMIN_USER });
    next();
  };
}

/** The admin API (/admin/api/*): fetcher state, the emergency override, waking, running jobs. */
export function adminApi(deps: AdminDeps): express.Router {
  const { jobs, ledger, override } = deps;
  const router = express.Router();
  router.use((_req, res, next) => {
    res.setHeader('Cache-Control', 'no-store');
    next();
  });
  router.use(requireAdmin(deps.password));
  const actorOf = (req: Request) => `${ADMIN_USER} (${req.ip ?? 'unknown'})`;

  router
    .route('/fetcher_service')
    .get(async (_req, res) => {
      const [fetcher, state, outbox] = await Promise.all([
        deps.fetcher ? deps.fetcher.monitor.check(2_000) : Promise.resolve({ state: 'unknown' as const, checkedAt: null, latencyMs: null, error: 'FETCHER_SERVICE_URL is not set' }),
        override.get(),
        ledger.outboxStats(),
      ]);
      res.json({ fetcher, override: state, outbox });
    })
    .all(methodNotAllowed(['GET']));

  router
    .route('/fetcher_service/wake')
    .post(async (req, res) => {
      if (!deps.fetcher) throw new JobgateError(ErrorCode.notFound, 'No fetcher is configured (FETCHER_SERVICE_URL).');
      const started = Date.now();
      try {
        const woke = await deps.fetcher.client.wake({ deadlineMs: deps.fetcher.wakeTimeoutMs });
        await deps.fetcher.monitor.check();
        req.log.info({ waitedMs: woke.waitedMs }, 'fetcher woken from the admin API');
        res.json({ state: 'awake', waitedMs: woke.waitedMs });
      } catch (err) {
        const h = await deps.fetcher.monitor.check();
        req.log.warn({ err }, 'fetcher did not wake');
        res.json({ state: h.state, waitedMs: Date.now() - started, error: (err as Error).message });
      }
    })
    .all(methodNotAllowed(['POST']));

  router
    .route('/override')
    .get(async (_req, res) => {
      res.json({ override: await override.get(), audit: await override.audit() });
    })
    .put(async (req, res) => {
      const body = parseOrThrow(OverrideBody, req.body ?? {});
      const state = await override.set({ enabled: body.enabled, reason: body.reason, actor: actorOf(req), expiresInMinutes: body.enabled ? body.expiresInMinutes : undefined });
      res.json(state);
    })
    .all(methodNotAllowed(['GET', 'PUT']));

  router
    .route('/jobs/:name/run')
    .post(async (req: Request<{ name: string }>, res) => {
      const def = jobs.definition(req.params.name);
      const body = parseOrThrow(RunBody, req.body ?? {});
      const { job, duplicate } = await jobs.performLater(def, body.payload, { priority: body.priority, delaySeconds: body.delaySeconds, requestId: req.id, runOnMain: body.runOnMain });
      req.log.info({ jobId: job.id, jobName: job.name, route: job.route, routeReason: job.routeReason, duplicate }, 'job run from the admin API');
      res.status(duplicate ? 200 : 202).location(`/api/jobs/${job.id}`).json({ ...job, ...(duplicate ? { duplicate: true } : {}) });
    })
    .all(methodNotAllowed(['POST']));

  return router;
}

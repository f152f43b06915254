import express, { type Request } from 'express';
import { z } from 'zod';
import { ErrorCode, JobgateError, jsonBody, methodNotAllowed, mountOf } from '../../support/index.ts';
import type { AdminStore, BulkFilter, JobRecord, MainLedger, WakeStore } from '../../store/index.ts';
import type { Pool } from 'pg';
import type { MainRuntime as JobRuntime } from '../main-runtime.ts';
import type { FetcherClient } from '../../client/index.ts';
import type { AdminAuth } from './auth.ts';
import type { FetcherMonitor } from '../../forward/keep-awake.ts';
import type { OverrideControl } from '../../forward/override.ts';
import { EnqueueBody, parseOrThrow } from '../validation.ts';
import type { AdminReads } from './reads.ts';
import { createJobActions, JobFilter } from '../job-actions.ts';

export interface AdminDeps {
  jobs: JobRuntime;
  ledger: MainLedger;
  override: OverrideControl;
  /** Wake-ups of the fetcher in flight, from any main process. */
  wakes: WakeStore;
  auth: AdminAuth;
  store: AdminStore;
  pool: Pool;
  /** Absent when no fetcher is configured. */
  fetcher?: { client: FetcherClient; monitor: FetcherMonitor; wakeTimeoutMs: number };
}

export const OverrideBody = z.strictObject({
  enabled: z.boolean(),
  reason: z.string().trim().min(1, 'say why').max(500),
  expiresInMinutes: z.number().positive().max(7 * 24 * 60).optional(),
});
export const PauseBody = z.strictObject({
  reason: z.string().trim().min(1, 'say why').max(500),
  expiresInMinutes: z.number().positive().max(30 * 24 * 60).optional(),
});
export const ResumeBody = z.strictObject({ reason: z.string().trim().max(500).optional() });
const ScheduleFields = {
  schedule: z.string().trim().min(1).max(200),
  timeZone: z.string().trim().min(1).max(64),
  payload: z.record(z.string(), z.unknown()),
  enabled: z.boolean(),
};
export const NewSchedule = z.strictObject({ name: z.string().min(1).max(100), ...ScheduleFields, timeZone: ScheduleFields.timeZone.optional(), payload: ScheduleFields.payload.optional(), enabled: ScheduleFields.enabled.optional() });
export const ScheduleChange = z.strictObject(ScheduleFields).partial();
export const RunBody = EnqueueBody.extend({ runOnMain: z.boolean().default(false) });
const Filter = JobFilter;
export const BulkBody = z.strictObject({
  action: z.enum(['retry', 'cancel', 'delete']),
  filter: z.strictObject({ state: Filter.shape.state, name: Filter.shape.name, route: Filter.shape.route, payload: z.string().optional(), createdBefore: z.string().optional() }),
  /** An empty filter acts on every job only with this. */
  all: z.literal(true).optional(),
});
/** The admin API (/admin/api/*): fetcher state, the override, jobs to act on, cron, the audit log. */
export function adminApi(deps: AdminDeps, reads: AdminReads): express.Router {
  const { jobs, ledger, override, store, pool } = deps;
  const router = express.Router();
  router.use(...deps.auth.adminApi);
  // who is asking comes before any body is read
  router.use(...jsonBody());
  const actor = (req: Request) => req.admin!.actor;

  const actions = createJobActions({ jobs, ledger, pool, store });

  // Who the caller is to the admin, and the CSRF token its every change must carry in x-csrf-token
  // when it is signed in as a browser is (the dashboard's cookie, or the host app's sign-in);
  // null for Basic and API tokens, which need none. Another site cannot read this answer.
  router
    .route('/session')
    .get((req, res) => {
      const { via, actor, csrfToken } = req.admin!;
      res.json({ via, actor, csrfToken: csrfToken ?? null });
    })
    .all(methodNotAllowed(['GET']));

  async function retry(req: Request, job: JobRecord): Promise<JobRecord> {
    const again = await actions.retry(job, actor(req), { requestId: req.id, traceparent: req.traceparent });
    req.log.info({ jobId: job.id, newJobId: again.id, jobName: job.name }, 'job retried from the admin');
    return again;
  }

  const jobOr404 = (id: string) => reads.job(id);

  router
    .route('/fetcher_service')
    .get(async (_req, res) => {
      res.json(await reads.fetcherService());
    })
    .all(methodNotAllowed(['GET']));

  router
    .route('/fetcher_service/wake')
    .post(async (req, res) => {
      if (!deps.fetcher) throw new JobgateError(ErrorCode.notFound, 'No fetcher is configured (FETCHER_SERVICE_URL).');
      const started = Date.now();
      await store.audit({ actor: actor(req), action: 'fetcher.wake' });
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
    .route('/fetcher_service/resend-events')
    .post(async (req, res) => {
      if (!deps.fetcher) throw new JobgateError(ErrorCode.notFound, 'No fetcher is configured (FETCHER_SERVICE_URL).');
      const { resent } = await deps.fetcher.client.resendEvents();
      await store.audit({ actor: actor(req), action: 'fetcher.resend-events', detail: { resent } });
      req.log.info({ resent }, 'set-aside job events sent again, from the admin API');
      res.json({ resent });
    })
    .all(methodNotAllowed(['POST']));

  router
    .route('/override')
    .get(async (_req, res) => {
      res.json(await reads.override());
    })
    .put(async (req, res) => {
      const body = parseOrThrow(OverrideBody, req.body ?? {});
      const state = await override.set({ enabled: body.enabled, reason: body.reason, actor: actor(req), expiresInMinutes: body.enabled ? body.expiresInMinutes : undefined });
      res.json(state);
    })
    .all(methodNotAllowed(['GET', 'PUT']));

  router
    .route('/jobs')
    .get(async (req, res) => {
      res.json(await reads.listJobs(req.query));
    })
    .all(methodNotAllowed(['GET']));

  router
    .route('/jobs/bulk')
    .post(async (req, res) => {
      const body = parseOrThrow(BulkBody, req.body ?? {});
      const given = Object.fromEntries(Object.entries(body.filter).filter(([, v]) => v !== undefined && v !== ''));
      // an empty filter acts on every job there is: only when asked for in so many words
      if (Object.keys(given).length === 0 && !body.all) throw new JobgateError(ErrorCode.requestInvalid, 'Choose at least one filter for a bulk action (or all: true for every job).', { errors: [{ path: 'filter', message: 'at least one of state, name, route, payload, createdBefore; or "all": true' }] });
      const filter = parseOrThrow(Filter, given, ['filter']) as BulkFilter;
      const result = await actions.bulk(body.action, filter, actor(req));
      // one line for the whole action, however many jobs it changed
      req.log.info({ action: body.action, filter: given, matched: result.matched, done: result.done, failed: result.failures.length }, 'bulk action from the admin');
      res.json(result);
    })
    .all(methodNotAllowed(['POST']));

  router
    .route('/jobs/:id')
    .get(async (req: Request<{ id: string }>, res) => {
      res.json(await jobOr404(req.params.id));
    })
    .all(methodNotAllowed(['GET']));

  router
    .route('/jobs/:id/retry')
    .post(async (req: Request<{ id: string }>, res) => {
      const again = await retry(req, await jobOr404(req.params.id));
      res.status(202).location(`${mountOf(res)}/api/jobs/${again.id}`).json(again);
    })
    .all(methodNotAllowed(['POST']));

  router
    .route('/jobs/:id/cancel')
    .post(async (req: Request<{ id: string }>, res) => {
      const job = await jobOr404(req.params.id);
      const [cancelled] = await actions.cancel([job.id], actor(req));
      if (!cancelled) throw new JobgateError(ErrorCode.stateConflict, job.state === 'active' ? 'The job is running on the fetcher and cannot be cancelled from here.' : `The job is ${job.state}; there is nothing to cancel.`);
      res.json(await jobs.getJob(job.id));
    })
    .all(methodNotAllowed(['POST']));

  router
    .route('/jobs/:name/run')
    .post(async (req: Request<{ name: string }>, res) => {
      const def = jobs.definition(req.params.name);
      const body = parseOrThrow(RunBody, req.body ?? {});
      const { job, duplicate } = await jobs.performLater(def, body.payload, { priority: body.priority, delaySeconds: body.delaySeconds, requestId: req.id, traceparent: req.traceparent, runOnMain: body.runOnMain });
      await store.audit({ actor: actor(req), action: 'job.run', target: job.id, detail: { name: def.name, runOnMain: body.runOnMain, duplicate } });
      req.log.info({ jobId: job.id, jobName: job.name, route: job.route, routeReason: job.routeReason, duplicate }, 'job run from the admin API');
      res.status(duplicate ? 200 : 202).location(`${mountOf(res)}/api/jobs/${job.id}`).json({ ...job, ...(duplicate ? { duplicate: true } : {}) });
    })
    .all(methodNotAllowed(['POST']));

  router
    .route('/overview')
    .get(async (req, res) => {
      res.json(await reads.overview(req.query));
    })
    .all(methodNotAllowed(['GET']));

  router
    .route('/batches/:id')
    .get(async (req: Request<{ id: string }>, res) => {
      res.json(await reads.batch(req.params.id));
    })
    .all(methodNotAllowed(['GET']));

  // each failed job of the batch again, into the batch (which runs again until they end)
  router
    .route('/batches/:id/retry-failed')
    .post(async (req: Request<{ id: string }>, res) => {
      const batch = await reads.batch(req.params.id);
      const retried: string[] = [];
      const failures: Array<{ id: string; error: string }> = [];
      for (const failed of batch.failed) {
        try {
          const job = await jobs.getJob(failed.id);
          if (job) retried.push((await retry(req, job)).id);
        } catch (err) {
          failures.push({ id: failed.id, error: (err as Error).message });
        }
      }
      await store.audit({ actor: actor(req), action: 'batch.retry-failed', target: batch.id, detail: { retried: retried.length, failures: failures.length } });
      res.json({ retried, failures });
    })
    .all(methodNotAllowed(['POST']));

  router
    .route('/pauses')
    .get(async (_req, res) => {
      res.json({ pauses: await jobs.listPauses() });
    })
    .all(methodNotAllowed(['GET']));

  // `:name` is a job's name, or `*` for every job
  router
    .route('/jobs/:name/pause')
    .post(async (req: Request<{ name: string }>, res) => {
      const body = parseOrThrow(PauseBody, req.body ?? {});
      res.json(await jobs.pauseJob(req.params.name, { reason: body.reason, actor: actor(req), ...(body.expiresInMinutes ? { expiresInMinutes: body.expiresInMinutes } : {}) }));
    })
    .all(methodNotAllowed(['POST']));

  router
    .route('/jobs/:name/resume')
    .post(async (req: Request<{ name: string }>, res) => {
      const body = parseOrThrow(ResumeBody, req.body ?? {});
      const ended = await jobs.resumeJob(req.params.name, { actor: actor(req), ...(body.reason ? { reason: body.reason } : {}) });
      res.json({ name: ended?.name ?? req.params.name, resumed: ended !== null, ended });
    })
    .all(methodNotAllowed(['POST']));

  router
    .route('/catalogue')
    .get((_req, res) => {
      res.json(reads.catalogue());
    })
    .all(methodNotAllowed(['GET']));

  router
    .route('/schedules')
    .get(async (_req, res) => {
      res.json({ schedules: await jobs.schedules.list() });
    })
    .post(async (req, res) => {
      const body = parseOrThrow(NewSchedule, req.body ?? {});
      const created = await jobs.schedules.create(body, actor(req));
      res.status(201).location(`${mountOf(res)}/admin/api/schedules/${created.id}`).json(created);
    })
    .all(methodNotAllowed(['GET', 'POST']));

  router
    .route('/schedules/:id')
    .get(async (req: Request<{ id: string }>, res) => {
      res.json(await jobs.schedules.get(req.params.id));
    })
    .patch(async (req: Request<{ id: string }>, res) => {
      const body = parseOrThrow(ScheduleChange, req.body ?? {});
      res.json(await jobs.schedules.update(req.params.id, body, actor(req)));
    })
    .delete(async (req: Request<{ id: string }>, res) => {
      await jobs.schedules.remove(req.params.id, actor(req));
      res.status(204).end();
    })
    .all(methodNotAllowed(['GET', 'PATCH', 'DELETE']));

  router
    .route('/schedules/:id/run')
    .post(async (req: Request<{ id: string }>, res) => {
      const { job, duplicate } = await jobs.schedules.runNow(req.params.id, actor(req), { requestId: req.id, traceparent: req.traceparent });
      res.status(duplicate ? 200 : 202).location(`${mountOf(res)}/api/jobs/${job.id}`).json({ ...job, ...(duplicate ? { duplicate: true } : {}) });
    })
    .all(methodNotAllowed(['POST']));

  router
    .route('/cron')
    .get(async (_req, res) => {
      res.json(await reads.cron());
    })
    .all(methodNotAllowed(['GET']));

  router
    .route('/audit')
    .get(async (_req, res) => {
      res.json({ audit: await store.auditLog(100) });
    })
    .all(methodNotAllowed(['GET']));

  return router;
}

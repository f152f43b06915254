// main, composed: the job service, the forwarder to the fetcher, the override, the loops that
// watch the fetcher, and the routers the host app mounts. Options in, an object you can stop out;
// nothing here reads process.env.
import { randomUUID } from 'node:crypto';
import type { RequestHandler, Router } from 'express';
import type pg from 'pg';
import { z } from 'zod';
import { ConfigError, ErrorCode, JobgateError, createLogger, createRegistry, metricsHandler, parseOptions, type Logger, type MetricsHandlerOptions, type Registry } from '../support/index.ts';
import { signingKeys } from '../protocol/index.ts';
import { createFetcherClient } from '../client/index.ts';
import { createAdminStore, createOverrideStore, createMainLedger, createReplayStore, createWakeStore, listenFor, parseCursor, type BatchView, type JobRecord, type Pause, type JobState, type OverrideState, type Queryable, type Route } from '../store/index.ts';
import type { JobDefinition } from '../define/define-job.ts';
import { openJobService } from '../run/service.ts';
import { commonOptionsShape, serviceOptionsOf, type CommonOptions } from '../run/service-options.ts';
import { createMainRuntime } from './main-runtime.ts';
import { createJobMetrics } from '../run/metrics.ts';
import type { EnqueueOptions, EnqueueResult } from '../enqueue/perform-later.ts';
import { batchIdOrThrow, batchSpec, type BatchOptions } from '../enqueue/batch.ts';
import { startBatchCallbacks } from '../enqueue/batch-callbacks.ts';
import type { Schedule } from '../schedule/schedules.ts';
import type { SpawnJob } from '../protocol/index.ts';
import { cleanupJob } from '../maintain/cleanup-job.ts';
import { startForwarder } from '../forward/forwarder.ts';
import { createFetcherMonitor, startKeepAwake } from '../forward/keep-awake.ts';
import { createOverrideControl } from '../forward/override.ts';
import { startReconciler } from '../report/reconciler.ts';
import { createAdminAuth, type AuthorizeAdmin } from './admin/auth.ts';
import { ApiTokens, type ApiToken } from './admin/api-tokens.ts';
import { createMainMetrics } from './metrics.ts';
import { createMainRouters, type MainRouters } from './router.ts';
import { createApiQuota, type ApiQuotaOptions } from './api-quota.ts';
import { JobId } from './validation.ts';

/** How main reaches the fetcher, and how hard it tries. */
export interface FetcherOptions {
  /** The fetcher's base URL, e.g. `https://fetcher.example.com`. */
  url: string;
  /** The shared secret (`whsec_<base64>`), or several separated by spaces, newest first (rotation). */
  secret: string;
  /** How long a sleeping fetcher gets to wake up (default 90 000). */
  wakeTimeoutMs?: number;
  /** How long a request waits for the answer's headers (default 10 000). */
  headersTimeoutMs?: number;
  /** While routed jobs are unfinished, ping the fetcher this often so it does not fall asleep (default 300 000). */
  keepAwakeIntervalMs?: number;
  /** A routed job the fetcher has said nothing about for this long is asked about (default 300). */
  reconcileAfterSeconds?: number;
  /** Jobs per forward request (default 500, at most 500) and such requests in flight (default 2). */
  forwardBatchSize?: number;
  forwardInFlight?: number;
  /** A forward the fetcher did not take is retried with backoff, at most this far apart (default 60). */
  forwardRetryMaxSeconds?: number;
  /**
   * Refuse the fetcher's requests that carry no header signature (default false: a fetcher of a
   * version before it is served in a lane of its own). Switch on once every fetcher is upgraded.
   */
  requireHeaderSignature?: boolean;
}

/** Who may use the admin: jobgate's own password (user `admin`), or the host app's own check. */
export type AdminOptions = { password: string } | { authorize: AuthorizeAdmin };

export interface MainOptions extends CommonOptions {
  /** Where `runsOnFetcher` jobs go. Without it they wait in the outbox. */
  fetcher?: FetcherOptions;
  /** The admin pages and /admin/api/*; without it they answer 503. */
  admin?: AdminOptions;
  /**
   * Bearer tokens for /api/* (any of them is accepted, so they rotate); each at least 16 characters.
   * One given as `{ token, scope: 'admin', name }` opens /admin/api/* as well, with no CSRF token.
   */
  apiTokens?: readonly ApiToken[];
  /**
   * Limits on /api/*: each API token's request rate in each process (and the admin's own, on
   * /api/*), over it 429 with Retry-After; and what one POST /api/jobs/:name may ask for.
   * Defaults: 50 requests a second, bursts of 100, delays up to 30 days, payloads up to 256 KiB.
   */
  apiQuota?: ApiQuotaOptions;
  /** Fetcher jobs that run on main at once under the emergency override (default 1: they are the heavy ones). */
  onMainConcurrency?: number;
  /** How often main re-reads the override, expires it, and takes over undelivered jobs (default 2000). */
  overrideCheckMs?: number;
  /** Switch the emergency override on at start, audited as set by the configuration (or by the `actor` given). */
  emergencyOverride?: boolean | { reason: string; actor: string };
  /** The cleanup job never prunes finished jobs younger than this (default 14). */
  retentionDays?: number;
}

const ms = (min: number, max: number) => z.number().int().min(min).max(max);
const Options = z.object({
  ...commonOptionsShape({ schema: 'jobgate', bossSchema: 'pgboss_main' }),
  fetcher: z
    .strictObject({
      url: z.url({ protocol: /^https?$/ }),
      secret: z.string().min(1),
      wakeTimeoutMs: ms(1_000, 600_000).default(90_000),
      headersTimeoutMs: ms(500, 300_000).default(10_000),
      keepAwakeIntervalMs: ms(100, 3_600_000).default(300_000),
      reconcileAfterSeconds: z.number().int().min(1).max(86_400).default(300),
      forwardBatchSize: z.number().int().min(1).max(500).default(500),
      forwardInFlight: z.number().int().min(1).max(16).default(2),
      forwardRetryMaxSeconds: z.number().int().min(1).max(3_600).default(60),
      requireHeaderSignature: z.boolean().default(false),
    })
    .optional(),
  admin: z.union([z.strictObject({ password: z.string().min(8, 'at least 8 characters').max(200) }), z.strictObject({ authorize: z.custom<AuthorizeAdmin>((f) => typeof f === 'function', 'must be a function') })]).optional(),
  apiTokens: ApiTokens.optional(),
  apiQuota: z
    .strictObject({
      perSecond: z.number().positive().max(1_000_000).optional(),
      burst: z.number().int().min(1).max(1_000_000).optional(),
      // (the API's own bound on delaySeconds is a year)
      maxDelaySeconds: z.number().int().min(0).max(31_536_000).optional(),
      maxPayloadBytes: z.number().int().min(2).max(2 ** 20).optional(),
    })
    .default({}),
  onMainConcurrency: z.number().int().min(1).max(32).default(1),
  overrideCheckMs: ms(100, 60_000).default(2_000),
  emergencyOverride: z.union([z.boolean(), z.strictObject({ reason: z.string().min(1).max(500), actor: z.string().min(1).max(200) })]).default(false),
  retentionDays: z.number().int().min(1).max(3650).default(14),
});

/** What `listJobs` filters by. */
export interface JobListFilter {
  state?: JobState;
  name?: string;
  route?: Route;
  limit?: number;
  cursor?: string;
}

/** performManyLater's options: those of performLater that apply to every job alike. */
export type ManyOptions = Pick<EnqueueOptions, 'db' | 'priority' | 'delaySeconds' | 'runOnMain' | 'batch' | 'requestId' | 'traceparent'>;

/** A batch being put together (Main.batch). */
export interface Batch {
  readonly id: string;
  add<P>(job: JobDefinition<P> | string, payload: P, options?: Pick<EnqueueOptions, 'priority' | 'delaySeconds' | 'runOnMain'>): Batch;
  /** Writes the batch and its jobs in one transaction (with `db`: yours); the jobs' ids in the order added (`skipped`: as performManyLater's). */
  enqueue(options?: { db?: Queryable }): Promise<{ id: string; jobIds: string[]; skipped: string[] }>;
}

export interface MainStartOptions {
  /** Run only these jobs' handlers (and none of main's loops: cron, forwarder, override, reconciler, keep-awake). */
  queues?: string[];
}

export interface Main {
  /** /api/*, /admin/* and /internal/v1/* in one router: mount it under a prefix of your choice, before any body parser (the fetcher's calls are signed over their raw bodies). */
  router: Router;
  /** The same, apart: put `admin` behind your own middleware, and never `internal` (the fetcher signs its requests). */
  routers: Omit<MainRouters, 'all'>;
  /** Runs main's handlers, the forwarder, cron, the override loop, the reconciler and keep-awake. A web-only process skips it. */
  start(options?: MainStartOptions): Promise<void>;
  /**
   * Validates the payload and commits the job before resolving: with `db` (a pg client inside
   * your transaction, or anything with `query(text, values)`) it commits or rolls back with your work.
   */
  performLater<P>(job: JobDefinition<P> | string, payload: P, options?: EnqueueOptions): Promise<EnqueueResult>;
  /**
   * Many jobs of one kind in one transaction (with `db`: yours), their ledger rows in one statement
   * and their queue entries in one per queue. Resolves with their ids, in order; `skipped`: those
   * not written because a `unique` job's live twin exists.
   */
  performManyLater<P>(job: JobDefinition<P> | string, payloads: readonly P[], options?: ManyOptions): Promise<{ ids: string[]; skipped: string[] }>;
  /**
   * A batch: add jobs to it, then `enqueue()` writes them and the batch in one transaction. Its
   * callbacks are enqueued once, when the last of its jobs ends.
   * @example
   * const { id } = await jobgate.batch({ onFinish: importDone, properties: { importId } }).add(importRow, { row: 1 }).add(importRow, { row: 2 }).enqueue();
   */
  batch(options?: BatchOptions): Batch;
  /** A batch with its jobs counted by state and its callbacks (as GET /api/batches/:id answers), or null. */
  getBatch(id: string): Promise<BatchView | null>;
  /** The job with its executions (as GET /api/jobs/:id answers), or null. */
  getJob(id: string): Promise<JobRecord | null>;
  /** Newest first, `limit` (1–500, default 50) at a time; pass `cursor` (a page's `nextCursor`) for the next page. */
  listJobs(filter?: JobListFilter): Promise<{ jobs: JobRecord[]; nextCursor: string | null }>;
  /**
   * Pausing a job (its name, or `*` for every job) on both sides: while paused no new attempt of it
   * starts on main or the fetcher (a running one finishes), its jobs keep queueing, and nothing is
   * failed or retried. Every change is audited with `actor`.
   */
  pauses: {
    list(): Promise<Pause[]>;
    pause(name: string, change: { reason: string; actor: string; expiresInMinutes?: number }): Promise<Pause>;
    resume(name: string, change: { actor: string; reason?: string }): Promise<Pause | null>;
  };
  /**
   * Schedules stored in PostgreSQL, beside the code's `cron` (which may only be enabled or
   * disabled here). Each fires at every occurrence (within a second or two), once however many mains
   * run; every change is audited with `actor`.
   * @example
   * await jobgate.schedules.create({ name: 'reports.daily', schedule: '0 6 * * *', timeZone: 'Europe/Berlin', payload: {} }, 'ops@example.com');
   */
  schedules: {
    list(): Promise<Schedule[]>;
    create(input: { name: string; schedule: string; timeZone?: string; payload?: Record<string, unknown>; enabled?: boolean }, actor: string): Promise<Schedule>;
    update(id: string, patch: { schedule?: string; timeZone?: string; payload?: Record<string, unknown>; enabled?: boolean }, actor: string): Promise<Schedule>;
    remove(id: string, actor: string): Promise<void>;
    runNow(id: string, actor: string): Promise<EnqueueResult>;
  };
  /** The emergency override: fetcher jobs run on main while it is on. */
  override: {
    get(): Promise<OverrideState>;
    set(change: { enabled: boolean; reason: string; expiresInMinutes?: number; actor: string }): Promise<OverrideState>;
  };
  /** Prometheus metrics of this service. */
  metrics: Registry;
  /**
   * GET /metrics for your app to mount: Prometheus text of `metrics`, 401 without the scraper's
   * bearer token (`{ token }`), or open to anyone who reaches it (`{ open: true }`). One is required.
   * @example
   * app.get('/metrics', jobgate.metricsHandler({ token: process.env.METRICS_TOKEN! }));
   */
  metricsHandler(options: MetricsHandlerOptions): RequestHandler;
  /**
   * Stops taking jobs, lets running ones finish (their signal aborts at shutdownTimeoutMs), stops
   * the loops, and closes jobgate's own pools. `before`: what must end before the pools close
   * (your HTTP server's close, so requests in flight still reach the database).
   */
  stop(options?: { before?: Promise<unknown> }): Promise<void>;
}

/**
 * main: the service your web app enqueues with, that runs its jobs and forwards the heavy ones.
 * @example
 * const jobgate = await createMain({ databaseUrl, jobs: [importOrder], fetcher: { url, secret }, admin: { password } });
 * app.use('/jobgate', jobgate.router);
 * await jobgate.start();
 */
export async function createMain(options: MainOptions): Promise<Main> {
  const o = parseOptions(Options, options, 'createMain');
  const logger = options.logger ?? createLogger({ level: 'info', name: 'main' });
  const registry = options.registry ?? createRegistry('main');
  const keys = o.fetcher ? signingKeys(o.fetcher.secret, 'createMain.fetcher.secret') : undefined;
  const service = await openJobService(serviceOptionsOf({ side: 'main', runsHere: (def) => !def.runsOnFetcher }, o, options, logger, ({ ledger }) => [cleanupJob(ledger, { minDays: o.retentionDays })]), createMainLedger);
  const { pool, ledger, boss } = service;
  let fetcher: ReturnType<typeof createFetcherClient> | null = null;
  try {
    const overrideStore = createOverrideStore(pool, o.schema);
    const override = createOverrideControl({ store: overrideStore, logger, checkMs: o.overrideCheckMs, takeOver: (limit) => jobs.takeOverUndelivered(limit) });
    const jobs = createMainRuntime({
      ...service,
      overrideEnabled: (db) => override.enabled(db),
      onMainConcurrency: o.onMainConcurrency,
      metrics: createJobMetrics(registry),
      listen: (channel, wake) => listenFor({ connectionString: o.databaseUrl, channel, onNotify: wake, logger, applicationName: 'jobgate-main-scheduler' }),
    });
    await jobs.prepare();
    if (o.emergencyOverride && !(await override.enabled())) {
      const given = typeof o.emergencyOverride === 'object' ? o.emergencyOverride : { reason: 'emergencyOverride at start', actor: 'configuration (emergencyOverride)' };
      await override.set({ enabled: true, ...given });
    }

    // No retries inside the client: the forwarder wakes the fetcher and then leaves the batch to the
    // outbox's backoff, and the reconciler and keep-awake loop on their own (a 10 s timeout retried
    // three times would hold a batch for 40 s before the wake-up even starts).
    const wakes = createWakeStore(pool, o.schema);
    let metrics: ReturnType<typeof createMainMetrics> | undefined;
    fetcher =
      o.fetcher && keys
        ? createFetcherClient({
            baseUrl: o.fetcher.url,
            keys,
            retries: 0,
            timeouts: { headersMs: o.fetcher.headersTimeoutMs },
            onWakeStart: (since, deadlineMs) => void wakes.began(since, deadlineMs).catch((err: unknown) => logger.warn({ err }, 'could not record the wake-up')),
            onWake: (outcome, took) => {
              metrics?.woke(outcome, took);
              wakes.ended().catch((err: unknown) => logger.warn({ err }, 'could not record the end of the wake-up'));
            },
          })
        : null;
    const monitor = fetcher ? createFetcherMonitor({ fetcher, logger }) : null;
    metrics = createMainMetrics(registry, { ledger, boss, override: () => override, monitor, wakes, logger });
    const adminStore = createAdminStore(pool, o.schema);
    const auth = createAdminAuth({
      ...(o.admin && 'password' in o.admin ? { password: o.admin.password } : {}),
      ...(o.admin && 'authorize' in o.admin ? { authorize: o.admin.authorize } : {}),
      ...(o.apiTokens ? { apiTokens: o.apiTokens } : {}),
      store: adminStore,
    });
    const routers = createMainRouters({
      jobs,
      ledger,
      ...(keys ? { keys } : {}),
      requireHeaderSignature: o.fetcher?.requireHeaderSignature ?? false,
      replay: createReplayStore(pool, o.schema),
      logger,
      registry,
      apiAuth: auth.api,
      apiQuota: createApiQuota(o.apiQuota),
      admin: {
        override,
        wakes,
        store: adminStore,
        pool,
        auth,
        ...(fetcher && monitor && o.fetcher ? { fetcher: { client: fetcher, monitor, wakeTimeoutMs: o.fetcher.wakeTimeoutMs } } : {}),
      },
    });

    const loops: Array<{ stop(): unknown }> = [];
    let forwarder: Awaited<ReturnType<typeof startForwarder>> | null = null;
    let stopped: Promise<void> | null = null;
    let starting: Promise<void> | null = null;

    /** main's start: its handlers, then (unless `queues`) the loops. */
    async function begin(startOptions: MainStartOptions): Promise<void> {
      await jobs.start(startOptions);
      if (startOptions.queues?.length) {
        logger.warn({ queues: startOptions.queues }, 'queues: this process runs only these jobs; cron, the forwarder, the reconciler, keep-awake, the override loop and dead-lettered jobs need a process without it');
        return;
      }
      override.start();
      loops.push({ stop: () => override.stop() });
      loops.push(startBatchCallbacks({ pool, batches: jobs.batches, performLater: jobs.performLater, intervalMs: service.timings.pollIntervalSeconds * 1000, logger }));
      if (!fetcher || !monitor || !o.fetcher) {
        logger.warn('no fetcher configured: runsOnFetcher jobs wait in the outbox');
        return;
      }
      loops.push(startKeepAwake({ ledger, monitor, logger, intervalMs: o.fetcher.keepAwakeIntervalMs }));
      loops.push(startReconciler({ ledger, fetcher, logger, quietSeconds: o.fetcher.reconcileAfterSeconds, intervalMs: Math.min(60_000, o.fetcher.reconcileAfterSeconds * 1000) }));
      forwarder = await startForwarder({
        ledger,
        listen: (wake) => listenFor({ connectionString: o.databaseUrl, channel: ledger.forwardChannel, onNotify: wake, logger, applicationName: 'jobgate-main-forwarder' }),
        leaseSeconds: service.timings.heartbeatSeconds,
        retryDelayMaxSeconds: o.fetcher.forwardRetryMaxSeconds,
        fetcher,
        logger,
        wakeTimeoutMs: o.fetcher.wakeTimeoutMs,
        batchSize: o.fetcher.forwardBatchSize,
        inFlight: o.fetcher.forwardInFlight,
        pollIntervalSeconds: service.timings.pollIntervalSeconds,
        overrideEnabled: () => override.enabled(),
        takeOver: (ids) => jobs.takeOverUndelivered(ids.length, ids),
        onForward: (outcome, n) => metrics?.forwarded(outcome, n),
      });
    }


    return {
      router: routers.all,
      routers: { internal: routers.internal, admin: routers.admin, api: routers.api },
      start(startOptions = {}) {
        if (stopped) return Promise.reject(new ConfigError(['start: this main was stopped; create another']));
        // once, however often it is called (a second call gets the first one's promise)
        return (starting ??= begin(startOptions));
      },
      performLater: (job, payload, enqueueOptions) => jobs.performLater(job, payload, enqueueOptions),
      async performManyLater(job, payloads, { db, batch, priority, delaySeconds, runOnMain, requestId, traceparent } = {}) {
        const name = jobs.definition(job).name;
        if (batch !== undefined) batchIdOrThrow(batch);
        const many: SpawnJob[] = payloads.map((payload) => ({
          id: randomUUID(), name, payload,
          ...(priority !== undefined ? { priority } : {}), ...(delaySeconds ? { delaySeconds } : {}), ...(runOnMain ? { runOnMain } : {}), ...(batch ? { batchId: batch } : {}),
        }));
        const written = await jobs.spawn({ jobs: many, batches: [], seal: [], ...(requestId ? { requestId } : {}), ...(traceparent ? { traceparent } : {}) }, db ? { db } : {});
        return { ids: many.map((j) => j.id), skipped: many.flatMap((j) => (written.has(j.id) ? [] : [j.id])) };
      },
      batch(batchOptions = {}) {
        const id = randomUUID();
        const members: SpawnJob[] = [];
        const batch: Batch = {
          id,
          add(job, payload, o = {}) {
            members.push({ id: randomUUID(), name: jobs.definition(job).name, payload, batchId: id, ...(o.priority !== undefined ? { priority: o.priority } : {}), ...(o.delaySeconds ? { delaySeconds: o.delaySeconds } : {}), ...(o.runOnMain ? { runOnMain: true } : {}) });
            return batch;
          },
          async enqueue({ db } = {}) {
            const written = await jobs.spawn({ jobs: members, batches: [batchSpec(id, batchOptions)], seal: [id] }, db ? { db } : {});
            return { id, jobIds: members.map((m) => m.id), skipped: members.flatMap((m) => (written.has(m.id) ? [] : [m.id])) };
          },
        };
        return batch;
      },
      getBatch: async (id) => (JobId.safeParse(id).success ? jobs.batches.get(id) : null),
      // (an id that is not a UUID names no job: null, not a database error)
      getJob: async (id) => (JobId.safeParse(id).success ? jobs.getJob(id) : null),
      listJobs: async ({ state, name, route, limit = 50, cursor } = {}) => {
        const at = cursor ? parseCursor(cursor) : undefined;
        if (at === null) throw new JobgateError(ErrorCode.requestInvalid, 'The cursor is invalid.', { errors: [{ path: 'cursor', message: 'not a cursor from a page of this list' }] });
        if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw new JobgateError(ErrorCode.requestInvalid, 'The limit is invalid.', { errors: [{ path: 'limit', message: 'a whole number from 1 to 500' }] });
        return jobs.listJobs({ limit, ...(state ? { state } : {}), ...(name ? { name } : {}), ...(route ? { route } : {}), ...(at ? { cursor: at } : {}) });
      },
      pauses: { list: () => jobs.listPauses(), pause: (name, change) => jobs.pauseJob(name, change), resume: (name, change) => jobs.resumeJob(name, change) },
      schedules: {
        list: () => jobs.schedules.list(),
        create: (input, by) => jobs.schedules.create(input, by),
        update: (id, patch, by) => jobs.schedules.update(id, patch, by),
        remove: async (id, by) => void (await jobs.schedules.remove(id, by)),
        runNow: (id, by) => jobs.schedules.runNow(id, by),
      },
      override: {
        get: () => overrideStore.get(),
        set: (change) => override.set(change),
      },
      metrics: registry,
      metricsHandler: (metricsOptions) => metricsHandler(registry, metricsOptions, { logger, what: 'main.metricsHandler' }),
      stop(stopOptions = {}) {
        stopped ??= (async () => {
          // a start under way finishes first, so every loop it begins is stopped here
          await starting?.catch(() => {});
          const forwarding = forwarder?.stop();
          await Promise.all([jobs.stop(o.shutdownTimeoutMs), stopOptions.before]);
          // Stop the loops, then cut their requests in flight (a wake probe or a retried read could
          // otherwise hold the shutdown past its 25 s; a delivery cut short goes again after its lease).
          const looping = Promise.all(loops.map((l) => l.stop()));
          await fetcher?.close();
          await Promise.all([looping, forwarding]);
          await service.closePool();
        })();
        return stopped;
      },
    };
  } catch (err) {
    // a failed setup leaves nothing running: pg-boss, jobgate's own pool, the fetcher client
    await service.abandon();
    await fetcher?.close();
    throw err;
  }
}

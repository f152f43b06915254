// main, composed: the job service, the forwarder to the fetcher, the override, the loops that
// watch the fetcher, and the routers the host app mounts. Options in, an object you can stop out;
// nothing here reads process.env.
import { ConfigError, ErrorCode, JobgateError, createLogger, createRegistry, metricsHandler, uuidv7 } from '../support/index.ts';
import { signingKeys, type SpawnJob } from '../protocol/index.ts';
import { createFetcherClient } from '../client/index.ts';
import { createAdminStore, createOverrideStore, createMainLedger, createReplayStore, createWakeStore, listenFor, parseCursor } from '../store/index.ts';
import { openJobService } from '../run/service.ts';
import { serviceOptionsOf } from '../run/service-options.ts';
import { createJobMetrics } from '../run/metrics.ts';
import { batchIdOrThrow, batchSpec } from '../enqueue/batch.ts';
import { startBatchCallbacks } from '../enqueue/batch-callbacks.ts';
import { cleanupJob } from '../maintain/cleanup-job.ts';
import { startForwarder } from '../forward/forwarder.ts';
import { createFetcherMonitor, startKeepAwake } from '../forward/keep-awake.ts';
import { createOverrideControl } from '../forward/override.ts';
import { startReconciler } from '../report/reconciler.ts';
import { createMainRuntime } from './main-runtime.ts';
import { createAdminAuth } from './admin/auth.ts';
import { createMainMetrics } from './metrics.ts';
import { createMainRouters } from './router.ts';
import { createApiQuota } from './api-quota.ts';
import { JobId } from './validation.ts';
import { parseMainOptions, type MainOptions, type MainStartOptions } from './main-options.ts';
import type { Batch, Main } from './main-api.ts';

/**
 * main: the service your web app enqueues with, that runs its jobs and forwards the heavy ones.
 * @example
 * const jobgate = await createMain({ databaseUrl, jobs: [importOrder], fetcher: { url, secret }, admin: { password } });
 * app.use('/jobgate', jobgate.router);
 * await jobgate.start();
 */
export async function createMain(options: MainOptions): Promise<Main> {
  const o = parseMainOptions(options);
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
      retentionDays: o.retentionDays,
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
          id: uuidv7(), name, payload,
          ...(priority !== undefined ? { priority } : {}), ...(delaySeconds ? { delaySeconds } : {}), ...(runOnMain ? { runOnMain } : {}), ...(batch ? { batchId: batch } : {}),
        }));
        const written = await jobs.spawn({ jobs: many, batches: [], seal: [], ...(requestId ? { requestId } : {}), ...(traceparent ? { traceparent } : {}) }, db ? { db } : {});
        return { ids: many.map((j) => j.id), skipped: many.flatMap((j) => (written.has(j.id) ? [] : [j.id])) };
      },
      batch(batchOptions = {}) {
        const id = uuidv7();
        const members: SpawnJob[] = [];
        const batch: Batch = {
          id,
          add(job, payload, o = {}) {
            members.push({ id: uuidv7(), name: jobs.definition(job).name, payload, batchId: id, ...(o.priority !== undefined ? { priority: o.priority } : {}), ...(o.delaySeconds ? { delaySeconds: o.delaySeconds } : {}), ...(o.runOnMain ? { runOnMain: true } : {}) });
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
          // the overview's counts of the last second
          await ledger.rollup.close().catch((err: unknown) => logger.warn({ err }, 'could not write the overview rollup at stop'));
          await service.closePool();
        })();
        return stopped;
      },
    };
  } catch (err) {
    // a failed setup leaves nothing running: pg-boss, jobgate's own pool, the fetcher client
    await ledger.rollup.close().catch(() => {});
    await service.abandon();
    await fetcher?.close();
    throw err;
  }
}

// The main app's entry point: the only reader of process.env. Run it with `node` directly
// (npm does not pass SIGTERM on to its child).
import { ConfigError, loadConfigOrExit, createLogger, createRegistry, listen, metricsRoute, onShutdownSignal, trustProxySetting } from 'jobgate/internal';
import { createJobMetrics, startJobService } from 'jobgate/internal';
import { createAdminStore, createOverrideStore, createReplayStore, createWakeStore } from 'jobgate/internal';
import { createFetcherClient } from 'jobgate/internal';
import { createMainApp, createWorkerApp } from 'jobgate/internal';
import { createAdminAuth } from 'jobgate/internal';
import { startForwarder } from 'jobgate/internal';
import { createFetcherMonitor, startKeepAwake } from 'jobgate/internal';
import { createOverrideControl, type OverrideControl } from 'jobgate/internal';
import { startReconciler } from 'jobgate/internal';
import { createMainMetrics, type MainMetrics } from 'jobgate/internal';
import { loadMainConfig } from './config.ts';

const config = loadConfigOrExit('main', () => loadMainConfig(process.env));
/** JOBGATE_ROLE: web serves and enqueues; worker runs jobs and the loops; all does both. */
const serves = config.JOBGATE_ROLE !== 'worker';
const works = config.JOBGATE_ROLE !== 'web';
/** The loops every deployment needs once: forwarder, keep-awake, reconciler, override (not in a JOBGATE_QUEUES worker). */
const general = works && config.JOBGATE_QUEUES.length === 0;

const logger = createLogger({ level: config.LOG_LEVEL, name: 'main' }).child({ role: config.JOBGATE_ROLE });
process.on('unhandledRejection', (err) => logger.error({ err }, 'unhandled rejection'));

const registry = createRegistry('main');
let override: OverrideControl | undefined;
const service = await startJobService(config, logger, 'main', (pool) => {
  const store = createOverrideStore(pool, config.JOBGATE_SCHEMA);
  override = createOverrideControl({ store, logger, checkMs: config.JOBGATE_OVERRIDE_CHECK_MS, takeOver: (limit) => service.jobs.takeOverUndelivered(limit) });
  return { overrideEnabled: (db) => override!.enabled(db), onMainConcurrency: config.JOBGATE_ON_MAIN_CONCURRENCY, outboxRetryDelayMaxSeconds: config.FETCHER_FORWARD_RETRY_MAX_SECONDS, metrics: createJobMetrics(registry) };
}, { workers: works, queues: config.JOBGATE_QUEUES }).catch((err: unknown) => {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`jobgate main: ${err.message}\n`);
  process.exit(1);
});
const control = override!;
if (config.FETCHER_EMERGENCY_OVERRIDE && !(await control.enabled())) {
  await control.set({ enabled: true, reason: 'FETCHER_EMERGENCY_OVERRIDE=true at boot', actor: 'environment (FETCHER_EMERGENCY_OVERRIDE)' });
}
if (general) control.start();

// No retries inside the client: the forwarder wakes the fetcher and then leaves the batch to the
// outbox's backoff, and the reconciler and keep-awake loop on their own (a 10 s timeout retried
// three times would hold a batch for 40 s before the wake-up even starts).
let metrics: MainMetrics | undefined;
const wakes = createWakeStore(service.pool, config.JOBGATE_SCHEMA);
const fetcher = config.FETCHER_SERVICE_URL && config.FETCHER_SHARED_SECRET
  ? createFetcherClient({
    baseUrl: config.FETCHER_SERVICE_URL,
    keys: config.FETCHER_SHARED_SECRET,
    retries: 0,
    timeouts: { headersMs: config.FETCHER_HEADERS_TIMEOUT_MS },
    onWakeStart: (since, deadlineMs) => void wakes.began(since, deadlineMs).catch((err: unknown) => logger.warn({ err }, 'could not record the wake-up')),
    onWake: (outcome, ms) => {
      metrics?.woke(outcome, ms);
      wakes.ended().catch((err: unknown) => logger.warn({ err }, 'could not record the end of the wake-up'));
    },
  })
  : null;
const monitor = fetcher ? createFetcherMonitor({ fetcher, logger }) : null;
metrics = createMainMetrics(registry, { ledger: service.ledger, boss: service.boss, override: () => control, monitor, wakes, logger });
const metricsRouter = metricsRoute(registry, { token: config.METRICS_TOKEN, production: config.NODE_ENV === 'production' });
const keepAwake = monitor && general ? startKeepAwake({ ledger: service.ledger, monitor, logger, intervalMs: config.FETCHER_KEEP_AWAKE_INTERVAL_MS }) : null;
const reconciler = fetcher && general
  ? startReconciler({ ledger: service.ledger, fetcher, logger, quietSeconds: config.FETCHER_RECONCILE_AFTER_SECONDS, intervalMs: Math.min(60_000, config.FETCHER_RECONCILE_AFTER_SECONDS * 1000) })
  : null;
const forwarder = fetcher && general
  ? await startForwarder({
    boss: service.boss,
    ledger: service.ledger,
    fetcher,
    logger,
    wakeTimeoutMs: config.FETCHER_WAKE_TIMEOUT_MS,
    batchSize: config.FETCHER_FORWARD_BATCH_SIZE,
    inFlight: config.FETCHER_FORWARD_IN_FLIGHT,
    pollIntervalSeconds: config.JOBGATE_POLL_INTERVAL_SECONDS,
    overrideEnabled: () => control.enabled(),
    takeOver: (ids) => service.jobs.takeOverUndelivered(ids.length, ids),
    onForward: (outcome, jobs) => metrics?.forwarded(outcome, jobs),
  })
  : null;
if (!fetcher) logger.warn('FETCHER_SERVICE_URL is not set: runsOnFetcher jobs wait in the outbox');
if (works && !general) logger.warn({ queues: config.JOBGATE_QUEUES }, 'JOBGATE_QUEUES: this process runs only these jobs; cron, the forwarder, the reconciler, keep-awake, the override loop and dead-lettered jobs need a worker without it');
let draining = false;
const adminStore = createAdminStore(service.pool, config.JOBGATE_SCHEMA);
const auth = createAdminAuth({ password: config.ADMIN_PASSWORD, apiTokens: config.API_TOKENS, store: adminStore });
const app = serves ? createMainApp({
  jobs: service.jobs,
  ledger: service.ledger,
  keys: config.FETCHER_SHARED_SECRET,
  replay: createReplayStore(service.pool, config.JOBGATE_SCHEMA),
  logger,
  isDraining: () => draining,
  trustProxy: trustProxySetting(config.TRUST_PROXY),
  metrics: metricsRouter,
  apiAuth: auth.api,
  admin: {
    override: control,
    wakes,
    store: adminStore,
    pool: service.pool,
    auth,
    ...(fetcher && monitor ? { fetcher: { client: fetcher, monitor, wakeTimeoutMs: config.FETCHER_WAKE_TIMEOUT_MS } } : {}),
  },
}) : createWorkerApp({ logger, isDraining: () => draining, metrics: metricsRouter });
const http = await listen(app, { port: config.PORT, host: config.HOST, requestTimeoutMs: config.HTTP_REQUEST_TIMEOUT_MS }, logger);

onShutdownSignal(logger, async () => {
  draining = true;
  forwarder?.stop();
  await Promise.all([service.jobs.stop(config.JOBGATE_SHUTDOWN_TIMEOUT_MS), http.close()]);
  // Stop the loops, then cut their requests in flight (a wake probe or a retried read could
  // otherwise hold the shutdown past its 25 s).
  const loops = Promise.all([keepAwake?.stop(), reconciler?.stop(), control.stop()]);
  await fetcher?.close();
  await loops;
  await service.pool.end();
});

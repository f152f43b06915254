// The fetcher's entry point: the only reader of process.env. Run it with `node` directly
// (npm does not pass SIGTERM on to its child).
import { readFileSync } from 'node:fs';
import { ConfigError, loadConfigOrExit, Counter, ErrorCode, Gauge, JobgateError, createLogger, createRegistry, listen, metricsRoute, onShutdownSignal, trustProxySetting } from 'jobgate/internal';
import { createJobMetrics, fetcherMemoryGauge, isolatedChildPids, queueSizes, startJobService, type RemoteClaims } from 'jobgate/internal';
import { createMainClient } from 'jobgate/internal';
import { createReplayStore } from 'jobgate/internal';
import { startEventDispatcher } from 'jobgate/internal';
import { createMemoryGuard, rssOfPid } from 'jobgate/internal';
import { createFetcherApp } from 'jobgate/internal';
import { startPruner } from 'jobgate/internal';
import { loadFetcherConfig, memoryLimitMb } from './config.ts';

const config = loadConfigOrExit('fetcher', () => loadFetcherConfig(process.env));

const logger = createLogger({ level: config.LOG_LEVEL, name: 'fetcher' });
process.on('unhandledRejection', (err) => logger.error({ err }, 'unhandled rejection'));
const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
const limitMb = memoryLimitMb(config);

const mainClient = config.MAIN_SERVICE_URL ? createMainClient({ baseUrl: config.MAIN_SERVICE_URL, keys: config.FETCHER_SHARED_SECRET, retries: 0 }) : null;
// Each attempt is claimed in main's ledger before it runs, so main (under the emergency override)
// and the fetcher never run one job at once. Without MAIN_SERVICE_URL nobody else can run it.
const remoteClaims: RemoteClaims | undefined = mainClient
  ? {
      claim: (id, attempt, claimSeconds, traceparent) => mainClient.claim(id, attempt, claimSeconds, traceparent).then((a) => (a.outcome === 'wait' ? { outcome: 'wait', waitMs: a.waitMs ?? 500 } : { outcome: a.outcome })),
    }
  : undefined;
const registry = createRegistry('fetcher');
const service = await startJobService(config, logger, 'fetcher', () => ({ remoteClaims, metrics: createJobMetrics(registry) })).catch((err: unknown) => {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`jobgate fetcher: ${err.message}\n`);
  process.exit(1);
});
const eventsSetAside = new Counter({ name: 'jobgate_events_set_aside_total', help: 'Job events main refused (4xx for the event itself), set aside on the fetcher', registers: [registry] });
new Gauge({
  name: 'jobgate_events_set_aside',
  help: 'Job events set aside on the fetcher now (main refused them; re-send from the admin fetcher page)',
  registers: [registry],
  async collect() {
    this.set((await service.ledger.eventsSetAside().catch(() => ({ count: 0 }))).count);
  },
});
// Job events go back to main; without MAIN_SERVICE_URL there is nobody to tell, so none are kept.
await service.ledger.setEmitEvents(Boolean(config.MAIN_SERVICE_URL));
const events = mainClient ? startEventDispatcher({ ledger: service.ledger, main: mainClient, logger, maxRetryDelayMs: config.FETCHER_EVENTS_RETRY_MAX_MS, onSetAside: () => eventsSetAside.inc() }) : null;
if (!mainClient) logger.warn('MAIN_SERVICE_URL is not set: job events are not sent and attempts are not claimed at main (main must not use its emergency override with this fetcher)');
let draining = false;
let shutdown: (reason: string, exitCode: number) => void = () => {};
const guard = createMemoryGuard({
  limitMb,
  softRatio: config.FETCHER_MEMORY_SOFT_RATIO,
  hardRatio: config.FETCHER_MEMORY_HARD_RATIO,
  logger,
  onPause: () => service.jobs.pause(),
  onResume: () => service.jobs.resume(),
  running: () => service.jobs.running,
  // The process and its isolated children (isolation 'process'): the platform counts them all.
  sampleRss: () => process.memoryUsage.rss() + isolatedChildPids().reduce((sum, pid) => sum + rssOfPid(pid), 0),
  // Exit non-zero so the platform starts a clean process; running jobs are aborted and retried there.
  onHardLimit: () => shutdown('memory hard limit', 1),
});
queueSizes(registry, service.boss, logger);
fetcherMemoryGauge(registry, "The fetcher's memory (its process and isolated children): rss, heap used, peak rss, and its limit", () => guard.snapshot());
new Gauge({ name: 'jobgate_fetcher_intake_paused', help: '1 while the memory guard takes no new job (over the soft limit)', registers: [registry], collect() { this.set(guard.intake === 'paused' ? 1 : 0); } });
const app = createFetcherApp({
  metrics: metricsRoute(registry, { token: config.METRICS_TOKEN, production: config.NODE_ENV === 'production' }),
  jobs: service.jobs,
  ledger: service.ledger,
  keys: config.FETCHER_SHARED_SECRET,
  replay: createReplayStore(service.pool, config.JOBGATE_SCHEMA),
  logger,
  version: VERSION,
  trustProxy: trustProxySetting(config.TRUST_PROXY),
  isDraining: () => draining,
  health: () => ({ memory: guard.snapshot(), intake: guard.intake }),
});
const http = await listen(app, { port: config.PORT, host: config.HOST, requestTimeoutMs: config.HTTP_REQUEST_TIMEOUT_MS }, logger);

const pruner = startPruner({ ledger: service.ledger, logger, retentionDays: config.JOBGATE_RETENTION_DAYS, intervalMs: config.FETCHER_PRUNE_INTERVAL_MS });

shutdown = onShutdownSignal(logger, async (reason) => {
  draining = true;
  guard.stop();
  const pruned = pruner.stop();
  // Over the memory limit there is no time to let jobs finish: abort them now (they are retried).
  const overLimit = reason === 'memory hard limit';
  const stopJobs = overLimit
    ? service.jobs.stop(0, new JobgateError(ErrorCode.memoryLimit, `fetcher memory passed its hard limit (${limitMb} MB budget); the process is recycled`))
    : service.jobs.stop(config.JOBGATE_SHUTDOWN_TIMEOUT_MS);
  await Promise.all([stopJobs, http.close()]);
  await events?.stop();
  await mainClient?.close();
  await pruned;
  await service.pool.end();
});

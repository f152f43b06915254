// The main app's entry point: the only reader of process.env. Run it with `node` directly
// (npm does not pass SIGTERM on to its child).
import { ConfigError, loadConfigOrExit, createLogger, listen, onShutdownSignal } from '@jobgate/runtime';
import { startJobService } from '@jobgate/jobs';
import { createFetcherClient } from '@jobgate/fetcher-client';
import { createMainApp } from './app.ts';
import { startForwarder } from './forwarder.ts';
import { startKeepAwake } from './keep-awake.ts';
import { startReconciler } from './reconciler.ts';
import { loadMainConfig } from './config.ts';

const config = loadConfigOrExit('main', () => loadMainConfig(process.env));

const logger = createLogger({ level: config.LOG_LEVEL, name: 'main' });
process.on('unhandledRejection', (err) => logger.error({ err }, 'unhandled rejection'));

const service = await startJobService(config, logger, 'main').catch((err: unknown) => {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`jobgate main: ${err.message}\n`);
  process.exit(1);
});
const fetcher = config.FETCHER_SERVICE_URL && config.FETCHER_SHARED_SECRET ? createFetcherClient({ baseUrl: config.FETCHER_SERVICE_URL, keys: config.FETCHER_SHARED_SECRET }) : null;
const keepAwake = fetcher ? startKeepAwake({ ledger: service.ledger, fetcher, logger, intervalMs: config.FETCHER_KEEP_AWAKE_INTERVAL_MS }) : null;
const reconciler = fetcher
  ? startReconciler({ ledger: service.ledger, fetcher, logger, quietSeconds: config.FETCHER_RECONCILE_AFTER_SECONDS, intervalMs: Math.min(60_000, config.FETCHER_RECONCILE_AFTER_SECONDS * 1000) })
  : null;
if (fetcher) {
  await startForwarder({ boss: service.boss, ledger: service.ledger, fetcher, logger, wakeTimeoutMs: config.FETCHER_WAKE_TIMEOUT_MS, pollIntervalSeconds: config.JOBGATE_POLL_INTERVAL_SECONDS });
} else {
  logger.warn('FETCHER_SERVICE_URL is not set: runsOnFetcher jobs wait in the outbox');
}
let draining = false;
const http = await listen(createMainApp({ jobs: service.jobs, ledger: service.ledger, keys: config.FETCHER_SHARED_SECRET, logger, isDraining: () => draining }), { port: config.PORT, host: config.HOST, requestTimeoutMs: config.HTTP_REQUEST_TIMEOUT_MS }, logger);

onShutdownSignal(logger, async () => {
  draining = true;
  await Promise.all([service.jobs.stop(config.JOBGATE_SHUTDOWN_TIMEOUT_MS), http.close()]);
  // Stop the loops, then cut their requests in flight (a wake probe or a retried read could
  // otherwise hold the shutdown past its 25 s).
  const loops = Promise.all([keepAwake?.stop(), reconciler?.stop()]);
  await fetcher?.close();
  await loops;
  await service.pool.end();
});

// The fetcher's entry point: the only reader of process.env. Run it with `node` directly
// (npm does not pass SIGTERM on to its child).
import { readFileSync } from 'node:fs';
import { ConfigError, createLogger, listen, onShutdownSignal } from '@jobgate/runtime';
import { startJobService } from '@jobgate/jobs';
import { createMainClient } from '@jobgate/fetcher-client';
import { startEventDispatcher } from './event-dispatcher.ts';
import { createFetcherApp } from './app.ts';
import { loadFetcherConfig, memoryLimitMb, type FetcherConfig } from './config.ts';

let config: FetcherConfig;
try {
  config = loadFetcherConfig(process.env);
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`jobgate fetcher: ${err.message}\n`);
  process.exit(1);
}

const logger = createLogger({ level: config.LOG_LEVEL, name: 'fetcher' });
process.on('unhandledRejection', (err) => logger.error({ err }, 'unhandled rejection'));
const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
const limitMb = memoryLimitMb(config);

const service = await startJobService(config, logger, 'fetcher');
// Job events go back to main; without MAIN_SERVICE_URL there is nobody to tell, so none are kept.
await service.ledger.setEmitEvents(Boolean(config.MAIN_SERVICE_URL));
const mainClient = config.MAIN_SERVICE_URL ? createMainClient({ baseUrl: config.MAIN_SERVICE_URL, keys: config.FETCHER_SHARED_SECRET, retries: 0 }) : null;
const events = mainClient ? startEventDispatcher({ ledger: service.ledger, main: mainClient, logger }) : null;
if (!mainClient) logger.warn('MAIN_SERVICE_URL is not set: job events are not recorded or sent');
let draining = false;
let peakRss = process.memoryUsage.rss();
const app = createFetcherApp({
  jobs: service.jobs,
  ledger: service.ledger,
  keys: config.FETCHER_SHARED_SECRET,
  logger,
  version: VERSION,
  isDraining: () => draining,
  health: () => {
    const memory = process.memoryUsage();
    peakRss = Math.max(peakRss, memory.rss);
    return {
      memory: { rssMb: Math.round(memory.rss / 2 ** 20), heapUsedMb: Math.round(memory.heapUsed / 2 ** 20), limitMb, peakRssMb: Math.round(peakRss / 2 ** 20) },
      intake: 'open',
    };
  },
});
const http = await listen(app, { port: config.PORT, host: config.HOST, requestTimeoutMs: config.HTTP_REQUEST_TIMEOUT_MS }, logger);

onShutdownSignal(logger, async () => {
  draining = true;
  await Promise.all([service.jobs.stop(config.JOBGATE_SHUTDOWN_TIMEOUT_MS), http.close()]);
  await events?.stop();
  await mainClient?.close();
  await service.pool.end();
});

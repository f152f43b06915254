// The main app's entry point: the only reader of process.env. Run it with `node` directly
// (npm does not pass SIGTERM on to its child).
import { ConfigError, createLogger, listen, onShutdownSignal } from '@jobgate/runtime';
import { startJobService } from '@jobgate/jobs';
import { createMainApp } from './app.ts';
import { loadMainConfig, type MainConfig } from './config.ts';

let config: MainConfig;
try {
  config = loadMainConfig(process.env);
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`jobgate main: ${err.message}\n`);
  process.exit(1);
}

const logger = createLogger({ level: config.LOG_LEVEL, name: 'main' });
process.on('unhandledRejection', (err) => logger.error({ err }, 'unhandled rejection'));

const service = await startJobService(config, logger, 'main').catch((err: unknown) => {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`jobgate main: ${err.message}\n`);
  process.exit(1);
});
let draining = false;
const http = await listen(createMainApp({ jobs: service.jobs, logger, isDraining: () => draining }), { port: config.PORT, host: config.HOST, requestTimeoutMs: config.HTTP_REQUEST_TIMEOUT_MS }, logger);

onShutdownSignal(logger, async () => {
  draining = true;
  await Promise.all([service.jobs.stop(config.JOBGATE_SHUTDOWN_TIMEOUT_MS), http.close()]);
  await service.pool.end();
});

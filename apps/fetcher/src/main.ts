// The reference fetcher: environment → createFetcher's options → an express app → listen → signals.
// The only reader of process.env. Run it with `node` directly (npm does not pass SIGTERM on to its child).
import express from 'express';
import pg from 'pg';
import { createFetcher } from 'jobgate';
import { applyAppSchema, ConfigError, ErrorCode, JobgateError, createLogger, listen, loadConfigOrExit, metricsOptionsFromEnv, notFound, onShutdownSignal, problemErrorHandler, requestContext, trustProxySetting } from 'jobgate/internal';
import { APP_TABLES, fetcherOptions, loadFetcherConfig } from './config.ts';

const config = loadConfigOrExit('fetcher', () => loadFetcherConfig(process.env));
const logger = createLogger({ level: config.LOG_LEVEL, name: 'fetcher' });
process.on('unhandledRejection', (err) => logger.error({ err }, 'unhandled rejection'));

const pool = new pg.Pool({ connectionString: config.DATABASE_URL, max: config.DATABASE_POOL_MAX, connectionTimeoutMillis: 5_000, idleTimeoutMillis: 30_000, application_name: 'jobgate-fetcher' });
pool.on('error', (err) => logger.warn({ err }, 'idle database connection failed'));
let shutdown: (reason: string, exitCode: number) => void = () => {};
const fetcher = await createFetcher(
  // Over the hard memory limit, exit non-zero so the platform starts a clean process; running jobs
  // are aborted and retried there.
  fetcherOptions(config, { logger, pool, onMemoryHardLimit: () => shutdown('memory hard limit', 1) }),
).catch((err: unknown) => {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`jobgate fetcher: ${err.message}\n`);
  process.exit(1);
});
// the reference jobs' own table (movies.fetch writes to it), before any of them runs
await applyAppSchema(pool, config.JOBGATE_SCHEMA, APP_TABLES);

const app = express();
app.disable('x-powered-by');
app.set('trust proxy', trustProxySetting(config.TRUST_PROXY));
app.use(requestContext(logger, { registry: fetcher.metrics }));
// METRICS_TOKEN unset: open in development, not served in production
const metrics = metricsOptionsFromEnv(config);
if (metrics) app.all('/metrics', fetcher.metricsHandler(metrics));
// the signed /v1/* API and /healthz, the wake-up target
app.use(fetcher.router);
app.use(notFound());
app.use(problemErrorHandler());

await fetcher.start();
// the signal handler before the server: a SIGTERM right after "listening" must find it
let http: Awaited<ReturnType<typeof listen>> | undefined;
shutdown = onShutdownSignal(logger, async (reason) => {
  const abort = reason === 'memory hard limit' ? new JobgateError(ErrorCode.memoryLimit, `fetcher memory passed its hard limit (${fetcher.memory().limitMb} MB budget); the process is recycled`) : undefined;
  await fetcher.stop({ before: http?.close(), ...(abort ? { abort } : {}) });
  await pool.end();
});
http = await listen(app, { port: config.PORT, host: config.HOST, requestTimeoutMs: config.HTTP_REQUEST_TIMEOUT_MS }, logger);

// The reference main app: environment → createMain's options → an express app → listen → signals.
// The only reader of process.env. Run it with `node` directly (npm does not pass SIGTERM on to its child).
import express from 'express';
import pg from 'pg';
import { createMain } from 'jobgate';
import { applyAppSchema, ConfigError, createLogger, healthRoutes, listen, loadConfigOrExit, metricsOptionsFromEnv, notFound, onShutdownSignal, problemErrorHandler, requestContext, trustProxySetting } from 'jobgate/internal';
import { APP_TABLES, loadMainConfig, mainOptions } from './config.ts';

const config = loadConfigOrExit('main', () => loadMainConfig(process.env));
/** JOBGATE_ROLE: web serves and enqueues; worker runs jobs and the loops; all does both. */
const serves = config.JOBGATE_ROLE !== 'worker';
const works = config.JOBGATE_ROLE !== 'web';

const logger = createLogger({ level: config.LOG_LEVEL, name: 'main' }).child({ role: config.JOBGATE_ROLE });
process.on('unhandledRejection', (err) => logger.error({ err }, 'unhandled rejection'));

// The app's own pool: jobgate's tables and the reference jobs (movies.fetch) share it.
const pool = new pg.Pool({ connectionString: config.DATABASE_URL, max: config.DATABASE_POOL_MAX, connectionTimeoutMillis: 5_000, idleTimeoutMillis: 30_000, application_name: 'jobgate-main' });
pool.on('error', (err) => logger.warn({ err }, 'idle database connection failed'));
const jobgate = await createMain(mainOptions(config, { logger, pool })).catch((err: unknown) => {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`jobgate main: ${err.message}\n`);
  process.exit(1);
});
// the reference jobs' own table, before any of them runs (under the emergency override main runs movies.fetch)
await applyAppSchema(pool, config.JOBGATE_SCHEMA, APP_TABLES);

let draining = false;
const app = express();
app.disable('x-powered-by');
app.set('query parser', 'simple');
app.set('trust proxy', trustProxySetting(config.TRUST_PROXY));
app.use(requestContext(logger, { registry: jobgate.metrics }));
app.use(healthRoutes(() => draining));
// METRICS_TOKEN unset: open in development, not served in production
const metrics = metricsOptionsFromEnv(config);
if (metrics) app.all('/metrics', jobgate.metricsHandler(metrics));
// a worker-role process serves health and metrics only (nothing to enqueue)
if (serves) app.use(jobgate.router);
app.use(notFound());
app.use(problemErrorHandler());

if (works) {
  await jobgate.start({ queues: config.JOBGATE_QUEUES }).catch((err: unknown) => {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`jobgate main: ${err.message.replace('queues:', 'JOBGATE_QUEUES:')}\n`);
    process.exit(1);
  });
} else {
  logger.info('web role: jobs are enqueued here and run elsewhere');
}
// the signal handler before the server: a SIGTERM right after "listening" must find it
let http: Awaited<ReturnType<typeof listen>> | undefined;
onShutdownSignal(logger, async () => {
  draining = true;
  await jobgate.stop({ before: http?.close() });
  await pool.end();
});
http = await listen(app, { port: config.PORT, host: config.HOST, requestTimeoutMs: config.HTTP_REQUEST_TIMEOUT_MS }, logger);

// The main app's entry point: the only reader of process.env. Run it with `node` directly
// (npm does not pass SIGTERM on to its child).
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import pg from 'pg';
import { createLogger, onShutdownSignal } from '@jobgate/runtime';
import { createBoss, createLedger, migrate } from '@jobgate/queue';
import { createCatalogue, createJobRuntime, isJobDefinition, shippedJobs, type JobDefinition } from '@jobgate/jobs';
import { createMainApp } from './app.ts';
import { ConfigError, loadMainConfig, type MainConfig } from './config.ts';

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

/** Job definitions from JOBGATE_JOB_MODULES: every export that defineJob made. */
async function loadJobModules(paths: readonly string[]): Promise<JobDefinition[]> {
  const found: JobDefinition[] = [];
  for (const path of paths) {
    const mod = (await import(pathToFileURL(resolve(path)).href)) as Record<string, unknown>;
    const defs = Object.values(mod).flatMap((v) => (Array.isArray(v) ? v : [v])).filter(isJobDefinition);
    if (defs.length === 0) throw new Error(`JOBGATE_JOB_MODULES: ${path} exports no job definitions`);
    found.push(...defs);
  }
  return found;
}

const pool = new pg.Pool({
  connectionString: config.DATABASE_URL,
  max: config.DATABASE_POOL_MAX,
  connectionTimeoutMillis: 5_000,
  idleTimeoutMillis: 30_000,
  application_name: 'jobgate-main',
});
pool.on('error', (err) => logger.warn({ err }, 'idle database connection failed'));

await migrate(pool, config.JOBGATE_SCHEMA, logger);
const timings = {
  pollIntervalSeconds: config.JOBGATE_POLL_INTERVAL_SECONDS,
  superviseIntervalSeconds: config.JOBGATE_SUPERVISE_INTERVAL_SECONDS,
  cronIntervalSeconds: config.JOBGATE_CRON_INTERVAL_SECONDS,
  heartbeatSeconds: config.JOBGATE_HEARTBEAT_SECONDS,
};
const ledger = createLedger(pool, config.JOBGATE_SCHEMA);
const boss = createBoss({
  connectionString: config.DATABASE_URL,
  schema: config.JOBGATE_BOSS_SCHEMA,
  poolSize: config.JOBGATE_QUEUE_POOL_MAX,
  logger,
  timings,
});
await boss.start();

const catalogue = createCatalogue([
  ...shippedJobs({ pool, schema: config.JOBGATE_SCHEMA, ledger, demoJobs: config.JOBGATE_DEMO_JOBS, tmdbApiToken: config.TMDB_API_TOKEN }),
  ...(await loadJobModules(config.JOBGATE_JOB_MODULES)),
]);
const jobs = createJobRuntime({
  pool,
  boss,
  ledger,
  catalogue,
  logger,
  workerConcurrency: config.JOBGATE_WORKER_CONCURRENCY,
  timings,
});
await jobs.start();

let draining = false;
const app = createMainApp({ jobs, logger, isDraining: () => draining });
// A client that sends its body slower than HTTP_REQUEST_TIMEOUT_MS gets 408 (FAULTS.md row 29);
// Node checks for that only every connectionsCheckingInterval (30 s by default).
const server = createServer(
  {
    requestTimeout: config.HTTP_REQUEST_TIMEOUT_MS,
    headersTimeout: Math.min(10_000, config.HTTP_REQUEST_TIMEOUT_MS),
    connectionsCheckingInterval: 1_000,
  },
  app,
);
server.listen(config.PORT, config.HOST, () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.PORT;
  logger.info({ port, url: `http://127.0.0.1:${port}` }, 'listening');
});

onShutdownSignal(logger, async () => {
  draining = true;
  const closed = new Promise<void>((done) => server.close(() => done()));
  server.closeIdleConnections();
  await Promise.all([
    jobs.stop(config.JOBGATE_SHUTDOWN_TIMEOUT_MS),
    Promise.race([closed, new Promise<void>((done) => setTimeout(() => { server.closeAllConnections(); done(); }, 5_000).unref())]),
  ]);
  await pool.end();
});

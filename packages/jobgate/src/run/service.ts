import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { ConfigError, type Logger, type ServiceConfig } from '../support/index.ts';
import { heapFlagOverride } from './isolation/run-isolated.ts';
import { createBoss, createLedger, migrate, type Route } from '../store/index.ts';
import { createCatalogue } from '../define/catalogue.ts';
import { isJobDefinition, type JobDefinition } from '../define/define-job.ts';
import { createJobRuntime, type JobRuntimeOptions } from './job-runtime.ts';
import { shippedJobs } from '../shipped/index.ts';

/** Job definitions from JOBGATE_JOB_MODULES: every export that defineJob made, with its module's URL. */
export async function loadJobModules(paths: readonly string[]): Promise<Array<{ def: JobDefinition; moduleUrl: string }>> {
  const found: Array<{ def: JobDefinition; moduleUrl: string }> = [];
  for (const path of paths) {
    const moduleUrl = pathToFileURL(resolve(path)).href;
    const mod = (await import(moduleUrl)) as Record<string, unknown>;
    const defs = Object.values(mod).flatMap((v) => (Array.isArray(v) ? v : [v])).filter(isJobDefinition);
    if (defs.length === 0) throw new Error(`JOBGATE_JOB_MODULES: ${path} exports no job definitions`);
    found.push(...defs.map((def) => ({ def, moduleUrl })));
  }
  return found;
}

/**
 * What both apps run on: a pool, migrations, the ledger, pg-boss and the job runtime, with the
 * shipped jobs plus JOBGATE_JOB_MODULES. `ranOn` says which side this is: main runs the jobs that
 * are not `runsOnFetcher`, the fetcher runs the ones that are.
 */
export async function startJobService(
  config: ServiceConfig,
  logger: Logger,
  ranOn: Route,
  /** What one app adds to the runtime (main: the override; the fetcher: claims at main), given the pool. */
  extend: (pool: pg.Pool) => Pick<JobRuntimeOptions, 'overrideEnabled' | 'onMainConcurrency' | 'remoteClaims' | 'metrics' | 'outboxRetryDelayMaxSeconds'> = () => ({}),
  /**
   * `workers: false`: queues only, no handlers (main's web role); `queues`: only these jobs'
   * handlers; `migrate: false` / `start: false` / `client: true`: leave the schema, the queues and
   * pg-boss's maintenance as they are (the CLI, which must not rewrite what the apps set up).
   */
  startOptions: { workers?: boolean; queues?: string[]; migrate?: boolean; start?: boolean; client?: boolean } = {},
) {
  const pool = new pg.Pool({
    connectionString: config.DATABASE_URL,
    max: config.DATABASE_POOL_MAX,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    application_name: `jobgate-${ranOn}`,
  });
  pool.on('error', (err) => logger.warn({ err }, 'idle database connection failed'));
  if (startOptions.migrate !== false) await migrate(pool, config.JOBGATE_SCHEMA, logger);
  const timings = {
    pollIntervalSeconds: config.JOBGATE_POLL_INTERVAL_SECONDS,
    superviseIntervalSeconds: config.JOBGATE_SUPERVISE_INTERVAL_SECONDS,
    cronIntervalSeconds: config.JOBGATE_CRON_INTERVAL_SECONDS,
    heartbeatSeconds: config.JOBGATE_HEARTBEAT_SECONDS,
    ...(config.JOBGATE_CLAIM_SECONDS ? { claimSeconds: config.JOBGATE_CLAIM_SECONDS } : {}),
  };
  const ledger = createLedger(pool, config.JOBGATE_SCHEMA);
  const boss = createBoss({ connectionString: config.DATABASE_URL, schema: config.JOBGATE_BOSS_SCHEMA, poolSize: config.JOBGATE_QUEUE_POOL_MAX, logger, timings, client: startOptions.client });
  await boss.start();
  const modules = await loadJobModules(config.JOBGATE_JOB_MODULES);
  const catalogue = createCatalogue([
    ...shippedJobs({ pool, schema: config.JOBGATE_SCHEMA, ledger, demoJobs: config.JOBGATE_DEMO_JOBS, tmdbApiToken: config.TMDB_API_TOKEN, retentionDays: config.JOBGATE_RETENTION_DAYS, notifyAllowedHosts: config.NOTIFY_ALLOWED_HOSTS }),
    ...modules.map((m) => m.def),
  ]);
  const moduleUrls = new Map(modules.map((m) => [m.def.name, m.moduleUrl]));
  // V8 heap flags are process-wide: one from NODE_OPTIONS replaces every thread's own cap (FAULTS.md M7).
  const threaded = [...catalogue.values()].filter((d) => d.isolation === 'thread' && d.runsOnFetcher === (ranOn === 'fetcher'));
  const heapFlag = heapFlagOverride(config.NODE_OPTIONS, process.execArgv);
  if (threaded.length > 0 && heapFlag) {
    await boss.stop({ graceful: false, close: true });
    await pool.end();
    throw new ConfigError([`NODE_OPTIONS: ${heapFlag} overrides the per-thread heap limit (maxHeapMb) of ${threaded.map((d) => d.name).join(', ')}; remove it (the memory guard watches the process as a whole)`]);
  }
  const jobs = createJobRuntime({ pool, boss, ledger, catalogue, logger, timings, ranOn, workerConcurrency: config.JOBGATE_WORKER_CONCURRENCY, moduleOf: (name) => moduleUrls.get(name), ...extend(pool) });
  if (startOptions.start !== false) await jobs.start(startOptions);
  return {
    pool,
    boss,
    ledger,
    jobs,
    /** Drains the job runtime (see JobRuntime.stop), then closes the pool. */
    async stop(timeoutMs: number) {
      await jobs.stop(timeoutMs);
      await pool.end();
    },
  };
}

export type JobService = Awaited<ReturnType<typeof startJobService>>;

import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { ConfigError, type Logger } from '../support/index.ts';
import { heapFlagOverride } from './isolation/run-isolated.ts';
import { createBoss, ensureRecordIndexes, guardConnections, migrate, withTransaction, type Ledger, type QueueTimings, type Route } from '../store/index.ts';
import { createCatalogue } from '../define/catalogue.ts';
import { isJobDefinition, type JobDefinition } from '../define/define-job.ts';

/** Job definitions from modules: every export that defineJob made, with its module's URL. */
export async function loadJobModules(paths: readonly string[]): Promise<Array<{ def: JobDefinition; moduleUrl: string }>> {
  const found: Array<{ def: JobDefinition; moduleUrl: string }> = [];
  for (const path of paths) {
    const moduleUrl = path.startsWith('file:') ? path : pathToFileURL(resolve(path)).href;
    const mod = (await import(moduleUrl)) as Record<string, unknown>;
    const defs = Object.values(mod).flatMap((v) => (Array.isArray(v) ? v : [v])).filter(isJobDefinition);
    if (defs.length === 0) throw new ConfigError([`jobModules: ${path} exports no job definitions`]);
    found.push(...defs.map((def) => ({ def, moduleUrl })));
  }
  return found;
}

/** What one side's job service runs on (createMain and createFetcher fill it from their options). */
export interface ServiceOptions {
  /** Which side: it names the pool's connections (application_name). */
  side: Route;
  /** The jobs this side runs (their handlers run here: the NODE_OPTIONS check looks at those). */
  runsHere: (def: JobDefinition) => boolean;
  /** pg-boss always opens its own pool from this (LISTEN/NOTIFY needs one). */
  databaseUrl: string;
  /** The ledger's pool: the caller's own (not ended by jobgate), else one opened from databaseUrl. */
  pool?: pg.Pool;
  poolMax: number;
  queuePoolMax: number;
  schema: string;
  bossSchema: string;
  timings: QueueTimings;
  workerConcurrency: number;
  /** Definitions given as objects (a handler that runs isolated needs a module: `jobModules`). */
  jobs: readonly JobDefinition[];
  /** Modules (paths or file: URLs) whose exported definitions join the catalogue, importable by an isolated handler. */
  jobModules: readonly string[];
  /** Jobs the library adds itself, built once the ledger exists (main's cleanup). */
  builtIn?: (deps: { pool: pg.Pool; ledger: Ledger }) => JobDefinition[];
  logger: Logger;
  /** NODE_OPTIONS as the process got it: a heap flag there would override every thread's own cap. */
  nodeOptions?: string;
  /** false: leave the schema as it is (the CLI). */
  migrate?: boolean;
  /** true: pg-boss sends and reads only, no maintenance or cron timekeeping (the CLI). */
  client?: boolean;
}

/**
 * What either side runs on: a pool, migrations, the ledger, pg-boss and the catalogue. Each side
 * composes its runtime on it (main/main-runtime.ts, fetcher/fetcher-runtime.ts).
 */
export async function openJobService<L extends Ledger>(options: ServiceOptions, sideLedger: (pool: pg.Pool, schema: string, deps: { logger: Logger; bossSchema: string }) => L) {
  const { logger, side } = options;
  const ownsPool = !options.pool;
  const pool =
    options.pool ??
    new pg.Pool({
      connectionString: options.databaseUrl,
      max: options.poolMax,
      connectionTimeoutMillis: 5_000,
      idleTimeoutMillis: 30_000,
      application_name: `jobgate-${side}`,
    });
  if (ownsPool) pool.on('error', (err) => logger.warn({ err }, 'idle database connection failed'));
  guardConnections(pool);
  const closePool = () => (ownsPool ? pool.end() : Promise.resolve());
  const failed = async (err: unknown): Promise<never> => {
    await closePool();
    throw err;
  };
  if (options.migrate !== false) await migrate(pool, options.schema, logger, { side }).catch(failed);
  const ledger = sideLedger(pool, options.schema, { logger, bossSchema: options.bossSchema });
  const modules = await loadJobModules(options.jobModules).catch(failed);
  let catalogue: ReturnType<typeof createCatalogue>;
  try {
    catalogue = createCatalogue([...(options.builtIn?.({ pool, ledger }) ?? []), ...options.jobs, ...modules.map((m) => m.def)]);
  } catch (err) {
    // a name defined twice (in jobs and in a module, or a job named like a built-in one)
    return failed(new ConfigError([`jobs: ${(err as Error).message}`]));
  }
  const moduleUrls = new Map(modules.map((m) => [m.def.name, m.moduleUrl]));
  // V8 heap flags are process-wide: one from NODE_OPTIONS replaces every thread's own cap (FAULTS.md M7).
  const threaded = [...catalogue.values()].filter((d) => d.isolation === 'thread' && options.runsHere(d));
  const heapFlag = heapFlagOverride(options.nodeOptions, process.execArgv);
  if (threaded.length > 0 && heapFlag) {
    await failed(new ConfigError([`NODE_OPTIONS: ${heapFlag} overrides the per-thread heap limit (maxHeapMb) of ${threaded.map((d) => d.name).join(', ')}; remove it (the memory guard watches the process as a whole)`]));
  }
  const boss = createBoss({ connectionString: options.databaseUrl, schema: options.bossSchema, poolSize: options.queuePoolMax, logger, timings: options.timings, client: options.client });
  await boss.start().catch(async (err: unknown) => {
    await boss.stop({ graceful: false, close: true }).catch(() => {});
    return failed(err);
  });
  // the index of ours on main's pg-boss table, for the jobs it is the record of (queue-records.ts)
  if (options.migrate !== false && side === 'main') {
    await withTransaction(pool, (client) => client.query(ensureRecordIndexes(options.bossSchema))).catch(async (err: unknown) => {
      await boss.stop({ graceful: false, close: true }).catch(() => {});
      return failed(err);
    });
  }
  return {
    pool,
    boss,
    ledger,
    catalogue,
    timings: options.timings,
    workerConcurrency: options.workerConcurrency,
    logger,
    moduleOf: (name: string) => moduleUrls.get(name),
    /** Ends the pool if jobgate opened it (after the runtime stopped pg-boss). */
    closePool,
    /** A setup that failed after this: pg-boss stopped at once and the pool closed, errors ignored. */
    async abandon(): Promise<void> {
      await boss.stop({ graceful: false, close: true }).catch(() => {});
      await closePool().catch(() => {});
    },
  };
}

export type JobService<L extends Ledger = Ledger> = Awaited<ReturnType<typeof openJobService<L>>>;

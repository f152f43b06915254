// What createMain and createFetcher both take: the database, the jobs, the queue timings, the
// drain. Checked once at the door (zod), each side adding its own options to the same shape.
import type pg from 'pg';
import { z } from 'zod';
import { SchemaName, type Logger, type Registry } from '../support/index.ts';
import { DEFAULT_TIMINGS, type Ledger, type QueueTimings, type Route } from '../store/index.ts';
import type { JobDefinition } from '../define/define-job.ts';
import type { ServiceOptions } from './service.ts';

export interface CommonOptions {
  /** PostgreSQL for jobgate's tables and pg-boss (which always opens its own pool from it, for LISTEN/NOTIFY). */
  databaseUrl: string;
  /** A pool of yours for jobgate's tables; jobgate never ends it. Default: its own pool from databaseUrl. */
  pool?: pg.Pool;
  /** Schema of jobgate's tables and of pg-boss's (main: `jobgate`, `pgboss_main`; the fetcher: `jobgate_fetcher`, `pgboss_fetcher`). */
  schema?: string;
  bossSchema?: string;
  /** Connections of jobgate's own pool (default 5) and of pg-boss's (default 5). */
  poolMax?: number;
  queuePoolMax?: number;
  /** The jobs this service knows (each side runs its own and ignores the others'). */
  jobs?: readonly JobDefinition[];
  /** Modules (paths or file: URLs) whose exported jobs join `jobs`; a job with isolation 'thread' or 'process' must come from one. */
  jobModules?: readonly string[];
  /** A pino logger; default: JSON lines on stdout at `info`. */
  logger?: Logger;
  /** Handlers of one job name running at once in this process, unless the job sets `concurrency` (default 4). */
  workerConcurrency?: number;
  /** On stop(), running jobs get this long before their signal aborts (default 15 000; all of stop stays within 25 s). */
  shutdownTimeoutMs?: number;
  /** Queue timings (pg-boss polling, supervision, heartbeat, claim). */
  timings?: Partial<QueueTimings>;
  /** The process's NODE_OPTIONS, to refuse a heap flag that would override isolated jobs' own limits. */
  nodeOptions?: string;
  /** Where the metrics go; default: a registry of jobgate's own (returned as `metrics`). */
  registry?: Registry;
}

/** The zod shape of CommonOptions' checked fields, with one side's default schemas. */
export function commonOptionsShape(defaults: { schema: string; bossSchema: string }) {
  return {
    databaseUrl: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL'),
    schema: SchemaName.default(defaults.schema),
    bossSchema: SchemaName.default(defaults.bossSchema),
    poolMax: z.number().int().min(2).max(100).default(5),
    queuePoolMax: z.number().int().min(2).max(100).default(5),
    jobModules: z.array(z.string().min(1)).default([]),
    workerConcurrency: z.number().int().min(1).max(100).default(4),
    shutdownTimeoutMs: z.number().int().min(0).max(15_000).default(15_000),
    timings: z
      .strictObject({
        pollIntervalSeconds: z.number().min(0.5),
        superviseIntervalSeconds: z.number().min(1),
        cronIntervalSeconds: z.number().min(1),
        heartbeatSeconds: z.number().min(10),
        claimSeconds: z.number().int().min(10).max(3_600),
      })
      .partial()
      .default({}),
  };
}

type CheckedCommon = z.output<z.ZodObject<ReturnType<typeof commonOptionsShape>>>;

/** The job service's options for one side, from the checked options and the caller's objects. */
export function serviceOptionsOf(
  side: { side: Route; runsHere: (def: JobDefinition) => boolean },
  checked: CheckedCommon,
  given: CommonOptions,
  logger: Logger,
  builtIn?: (deps: { pool: pg.Pool; ledger: Ledger }) => JobDefinition[],
): ServiceOptions {
  return {
    ...side,
    databaseUrl: checked.databaseUrl,
    ...(given.pool ? { pool: given.pool } : {}),
    poolMax: checked.poolMax,
    queuePoolMax: checked.queuePoolMax,
    schema: checked.schema,
    bossSchema: checked.bossSchema,
    timings: { ...DEFAULT_TIMINGS, ...checked.timings },
    workerConcurrency: checked.workerConcurrency,
    jobs: given.jobs ?? [],
    jobModules: checked.jobModules,
    ...(builtIn ? { builtIn } : {}),
    logger,
    ...(given.nodeOptions !== undefined ? { nodeOptions: given.nodeOptions } : {}),
  };
}

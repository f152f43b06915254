// The fetcher's job runtime, composed from the stages: intake (accept what main forwards), run
// (each attempt claimed here and then at main), and maintain (dead letters).
import type { Pool } from 'pg';
import type { PgBoss } from 'pg-boss';
import type { JobgateError, Logger } from '../support/index.ts';
import { watchPauses, type PauseWatch } from '../run/pauses.ts';
import { claimSecondsOf, withTransaction, type FetcherLedger, type Queryable, type QueueTimings } from '../store/index.ts';
import type { Spawn } from '../protocol/index.ts';
import { childrenToMain } from '../run/children.ts';
import type { Catalogue } from '../define/catalogue.ts';
import type { JobDefinition } from '../define/define-job.ts';
import { queueOptions } from '../define/queue-policy.ts';
import { createIntake } from '../intake/accept.ts';
import { claimAtMain, type RemoteClaims } from '../run/claim-at-main.ts';
import { createWorkers, queuesOnce } from '../run/workers.ts';
import type { JobMetrics } from '../run/metrics.ts';
import { watchDeadLetters } from '../maintain/dead-letter.ts';

export interface FetcherRuntimeOptions {
  pool: Pool;
  boss: PgBoss;
  ledger: FetcherLedger;
  catalogue: Catalogue;
  logger: Logger;
  timings: QueueTimings;
  workerConcurrency: number;
  moduleOf?: (name: string) => string | undefined;
  /** Claims in main's ledger, when main is known. */
  remoteClaims?: RemoteClaims;
  /** main's paused jobs (SignedRoutes.readPauses in protocol/routes.ts), when main is known. */
  readPauses?: () => Promise<Array<{ name: string }>>;
  /** A read of main's pauses that failed (default: logged at warn with the error). */
  onPausesReadError?: (err: unknown) => void;
  /** Sends a handler's children to main, when main is known. */
  spawnAtMain?: (spawn: Spawn) => Promise<unknown>;
  metrics?: JobMetrics;
  /** How long finished jobs are kept (days): pg-boss keeps the rows of jobs it records (its queues' deleteAfterSeconds) as long. */
  retentionDays?: number;
}

export function createFetcherRuntime(options: FetcherRuntimeOptions) {
  const { pool, boss, ledger, catalogue, timings } = options;
  const logger = options.logger.child({ component: 'jobs' });
  /** The jobs whose handlers run on the fetcher. */
  const ours = (def: JobDefinition) => def.runsOnFetcher;
  const workers = createWorkers({
    boss,
    timings,
    workerConcurrency: options.workerConcurrency,
    logger,
    // a fetch takes as many jobs as there are free slots, and their claims at main go in one request
    fetchTogether: true,
    runner: {
      ranOn: 'fetcher',
      ledger,
      // the jobs without a gate: their pg-boss row is their record here (store/fetcher-records.ts)
      ...(ledger.recordRuns ? { records: ledger.recordRuns } : {}),
      ...(options.metrics ? { metrics: options.metrics } : {}),
      ...(options.moduleOf ? { moduleOf: options.moduleOf } : {}),
      // each attempt is claimed here, then at main (when main is known)
      ...(options.remoteClaims ? { confirmClaim: claimAtMain(options.remoteClaims, { ledger, claimSeconds: claimSecondsOf(timings), ranOn: 'fetcher' }) } : {}),
      // main answered a claim with a pause this fetcher had not heard of yet: ask main for its pauses now
      heardOfPause: () => void pauseWatch?.refresh().catch(() => {}),
      // a handler's children are main's jobs: sent there (a retry of a failed send is the attempt's retry)
      ...(options.spawnAtMain
        ? { children: { lookup: (name: string) => catalogue.get(name), write: childrenToMain(options.spawnAtMain), transaction: <T>(fn: (db: Queryable) => Promise<T>) => withTransaction(pool, fn), writesInTransaction: false } }
        : {}),
    },
  });
  let started: Promise<void> | undefined;
  let pauseWatch: PauseWatch | undefined;
  /** Makes the fetcher's queues (once). An attempt first waits for main's claim (main may be redeploying): that wait must not expire it. */
  const prepare = queuesOnce({ boss, jobs: [...catalogue.values()].filter(ours), moduleOf: options.moduleOf, options: (def) => ({ ...queueOptions(def, timings, Boolean(options.remoteClaims)), ...(options.retentionDays ? { deleteAfterSeconds: options.retentionDays * 86_400 } : {}) }) });

  /** Runs the fetcher's handlers and the dead-letter watcher. */
  function start(): Promise<void> {
    // once: a second call (or one that overlaps the first) gets the first one's promise
    return (started ??= begin());
  }

  async function begin(): Promise<void> {
    await prepare();
    // main's paused jobs, asked for before any queue is worked (main away: none known yet, and main's claim still waits them)
    if (options.readPauses) {
      const onError = options.onPausesReadError ?? ((err: unknown) => logger.warn({ err }, 'could not ask main for its paused jobs; asking again'));
      pauseWatch = watchPauses({ read: options.readPauses, apply: (isPaused) => workers.controls.holdPaused(isPaused), intervalMs: timings.pollIntervalSeconds * 1000, logger, onError });
      await pauseWatch.refresh().catch(onError);
    }
    for (const def of catalogue.values()) if (ours(def)) await workers.work(def);
    await watchDeadLetters({ boss, ledger, logger, workOptions: workers.workOptions, ...(ledger.recordRuns ? { records: ledger.recordRuns } : {}) });
    logger.info({ ranOn: 'fetcher', jobs: [...catalogue.values()].filter(ours).map((d) => d.name) }, 'job runtime started');
  }

  const intake = createIntake({ pool, boss, ledger, catalogue, records: ledger.records, ...(options.metrics ? { metrics: options.metrics } : {}) });

  return {
    /** Takes over jobs main forwarded (intake/accept.ts) and wakes their queues' loops in this process (other fetcher processes find them at their poll). */
    async accept(...args: Parameters<typeof intake>): ReturnType<typeof intake> {
      const accepted = await intake(...args);
      for (const name of new Set(args[0].map((job) => job.name))) workers.wake(name);
      return accepted;
    },
    prepare,
    start,
    ...workers.controls,
    async stop(timeoutMs: number, reason?: JobgateError): Promise<void> {
      await pauseWatch?.stop();
      await workers.controls.stop(timeoutMs, reason);
    },
    catalogue,
  };
}

export type FetcherRuntime = ReturnType<typeof createFetcherRuntime>;

// main's job runtime, composed from the stages: enqueue (performLater), forward (the override's
// takeover), run (main's own jobs, and fetcher jobs main runs on the on-main queue), schedule
// (cron) and maintain (dead letters).
import type { JobWithMetadata } from 'pg-boss';
import type { Pool } from 'pg';
import type { PgBoss } from 'pg-boss';
import { ConfigError, ErrorCode, JobgateError, type Logger } from '../support/index.ts';
import { createBatchStore, createPauseStore, createScheduleStore, EVERY_JOB, toBossDb, withTransaction, type Pause, type QueueEntries, type MainLedger, type ListFilter, type Queryable, type QueueTimings } from '../store/index.ts';
import { SystemQueue, type Catalogue } from '../define/catalogue.ts';
import type { JobDefinition } from '../define/define-job.ts';
import { queueOptions, type OnMainData } from '../define/queue-policy.ts';
import { createEnqueuer } from '../enqueue/perform-later.ts';
import { createTakeOver } from '../forward/take-over.ts';
import { createWorkers, queuesOnce } from '../run/workers.ts';
import type { JobMetrics } from '../run/metrics.ts';
import { createSchedules } from '../schedule/schedules.ts';
import { watchPauses, type PauseWatch } from '../run/pauses.ts';
import { watchDeadLetters } from '../maintain/dead-letter.ts';

export interface MainRuntimeOptions {
  pool: Pool;
  boss: PgBoss;
  ledger: MainLedger;
  catalogue: Catalogue;
  logger: Logger;
  timings: QueueTimings;
  /** Handlers of one job name running at once in this process, unless the job sets `concurrency`. */
  workerConcurrency: number;
  /** Where a job was defined (a module URL), for jobs whose handler runs isolated. */
  moduleOf?: (name: string) => string | undefined;
  /** Whether the emergency override is on (new fetcher jobs then run on main). */
  overrideEnabled?: (db?: Queryable) => Promise<boolean>;
  /** Prometheus counters and histograms (createJobMetrics); absent, nothing is counted. */
  metrics?: JobMetrics;
  /** Fetcher jobs running on main at once (they are the heavy ones; default 1). */
  onMainConcurrency?: number;
  /** Jobs per fetch of each worker (default 1; the bench compares 1 and 50). */
  batchSize?: number;
  /** How long finished jobs are kept (days): pg-boss keeps the rows of jobs it records (its queues' deleteAfterSeconds) as long. */
  retentionDays?: number;
  /** Record jobs that need no ledger row by their pg-boss row alone (the ledger must know main's pg-boss schema); default true. */
  records?: boolean;
  /** LISTEN on a channel over a connection of its own (store/listen.ts): the scheduler hears of schedules changed elsewhere at once. */
  listen?: (channel: string, wake: () => void) => { close(): Promise<void> };
}

export function createMainRuntime(options: MainRuntimeOptions) {
  const { pool, boss, ledger, catalogue, timings } = options;
  const logger = options.logger.child({ component: 'jobs' });
  /** The jobs whose handlers run on main (by definition). */
  const ours = (def: JobDefinition) => !def.runsOnFetcher;
  const batches = createBatchStore(pool, ledger.schema, ledger.bossSchema);
  // jobs recorded by their pg-boss row (store/queue-records.ts), where the ledger reads them too
  const records = options.records !== false ? ledger.recordRuns : null;
  const enqueuer = createEnqueuer({ pool, boss, ledger, batches, catalogue, timings, overrideEnabled: options.overrideEnabled ?? (async () => false), records: records !== null, ...(options.metrics ? { metrics: options.metrics } : {}) });
  const workers = createWorkers({
    boss,
    timings,
    workerConcurrency: options.workerConcurrency,
    logger,
    runner: {
      ranOn: 'main',
      ledger,
      ...(records ? { records } : {}),
      ...(options.metrics ? { metrics: options.metrics } : {}),
      ...(options.moduleOf ? { moduleOf: options.moduleOf } : {}),
      // a claim met a pause this process had not read yet (made by another process): read it now
      heardOfPause: () => void pauseWatch?.refresh().catch(() => {}),
      // a handler's children are written here, in main's database
      children: {
        lookup: (name) => catalogue.get(name),
        write: async (spawn, db) => void (await enqueuer.spawn(spawn, db ? { db } : {})),
        transaction: (fn) => withTransaction(pool, fn),
        writesInTransaction: true,
      },
    },
    ...(options.batchSize ? { batchSize: options.batchSize } : {}),
  });
  const { runOne } = workers;
  let started: Promise<void> | undefined;
  const pauses = createPauseStore(pool, ledger.schema, ledger.bossSchema, { logger });
  const schedules = createSchedules({ boss, pool, store: createScheduleStore(pool, ledger.schema, ledger.bossSchema), catalogue, timings, logger, definition: (name) => enqueuer.definition(name), performLater: enqueuer.performLater, ...(options.listen ? { listen: options.listen } : {}) });
  let pauseWatch: PauseWatch | undefined;
  const queues = queuesOnce({
    boss,
    jobs: [...catalogue.values()].filter(ours),
    moduleOf: options.moduleOf,
    options: (def) => ({ ...queueOptions(def, timings, false), ...(options.retentionDays ? { deleteAfterSeconds: options.retentionDays * 86_400 } : {}) }),
    extra: [
      [SystemQueue.onMain, { notify: true }],
    ],
  });

  /** A name that can be paused: a job's (checked: a 404 names an unknown one), or `*`, every job. */
  const pausable = (name: string) => (name === EVERY_JOB ? name : enqueuer.definition(name).name);

  let prepared: Promise<void> | undefined;
  /** Makes every queue main writes to (once): enough to enqueue, which a web-only process does. */
  const prepare = () => (prepared ??= queues());

  /**
   * Runs main's handlers, the on-main queue, the dead-letter watcher and cron. `queues`: only these
   * jobs' handlers (and the on-main queue if named), and none of the rest (`jobgate work --queues`).
   */
  function start(startOptions: { queues?: string[] } = {}): Promise<void> {
    // once: a second call (or one that overlaps the first) gets the first one's promise
    return (started ??= begin(startOptions));
  }

  async function begin(startOptions: { queues?: string[] }): Promise<void> {
    const only = startOptions.queues && startOptions.queues.length > 0 ? new Set(startOptions.queues) : null;
    const runsQueue = (queue: string) => !only || only.has(queue);
    const strangers = [...(only ?? [])].filter((name) => name !== SystemQueue.onMain && (!catalogue.get(name) || !ours(catalogue.get(name)!)));
    if (strangers.length > 0) throw new ConfigError([`queues: ${strangers.join(', ')} ${strangers.length > 1 ? 'are not jobs' : 'is not a job'} this main runs`]);
    await prepare();
    // paused jobs known before any queue is worked
    pauseWatch = watchPauses({
      read: () => pauses.list(),
      beforeRead: () => pauses.expireDue(),
      apply: (isPaused) => workers.controls.holdPaused(isPaused),
      intervalMs: timings.pollIntervalSeconds * 1000,
      logger,
    });
    await pauseWatch.refresh();
    for (const def of catalogue.values()) if (ours(def) && runsQueue(def.name)) await workers.work(def);
    if (runsQueue(SystemQueue.onMain)) {
      // Fetcher jobs main runs (override): one queue, few at once, so they cannot knock main over.
      await workers.workShared<OnMainData>(SystemQueue.onMain, { localConcurrency: options.onMainConcurrency ?? 1 }, (job: JobWithMetadata<OnMainData>) => {
        const def = catalogue.get(job.data.name);
        if (!def) throw new JobgateError(ErrorCode.unknownJob, `no job named ${job.data.name} is defined in this process`);
        return runOne(def, job, job.data.attemptBase);
      });
    }
    if (only) {
      logger.info({ ranOn: 'main', queues: [...only] }, 'job runtime started for some queues only');
      return;
    }
    await watchDeadLetters({ boss, ledger, logger, workOptions: workers.workOptions, ...(records ? { records } : {}) });
    // Schedules fire on main (every main's scheduler, once between them), which routes each firing like any other job.
    await schedules.start();
    logger.info({ ranOn: 'main', jobs: [...catalogue.values()].filter(ours).map((d) => d.name) }, 'job runtime started');
  }

  return {
    definition: enqueuer.definition,
    performLater: enqueuer.performLater,
    spawn: enqueuer.spawn,
    batches,
    /** Under the emergency override: moves undelivered fetcher jobs to main (forward/take-over.ts). */
    takeOverUndelivered: createTakeOver({ pool, boss, ledger, catalogue, timings }),
    /** Whether main runs `def`'s handler (by definition). */
    runsHere: ours,
    prepare,
    start,
    ...workers.controls,
    async stop(timeoutMs: number, reason?: JobgateError): Promise<void> {
      await schedules.stop();
      await pauseWatch?.stop();
      await workers.controls.stop(timeoutMs, reason);
    },
    /** Schedules in PostgreSQL (the code's cron among them): list, create, update, remove, runNow. */
    schedules,
    /** The pauses in force. */
    listPauses: () => pauses.list(),
    /**
     * Pauses a job (`name`, or `*` for every job) on both sides: no new attempt starts until it is
     * resumed (or `expiresInMinutes` pass); its jobs keep queueing. Audited.
     */
    async pauseJob(name: string, change: { reason: string; actor: string; expiresInMinutes?: number }): Promise<Pause> {
      const pause = await pauses.pause({ name: pausable(name), ...change });
      await pauseWatch?.refresh().catch(() => {});
      logger.warn({ jobName: pause.name, reason: pause.reason, by: pause.by, expiresAt: pause.expiresAt }, 'job paused');
      return pause;
    },
    /** Ends a pause (audited even when there was none); the pause it ended, or null. */
    async resumeJob(name: string, change: { actor: string; reason?: string }): Promise<Pause | null> {
      // a pause of a job no longer defined can still be ended
      const paused = (await pauses.list()).some((p) => p.name === name);
      const ended = await pauses.resume({ name: paused ? name : pausable(name), ...change });
      await pauseWatch?.refresh().catch(() => {});
      logger.info({ jobName: name, by: change.actor, wasPaused: Boolean(ended) }, 'job resumed');
      return ended;
    },
    /**
     * Removes these queue entries of main's jobs (MainLedger.endPage, queueEntriesOf), in `db`'s
     * transaction, the one that cancelled or deleted their ledger rows: no worker fetches them later
     * to find them gone (a log line each). Returns how many were removed.
     */
    async dropQueueEntries(db: Queryable, entries: QueueEntries): Promise<number> {
      const byQueue = new Map<string, string[]>();
      for (const { name, routeReason, ids } of entries) {
        // main's own jobs are in their own queue, a fetcher job main runs in the shared on-main one
        const queue = routeReason === 'definition' ? name : SystemQueue.onMain;
        byQueue.set(queue, (byQueue.get(queue) ?? []).concat(ids));
      }
      let dropped = 0;
      for (const [queue, ids] of byQueue) {
        try {
          const answer = (await boss.deleteJob(queue, ids, { db: toBossDb(db) })) as { affected?: number };
          dropped += answer.affected ?? 0;
        } catch (err) {
          // a job whose queue is gone (its definition removed, its queue deleted) has no entry left
          if ((err as { code?: string }).code !== 'PGBOSS_QUEUE_NOT_FOUND') throw err;
        }
      }
      return dropped;
    },
    getJob: (id: string) => ledger.getJob(id, { executions: true }),
    listJobs: (filter: ListFilter) => ledger.listJobs(filter),
    catalogue,
  };
}

export type MainRuntime = ReturnType<typeof createMainRuntime>;

// The queue workers of one side: one pg-boss worker per job queue this process runs, fetched one
// job at a time and back to back while there are jobs; running handlers tracked, so stop() can
// let them finish and pause() (the fetcher's memory guard) can stop new ones starting.
import { setTimeout as sleep } from 'node:timers/promises';
import type { JobWithMetadata, PgBoss, WorkOptions } from 'pg-boss';
import { ErrorCode, JobgateError, type Logger } from '../support/index.ts';
import { claimSecondsOf, ensureQueue, forgetDue, handBack, HAND_BACK_SECONDS, workWhileFull, type QueueTimings } from '../store/index.ts';
import { SystemQueue } from '../define/catalogue.ts';
import { assertIsolatedPlaced } from './isolation/run-isolated.ts';
import type { JobDefinition } from '../define/define-job.ts';
import type { QueuedData } from '../define/queue-policy.ts';
import { createRunner, handedBack, type RunnerOptions } from './runner.ts';
import { fetchLoop, type FetchLoop } from './fetch-loop.ts';
import { ABORT_GRACE_MS } from './settle.ts';

/**
 * One side's workers and the runner they call. `runner`: what the runner needs besides the
 * shutdown signal, which stop() aborts.
 */
export function createWorkers(deps: {
  boss: PgBoss;
  timings: QueueTimings;
  workerConcurrency: number;
  logger: Logger;
  runner: Omit<RunnerOptions, 'shutdown' | 'logger' | 'claimSeconds' | 'isPaused' | 'handBack'>;
  batchSize?: number;
  /**
   * Each job queue worked by one loop that fetches up to its free slots at once (fetch-loop.ts): the
   * fetcher's, whose jobs each ask main for their claim, which a fetch's jobs then do in one request.
   */
  fetchTogether?: boolean;
}) {
  const { boss, timings, logger } = deps;
  const shutdown = new AbortController();
  const claimSeconds = claimSecondsOf(timings);
  const runOne = createRunner({
    ...deps.runner,
    logger,
    claimSeconds,
    shutdown: shutdown.signal,
    isPaused: (name) => isHeld(name),
    // a paused job back to its queue, due again once pg-boss has settled this fetch (the worker of its name is stopped by then)
    handBack: (job) => handBack(boss, job, HAND_BACK_SECONDS),
  });
  const running = new Set<Promise<unknown>>();
  /** How to (re)start and stop the worker of each job queue, for pause(), resume() and paused job names. */
  const handlerWorkers = new Map<string, { start: () => Promise<void>; stop: () => Promise<void> }>();
  /** The queues worked by a fetch loop (fetchTogether), by name. */
  const loops = new Map<string, FetchLoop>();
  /** The queues whose worker is running now. */
  const working = new Set<string>();
  /** The memory guard's pause: no queue is worked. */
  let paused = false;
  /** stop() began: nothing starts again. */
  let stopping = false;
  /** Job names paused by an operator (watchPauses): their queues are not worked. */
  let isHeld: (name: string) => boolean = () => false;
  /** Starts or stops each queue's worker to match the pauses; one sync at a time. */
  let syncing = Promise.resolve();
  const sync = () =>
    (syncing = syncing.catch(() => {}).then(async () => {
      for (const [name, worker] of handlerWorkers) {
        const wanted = !paused && !stopping && !isHeld(name);
        if (wanted && !working.has(name)) {
          await worker.start();
          working.add(name);
        } else if (!wanted && working.has(name)) {
          working.delete(name);
          await worker.stop();
        }
      }
    }));
  /**
   * One job per fetch (unless `batchSize`: the bench measures larger fetches), fetched back to back
   * while there are jobs (workWhileFull), else woken by NOTIFY or the poll.
   */
  const workOptions = { batchSize: deps.batchSize ?? 1, includeMetadata: true, perJobResults: true, pollingIntervalSeconds: timings.pollIntervalSeconds, notifyPollingIntervalSeconds: timings.pollIntervalSeconds } as const;

  function track<T>(promise: Promise<T>): Promise<T> {
    running.add(promise);
    promise.finally(() => running.delete(promise)).catch(() => {});
    return promise;
  }

  return {
    runOne,
    claimSeconds,
    workOptions,
    /** Runs `def`'s handlers here (its own queue). */
    async work(def: JobDefinition): Promise<void> {
      const concurrency = Math.min(def.concurrency ?? deps.workerConcurrency, deps.workerConcurrency);
      if (deps.fetchTogether) {
        const loop = () =>
          fetchLoop<QueuedData>(
            { boss, name: def.name, concurrency, pollSeconds: timings.pollIntervalSeconds, ...(def.concurrency ? { groupConcurrency: def.concurrency } : {}), onError: (err) => boss.emit('error', err as Error) },
            // (a job handed back to its queue is not settled: a late settle could land on its next fetch)
            (job, handlerEnded) => track(runOne(def, job, 0, handlerEnded)).then((result) => (handedBack(result) ? null : result)),
          );
        handlerWorkers.set(def.name, {
          start: async () => {
            const made = loops.get(def.name);
            if (made) made.resume();
            else loops.set(def.name, loop());
          },
          stop: async () => loops.get(def.name)?.pause(),
        });
      } else {
        handlerWorkers.set(def.name, {
          start: () =>
            workWhileFull(boss, def.name, { ...workOptions, localConcurrency: concurrency, ...(def.concurrency ? { groupConcurrency: def.concurrency } : {}) }, (jobs) =>
              track(Promise.all(jobs.map((job) => runOne(def, job as JobWithMetadata<QueuedData>)))),
            ),
          stop: async () => {
            forgetDue(boss, def.name);
            await boss.offWork(def.name, { wait: false });
          },
        });
      }
      // paused before it began (the memory guard, an operator): resume() starts it
      await sync();
    },
    /** Jobs of `name` were queued in this process (the fetcher's intake): a loop with a free slot fetches them now. */
    wake(name: string): void {
      loops.get(name)?.wake();
    },
    /** Runs a shared queue whose jobs name their own definition (main's on-main queue). */
    async workShared<D extends QueuedData>(queue: string, options: Pick<WorkOptions, 'localConcurrency'>, pick: (job: JobWithMetadata<D>) => Promise<unknown>): Promise<void> {
      await workWhileFull(boss, queue, { ...workOptions, ...options }, (jobs: Array<JobWithMetadata<D>>) => track(Promise.all(jobs.map(pick))));
    },
    /** What a side's runtime hands on as its own: pause, resume, running, stop. */
    controls: {
      /** Takes no new job (running ones carry on) until resume(); the memory guard's soft limit. */
      async pause(): Promise<void> {
        if (paused) return;
        paused = true;
        await sync();
        logger.warn('intake paused: no new jobs start until resumed');
      },
      async resume(): Promise<void> {
        if (!paused || stopping) return;
        paused = false;
        await sync();
        logger.info('intake resumed');
      },
      /** The job names an operator paused: their queues' workers stop, and start again once resumed. */
      async holdPaused(held: (name: string) => boolean): Promise<void> {
        isHeld = held;
        await sync();
      },
      /** How many handlers are running in this process now. */
      running: (): number => running.size,
      /**
       * Stops taking jobs and lets running ones finish; at `timeoutMs` their `ctx.signal` aborts and
       * their attempts are recorded as failed (the queue retries them).
       */
      async stop(timeoutMs: number, reason: JobgateError = new JobgateError(ErrorCode.jobAborted, 'aborted by shutdown')): Promise<void> {
        stopping = true;
        const abortTimer = setTimeout(() => shutdown.abort(reason), timeoutMs);
        // the wait for stubborn handlers must not outlive the drain (it would hold the process open)
        const gaveUp = new AbortController();
        try {
          // the fetch loops' jobs are settled through pg-boss: its pool closes once they have been
          const [bossStopped] = await Promise.allSettled([boss.stop({ graceful: true, timeout: timeoutMs + 1_000, close: false }), ...[...loops.values()].map((loop) => loop.stop())]);
          await boss.stop({ close: true });
          if (bossStopped.status === 'rejected') throw bossStopped.reason;
          await Promise.race([Promise.allSettled(running), sleep(ABORT_GRACE_MS + 1_000, undefined, { signal: gaveUp.signal }).catch(() => {})]);
        } finally {
          clearTimeout(abortTimer);
          gaveUp.abort();
        }
      },
    },
  };
}

export type Workers = ReturnType<typeof createWorkers>;

/**
 * A side's queue setup, once however often it is asked: its own jobs' queues (an isolated handler
 * checked to come from a module first), after the dead-letter queue they name, then `extra`
 * (main's outbox, cron and on-main queues).
 */
export function queuesOnce(deps: { boss: PgBoss; jobs: JobDefinition[]; moduleOf: ((name: string) => string | undefined) | undefined; options: (def: JobDefinition) => object; extra?: Array<[name: string, options: object]> }): () => Promise<void> {
  let made: Promise<void> | undefined;
  return () =>
    (made ??= (async () => {
      assertIsolatedPlaced(deps.jobs, deps.moduleOf);
      await ensureQueue(deps.boss, SystemQueue.deadLetter);
      for (const def of deps.jobs) await ensureQueue(deps.boss, def.name, deps.options(def));
      for (const [name, options] of deps.extra ?? []) await ensureQueue(deps.boss, name, options);
    })());
}

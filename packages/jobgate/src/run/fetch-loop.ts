// The fetcher's queue worker: one loop per job queue, which fetches as many jobs as it has free
// slots in one statement and starts them in one tick, so that their claims at main go in one
// request (claim-at-main.ts gathers a tick's claims); the jobs that end together are settled in one
// statement. pg-boss's own workers fetch a fixed batch and hold it until its slowest job ends, so the
// fetcher ran them one job per fetch: each job paid a fetch, a settle and most of a claim request of
// its own. What pg-boss's worker did besides is done here: the heartbeat of running jobs, each job's
// signal aborted when pg-boss gives its fetch up or it outlives its expiry, settles fenced to the
// fetched attempt, and a graceful stop.
import type { JobResult, JobWithMetadata, PgBoss } from 'pg-boss';
import { coalesce, isConnectionLost } from '../support/index.ts';
import { durably, failForGood, forgetDue, pollDueTogether, SIBLING_BACKSTOP_SECONDS } from '../store/index.ts';
import { errorInfo } from './settle.ts';

export interface FetchLoop {
  /** Fetches now, if a slot is free (jobs were queued here, or the shared poll found some due). */
  wake(): void;
  /** Fetches nothing until resume() (a pause: the jobs running carry on, and still count against the concurrency). */
  pause(): void;
  resume(): void;
  /** Fetches nothing more; resolves once the jobs it started have ended and are settled. */
  stop(): Promise<void>;
}

export interface FetchLoopOptions {
  boss: PgBoss;
  name: string;
  /** At most this many of the queue's jobs run here at once. */
  concurrency: number;
  /** How long an idle loop waits for a wake-up before it looks again (without the shared poll: the poll interval). */
  pollSeconds: number;
  /** pg-boss's fetch option for a gated job (its concurrency across processes). */
  groupConcurrency?: number;
  /** A fetch, heartbeat or settle that failed (reported as pg-boss reports its workers' errors). */
  onError: (err: unknown) => void;
}

type Attempt = { id: string; retryCount: number };

/**
 * Runs `name`'s jobs by `run` (the runner: claim, handler, records), `concurrency` handlers at a
 * time. `run` answers how pg-boss settles the fetch, or null when the job is no longer this fetch's
 * (handed back to its queue unstarted): nothing is settled then. It may call `handlerEnded` once
 * the handler has ended: its slot takes the next job while the attempt's end is written (else the
 * slot frees when `run` answers).
 */
export function fetchLoop<D>(options: FetchLoopOptions, run: (job: JobWithMetadata<D>, handlerEnded: () => void) => Promise<JobResult | null>): FetchLoop {
  const { boss, name, concurrency, onError } = options;
  /** The attempts started and not yet settled (by id and retry count), each with what gives its fetch up. */
  const running = new Map<string, { attempt: Attempt; abort: AbortController; expiry: NodeJS.Timeout }>();
  /** Slots taken: attempts started whose handler has not ended yet. */
  let busy = 0;
  const keyOf = (a: Attempt) => `${a.id}:${a.retryCount}`;
  /** Settles under way (stop() waits for them). */
  const settling = new Set<Promise<void>>();
  let stopped = false;
  let paused = false;
  /** The queue may hold more (the last fetch came back full, or jobs came since it began): a slot that frees fetches again. */
  let mayHoldMore = false;
  /** Jobs were queued or came due (wake() from outside): how many times. */
  let arrivals = 0;
  let woken = false;
  /** Ends the loop's current wait, if it waits. */
  let wakeUp: (() => void) | null = null;
  let wakeScheduled = false;
  let heartbeat: NodeJS.Timeout | undefined;

  /** Ends the loop's wait (for a slot that freed, or jobs that came). */
  const wake = () => {
    woken = true;
    // (after the jobs ending in this turn of the event loop have freed their slots: one fetch for
    // all; the wait it ends is the one current then, not the one current now)
    if (wakeScheduled) return;
    wakeScheduled = true;
    setImmediate(() => {
      wakeScheduled = false;
      wakeUp?.();
    });
  };
  /** Jobs came (queued here, or due by time): fetched now if a slot is free, else when one frees. */
  const arrived = () => {
    arrivals++;
    mayHoldMore = true;
    wake();
  };
  const polled = () => pollDueTogether(boss, name, arrived, options.pollSeconds);
  const shared = polled();
  /** Idle, the loop waits this long for a wake-up (the shared poll wakes it when jobs come due by time). */
  const idleMs = (shared ? Math.max(SIBLING_BACKSTOP_SECONDS, options.pollSeconds) : options.pollSeconds) * 1000;

  function waitForWake(ms: number): Promise<void> {
    if (woken || stopped) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        if (wakeUp === done) wakeUp = null;
        resolve();
      }
      wakeUp = done;
    });
  }

  /** Completed jobs with one output in one statement, failed ones likewise; a permanent failure first spends its retries. */
  const settle = coalesce(
    async (ends: Array<{ attempt: Attempt & { retryLimit: number }; result: JobResult }>): Promise<void[]> => {
      const groups = new Map<string, { status: JobResult['status']; output: object | undefined; attempts: Array<Attempt & { retryLimit: number }> }>();
      for (const { attempt, result } of ends) {
        const key = `${result.status}\u0000${JSON.stringify(result.output ?? null)}`;
        const group = groups.get(key) ?? { status: result.status, output: result.output as object | undefined, attempts: [] };
        group.attempts.push(attempt);
        groups.set(key, group);
      }
      // (one group's failure leaves the others' settles standing; its jobs are retried once pg-boss expires their fetch)
      for (const { status, output, attempts } of groups.values()) {
        const fenced = attempts.map(({ id, retryCount }) => ({ id, retryCount }));
        try {
          if (status === 'completed') await durably(() => boss.complete(name, fenced, output));
          else if (status === 'failed') await durably(() => boss.fail(name, fenced, output));
          else await durably(() => failForGood(boss, name, attempts, output));
        } catch (err) {
          onError(err);
        }
      }
      return ends.map(() => undefined);
    },
    { maxItems: 500, maxInFlight: 2 },
  );

  /** Refreshes the running jobs' heartbeat; a job pg-boss no longer holds for this fetch (expired, cancelled, given up) has its signal aborted. */
  function beat(): void {
    const held = [...running.values()];
    if (held.length === 0) return;
    boss.touch(name, held.map((h) => h.attempt)).then(
      (touched) => {
        // (the ids touch() refreshed: pg-boss answers them beside the count)
        const ids = (touched as { settled?: string[] }).settled;
        if (!ids) return;
        const still = new Set(ids);
        for (const h of held) if (!still.has(h.attempt.id) && running.get(keyOf(h.attempt)) === h) h.abort.abort(new Error(`job ${h.attempt.id} is no longer active under this fetch`));
      },
      onError,
    );
  }

  function start(job: JobWithMetadata<D>): void {
    const abort = new AbortController();
    // what pg-boss's worker hands each job: aborted when the fetch is given up (here: expiry, or the heartbeat found it gone)
    (job as { signal: AbortSignal }).signal = abort.signal;
    // (within setTimeout's range: beyond it Node fires at once)
    const expiry = setTimeout(() => abort.abort(new Error(`handler execution exceeded ${job.expireInSeconds}s`)), Math.min(job.expireInSeconds * 1000, 2 ** 31 - 1));
    const attempt = { id: job.id, retryCount: job.retryCount };
    const entry = { attempt, abort, expiry };
    const key = keyOf(attempt);
    running.set(key, entry);
    if (job.heartbeatSeconds && !heartbeat) heartbeat = setInterval(beat, (job.heartbeatSeconds * 1000) / 2);
    busy++;
    let freed = false;
    const free = () => {
      if (freed) return;
      freed = true;
      busy--;
      if (mayHoldMore) wake();
    };
    // (not for a gated job: pg-boss's fetch counts its group's active jobs, this one among them
    // until it is settled, so a slot freed earlier would only fetch nothing)
    const settled = run(job, options.groupConcurrency ? () => {} : free)
      .catch((err: unknown): JobResult | null => ({ id: job.id, status: 'failed', output: errorInfo(err) }))
      .then(async (result) => {
        free();
        // (beaten for until here: pg-boss holds the fetch active until it is settled)
        running.delete(key);
        clearTimeout(expiry);
        if (running.size === 0 && heartbeat) {
          clearInterval(heartbeat);
          heartbeat = undefined;
        }
        // (a fetch held back by the attempts still being written goes now)
        if (mayHoldMore) wake();
        if (result) await settle({ attempt: { ...attempt, retryLimit: job.retryLimit }, result });
        // a gated job's group counted it active until now: the fetch it held back goes now
        if (options.groupConcurrency) wake();
      })
      // (not settled: pg-boss's expiry of the fetch retries the job, as when a worker's settle fails)
      .catch(onError)
      .finally(() => settling.delete(settled));
    settling.add(settled);
  }

  const loop = (async () => {
    for (let failures = 0; !stopped; ) {
      woken = false;
      // (at most `concurrency` ended attempts wait for their ends to be written beside those running)
      const free = paused ? 0 : Math.min(concurrency - busy, 2 * concurrency - running.size);
      let wait = idleMs;
      if (free > 0) {
        const seen = arrivals;
        try {
          const jobs = await boss.fetch<D>(name, { batchSize: free, includeMetadata: true, ...(options.groupConcurrency ? { groupConcurrency: options.groupConcurrency } : {}) });
          failures = 0;
          // (jobs that came while the fetch ran may not have been visible to it)
          mayHoldMore = jobs.length === free || arrivals !== seen;
          // (after stop(): fetched just as it came; they run, as a fetch in flight did under pg-boss's stop)
          for (const job of jobs) start(job);
          if (mayHoldMore) continue;
        } catch (err) {
          failures++;
          mayHoldMore = true;
          onError(err);
          // a killed connection is tried again at once (the pool opens a new one), twice in a row at most
          wait = isConnectionLost(err) && failures <= 2 ? 0 : options.pollSeconds * 1000;
        }
      }
      await waitForWake(wait);
    }
  })();

  return {
    wake: arrived,
    pause() {
      paused = true;
      // (a paused queue is not polled: resume() registers it again)
      forgetDue(boss, name);
    },
    resume() {
      if (!paused || stopped) return;
      paused = false;
      polled();
      arrived();
    },
    async stop() {
      stopped = true;
      forgetDue(boss, name);
      wakeUp?.();
      await loop;
      while (settling.size > 0) await Promise.allSettled([...settling]);
      if (heartbeat) clearInterval(heartbeat);
      heartbeat = undefined;
    },
  };
}

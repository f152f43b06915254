// The run stage: claim an attempt, run its handler under a timeout, a heartbeat and the shutdown
// signal, and settle it (completed, failed and retried, cancelled, or lost). Both sides run jobs
// the same way: a ledger job is claimed in the ledger, a record (its pg-boss row) by pg-boss's
// fetch; on the fetcher, every attempt is also claimed at main (confirmClaim).
import { setTimeout as sleep } from 'node:timers/promises';
import type { JobWithMetadata, JobResult } from 'pg-boss';
import { ErrorCode, JobgateError, cleanText, MAX_PROGRESS_MESSAGE, traceFields, type Logger } from '../support/index.ts';
import { durably, type Ledger, type RecordData, type RecordRuns, type Route } from '../store/index.ts';
import type { JobContext, JobDefinition } from '../define/define-job.ts';
import type { QueuedData } from '../define/queue-policy.ts';
import type { JobMetrics } from './metrics.ts';
import { runIsolated } from './isolation/run-isolated.ts';
import { attemptChildren, noFanOut, type ChildrenDeps } from './children.ts';
import { trackPeakRss } from './peak-rss.ts';
import { ABORT_GRACE_MS, abortReason, errorInfo, failureOutcome, settleWithin } from './settle.ts';


/**
 * Whether the attempt may start as far as main is concerned (the fetcher asks main; see
 * claim-at-main.ts): claimed, gone (main owns or finished the job), or paused (an operator paused it).
 */
export type ConfirmClaim = (id: string, attempt: number, signal: AbortSignal, log: Logger, traceparent?: string) => Promise<'claimed' | 'gone' | 'paused'>;

export interface RunnerOptions {
  /** Which side runs here: written into each execution and metric. */
  ranOn: Route;
  ledger: Ledger;
  logger: Logger;
  /** How long a claim lasts unless refreshed (every quarter of it). */
  claimSeconds: number;
  /** Aborts every running handler (stop()). */
  shutdown: AbortSignal;
  metrics?: JobMetrics;
  /** Where a job was defined (a module URL), for jobs whose handler runs isolated. */
  moduleOf?: (name: string) => string | undefined;
  confirmClaim?: ConfirmClaim;
  /** Whether an operator paused this job, as this process last heard (watchPauses): a fetched job then goes back unclaimed. */
  isPaused?: (name: string) => boolean;
  /** Gives a fetched job back to its queue unstarted, no retry spent (store/boss.ts handBack); false: no longer ours. */
  handBack: (job: JobWithMetadata<QueuedData>) => Promise<boolean>;
  /** A claim found the job paused before this process heard of the pause: read the pauses now. */
  heardOfPause?: () => void;
  /** Where a handler's children go (ctx.performLater); absent, fan-out says it is not available here. */
  children?: ChildrenDeps;
  /** How jobs whose record is their pg-boss row run (main: store/record-runs.ts); absent, every job has a ledger row. */
  records?: RecordRuns;
}

/** A result whose job went back to its queue unstarted (giveBack: a pause): its fetch is no longer active, nothing to settle. */
export const handedBack = (result: JobResult): boolean => (result.output as { handedBack?: unknown } | undefined)?.handedBack === true;

/**
 * `handlerEnded`, if given, is called once the handler has ended, before the attempt's end is
 * written: the slot it held may take the next job meanwhile (the fetcher's fetch loop).
 */
export type RunOne = (def: JobDefinition, job: JobWithMetadata<QueuedData>, attemptBase?: number, handlerEnded?: () => void) => Promise<JobResult>;

/** One attempt of one job, from claim to settle: what a queue worker calls per fetched job. */
export function createRunner(options: RunnerOptions): RunOne {
  const { ledger, logger, ranOn, claimSeconds } = options;

  /**
   * The running attempts: their heartbeats, beaten together every quarter of a claim by one timer
   * (a timer per attempt, and a shutdown listener each, cost a short job more than the rest of its
   * bookkeeping at 50 jobs per fetch), and what the shutdown aborts.
   */
  const beats = new Set<() => void>();
  let beating: NodeJS.Timeout | undefined;
  const stoppings = new Set<AbortController>();
  const onShutdown = () => stoppings.forEach((c) => c.abort(options.shutdown.reason));
  options.shutdown.addEventListener('abort', onShutdown, { once: true });
  function attend(beat: () => void, stopping: AbortController): () => void {
    beats.add(beat);
    beating ??= setInterval(() => beats.forEach((b) => b()), (claimSeconds * 1000) / 4);
    if (options.shutdown.aborted) stopping.abort(options.shutdown.reason);
    else stoppings.add(stopping);
    return () => {
      beats.delete(beat);
      stoppings.delete(stopping);
      if (beats.size === 0 && beating) {
        clearInterval(beating);
        beating = undefined;
      }
    };
  }

  /**
   * claimed: the attempt starts; skip: it is not ours to run (finished, cancelled, taken over);
   * paused: an operator paused the job: no claim is left behind (the caller hands the job back).
   */
  async function claim(def: JobDefinition, id: string, attempt: number, signal: AbortSignal, log: Logger, traceparent?: string): Promise<'claimed' | 'skip' | 'paused'> {
    const { confirmClaim } = options;
    // The fetcher's first attempt of a job without gates cannot find its local claim held (no
    // other attempt of it exists yet, no slot to wait for): it asks main at the same time, and
    // starts one round trip sooner. Any other attempt is claimed here first, then at main.
    const together = confirmClaim !== undefined && attempt === 1 && def.concurrency === null && !def.rateLimit;
    for (;;) {
      // fetched just before the worker stopped for its pause: back to the queue, unclaimed
      if (options.isPaused?.(def.name)) return 'paused';
      const asking = new AbortController();
      const atMain = together ? confirmClaim(id, attempt, AbortSignal.any([signal, asking.signal]), log, traceparent) : null;
      atMain?.catch(() => {});
      let result: Awaited<ReturnType<Ledger['claimAttempt']>>;
      try {
        result = await durably(() => ledger.claimAttempt({ id, attempt, ranOn, concurrency: def.concurrency, perSecond: def.rateLimit?.perSecond ?? null, claimSeconds }));
      } catch (err) {
        asking.abort();
        throw err;
      }
      if (result.outcome !== 'claimed') {
        asking.abort();
        // rare (a first attempt finds its job finished here, or its slot taken): main may have granted
        // the claim meanwhile; it shows the attempt running until a later attempt or the reconciler ends it
        atMain?.then((granted) => granted === 'claimed' && log.warn({ local: result.outcome }, 'main granted a claim this attempt does not use (the local claim said otherwise); a later attempt or the reconciler settles it there'), () => {});
      }
      // paused (main's own job; claim_attempt is the last word): nothing was claimed
      if (result.outcome === 'paused') return 'paused';
      if (result.outcome === 'wait') {
        await sleep(result.waitMs, undefined, { signal });
        continue;
      }
      if (result.outcome === 'gone') log.info('job is finished or cancelled in the ledger; not running it');
      if (result.outcome !== 'claimed') return 'skip';
      if (!confirmClaim) return 'claimed';
      const mainSays = await (atMain ?? confirmClaim(id, attempt, signal, log, traceparent));
      if (mainSays === 'claimed') return 'claimed';
      if (mainSays === 'paused') {
        // main did not grant it: the local claim goes too, so nothing shows this attempt as started
        await durably(() => ledger.releaseAttempt(id, attempt, ranOn));
        return 'paused';
      }
      // main owns or finished the job: this attempt ends here, taken over, and never starts
      await durably(() =>
        ledger.finishAttempt({ id, attempt, outcome: 'lost', state: 'cancelled', error: { code: ErrorCode.takenOver, message: 'main took this job over (emergency override) or finished it' }, peakRssMb: 0 }),
      );
      return 'skip';
    }
  }

  /**
   * A paused job fetched before this process stopped fetching it: back to its queue unstarted (no
   * execution, no retry spent), where it waits out the pause like the jobs never fetched.
   */
  async function giveBack(job: JobWithMetadata<QueuedData>, log: Logger, records: RecordRuns | null): Promise<JobResult> {
    options.heardOfPause?.();
    try {
      const given = await durably(() => options.handBack(job));
      // a record waits out the pause held where pg-boss's fetch skips it
      if (given && records) await durably(() => records.blockIfPaused(job.name, job.id));
      if (given) log.info('job paused: handed back to its queue unstarted');
      else log.warn('job paused, but the queue no longer holds this fetch of it (expired meanwhile?); leaving it to the queue');
    } catch (err) {
      // the queue retries it then: a retry spent, only when the database failed us here
      log.warn({ err }, 'could not hand the paused job back to its queue; the queue will retry it');
      return { id: job.id, status: 'failed', output: errorInfo(err) };
    }
    // (handedBack: the fetcher's loop does not settle it; pg-boss's worker settles it fenced to this
    // fetch, which is no longer active: no change)
    return { id: job.id, status: 'completed', output: { handedBack: true } };
  }

  /**
   * A record's attempt needs no claim (pg-boss's fetch is its one executor's): it starts unless its
   * job is paused. A first attempt was waiting unfetched, so it was held where pg-boss's fetch skips
   * it if its name was paused (store/pauses.ts holds every waiting record at a pause, and a record
   * enqueued across one once the transactions open then have ended): this process's knowledge of the
   * pauses suffices. A retry may have gone back to its queue while paused, as pg-boss settled an
   * attempt that was running: the database says whether it is paused now; it first writes the
   * attempts before it that have no row as lost.
   */
  async function claimRecord(records: RecordRuns, def: JobDefinition, job: JobWithMetadata<QueuedData>, attempt: number, log: () => Logger): Promise<'claimed' | 'paused' | 'skip' | 'taken'> {
    if (options.isPaused?.(def.name)) return 'paused';
    if (options.confirmClaim) return claimRecordAtMain(options.confirmClaim, records, job, attempt, log);
    if (job.retryCount === 0) return 'claimed';
    if (await records.isPaused(def.name)) return 'paused';
    await records.lostBefore(job.id, attempt);
    return 'claimed';
  }

  /**
   * The fetcher's record (store/fetcher-records.ts): every attempt is main's to grant (main's grant
   * writes the attempts before it that have no end as lost), and none runs while an end of the job
   * waits in the outbox for main (its runner died between that end and pg-boss's settle). taken:
   * main owns the job now (taken over, finished or cancelled there).
   */
  async function claimRecordAtMain(confirmClaim: ConfirmClaim, records: RecordRuns, job: JobWithMetadata<QueuedData>, attempt: number, log: () => Logger): Promise<'claimed' | 'paused' | 'skip' | 'taken'> {
    // (a first attempt has no earlier one whose end could be waiting)
    if (job.retryCount > 0 && (await records.endPending?.(job.id))) {
      log().warn('this job ended before (its end waits to reach main); not running it again');
      return 'skip';
    }
    const mainSays = await confirmClaim(job.id, attempt, AbortSignal.any([job.signal, options.shutdown]), log(), job.data.traceparent);
    if (mainSays === 'gone') return 'taken';
    // (main's grant wrote the attempts before it that have no end as lost in main's history; this is the fetcher's)
    if (mainSays === 'claimed' && job.retryCount > 0) await records.lostBefore(job.id, attempt);
    return mainSays;
  }

  async function runOne(def: JobDefinition, job: JobWithMetadata<QueuedData>, attemptBase = 0, handlerEnded?: () => void): Promise<JobResult> {
    // a job whose record is its pg-boss row (jobs without gates: main's own, and the fetcher's): no ledger row to claim or settle
    const records = options.records && (job.data as RecordData).record === 1 ? options.records : null;
    const recordAttempt = { name: job.name, id: job.id, retryCount: job.retryCount, ...(job.data.traceparent ? { traceparent: job.data.traceparent } : {}) };
    const attempt = attemptBase + job.retryCount + 1;
    const maxAttempts = attemptBase + job.retryLimit + 1;
    // (made when first needed: a short job at level warn logs nothing, and a child logger costs as much as the rest of its bookkeeping)
    let child: Logger | undefined;
    const log = () => (child ??= logger.child({
      jobId: job.id,
      jobName: def.name,
      attempt,
      maxAttempts,
      ...(job.data.requestId ? { requestId: job.data.requestId } : {}),
      ...traceFields(job.data.traceparent),
    }));
    try {
      const claimed = records ? await durably(() => claimRecord(records, def, job, attempt, log)) : await claim(def, job.id, attempt, AbortSignal.any([job.signal, options.shutdown]), log(), job.data.traceparent);
      if (claimed === 'paused') return await giveBack(job, log(), records);
      if (claimed === 'skip') return { id: job.id, status: 'completed', output: { skipped: true } };
      // (a record's: its row shows it cancelled here, as a ledger row of such a job is: queue-records.ts)
      if (claimed === 'taken') return { id: job.id, status: 'completed', output: { takenOver: true } };
    } catch (err) {
      log().warn({ err }, 'could not claim the job; the queue will retry it');
      return { id: job.id, status: 'failed', output: errorInfo(err) };
    }

    // The handler's one signal: its timeout, pg-boss giving this fetch up, the shutdown, or the
    // claim lost (cancelled, or taken over), whichever comes first, with its reason.
    const stopping = new AbortController();
    const signal = stopping.signal;
    // (from the next turn of the event loop: pg-boss's job signal is an AbortSignal.any, whose first
    // listener links it to its sources, a third of a short job's bookkeeping at 50 per fetch; a
    // handler that ends within this turn never needs it, and one aborted meanwhile is seen then)
    let unfollow = () => {};
    let following: NodeJS.Immediate | undefined;
    const timer = setTimeout(() => stopping.abort(new JobgateError(ErrorCode.jobTimeout, `timed out after ${def.timeoutSeconds}s`)), def.timeoutSeconds * 1000);
    let claimLost: JobgateError | undefined;
    const loseClaim = (err: JobgateError) => {
      claimLost ??= err;
      stopping.abort(err);
    };
    const peakRss = trackPeakRss();
    // Cancelled meanwhile, or another attempt took the job over (this one was given up for dead): stop now.
    const holding = records
      ? () => records.holding(recordAttempt)
      : async () => {
          if (await ledger.refreshClaim(job.id, attempt, claimSeconds, ranOn)) return 'held';
          return (await ledger.getJob(job.id).catch(() => null))?.state === 'cancelled' ? 'cancelled' : 'lost';
        };
    const unattend = attend(() => {
      holding().then(
        (now) => {
          if (now === 'held' || claimLost) return;
          if (now === 'cancelled') {
            log().warn('job cancelled while running; aborting it');
            loseClaim(new JobgateError(ErrorCode.jobCancelled, 'the job was cancelled while it ran'));
            return;
          }
          log().error('claim lost to another attempt; aborting this one');
          loseClaim(new JobgateError(ErrorCode.jobLost, 'another attempt took over this job'));
        },
        (err: unknown) => log().warn({ err }, 'claim refresh failed'),
      );
    }, stopping);
    /** The progress this attempt reported last: a record keeps it with its end (pg-boss's output). */
    let lastProgress = null as { progress: number; message: string | null } | null;
    const children = options.children ? attemptChildren(options.children, { id: job.id, ...(job.data.requestId ? { requestId: job.data.requestId } : {}), ...(job.data.traceparent ? { traceparent: job.data.traceparent } : {}) }) : null;
    const ctx: JobContext = {
      ...(children?.fanOut ?? noFanOut('ctx.performLater needs main: this fetcher has no main URL configured')),
      job: { id: job.id, name: def.name, attempt, maxAttempts, ranOn },
      get logger() {
        return log();
      },
      signal,
      progress: async (percent, message) => {
        const pct = Math.max(0, Math.min(100, Math.round(percent)));
        const text = message === undefined ? null : cleanText(String(message), MAX_PROGRESS_MESSAGE);
        lastProgress = { progress: pct, message: text };
        await (records ? records.setProgress(recordAttempt, pct, text) : ledger.setProgress(job.id, attempt, pct, text));
        if (logger.isLevelEnabled('debug')) log().debug({ progress: pct, progressMessage: message }, 'job progress');
      },
      memory: {
        rssMb: () => Math.round(process.memoryUsage.rss() / 2 ** 20),
        peakRssMb: () => Math.max(peakRss.peakMb(), Math.round(process.memoryUsage.rss() / 2 ** 20)),
      },
    };
    const startedAt = performance.now();
    const seconds = () => (performance.now() - startedAt) / 1000;
    options.metrics?.started(def.name, ranOn, (Date.now() - new Date(job.startAfter).getTime()) / 1000);
    if (logger.isLevelEnabled('info')) log().info('job started');
    try {
      following = setImmediate(() => (unfollow = follow([job.signal], stopping)));
      const handler =
        def.isolation !== 'none'
          ? runIsolated(def.isolation, { moduleUrl: options.moduleOf!(def.name)!, name: def.name, payload: job.data.payload, logBindings: log().bindings(), logLevel: log().level }, ctx, def.maxHeapMb, ABORT_GRACE_MS)
          : def.run(def.payload.parse(job.data.payload), ctx);
      // (an isolated handler's thread or process may still be exiting: its slot frees when the attempt ends)
      await settleWithin(handler, signal, ABORT_GRACE_MS).finally(def.isolation === 'none' ? handlerEnded : undefined);
      // cancelled while it ran, but the handler finished anyway: the job stays cancelled
      if (claimLost?.code === ErrorCode.jobCancelled) throw claimLost;
      // the children it enqueued commit with its success (keyed: written again by a retry, they are not doubled)
      if (children) await durably(() => children.flush());
      // a record completes with pg-boss's settle of this fetch, which follows (on the fetcher, after the end's event)
      if (records) {
        if (records.completed) await durably(() => records.completed!(recordAttempt, { startedAt: job.startedOn, peakRssMb: peakRss.peakMb(), maxAttempts }));
        records.settled({ name: def.name, route: ranOn, state: 'completed', run_at: job.startAfter, started_at: job.startedOn, finished_at: new Date() });
      } else await durably(() => ledger.finishAttempt({ id: job.id, attempt, outcome: 'completed', state: 'completed', error: null, peakRssMb: peakRss.peakMb() }));
      if (logger.isLevelEnabled('info')) log().info({ ms: Math.round(performance.now() - startedAt) }, 'job completed');
      options.metrics?.finished(def.name, ranOn, 'completed', seconds());
      // a record keeps what its completing attempt says with pg-boss's settle (queue-records.ts reads output)
      return { id: job.id, status: 'completed', ...(records ? { output: { ...(lastProgress?.message ? { message: lastProgress.message } : {}), peakRssMb: peakRss.peakMb() } } : {}) };
    } catch (thrown) {
      let err = signal.aborted && !(thrown instanceof JobgateError) ? abortReason(signal, thrown) : thrown;
      // pg-boss gave up this fetch of a record (its own heartbeat found the job no longer active):
      // cancelled, when that is what the record says
      if (records && job.signal.aborted && !claimLost && (await records.holding(recordAttempt).catch(() => null)) === 'cancelled') {
        err = new JobgateError(ErrorCode.jobCancelled, 'the job was cancelled while it ran');
      }
      if (err instanceof JobgateError && err.code === ErrorCode.jobCancelled) {
        // the job is settled (cancelled): end the attempt and let the queue forget it, no retry
        const peakRssMb = peakRss.peakMb();
        const error = { code: ErrorCode.jobCancelled, message: 'the job was cancelled while this attempt ran' };
        await durably(() => (records ? records.attemptEnded(recordAttempt, { ranOn, startedAt: job.startedOn, outcome: 'failed', error, peakRssMb, state: 'failed', maxAttempts }) : ledger.endCancelledAttempt(job.id, attempt, peakRssMb))).catch((e: unknown) =>
          log().error({ err: e }, 'could not record the cancelled attempt'),
        );
        log().info({ ms: Math.round(performance.now() - startedAt) }, 'job cancelled while running');
        options.metrics?.finished(def.name, ranOn, 'cancelled', seconds());
        return { id: job.id, status: 'completed', output: { cancelled: true } };
      }
      const info = errorInfo(err);
      const { permanent, retrying } = failureOutcome(err, attempt, maxAttempts);
      log().warn({ err, retrying, ms: Math.round(performance.now() - startedAt) }, retrying ? 'job attempt failed; will retry' : 'job failed');
      options.metrics?.finished(def.name, ranOn, retrying ? 'retrying' : 'failed', seconds());
      const peakRssMb = peakRss.peakMb();
      await durably(() =>
        records
          ? records.attemptEnded(recordAttempt, { ranOn, startedAt: job.startedOn, outcome: 'failed', error: info, peakRssMb, state: retrying ? 'queued' : 'failed', maxAttempts })
          : ledger.finishAttempt({ id: job.id, attempt, outcome: 'failed', state: retrying ? 'queued' : 'failed', error: info, peakRssMb }),
      ).catch((e: unknown) => log().error({ err: e }, 'could not record the failed attempt'));
      if (!records) return { id: job.id, status: permanent ? 'deadletter' : 'failed', output: info };
      // a record's error is what pg-boss's settle of this fetch stores (queue-records.ts reads output.error)
      if (!retrying) records.settled({ name: def.name, route: ranOn, state: 'failed', run_at: job.startAfter, started_at: job.startedOn, finished_at: new Date() });
      return { id: job.id, status: permanent ? 'deadletter' : 'failed', output: { error: info, ...lastProgress } };
    } finally {
      clearTimeout(timer);
      unattend();
      peakRss.stop();
      clearImmediate(following);
      unfollow();
    }
  }

  return runOne;
}

/**
 * Aborts `into` with the reason of the first of `sources` to abort (at once if one has); returns
 * what stops listening. What AbortSignal.any does, without the weak references it keeps for every
 * signal it makes, which cost a short job's attempt more than the rest of its bookkeeping.
 */
function follow(sources: AbortSignal[], into: AbortController): () => void {
  const listeners = sources.map((source) => {
    const onAbort = () => into.abort(source.reason);
    if (source.aborted) into.abort(source.reason);
    else source.addEventListener('abort', onAbort, { once: true });
    return () => source.removeEventListener('abort', onAbort);
  });
  return () => listeners.forEach((stop) => stop());
}

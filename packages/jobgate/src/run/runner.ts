// The run stage: claim an attempt in the ledger, run its handler under a timeout, a heartbeat and
// the shutdown signal, and settle it (completed, failed and retried, cancelled, or lost). Both
// sides run jobs the same way; the fetcher adds a second claim at main (confirmClaim).
import { setTimeout as sleep } from 'node:timers/promises';
import type { JobWithMetadata, JobResult } from 'pg-boss';
import { ErrorCode, JobgateError, cleanText, MAX_PROGRESS_MESSAGE, traceFields, type Logger } from '../support/index.ts';
import { durably, type Ledger, type Route } from '../store/index.ts';
import type { JobContext, JobDefinition } from '../define/define-job.ts';
import type { QueuedData } from '../define/queue-policy.ts';
import type { JobMetrics } from './metrics.ts';
import { runIsolated } from './isolation/run-isolated.ts';
import { attemptChildren, noFanOut, type ChildrenDeps } from './children.ts';
import { ABORT_GRACE_MS, abortReason, errorInfo, failureOutcome, settleWithin } from './settle.ts';


/** Whether the attempt may start as far as main is concerned (the fetcher asks main; see claim-at-main.ts): false when main owns or finished the job. */
export type ConfirmClaim = (id: string, attempt: number, signal: AbortSignal, log: Logger, traceparent?: string) => Promise<boolean>;

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
  /** Whether an operator paused this job (watchPauses): a fetched attempt then waits before it claims. */
  isPaused?: (name: string) => boolean;
  /** Where a handler's children go (ctx.performLater); absent, fan-out says it is not available here. */
  children?: ChildrenDeps;
}

export type RunOne = (def: JobDefinition, job: JobWithMetadata<QueuedData>, attemptBase?: number) => Promise<JobResult>;

/** One attempt of one job, from claim to settle: what a queue worker calls per fetched job. */
export function createRunner(options: RunnerOptions): RunOne {
  const { ledger, logger, ranOn, claimSeconds } = options;

  async function claim(def: JobDefinition, id: string, attempt: number, signal: AbortSignal, log: Logger, traceparent?: string): Promise<boolean> {
    const { confirmClaim } = options;
    // The fetcher's first attempt of a job without gates cannot find its local claim held (no
    // other attempt of it exists yet, no slot to wait for): it asks main at the same time, and
    // starts one round trip sooner. Any other attempt is claimed here first, then at main.
    const together = confirmClaim !== undefined && attempt === 1 && def.concurrency === null && !def.rateLimit;
    for (;;) {
      // fetched just before its pause was heard: it waits unclaimed (no attempt starts, none is used up)
      if (options.isPaused?.(def.name)) {
        await sleep(1_000, undefined, { signal });
        continue;
      }
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
        atMain?.then((granted) => granted && log.warn({ local: result.outcome }, 'main granted a claim this attempt does not use (the local claim said otherwise); a later attempt or the reconciler settles it there'), () => {});
      }
      if (result.outcome === 'wait') {
        await sleep(result.waitMs, undefined, { signal });
        continue;
      }
      if (result.outcome === 'gone') log.info('job is finished or cancelled in the ledger; not running it');
      if (result.outcome !== 'claimed') return false;
      if (!confirmClaim) return true;
      if (await (atMain ?? confirmClaim(id, attempt, signal, log, traceparent))) return true;
      // main owns or finished the job: this attempt ends here, taken over, and never starts
      await durably(() =>
        ledger.finishAttempt({ id, attempt, outcome: 'lost', state: 'cancelled', error: { code: ErrorCode.takenOver, message: 'main took this job over (emergency override) or finished it' }, peakRssMb: 0 }),
      );
      return false;
    }
  }

  async function runOne(def: JobDefinition, job: JobWithMetadata<QueuedData>, attemptBase = 0): Promise<JobResult> {
    const attempt = attemptBase + job.retryCount + 1;
    const maxAttempts = attemptBase + job.retryLimit + 1;
    const log = logger.child({
      jobId: job.id,
      jobName: def.name,
      attempt,
      maxAttempts,
      ...(job.data.requestId ? { requestId: job.data.requestId } : {}),
      ...traceFields(job.data.traceparent),
    });
    try {
      if (!(await claim(def, job.id, attempt, AbortSignal.any([job.signal, options.shutdown]), log, job.data.traceparent))) {
        return { id: job.id, status: 'completed', output: { skipped: true } };
      }
    } catch (err) {
      log.warn({ err }, 'could not claim the job; the queue will retry it');
      return { id: job.id, status: 'failed', output: errorInfo(err) };
    }

    const timeout = new AbortController();
    const timer = setTimeout(
      () => timeout.abort(new JobgateError(ErrorCode.jobTimeout, `timed out after ${def.timeoutSeconds}s`)),
      def.timeoutSeconds * 1000,
    );
    const claimLost = new AbortController();
    const signal = AbortSignal.any([timeout.signal, job.signal, options.shutdown, claimLost.signal]);
    let peakRss = process.memoryUsage.rss();
    const sampler = setInterval(() => { peakRss = Math.max(peakRss, process.memoryUsage.rss()); }, 1_000);
    const heartbeat = setInterval(() => {
      ledger.refreshClaim(job.id, attempt, claimSeconds, ranOn).then(
        async (held) => {
          if (held || claimLost.signal.aborted) return;
          // Cancelled meanwhile, or another attempt took the job over (this one was given up for dead): stop now.
          const now = await ledger.getJob(job.id).catch(() => null);
          if (now?.state === 'cancelled') {
            log.warn('job cancelled while running; aborting it');
            claimLost.abort(new JobgateError(ErrorCode.jobCancelled, 'the job was cancelled while it ran'));
            return;
          }
          log.error('claim lost to another attempt; aborting this one');
          claimLost.abort(new JobgateError(ErrorCode.jobLost, 'another attempt took over this job'));
        },
        (err: unknown) => log.warn({ err }, 'claim refresh failed'),
      );
    }, (claimSeconds * 1000) / 4);
    sampler.unref();
    const children = options.children ? attemptChildren(options.children, { id: job.id, ...(job.data.requestId ? { requestId: job.data.requestId } : {}), ...(job.data.traceparent ? { traceparent: job.data.traceparent } : {}) }) : null;
    const ctx: JobContext = {
      ...(children?.fanOut ?? noFanOut('ctx.performLater needs main: this fetcher has no main URL configured')),
      job: { id: job.id, name: def.name, attempt, maxAttempts, ranOn },
      logger: log,
      signal,
      progress: async (percent, message) => {
        const pct = Math.max(0, Math.min(100, Math.round(percent)));
        await ledger.setProgress(job.id, attempt, pct, message === undefined ? null : cleanText(String(message), MAX_PROGRESS_MESSAGE));
        log.debug({ progress: pct, progressMessage: message }, 'job progress');
      },
      memory: {
        rssMb: () => Math.round(process.memoryUsage.rss() / 2 ** 20),
        peakRssMb: () => Math.round(Math.max(peakRss, process.memoryUsage.rss()) / 2 ** 20),
      },
    };
    const startedAt = performance.now();
    const seconds = () => (performance.now() - startedAt) / 1000;
    options.metrics?.started(def.name, ranOn, (Date.now() - new Date(job.startAfter).getTime()) / 1000);
    log.info('job started');
    try {
      const handler =
        def.isolation !== 'none'
          ? runIsolated(def.isolation, { moduleUrl: options.moduleOf!(def.name)!, name: def.name, payload: job.data.payload, logBindings: log.bindings(), logLevel: log.level }, ctx, def.maxHeapMb, ABORT_GRACE_MS)
          : def.run(def.payload.parse(job.data.payload), ctx);
      await settleWithin(handler, signal, ABORT_GRACE_MS);
      // cancelled while it ran, but the handler finished anyway: the job stays cancelled
      const lost = claimLost.signal.reason as JobgateError | undefined;
      if (lost?.code === ErrorCode.jobCancelled) throw lost;
      // the children it enqueued commit with its success (keyed: written again by a retry, they are not doubled)
      if (children) await durably(() => children.flush());
      peakRss = Math.max(peakRss, process.memoryUsage.rss());
      await durably(() => ledger.finishAttempt({ id: job.id, attempt, outcome: 'completed', state: 'completed', error: null, peakRssMb: Math.round(peakRss / 2 ** 20) }));
      log.info({ ms: Math.round(performance.now() - startedAt) }, 'job completed');
      options.metrics?.finished(def.name, ranOn, 'completed', seconds());
      return { id: job.id, status: 'completed' };
    } catch (thrown) {
      const err = signal.aborted && !(thrown instanceof JobgateError) ? abortReason(signal, thrown) : thrown;
      if (err instanceof JobgateError && err.code === ErrorCode.jobCancelled) {
        // the job is settled (cancelled): end the attempt and let the queue forget it, no retry
        await durably(() => ledger.endCancelledAttempt(job.id, attempt, Math.round(peakRss / 2 ** 20))).catch((e: unknown) => log.error({ err: e }, 'could not record the cancelled attempt'));
        log.info({ ms: Math.round(performance.now() - startedAt) }, 'job cancelled while running');
        options.metrics?.finished(def.name, ranOn, 'cancelled', seconds());
        return { id: job.id, status: 'completed', output: { cancelled: true } };
      }
      const info = errorInfo(err);
      const { permanent, retrying } = failureOutcome(err, attempt, maxAttempts);
      log.warn({ err, retrying, ms: Math.round(performance.now() - startedAt) }, retrying ? 'job attempt failed; will retry' : 'job failed');
      options.metrics?.finished(def.name, ranOn, retrying ? 'retrying' : 'failed', seconds());
      await durably(() =>
        ledger.finishAttempt({ id: job.id, attempt, outcome: 'failed', state: retrying ? 'queued' : 'failed', error: info, peakRssMb: Math.round(peakRss / 2 ** 20) }),
      ).catch((e: unknown) => log.error({ err: e }, 'could not record the failed attempt'));
      return { id: job.id, status: permanent ? 'deadletter' : 'failed', output: info };
    } finally {
      clearTimeout(timer);
      clearInterval(sampler);
      clearInterval(heartbeat);
    }
  }

  return runOne;
}

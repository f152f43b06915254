// What the queues hold and the pg-boss policy a definition becomes: one place, for every stage
// that writes a job to a queue (enqueue, intake, the override's takeover) or works one.
import type { QueueTimings } from '../store/index.ts';
import { SystemQueue } from './catalogue.ts';
import type { JobDefinition } from './define-job.ts';

/** What pg-boss stores as a job's data. */
export interface QueuedData {
  payload: unknown;
  requestId?: string;
  traceparent?: string;
}

/**
 * Whether a job of `def` enqueued on main is recorded by its pg-boss row alone (store/queue-records.ts):
 * one main runs, whose attempts need no decision from main's ledger (no concurrency or rate gate),
 * and that is not unique (the ledger's index finds a live twin).
 */
export const recordedByQueue = (def: JobDefinition): boolean => !def.runsOnFetcher && !def.unique && def.concurrency === null && def.rateLimit === null;

/** A fetcher job running on main: its name rides along, and main numbers attempts after the fetcher's. */
export interface OnMainData extends QueuedData {
  name: string;
  attemptBase: number;
}

/** pg-boss's own expiry sits this far behind `timeoutSeconds`, so our timer (with a clear error) fires first. */
const EXPIRY_SLACK_SECONDS = 30;
/** How long a fetcher attempt may wait for main's claim (main down) before pg-boss gives it up. */
const CLAIM_WAIT_BUDGET_SECONDS = 3_600;
/** pg-boss refuses expiries over 24 hours. */
const MAX_EXPIRY_SECONDS = 24 * 3_600;

/**
 * A job queue's options from its definition. `waitsForClaim`: attempts first wait for a claim at
 * main (the fetcher; main may be redeploying), and that wait must not expire them. A dead runner is
 * still found by its heartbeat.
 */
export function queueOptions(def: JobDefinition, timings: QueueTimings, waitsForClaim: boolean) {
  return {
    retryLimit: def.retry.limit,
    retryDelay: def.retry.delaySeconds,
    retryBackoff: def.retry.backoff,
    ...(def.retry.maxDelaySeconds ? { retryDelayMax: def.retry.maxDelaySeconds } : {}),
    expireInSeconds: Math.min(MAX_EXPIRY_SECONDS, def.timeoutSeconds + EXPIRY_SLACK_SECONDS + (waitsForClaim ? CLAIM_WAIT_BUDGET_SECONDS : 0)),
    heartbeatSeconds: timings.heartbeatSeconds,
    deadLetter: SystemQueue.deadLetter,
    notify: true,
  };
}

/** A fetcher job queued on main carries its job's policy itself (the on-main queue is shared). */
export function onMainInsert(def: JobDefinition, timings: QueueTimings, id: string, data: OnMainData, priority: number, startAfter?: Date | number) {
  const retryLimit = Math.max(0, def.retry.limit - data.attemptBase);
  return {
    id,
    data,
    priority,
    retryLimit,
    retryDelay: def.retry.delaySeconds,
    retryBackoff: def.retry.backoff,
    ...(def.retry.maxDelaySeconds ? { retryDelayMax: def.retry.maxDelaySeconds } : {}),
    expireInSeconds: def.timeoutSeconds + EXPIRY_SLACK_SECONDS,
    heartbeatSeconds: timings.heartbeatSeconds,
    deadLetter: SystemQueue.deadLetter,
    ...(startAfter !== undefined ? { startAfter } : {}),
  };
}

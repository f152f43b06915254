// The messages between main and the fetcher, one zod schema each, shared by both sides.
import { z } from 'zod';
import { MAX_ERROR_MESSAGE, MAX_PROGRESS_MESSAGE, TRACEPARENT_PATTERN, canonicalTimestamp, type ErrorCode } from '../support/index.ts';

/** A job's id, the same on both sides (main gives it, the fetcher keeps it). */
export const JobId = z.uuid();

export const MAX_BATCH = 500;

/**
 * The largest PostgreSQL integer (int4). A number a peer sends into an integer column (a priority,
 * a delay, a sequence number) stays inside it: past it the statement fails (22003), a 500 where
 * the sender's mistake is a 422.
 */
const INT4_MAX = 2 ** 31 - 1;
const Int4 = z.number().int().min(-INT4_MAX - 1).max(INT4_MAX);

/** A time as the sender wrote it, which PostgreSQL reads as a timestamptz (canonicalTimestamp: ISO 8601 with its offset, years 0001 to 9999). */
const Timestamp = z.string().max(40).refine((t) => canonicalTimestamp(t) !== null, 'an ISO 8601 time with its offset (at most ±15:59), years 0001 to 9999');

export const SubmitJob = z.strictObject({
  id: z.uuid(),
  name: z.string().min(1).max(100),
  payload: z.unknown(),
  // Not strict: a fetcher ignores options a newer main sends (an older one refuses them, and main
  // then keeps the jobs until it is upgraded).
  options: z
    .object({
      priority: Int4.optional(),
      delaySeconds: Int4.min(0).optional(),
      requestId: z.string().max(128).optional(),
      /** W3C traceparent of the job (the fetcher logs the job under its trace id). */
      traceparent: z.string().regex(TRACEPARENT_PATTERN, 'a W3C traceparent, 00-<32 hex>-<16 hex>-<2 hex>').optional(),
    })
    .optional(),
});
export type SubmitJob = z.infer<typeof SubmitJob>;

export const SubmitJobs = z.strictObject({ jobs: z.array(SubmitJob).min(1).max(MAX_BATCH) });
export type SubmitJobs = z.infer<typeof SubmitJobs>;

export const SubmitResult = z.object({ accepted: z.array(z.object({ id: z.uuid(), duplicate: z.boolean() })) });
export type SubmitResult = z.infer<typeof SubmitResult>;

/**
 * An attempt's error code as the fetcher sends it: typed as an ErrorCode, checked as a string of at
 * most 100 characters only, so a fetcher of a newer version may send a code this version does not
 * list (it is stored and shown as it came).
 */
const PeerErrorCode = z.custom<ErrorCode>((code) => typeof code === 'string' && code.length <= 100, 'a string of at most 100 characters');

export const FetcherJobState = z.enum(['queued', 'active', 'completed', 'failed', 'cancelled']);

export const ExecutionView = z.object({
  attempt: z.number(),
  startedAt: z.string(),
  finishedAt: z.string().optional(),
  outcome: z.enum(['running', 'completed', 'failed', 'lost']),
  error: z.object({ code: PeerErrorCode, message: z.string() }).optional(),
  peakRssMb: z.number().optional(),
});

export const FetcherJob = z.object({
  id: z.uuid(),
  name: z.string(),
  state: FetcherJobState,
  progress: z.number(),
  progressMessage: z.string().optional(),
  attempts: z.number(),
  error: z.object({ code: PeerErrorCode, message: z.string() }).optional(),
  executions: z.array(ExecutionView).optional(),
});
export type FetcherJob = z.infer<typeof FetcherJob>;

export const FetcherStatus = z.object({
  status: z.enum(['ok', 'stopping']),
  version: z.string(),
  uptimeSeconds: z.number(),
  memory: z.object({ rssMb: z.number(), heapUsedMb: z.number(), limitMb: z.number(), peakRssMb: z.number() }),
  intake: z.enum(['open', 'paused']),
  queues: z.record(z.string(), z.object({ queued: z.number(), active: z.number(), failed: z.number() })),
  /** Job events main refused (a 4xx for the one event), kept aside: SignedRoutes.resendEvents sends them again. */
  events: z.object({ setAside: z.number(), setAsideSince: z.string().nullable() }).optional(),
});
export type FetcherStatus = z.infer<typeof FetcherStatus>;

export const ResendResult = z.object({ resent: z.number() });

/** What main did with a batch of job events (events it had applied before are ignored). */
export const EventsReceipt = z.object({ applied: z.number(), ignored: z.number() });

/** One state change of a job on the fetcher; `seq` counts per job from 1, so the receiver applies them in order, once. */
export const JobEvent = z.strictObject({
  jobId: z.uuid(),
  seq: Int4.min(1),
  type: z.enum(['active', 'progress', 'completed', 'failed', 'lost']),
  attempt: z.number().int().min(1).max(1_000_000),
  at: Timestamp,
  state: z.enum(['queued', 'active', 'completed', 'failed', 'cancelled']).optional(),
  maxAttempts: Int4.min(1).optional(),
  startedAt: Timestamp.optional(),
  finishedAt: Timestamp.optional(),
  progress: z.number().int().min(0).max(100).optional(),
  message: z.string().max(MAX_PROGRESS_MESSAGE).optional(),
  error: z.object({ code: PeerErrorCode, message: z.string().max(MAX_ERROR_MESSAGE) }).optional(),
  peakRssMb: Int4.min(0).optional(),
  /** The job's W3C traceparent, so main logs the event under the job's trace. */
  traceparent: z.string().regex(TRACEPARENT_PATTERN).optional(),
});
export type JobEvent = z.infer<typeof JobEvent>;

export const JobEvents = z.strictObject({ events: z.array(JobEvent).min(1).max(MAX_BATCH) });
export type JobEvents = z.infer<typeof JobEvents>;

/**
 * The fetcher's claim on main's ledger before it runs an attempt (SignedRoutes.claimJob): main
 * grants it only while the job is the fetcher's and no other live attempt holds it.
 */
export const ClaimRequest = z.strictObject({
  jobId: z.uuid(),
  attempt: z.number().int().min(1).max(1_000_000),
  claimSeconds: z.number().int().min(1).max(3_600),
});
export type ClaimRequest = z.infer<typeof ClaimRequest>;

/**
 * claimed: run it; wait: another attempt holds it (retry after waitMs); gone: main owns or finished
 * it; unknown: main has no such job. A wait with `paused`: an operator paused the job, and the
 * attempt does not start (the fetcher gives the job back to its queue; a fetcher older than pauses
 * sees a plain wait).
 */
export const ClaimAnswer = z.object({
  outcome: z.enum(['claimed', 'wait', 'gone', 'unknown']),
  waitMs: z.number().int().min(0).optional(),
  paused: z.boolean().optional(),
});
export type ClaimAnswer = z.infer<typeof ClaimAnswer>;

/**
 * Claims of several attempts in one request (SignedRoutes.claimJobs), each with its job's
 * trace: what the fetcher's workers asked for while an earlier claim was under way. Answered in
 * order (`answers`).
 */
export const ClaimBatch = z.strictObject({
  claims: z.array(ClaimRequest.extend({ traceparent: z.string().regex(TRACEPARENT_PATTERN).optional() })).min(1).max(MAX_BATCH),
});
export type ClaimBatch = z.infer<typeof ClaimBatch>;
export const ClaimAnswers = z.strictObject({ answers: z.array(ClaimAnswer) });
export type ClaimAnswers = z.infer<typeof ClaimAnswers>;

/** The most jobs one spawn (a handler's children, or `jobgate.batch().enqueue()`) writes per call or request. */
export const MAX_SPAWN_JOBS = 10_000;

/** A job to enqueue when a batch finishes (`on`: always, when none failed or was cancelled, when any did). */
export const BatchCallback = z.strictObject({ on: z.enum(['finish', 'success', 'failure']), name: z.string().min(1).max(100), payload: z.record(z.string(), z.unknown()) });
export type BatchCallback = z.infer<typeof BatchCallback>;

export const SpawnBatch = z.strictObject({
  id: z.uuid(),
  properties: z.record(z.string(), z.unknown()),
  callbacks: z.array(BatchCallback).max(3),
});
export type SpawnBatch = z.infer<typeof SpawnBatch>;

export const SpawnJob = z.strictObject({
  id: z.uuid(),
  name: z.string().min(1).max(100),
  payload: z.unknown(),
  priority: Int4.optional(),
  delaySeconds: z.number().int().min(0).max(31_536_000).optional(),
  runOnMain: z.boolean().optional(),
  batchId: z.uuid().optional(),
});
export type SpawnJob = z.infer<typeof SpawnJob>;

/**
 * Jobs written together, with the batches they open (SignedRoutes.spawnJobs carries a fetcher
 * job's children to main). Ids are the sender's: a child's is derived from its parent's id and its
 * key, so sending the same children again (a retried parent, a retried request) writes nothing new.
 * `seal`: the batches that have every member once this is written (a batch sent over several
 * requests is sealed in the last).
 */
export const Spawn = z.strictObject({
  parentId: z.uuid().optional(),
  requestId: z.string().max(128).optional(),
  traceparent: z.string().regex(TRACEPARENT_PATTERN).optional(),
  jobs: z.array(SpawnJob).max(MAX_SPAWN_JOBS),
  batches: z.array(SpawnBatch).max(MAX_BATCH),
  seal: z.array(z.uuid()).max(MAX_BATCH),
});
export type Spawn = z.infer<typeof Spawn>;
export const SpawnAnswer = z.object({ written: z.number().int() });

/** main's paused jobs as the fetcher reads them (SignedRoutes.readPauses): `*` pauses every job. */
export const PausesAnswer = z.object({ pauses: z.array(z.object({ name: z.string(), expiresAt: z.string().nullable() })) });
export type PausesAnswer = z.infer<typeof PausesAnswer>;

/**
 * Consecutive runs of `items` whose JSON, in a `{"<key>": [...]}` body, stays within `maxBytes`
 * (one item alone may be larger: the receiver then says so with a 413). Every batch between the
 * apps is cut this way, so none is refused for its size alone.
 */
export function chunksByBytes<T>(items: readonly T[], maxBytes: number): T[][] {
  const chunks: T[][] = [];
  let current: T[] = [];
  let bytes = 16; // {"jobs":[]} or {"events":[]}
  for (const item of items) {
    const size = Buffer.byteLength(JSON.stringify(item)) + 1;
    if (current.length > 0 && bytes + size > maxBytes) {
      chunks.push(current);
      current = [];
      bytes = 16;
    }
    current.push(item);
    bytes += size;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

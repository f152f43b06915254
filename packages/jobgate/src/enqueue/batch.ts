// Batches and children as the enqueue stage writes them: a batch's spec from its options, the ids
// of a handler's children (derived, so a retried parent writes the same ones), and the payload a
// callback job gets. Pure: unit-tested without PostgreSQL.
import { createHash } from 'node:crypto';
import type { JobDefinition } from '../define/define-job.ts';
import { JobId, type BatchCallback, type SpawnBatch } from '../protocol/wire.ts';
import { ErrorCode, JobgateError } from '../support/index.ts';
import type { BatchCounts } from '../store/index.ts';

/** A job to enqueue when a batch finishes: a definition (or its name), or one with a payload of its own. */
export type BatchCallbackInput = JobDefinition | string | { job: JobDefinition | string; payload?: Record<string, unknown> };

export interface BatchOptions {
  /** Enqueued once every member has ended, however they ended. */
  onFinish?: BatchCallbackInput;
  /** Enqueued once every member has completed (none failed or was cancelled). */
  onSuccess?: BatchCallbackInput;
  /** Enqueued once every member has ended and at least one failed. */
  onFailure?: BatchCallbackInput;
  /** Handed to each callback (and shown in the admin). */
  properties?: Record<string, unknown>;
}

/** What a callback job's payload carries besides its own: `{ ...payload, batch }`. */
export interface BatchSummary {
  id: string;
  on: BatchCallback['on'];
  counts: BatchCounts;
  properties: Record<string, unknown>;
}

const ON = { onFinish: 'finish', onSuccess: 'success', onFailure: 'failure' } as const;

/** A batch's spec (what is stored and sent) from its options. */
export function batchSpec(id: string, options: BatchOptions): SpawnBatch {
  const callbacks: BatchCallback[] = [];
  for (const [option, on] of Object.entries(ON) as Array<[keyof typeof ON, BatchCallback['on']]>) {
    const given = options[option];
    if (given === undefined) continue;
    const { job, payload } = typeof given === 'object' && 'job' in given ? given : { job: given, payload: undefined };
    callbacks.push({ on, name: typeof job === 'string' ? job : job.name, payload: payload ?? {} });
  }
  return { id, properties: options.properties ?? {}, callbacks };
}

/** A batch id a caller gave (`{ batch }`): a UUID, or a 422 naming `batch`. */
export function batchIdOrThrow(id: string): string {
  if (!JobId.safeParse(id).success) throw new JobgateError(ErrorCode.requestInvalid, 'The batch id is invalid.', { errors: [{ path: 'batch', message: 'a batch id (UUID)' }] });
  return id;
}

/** The payload a callback job runs with. */
export function callbackPayload(callback: BatchCallback, batch: Omit<BatchSummary, 'on'>): Record<string, unknown> {
  return { ...callback.payload, batch: { ...batch, on: callback.on } satisfies BatchSummary };
}

/**
 * The id of a job's child (or of a batch it opens) with `key`: the same for every attempt of the
 * parent, so writing it again writes nothing. A UUID of version 8 (RFC 9562: custom), from SHA-256.
 */
export function derivedId(parentId: string, key: string): string {
  const h = createHash('sha256').update(parentId).update('\0').update(key).digest();
  h[6] = (h[6]! & 0x0f) | 0x80;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const hex = h.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

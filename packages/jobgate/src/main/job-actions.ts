import { z } from 'zod';
import { ErrorCode, JobgateError, newTraceparent, traceIdOf } from '../support/index.ts';
import { parseCursor, withTransaction, type AdminStore, type JobRecord, type MainLedger, type ListFilter } from '../store/index.ts';
import type { Pool } from 'pg';
import type { MainRuntime as JobRuntime } from './main-runtime.ts';
import { JobFilterFields } from './validation.ts';

/** `key=value` on the payload's top level; the value matches as a string or as JSON (a number, true…). */
export const PayloadFilter = z
  .string()
  .max(500)
  .regex(/^[A-Za-z0-9_.-]{1,100}=.*$/, 'use key=value, e.g. barcode=737628064502')
  .transform((text) => {
    const at = text.indexOf('=');
    const [key, raw] = [text.slice(0, at), text.slice(at + 1)];
    const candidates: Array<Record<string, unknown>> = [{ [key]: raw }];
    try {
      const parsed: unknown = JSON.parse(raw);
      // (a number past float64, 1e400, parses as Infinity, which JSON writes as null: it matches as text only)
      if (typeof parsed === 'boolean' || (typeof parsed === 'number' && Number.isFinite(parsed))) candidates.push({ [key]: parsed });
    } catch {
      /* a plain string */
    }
    return candidates;
  });

/** The filters a list or a bulk action takes (the admin API's query, the CLI's options). */
export const JobFilter = z.strictObject({ ...JobFilterFields, payload: PayloadFilter.optional() });

/** A bulk action stops after this many jobs (run it again for more). */
export const BULK_LIMIT = 10_000;
const RETRYABLE = new Set(['failed', 'cancelled']);

export interface BulkResult {
  action: 'retry' | 'cancel';
  matched: number;
  done: number;
  failures: Array<{ id: string; error: string }>;
  truncated: boolean;
}

/**
 * Retry, cancel and their bulk forms: one implementation for the admin API and the CLI, each
 * change audited under `actor`.
 */
export function createJobActions(deps: { jobs: JobRuntime; ledger: MainLedger; pool: Pool; store: AdminStore }) {
  const { jobs, ledger, pool, store } = deps;

  /** A new job with the same payload (its own id, ledger row and attempts); the original is marked, so it is retried once. */
  async function retry(job: JobRecord, actor: string, context: { requestId?: string; traceparent?: string } = {}): Promise<JobRecord> {
    if (!RETRYABLE.has(job.state)) throw new JobgateError(ErrorCode.stateConflict, `Only failed or cancelled jobs can be retried; this one is ${job.state}.`);
    if (job.retriedAs) throw new JobgateError(ErrorCode.stateConflict, `This job was retried already, as ${job.retriedAs}.`);
    const again = await withTransaction(pool, async (client) => {
      // the retry stays in the original's trace (a new span), so one grep shows both runs
      const traceparent = job.traceparent ? newTraceparent(traceIdOf(job.traceparent)) : context.traceparent;
      // a batch's job is retried into its batch, which runs again until the retry ends
      const { job: created, duplicate } = await jobs.performLater(job.name, job.payload, { priority: job.priority, ...context, traceparent, db: client, ...(job.memberOf ? { batch: job.memberOf, reopenBatch: true } : {}) });
      // a unique job with a live twin: nothing new would run; say so rather than link the two
      if (duplicate) throw new JobgateError(ErrorCode.stateConflict, `A live job with the same payload exists (${created.id}); it was not retried.`);
      if (!(await ledger.markRetried(job.id, created.id, client))) throw new JobgateError(ErrorCode.stateConflict, 'This job was retried already, or an attempt of it is still stopping.');
      return created;
    });
    await store.audit({ actor, action: 'job.retry', target: job.id, detail: { name: job.name, newJobId: again.id } });
    return again;
  }

  /** Cancels those of `ids` that have not finished (a job running on the fetcher is left to finish); returns the cancelled ones. */
  async function cancel(ids: string[], actor: string): Promise<string[]> {
    const cancelled = await ledger.cancelJobs(ids, `cancelled by ${actor}`);
    for (const id of cancelled) await store.audit({ actor, action: 'job.cancel', target: id });
    return cancelled;
  }

  /**
   * `action` on every job matching `filter` that it applies to (at most BULK_LIMIT; run again for
   * more: retried jobs are marked and left out, cancelled ones no longer match).
   */
  async function bulk(action: 'retry' | 'cancel', filter: Omit<ListFilter, 'limit'>, actor: string, onProgress?: (done: number, matched: number) => void): Promise<BulkResult> {
    const actionable = action === 'retry' ? ['failed', 'cancelled'] : ['queued', 'forwarding', 'forwarded', 'active'];
    if (filter.state && !actionable.includes(filter.state)) {
      throw new JobgateError(ErrorCode.requestInvalid, `Jobs in state ${filter.state} cannot be ${action === 'retry' ? 'retried' : 'cancelled'}.`, { errors: [{ path: 'filter.state', message: `one of ${actionable.join(', ')}` }] });
    }
    // Only jobs the action applies to are scanned, so the limit is spent on them.
    const scan: Omit<ListFilter, 'limit'> = { ...filter, ...(filter.state ? {} : { states: actionable as ListFilter['states'] }), ...(action === 'retry' ? { notRetried: true } : {}) };
    let matched = 0;
    let done = 0;
    const failures: Array<{ id: string; error: string }> = [];
    let cursor: ListFilter['cursor'];
    while (matched < BULK_LIMIT) {
      const page = await ledger.listJobs({ ...scan, limit: Math.min(500, BULK_LIMIT - matched), cursor });
      matched += page.jobs.length;
      if (action === 'cancel') done += (await cancel(page.jobs.map((j) => j.id), actor)).length;
      else {
        for (const job of page.jobs) {
          // one job that cannot be retried (its definition is gone, its payload no longer valid) does not stop the rest
          await retry(job, actor).then(() => done++, (err: Error) => failures.push({ id: job.id, error: err.message }));
        }
      }
      onProgress?.(done, matched);
      if (!page.nextCursor) break;
      cursor = parseCursor(page.nextCursor)!;
    }
    return { action, matched, done, failures: failures.slice(0, 20), truncated: matched >= BULK_LIMIT };
  }

  return { retry, cancel, bulk };
}

export type JobActions = ReturnType<typeof createJobActions>;

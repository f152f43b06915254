import { z } from 'zod';
import { ErrorCode, JobgateError, canonicalTimestamp, newTraceparent, traceIdOf } from '../support/index.ts';
import { durably, FINISHED_STATES, LIVE_STATES, parseCursor, queueEntriesOf, withTransaction, type AdminStore, type BulkFilter, type IdRange, type JobRecord, type JobState, type MainLedger, type ListFilter } from '../store/index.ts';
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
export const JobFilter = z.strictObject({
  ...JobFilterFields,
  payload: PayloadFilter.optional(),
  /** Jobs created before this time: an ISO 8601 date and time with its offset, e.g. 2026-01-31T12:00:00Z. */
  createdBefore: z
    .string()
    .transform((text, ctx) => {
      // read as PostgreSQL reads it (offsets up to ±15:59:59, years 0001–9999): anything else is a 422, not a 500
      const at = canonicalTimestamp(text);
      if (at === null) ctx.addIssue({ code: 'custom', message: 'an ISO 8601 date and time, e.g. 2026-01-31T12:00:00Z' });
      return at ?? text;
    })
    .optional(),
});

/** A bulk retry stops after this many jobs (run it again for more); cancel and delete have no limit. */
export const BULK_LIMIT = 10_000;
/** Jobs a bulk cancel or delete changes per transaction: each holds its jobs' locks only that long. */
export const BULK_BATCH = 5_000;
/** A bulk cancel or delete pages these halves of the ids at once (ids are random: about half the jobs each). */
const ID_RANGES: IdRange[] = [{ below: '80000000-0000-0000-0000-000000000000' }, { from: '80000000-0000-0000-0000-000000000000' }];
const RETRYABLE = new Set(['failed', 'cancelled']);

export type BulkAction = 'retry' | 'cancel' | 'delete';

export interface BulkResult {
  action: BulkAction;
  /** Jobs the filter matched that the action applies to (those left alone among them: matched - done). */
  matched: number;
  done: number;
  failures: Array<{ id: string; error: string }>;
  truncated: boolean;
}

/** The states each bulk action applies to. */
const ACTIONABLE: Record<BulkAction, readonly JobState[]> = { retry: ['failed', 'cancelled'], cancel: LIVE_STATES, delete: FINISHED_STATES };

/**
 * Retry, cancel, delete and their bulk forms: one implementation for the admin API and the CLI,
 * each change audited under `actor`.
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

  /**
   * Cancels those of `ids` that have not finished (a job running on the fetcher is left to finish);
   * returns the cancelled ones. Their queue entries on main go in the same transaction.
   */
  async function cancel(ids: string[], actor: string): Promise<string[]> {
    const cancelled = await durably(() =>
      withTransaction(pool, async (client) => {
        const ended = await ledger.cancelJobsIn(client, ids, `cancelled by ${actor}`);
        await jobs.dropQueueEntries(client, queueEntriesOf(ended));
        return ended.map((j) => j.id);
      }),
    );
    for (const id of cancelled) await store.audit({ actor, action: 'job.cancel', target: id });
    return cancelled;
  }

  /** Deletes those of `ids` that finished (with their queue entries); returns the deleted ones. */
  async function remove(ids: string[], actor: string): Promise<string[]> {
    const deleted = await durably(() =>
      withTransaction(pool, async (client) => {
        const ended = await ledger.deleteJobsIn(client, ids);
        await jobs.dropQueueEntries(client, queueEntriesOf(ended));
        return ended.map((j) => j.id);
      }),
    );
    for (const id of deleted) await store.audit({ actor, action: 'job.delete', target: id });
    return deleted;
  }

  /**
   * Cancels or deletes every job matching `filter` that the action applies to, set-based: pages of
   * BULK_BATCH jobs read newest first from the list's indexes (each row read once), each page
   * changed in one statement, in one transaction with its jobs' queue entries (so pg-boss never
   * hands one out to be found gone), holding their locks only that long. Jobs created after
   * the call began are left alone. Audited once, with the filter and the count.
   */
  async function endMatching(action: 'cancel' | 'delete', filter: BulkFilter, actor: string, onProgress?: (done: number, matched: number) => void): Promise<BulkResult> {
    // the jobs there were when the call began: a steady stream of new ones cannot keep it going
    const { rows } = await pool.query('SELECT least($1::timestamptz, clock_timestamp())::text AS before', [filter.createdBefore ?? null]);
    const scan: Omit<ListFilter, 'limit'> = { ...filter, createdBefore: rows[0].before as string, ...(filter.state ? {} : { states: [...ACTIONABLE[action]] }) };
    const reason = `cancelled by ${actor}`;
    let [done, seen] = [0, 0];
    // Each range of ids is paged on its own connection, at once: their jobs are disjoint, so they
    // never wait on each other's locks, and PostgreSQL spends a core on each.
    await Promise.all([
      ...ID_RANGES.map(async (ids) => {
        let cursor: ListFilter['cursor'];
        for (;;) {
          const page = await durably(() =>
            withTransaction(pool, async (client) => {
              const ended = await ledger.endPage(client, action, { ...scan, cursor }, BULK_BATCH, reason, ids);
              // (a cancelled job that was running keeps its entry: its runner settles it)
              await jobs.dropQueueEntries(client, ended.entries);
              return ended;
            }),
          );
          [done, seen, cursor] = [done + page.ended, seen + page.seen, page.next];
          onProgress?.(done, seen);
          if (page.seen < BULK_BATCH) return;
        }
      }),
      // and the jobs recorded by their pg-boss row, paged the same way beside them
      (async () => {
        let cursor: ListFilter['cursor'];
        for (;;) {
          const page = await durably(() => withTransaction(pool, (client) => ledger.endRecordsPage(client, action, { ...scan, cursor }, BULK_BATCH, reason)));
          if (!page) return;
          [done, seen, cursor] = [done + page.ended, seen + page.seen, page.next];
          onProgress?.(done, seen);
          if (page.seen < BULK_BATCH) return;
        }
      })(),
    ]);
    // what matched but was left alone: running on the fetcher (cancel), an attempt still stopping (delete)
    const left = await ledger.countMatching(scan);
    await store.audit({ actor, action: `jobs.${action}`, detail: { filter, [action === 'cancel' ? 'cancelled' : 'deleted']: done, left } });
    return { action, matched: done + left, done, failures: [], truncated: false };
  }

  /**
   * `action` on every job matching `filter` that it applies to. Cancel and delete act on them all
   * (endMatching); retry on at most BULK_LIMIT (run it again for more: retried jobs are marked and
   * left out).
   */
  async function bulk(action: BulkAction, filter: BulkFilter, actor: string, onProgress?: (done: number, matched: number) => void): Promise<BulkResult> {
    const actionable = ACTIONABLE[action];
    if (filter.state && !actionable.includes(filter.state)) {
      throw new JobgateError(ErrorCode.requestInvalid, `Jobs in state ${filter.state} cannot be ${action === 'retry' ? 'retried' : action === 'cancel' ? 'cancelled' : 'deleted (cancel them first)'}.`, { errors: [{ path: 'filter.state', message: `one of ${actionable.join(', ')}` }] });
    }
    if (action !== 'retry') return endMatching(action, filter, actor, onProgress);
    // Only jobs the action applies to are scanned, so the limit is spent on them.
    const scan: Omit<ListFilter, 'limit'> = { ...filter, ...(filter.state ? {} : { states: [...actionable] }), notRetried: true };
    let matched = 0;
    let done = 0;
    const failures: Array<{ id: string; error: string }> = [];
    let cursor: ListFilter['cursor'];
    while (matched < BULK_LIMIT) {
      const page = await ledger.listJobs({ ...scan, limit: Math.min(500, BULK_LIMIT - matched), cursor });
      matched += page.jobs.length;
      for (const job of page.jobs) {
        // one job that cannot be retried (its definition is gone, its payload no longer valid) does not stop the rest
        await retry(job, actor).then(() => done++, (err: Error) => failures.push({ id: job.id, error: err.message }));
      }
      onProgress?.(done, matched);
      if (!page.nextCursor) break;
      cursor = parseCursor(page.nextCursor)!;
    }
    return { action, matched, done, failures: failures.slice(0, 20), truncated: matched >= BULK_LIMIT };
  }

  return { retry, cancel, remove, bulk };
}

export type JobActions = ReturnType<typeof createJobActions>;

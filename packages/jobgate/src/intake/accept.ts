// The intake stage (the fetcher): jobs main forwarded are taken under main's ids, all or none in
// one transaction, idempotent on id.
import type { Pool } from 'pg';
import type { PgBoss } from 'pg-boss';
import { ErrorCode, JobgateError, fieldErrorsFromZod, isDatabaseUnavailable, type FieldError } from '../support/index.ts';
import { onFreshConnection, toBossDb, withTransaction, type FetcherLedger, type FetcherRecords } from '../store/index.ts';
import type { Catalogue } from '../define/catalogue.ts';
import type { JobDefinition } from '../define/define-job.ts';
import type { QueuedData } from '../define/queue-policy.ts';
import { stableStringify } from '../define/stable-json.ts';
import type { JobMetrics } from '../run/metrics.ts';

/** A job handed over by main, with main's id (see `accept`). */
export interface AcceptedJob {
  id: string;
  name: string;
  payload: unknown;
  priority?: number;
  delaySeconds?: number;
  requestId?: string;
  traceparent?: string;
}

/**
 * `records`: the jobs without a gate are recorded by their pg-boss row alone (store/fetcher-records.ts);
 * absent, every job gets a ledger row.
 */
export function createIntake(deps: { pool: Pool; boss: PgBoss; ledger: FetcherLedger; catalogue: Catalogue; records?: Pick<FetcherRecords, 'reusedIds'> | null; metrics?: JobMetrics }) {
  const { pool, boss, ledger, catalogue } = deps;
  /** Every queue a job main forwards can be in. */
  const fetcherQueues = [...catalogue.values()].filter((d) => d.runsOnFetcher).map((d) => d.name);
  /**
   * Takes over jobs main handed to this side, under main's ids, all or none in one transaction.
   * Idempotent on id: a job already here answers `duplicate: true` and is not queued twice; an id
   * reused for another name or payload is refused (409) naming it.
   */
  async function accept(items: AcceptedJob[]): Promise<Array<{ id: string; duplicate: boolean }>> {
    const errors: FieldError[] = [];
    const parsed = items.map((item, i) => {
      const def = catalogue.get(item.name);
      if (!def || !def.runsOnFetcher) {
        errors.push({ path: `jobs.${i}.name`, message: `no job named ${JSON.stringify(item.name)} runs on the fetcher` });
        return null;
      }
      const payload = def.payload.safeParse(item.payload);
      if (!payload.success) {
        errors.push(...fieldErrorsFromZod(payload.error.issues, ['jobs', String(i), 'payload']));
        return null;
      }
      return { item, def, payload: payload.data };
    });
    if (errors.length > 0) throw new JobgateError(ErrorCode.payloadInvalid, 'Some jobs are invalid; none was accepted.', { errors });
    const valid = parsed.filter((p) => p !== null);
    try {
      const submitted = valid.map(({ item, def, payload }) => ({ id: item.id, name: def.name, payload }));
      // (idempotent on id: a try whose COMMIT happened unheard answers every job as a duplicate)
      return await onFreshConnection(() => {
        // An id another job already holds here (another name or payload) is looked for on a pooled
        // connection of its own while the transaction inserts, not after it on the transaction's:
        // one round trip fewer between main's delivery and the jobs' start. Asked first, so a pool of
        // one connection answers it before the transaction takes that connection.
        const heldBefore = deps.records ? deps.records.reusedIds(submitted, fetcherQueues) : Promise.resolve([]);
        heldBefore.catch(() => {});
        return withTransaction(pool, async (client) => {
          // A gated job keeps its ledger row (the fetcher's gates count its running rows); every other
          // job is its pg-boss row alone, marked `record` (store/fetcher-records.ts).
          const keepsRow = (def: JobDefinition) => !deps.records || def.concurrency !== null || def.rateLimit !== null;
          const ledgered = valid.filter((v) => keepsRow(v.def));
          const rows = ledgered.length === 0 ? [] : await ledger.insertBatchIfAbsent(
            ledgered.map(({ item, def, payload }) => ({ id: item.id, name: def.name, route: 'fetcher' as const, payload, priority: item.priority ?? def.priority, maxAttempts: def.retry.limit + 1, delaySeconds: item.delaySeconds ?? 0, traceparent: item.traceparent })),
            client,
          );
          const reused = new Set(rows.flatMap((r) => (r.same ? [] : [r.id])));
          const inserted = new Set(rows.filter((r) => r.inserted).map((r) => r.id));
          const queued = valid.filter((v) => (keepsRow(v.def) ? inserted.has(v.item.id) : !reused.has(v.item.id)));
          for (const [name, group] of Map.groupBy(queued, (v) => v.def.name)) {
            const record = !keepsRow(group[0]!.def);
            const ids = await boss.insert(
              name,
              group.map(({ item, def, payload }) => ({
                id: item.id,
                data: { payload, ...(item.requestId ? { requestId: item.requestId } : {}), ...(item.traceparent ? { traceparent: item.traceparent } : {}), ...(record ? { record: 1 } : {}) } satisfies QueuedData & { record?: 1 },
                priority: item.priority ?? def.priority,
                ...(item.delaySeconds ? { startAfter: item.delaySeconds } : {}),
                ...(def.concurrency ? { group: { id: def.name } } : {}),
              })),
              { db: toBossDb(client), ...(record ? { returnId: true } : {}) },
            );
            // a record's idempotency is pg-boss's own insert (ON CONFLICT DO NOTHING on its key): the ids it skipped were here before
            if (record) for (const id of ids ?? []) inserted.add(id);
          }
          // An id that is here under another name or payload (a record or a ledger row, accepted by
          // this release or an earlier one) is refused, and nothing of the submission stays. The ids
          // pg-boss's insert skipped were here already, perhaps committed by a submission that ran
          // beside this one: those are looked at again in the transaction, which sees that commit;
          // an id twice in this submission is compared here.
          if (deps.records) {
            for (const id of await heldBefore) reused.add(id);
            const skipped = submitted.filter((j) => !inserted.has(j.id) && !reused.has(j.id));
            if (skipped.length > 0) for (const id of await deps.records.reusedIds(skipped, fetcherQueues, client)) reused.add(id);
            for (const id of reusedWithin(submitted)) reused.add(id);
          }
          if (reused.size > 0) {
            const errors = items.flatMap((item, i) => (reused.has(item.id) ? [{ path: `jobs.${i}.id`, message: `id ${item.id} is already used by a job with another name or payload` }] : []));
            throw new JobgateError(ErrorCode.idConflict, 'A job id was reused for a different job; none was accepted.', { errors });
          }
          return valid.map(({ item }) => ({ id: item.id, duplicate: !inserted.has(item.id) }));
        });
      }).then((answers) => {
        const fresh = new Set(answers.filter((a) => !a.duplicate).map((a) => a.id));
        for (const [name, group] of Map.groupBy(valid.filter((v) => fresh.has(v.item.id)), (v) => v.def.name)) deps.metrics?.accepted(name, group.length);
        return answers;
      });
    } catch (err) {
      if (!(err instanceof JobgateError) && isDatabaseUnavailable(err)) {
        throw new JobgateError(ErrorCode.databaseUnavailable, 'The database is unreachable; no job was accepted.', { cause: err });
      }
      throw err;
    }
  }

  return accept;
}

/** The ids that appear more than once in one submission with another name or payload. */
function reusedWithin(jobs: Array<{ id: string; name: string; payload: unknown }>): string[] {
  const seen = new Map<string, string>();
  const reused = new Set<string>();
  for (const job of jobs) {
    const what = `${job.name}\u0000${stableStringify(job.payload)}`;
    const before = seen.get(job.id);
    if (before === undefined) seen.set(job.id, what);
    else if (before !== what) reused.add(job.id);
  }
  return [...reused];
}

// The intake stage (the fetcher): jobs main forwarded are taken under main's ids, all or none in
// one transaction, idempotent on id.
import type { Pool, PoolClient } from 'pg';
import type { PgBoss } from 'pg-boss';
import { ErrorCode, JobgateError, fieldErrorsFromZod, isDatabaseUnavailable, type FieldError } from '../support/index.ts';
import { LOCK_STATEMENTS, onFreshConnection, openTransaction, recordBossWrite, toBossDb, withTransaction, type BossDb, type FetcherLedger, type FetcherRecords } from '../store/index.ts';
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
export function createIntake(deps: { pool: Pool; boss: PgBoss; ledger: FetcherLedger; catalogue: Catalogue; records?: Pick<FetcherRecords, IntakeRecords> | null; metrics?: JobMetrics }) {
  const { pool, boss, ledger, catalogue } = deps;
  const records = deps.records ?? null;
  // A gated job keeps its ledger row (the fetcher's gates count its running rows); every other job
  // is its pg-boss row alone, marked `record` (store/fetcher-records.ts).
  const keepsRow = (def: JobDefinition) => !records || def.concurrency !== null || def.rateLimit !== null;
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
    const all = parsed.filter((p) => p !== null);
    // An id twice in one submission: the same job again is taken once (the copies answer as
    // duplicates); under another name or payload, the submission is refused before anything is written.
    const within = reusedWithin(all.map(submittedOf));
    if (within.length > 0) throw idConflict(all, new Set(within));
    const taken = new Set<string>();
    const valid = all.filter((v) => !taken.has(v.item.id) && taken.add(v.item.id));
    try {
      const submitted = valid.map(submittedOf);
      // (idempotent on id: a try whose COMMIT happened unheard answers every job as a duplicate)
      const together = records && valid.every((v) => !keepsRow(v.def)) && payloadsUnder(submitted, INLINE_MAX_CHARS);
      const inserted = await onFreshConnection(() => (together ? acceptRecords(records, valid, submitted, all) : acceptLedgered(valid, submitted, all)));
      const fresh = valid.filter((v) => inserted.has(v.item.id));
      for (const [name, group] of Map.groupBy(fresh, (v) => v.def.name)) deps.metrics?.accepted(name, group.length);
      // (each copy after an id's first answers as a duplicate)
      const firsts = new Set(fresh);
      return all.map((v) => ({ id: v.item.id, duplicate: !firsts.has(v) }));
    } catch (err) {
      if (!(err instanceof JobgateError) && isDatabaseUnavailable(err)) {
        throw new JobgateError(ErrorCode.databaseUnavailable, 'The database is unreachable; no job was accepted.', { cause: err });
      }
      throw err;
    }
  }

  /** pg-boss's insert of one queue's jobs, fresh ones only (ON CONFLICT DO NOTHING on its key); a record is marked `record`. */
  const insertOf = (name: string, group: Valid[], record: boolean) => (db: BossDb) =>
    boss.insert(
      name,
      group.map(({ item, def, payload }) => ({
        id: item.id,
        data: { payload, ...(item.requestId ? { requestId: item.requestId } : {}), ...(item.traceparent ? { traceparent: item.traceparent } : {}), ...(record ? { record: 1 } : {}) } satisfies QueuedData & { record?: 1 },
        priority: item.priority ?? def.priority,
        ...(item.delaySeconds ? { startAfter: item.delaySeconds } : {}),
        ...(def.concurrency ? { group: { id: def.name } } : {}),
      })),
      { db, ...(record ? { returnId: true } : {}) },
    );

  /**
   * Jobs without gates (the usual submission), small enough to be written into the SQL text: their
   * pg-boss rows alone. The ids' locks (a submission racing this one for an id is waited for), the
   * look for ids another job already holds here (another name or payload) and the inserts go with
   * the transaction's BEGIN in one round trip, then COMMIT: two round trips on one connection
   * (three where an id was here already). Answers the ids it inserted (the rest were here already).
   */
  async function acceptRecords(records: Pick<FetcherRecords, IntakeRecords>, valid: Valid[], submitted: Submitted[], items: Valid[]): Promise<Set<string>> {
    const groups = [...Map.groupBy(valid, (v) => v.def.name)];
    const inserts = await Promise.all(groups.map(([name, group]) => recordBossWrite(insertOf(name, group, true), group[0]!.item.id)));
    const opening = [records.lockIdsStatements(submitted.map((j) => j.id)), records.reusedIdsStatement(submitted, fetcherQueues), ...inserts];
    const tx = await openTransaction(pool, opening.join(';\n'));
    try {
      const [heldBefore = [], ...insertedRows] = tx.openedAll.slice(LOCK_STATEMENTS);
      // (an id pg-boss's insert skipped was here already: a duplicate, unless another job holds it)
      const inserted = new Set(insertedRows.flat().map((r: { id: string }) => r.id));
      const reused = new Set(heldBefore.map((r: { id: string }) => r.id));
      await lookAgain(records, submitted, inserted, reused, tx.client);
      if (reused.size > 0) throw idConflict(items, reused);
      await tx.commit();
      return inserted;
    } finally {
      await tx.rollback();
    }
  }

  /**
   * A submission with gated jobs (those keep a ledger row: the fetcher's gates count its running
   * rows; the rest are records), or too big to be written into the SQL text: its values go as
   * parameters (a payload written in is copied several times over on its way to PostgreSQL), each
   * statement in a round trip of its own: the ids' locks, the inserts, the look for ids another job
   * holds. Answers the ids it inserted.
   */
  function acceptLedgered(valid: Valid[], submitted: Submitted[], items: Valid[]): Promise<Set<string>> {
    return withTransaction(pool, async (client) => {
      if (records) await records.lockIds(submitted.map((j) => j.id), client);
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
        const ids = await insertOf(name, group, record)(toBossDb(client));
        // a record's idempotency is pg-boss's own insert (ON CONFLICT DO NOTHING on its key): the ids it skipped were here before
        if (record) for (const id of ids ?? []) inserted.add(id);
      }
      // (after the inserts, under the ids' locks: what another submission of them wrote is committed by now)
      if (records) for (const id of await records.reusedIds(submitted, fetcherQueues, client)) reused.add(id);
      if (reused.size > 0) throw idConflict(items, reused);
      return inserted;
    });
  }

  /**
   * An id that is here under another name or payload (a record or a ledger row, accepted by this
   * release or an earlier one) is refused, and nothing of the submission stays. The ids pg-boss's
   * insert skipped were here already, perhaps committed after the look by a process of an earlier
   * release (which takes no lock on the ids): those are looked at again in the transaction, which
   * sees that commit (one more round trip, only when an id was here). Adds what it finds to `reused`.
   */
  async function lookAgain(records: Pick<FetcherRecords, IntakeRecords>, submitted: Submitted[], inserted: Set<string>, reused: Set<string>, client: PoolClient): Promise<void> {
    const skipped = submitted.filter((j) => !inserted.has(j.id) && !reused.has(j.id));
    if (skipped.length > 0) for (const id of await records.reusedIds(skipped, fetcherQueues, client)) reused.add(id);
  }

  return accept;
}

/**
 * Up to this many characters of payload JSON, a submission's values are written into the SQL text
 * that opens its transaction (acceptRecords). Larger ones are copied too often on the way there:
 * 8 MB of payloads took the fetcher past its memory limit.
 */
const INLINE_MAX_CHARS = 64 * 1024;

/** Whether the payloads of `jobs` come to at most `max` characters of JSON (it stops counting once past). */
function payloadsUnder(jobs: Submitted[], max: number): boolean {
  let chars = 0;
  for (const job of jobs) {
    chars += JSON.stringify(job.payload ?? null).length;
    if (chars > max) return false;
  }
  return true;
}

/** What the intake needs of the fetcher's records. */
type IntakeRecords = 'reusedIds' | 'reusedIdsStatement' | 'lockIds' | 'lockIdsStatements';
type Valid = { item: AcceptedJob; def: JobDefinition; payload: unknown };
type Submitted = { id: string; name: string; payload: unknown };
const submittedOf = ({ item, def, payload }: Valid): Submitted => ({ id: item.id, name: def.name, payload });

/** The refusal of a submission (`items`, in order) with ids other jobs hold, naming each such id's field. */
function idConflict(items: Valid[], reused: Set<string>): JobgateError {
  const errors = items.flatMap(({ item }, i) => (reused.has(item.id) ? [{ path: `jobs.${i}.id`, message: `id ${item.id} is already used by a job with another name or payload` }] : []));
  return new JobgateError(ErrorCode.idConflict, 'A job id was reused for a different job; none was accepted.', { errors });
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

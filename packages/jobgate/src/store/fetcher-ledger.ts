// The fetcher's part of the ledger: the jobs main forwarded, taken under main's ids, and the outbox
// of job events going back to main.
import type { Pool } from 'pg';
import { assertSchemaName } from './schema-name.ts';
import { withTransaction } from './transaction.ts';
import { createLedger, iso, type JobRecord, type NewJob, type Queryable, type StoredEvent } from './ledger.ts';
import { createFetcherRecords } from './fetcher-records.ts';

/** fetcher's SQL, as small named statements with `$n` parameters over one validated schema. */
function plans(schema: string) {
  const s = assertSchemaName(schema);
  return {
    // Idempotent on id: a job already here is left alone and reported back with whether it matches.
    insertBatchIfAbsent: `
      WITH input AS (
        SELECT * FROM jsonb_to_recordset($1::jsonb)
          AS x(id uuid, name text, route text, payload jsonb, priority integer, max_attempts integer, delay_seconds integer, traceparent text)
      ), inserted AS (
        INSERT INTO ${s}.jobs (id, name, route, state, payload, priority, max_attempts, run_at, traceparent)
        SELECT id, name, route, 'queued', payload, priority, max_attempts, clock_timestamp() + delay_seconds * interval '1 second', traceparent
          FROM input
        ON CONFLICT (id) DO NOTHING
        RETURNING id
      )
      SELECT i.id, (i.id IN (SELECT id FROM inserted)) AS inserted,
             coalesce(j.name = i.name AND j.payload = i.payload, true) AS same
        FROM input i LEFT JOIN ${s}.jobs j ON j.id = i.id`,
    setEmitEvents: `
      INSERT INTO ${s}.ledger_settings (key, value) VALUES ('emit_events', to_jsonb($1::boolean))
      ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
    // One sender at a time per ledger, so events leave in order; the lock ends with the transaction.
    lockEventSender: `SELECT pg_try_advisory_xact_lock(hashtext('jobgate.events.' || $1)) AS locked`,
    pendingEvents: `
      SELECT e.seq, e.job_id, e.job_seq, e.type, e.attempt, e.at, e.data - 'traceparent' AS data, coalesce(j.traceparent, e.data->>'traceparent') AS traceparent
        FROM ${s}.job_events e LEFT JOIN ${s}.jobs j ON j.id = e.job_id WHERE e.set_aside_at IS NULL ORDER BY e.seq LIMIT $1`,
    ackEvents: `DELETE FROM ${s}.job_events WHERE seq = ANY($1::bigint[])`,
    setEventsAside: `
      UPDATE ${s}.job_events SET set_aside_at = clock_timestamp(), set_aside_reason = r.reason
        FROM unnest($1::bigint[], $2::text[]) AS r(seq, reason) WHERE ${s}.job_events.seq = r.seq`,
    eventsSetAside: `
      SELECT count(*)::int AS n, min(set_aside_at) AS since FROM ${s}.job_events WHERE set_aside_at IS NOT NULL`,
    resendSetAside: `UPDATE ${s}.job_events SET set_aside_at = NULL, set_aside_reason = NULL WHERE set_aside_at IS NOT NULL`,
  };
}

type Counts = { queued: number; active: number; failed: number };

export type FetcherLedger = ReturnType<typeof createFetcherLedger>;

/**
 * `bossSchema`: the fetcher's pg-boss schema, whose rows are the records of the jobs it keeps no
 * ledger row for (fetcher-records.ts): reads of a job and the status counts show them too.
 */
export function createFetcherLedger(pool: Pool, schema: string, deps: { bossSchema?: string } = {}) {
  const sql = plans(schema);
  const ledger = createLedger(pool, schema);
  const records = deps.bossSchema ? createFetcherRecords(pool, schema, deps.bossSchema, ledger) : null;
  return {
    ...ledger,
    /** The jobs recorded by their pg-boss row alone: how they are taken in and run (the runner's `records`). */
    records,
    recordRuns: records?.runs ?? null,
    async getJob(id: string, options: { executions?: boolean; db?: Queryable } = {}): Promise<JobRecord | null> {
      return (await ledger.getJob(id, options)) ?? (records ? records.getRecord(id) : null);
    },
    async countsByName(): Promise<Record<string, Counts>> {
      const [own, recorded] = await Promise.all([ledger.countsByName(), records?.countsByName() ?? ({} as Record<string, Counts>)]);
      for (const [name, c] of Object.entries(recorded)) {
        const o = (own[name] ??= { queued: 0, active: 0, failed: 0 });
        o.queued += c.queued;
        o.active += c.active;
        o.failed += c.failed;
      }
      return own;
    },
    /**
     * Inserts the jobs whose id is new, in one statement. For each: `inserted`, or not and then
     * `same` (the job already here has this name and payload) or not (the id is reused for another job).
     */
    async insertBatchIfAbsent(jobs: Array<Omit<NewJob, 'uniqueKey'>>, db: Queryable = pool): Promise<Array<{ id: string; inserted: boolean; same: boolean }>> {
      const input = jobs.map((j) => ({ id: j.id, name: j.name, route: j.route, payload: j.payload, priority: j.priority, max_attempts: j.maxAttempts, delay_seconds: j.delaySeconds, traceparent: j.traceparent ?? null }));
      const { rows } = await db.query(sql.insertBatchIfAbsent, [JSON.stringify(input)]);
      return rows as Array<{ id: string; inserted: boolean; same: boolean }>;
    },
    /** Makes every state change of a job also write a job event (the fetcher's ledger does). */
    async setEmitEvents(on: boolean): Promise<void> {
      await pool.query(sql.setEmitEvents, [on]);
      records?.setEmits(on);
    },
    /**
     * Hands the oldest undelivered events to `deliver` inside a transaction that holds the sender
     * lock, and deletes them once `deliver` resolves. Returns how many went, or null when another
     * sender holds the lock.
     */
    async deliverEvents(limit: number, deliver: (events: StoredEvent[]) => Promise<void | { setAside: Array<{ seq: number; reason: string }> }>): Promise<number | null> {
      return withTransaction(pool, async (client) => {
        const { rows: lock } = await client.query(sql.lockEventSender, [schema]);
        if (!lock[0].locked) return null;
        const { rows } = await client.query(sql.pendingEvents, [limit]);
        if (rows.length === 0) return 0;
        const outcome = await deliver(rows.map((r): StoredEvent => ({ seq: Number(r.seq), jobId: r.job_id, jobSeq: r.job_seq, type: r.type, attempt: r.attempt, at: iso(r.at)!, data: r.data, ...(r.traceparent ? { traceparent: r.traceparent } : {}) })));
        // the ones main refused stay, set aside with the reason; the rest are main's now
        const aside = outcome?.setAside ?? [];
        if (aside.length > 0) await client.query(sql.setEventsAside, [aside.map((a) => a.seq), aside.map((a) => a.reason.slice(0, 2_000))]);
        const asideSeqs = new Set(aside.map((a) => a.seq));
        await client.query(sql.ackEvents, [rows.map((r) => Number(r.seq)).filter((seq) => !asideSeqs.has(seq))]);
        return rows.length;
      });
    },
    /** Job events main refused, kept aside: how many, and since when. */
    async eventsSetAside(): Promise<{ count: number; since: string | null }> {
      const { rows } = await pool.query(sql.eventsSetAside);
      return { count: rows[0].n, since: iso(rows[0].since) ?? null };
    },
    /** Puts every set-aside event back in line to be sent; returns how many. */
    async resendSetAsideEvents(): Promise<number> {
      const { rowCount } = await pool.query(sql.resendSetAside);
      return rowCount ?? 0;
    },
  };
}

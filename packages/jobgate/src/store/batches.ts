// Batches (migration 018): jobs counted as one, with callback jobs enqueued when the last ends.
// A trigger on the ledger keeps each batch's count of pending members and marks it finished; this
// is what main reads and writes besides.
import type { Pool } from 'pg';
import type { BatchCallback, SpawnBatch } from '../protocol/wire.ts';
import { assertSchemaName } from './schema-name.ts';
import { jobStatesSql } from './queue-records.ts';
import { iso, type JobState, type Queryable } from './ledger.ts';

export interface BatchCounts {
  queued: number;
  active: number;
  completed: number;
  failed: number;
  cancelled: number;
}

export interface BatchView {
  id: string;
  state: 'running' | 'finished';
  counts: BatchCounts;
  /** Members in all (a failed member an admin retried counts once: its retry). */
  total: number;
  properties: Record<string, unknown>;
  /** The callback jobs enqueued when it last finished, with their state now. */
  callbacks: Array<{ on: BatchCallback['on']; jobId: string; state: JobState | 'deleted' }>;
  /** The job whose handler opened it. */
  parentId?: string;
  createdAt: string;
  finishedAt?: string;
}

/** A finished batch whose callbacks are due, as the dispatcher takes it. */
export interface DueBatch {
  id: string;
  finishedAt: string;
  properties: Record<string, unknown>;
  callbacks: BatchCallback[];
}

const zeroCounts = (): BatchCounts => ({ queued: 0, active: 0, completed: 0, failed: 0, cancelled: 0 });

/** Which of a finished batch's callbacks run: `finish` always, `success` when every member completed, `failure` when any failed. */
export function callbacksFor(counts: BatchCounts): Set<BatchCallback['on']> {
  const on = new Set<BatchCallback['on']>(['finish']);
  if (counts.failed === 0 && counts.cancelled === 0) on.add('success');
  if (counts.failed > 0) on.add('failure');
  return on;
}

/** `bossSchema`: main's pg-boss schema, where jobs recorded by their pg-boss row are (a batch's callbacks may be). */
export function createBatchStore(pool: Pool, schema: string, bossSchema?: string) {
  const s = assertSchemaName(schema);
  // members by state; an original an admin retried is left out (its retry stands for it)
  const countsSql = `SELECT state, count(*)::int AS n FROM ${s}.jobs WHERE batch_id = $1 AND retried_as IS NULL GROUP BY state`;

  async function counts(db: Queryable, id: string): Promise<BatchCounts> {
    const c = zeroCounts();
    for (const r of (await db.query(countsSql, [id])).rows) {
      const key = r.state === 'forwarding' || r.state === 'forwarded' ? 'queued' : (r.state as keyof BatchCounts);
      c[key] += r.n as number;
    }
    return c;
  }

  return {
    counts,
    /** Opens these batches (a retried parent's are there already: left as they are). */
    async insert(db: Queryable, batches: SpawnBatch[], parentId: string | null): Promise<void> {
      if (batches.length === 0) return;
      await db.query(
        `INSERT INTO ${s}.batches (id, parent_id, properties, callbacks)
         SELECT x.id, $2::uuid, x.properties, x.callbacks FROM jsonb_to_recordset($1::jsonb) AS x(id uuid, properties jsonb, callbacks jsonb)
         ON CONFLICT (id) DO NOTHING`,
        [JSON.stringify(batches), parentId],
      );
    },
    /** Every member of these is written: each finishes once none is pending (at once, if none is). */
    async seal(db: Queryable, ids: string[]): Promise<void> {
      if (ids.length > 0) await db.query(`SELECT ${s}.batch_seal(id) FROM unnest($1::uuid[]) AS id ORDER BY id`, [ids]);
    },
    /**
     * New members written: each batch's pending count goes up by its own (it runs again if it had
     * finished and `reopen`: an admin's retry of its failed jobs). Returns the batches that took
     * them; one that had finished (and no `reopen`) or does not exist takes none.
     */
    async countIn(db: Queryable, members: Map<string, number>, reopen: boolean): Promise<Set<string>> {
      if (members.size === 0) return new Set();
      const { rows } = await db.query(
        `UPDATE ${s}.batches b SET pending = b.pending + x.n, state = 'running', finished_at = NULL
           FROM (SELECT * FROM unnest($1::uuid[], $2::int[]) AS u(id, n) ORDER BY id) x
          WHERE b.id = x.id AND (b.state = 'running' OR $3)
         RETURNING b.id`,
        [[...members.keys()], [...members.values()], reopen],
      );
      return new Set(rows.map((r) => r.id as string));
    },
    async get(id: string): Promise<BatchView | null> {
      const { rows } = await pool.query(`SELECT id, state, properties, dispatched, parent_id, created_at, finished_at FROM ${s}.batches WHERE id = $1`, [id]);
      const b = rows[0];
      if (!b) return null;
      const dispatched = b.dispatched as Array<{ on: BatchCallback['on']; jobId: string }>;
      const [c, states] = await Promise.all([
        counts(pool, id),
        dispatched.length ? pool.query(jobStatesSql(schema, bossSchema, '$1::uuid[]'), [dispatched.map((d) => d.jobId)]) : Promise.resolve({ rows: [] }),
      ]);
      const stateOf = new Map(states.rows.map((r) => [r.id as string, r.state as JobState]));
      return {
        id: b.id,
        state: b.state,
        counts: c,
        total: c.queued + c.active + c.completed + c.failed + c.cancelled,
        properties: b.properties,
        callbacks: dispatched.map((d) => ({ on: d.on, jobId: d.jobId, state: stateOf.get(d.jobId) ?? 'deleted' })),
        ...(b.parent_id ? { parentId: b.parent_id } : {}),
        createdAt: iso(b.created_at)!,
        ...(b.finished_at ? { finishedAt: iso(b.finished_at) } : {}),
      };
    },
    /** Its failed jobs (not retried), newest first. */
    async failedMembers(id: string, limit: number): Promise<Array<{ id: string; name: string; finishedAt: string | null; error: { code: string; message: string } | null }>> {
      const { rows } = await pool.query(
        `SELECT id, name, finished_at, error FROM ${s}.jobs WHERE batch_id = $1 AND state = 'failed' AND retried_as IS NULL ORDER BY finished_at DESC NULLS LAST, id LIMIT $2`,
        [id, limit],
      );
      return rows.map((r) => ({ id: r.id, name: r.name, finishedAt: iso(r.finished_at) ?? null, error: r.error ?? null }));
    },
    /** Finished batches whose callbacks are due (but those of `except`), locked for the caller's transaction (others skip them). */
    async takeDue(db: Queryable, limit: number, except: string[] = []): Promise<DueBatch[]> {
      const { rows } = await db.query(
        `SELECT id, properties, callbacks, finished_at FROM ${s}.batches WHERE dispatch_due AND state = 'finished' AND NOT (id = ANY($2::uuid[]))
          ORDER BY finished_at LIMIT $1 FOR UPDATE SKIP LOCKED`,
        [limit, except],
      );
      return rows.map((r) => ({ id: r.id, finishedAt: iso(r.finished_at)!, properties: r.properties, callbacks: r.callbacks }));
    },
    /** The callbacks of this finish are enqueued (in the same transaction as they were). */
    async markDispatched(db: Queryable, id: string, dispatched: Array<{ on: BatchCallback['on']; jobId: string }>, finalCounts: BatchCounts): Promise<void> {
      await db.query(`UPDATE ${s}.batches SET dispatch_due = false, dispatched = $2::jsonb, counts = $3::jsonb WHERE id = $1`, [id, JSON.stringify(dispatched), JSON.stringify(finalCounts)]);
    },
  };
}

export type BatchStore = ReturnType<typeof createBatchStore>;

// Schedules in PostgreSQL (migrations 020, 022) and their firings; every change is written to the
// admin audit log in the same transaction, with the schedule before and after, and announced on
// `channel` at commit so every main's scheduler reads the schedules again at once.
import type { Pool } from 'pg';
import { assertSchemaName } from './schema-name.ts';
import { jobStatesSql } from './queue-records.ts';
import { withTransaction } from './transaction.ts';
import { iso, type JobState, type Queryable } from './ledger.ts';

export interface StoredSchedule {
  id: string;
  /** The job it enqueues. */
  name: string;
  schedule: string;
  timeZone: string;
  payload: Record<string, unknown>;
  enabled: boolean;
  source: 'code' | 'runtime';
  createdBy: string;
  updatedBy: string;
  createdAt: string;
  updatedAt: string;
}

export interface ScheduleRun {
  jobId: string | null;
  /** The occurrence it fired for (null for a run-now). */
  dueAt: string | null;
  /** The job's state now (`deleted` once pruned). */
  state: JobState | 'deleted' | null;
  at: string;
  manual: boolean;
}

export type ScheduleFields = Pick<StoredSchedule, 'schedule' | 'timeZone' | 'payload' | 'enabled'>;

const COLUMNS = 'id, name, schedule, time_zone, payload, enabled, source, created_by, updated_by, created_at, updated_at';
const toSchedule = (r: Record<string, any>): StoredSchedule => ({
  id: r.id, name: r.name, schedule: r.schedule, timeZone: r.time_zone, payload: r.payload, enabled: r.enabled, source: r.source,
  createdBy: r.created_by, updatedBy: r.updated_by, createdAt: iso(r.created_at)!, updatedAt: iso(r.updated_at)!,
});

export type ScheduleStore = ReturnType<typeof createScheduleStore>;

/** `bossSchema`: main's pg-boss schema, where jobs recorded by their pg-boss row are (a firing's job may be). */
export function createScheduleStore(pool: Pool, schema: string, bossSchema?: string) {
  const s = assertSchemaName(schema);
  const channel = `jg_schedules_${s}`.slice(0, 63);
  const audit = (db: Queryable, actor: string, action: string, id: string, detail: Record<string, unknown>) =>
    db.query(`INSERT INTO ${s}.admin_audit (actor, action, target, detail) VALUES ($1, $2, $3, $4)`, [actor, action, id, JSON.stringify(detail)]);
  /** Tells every main's scheduler, at commit, that the schedules changed. */
  const announce = (db: Queryable) => db.query(`SELECT pg_notify('${channel}', '')`);
  return {
    /** Where a change of the schedules is announced (LISTEN). */
    channel,
    /** Writes an entry of the admin audit log about schedule `id` (in `db`'s transaction). */
    audit,
    async list(): Promise<StoredSchedule[]> {
      const { rows } = await pool.query(`SELECT ${COLUMNS} FROM ${s}.schedules ORDER BY source, name, created_at`);
      return rows.map(toSchedule);
    },
    async get(id: string, db: Queryable = pool): Promise<StoredSchedule | null> {
      const { rows } = await db.query(`SELECT ${COLUMNS} FROM ${s}.schedules WHERE id = $1`, [id]);
      return rows[0] ? toSchedule(rows[0]) : null;
    },
    /**
     * The code's schedules as rows: new ones added (enabled), changed ones updated, an admin's
     * enabled/disabled kept; rows of jobs no longer scheduled in code deleted. Returns them all.
     */
    async syncFromCode(code: Array<{ id: string; name: string; schedule: string; timeZone: string; payload: Record<string, unknown> }>): Promise<StoredSchedule[]> {
      return withTransaction(pool, async (db) => {
        await db.query(`DELETE FROM ${s}.schedules WHERE source = 'code' AND NOT (name = ANY($1::text[]))`, [code.map((c) => c.name)]);
        const { rows } = await db.query(
          `INSERT INTO ${s}.schedules (id, name, schedule, time_zone, payload, source, created_by, updated_by)
           SELECT x.id, x.name, x.schedule, x.time_zone, x.payload, 'code', 'code', 'code'
             FROM jsonb_to_recordset($1::jsonb) AS x(id uuid, name text, schedule text, time_zone text, payload jsonb)
           ON CONFLICT (id) DO UPDATE SET schedule = excluded.schedule, time_zone = excluded.time_zone, payload = excluded.payload,
             -- a new expression owes nothing from before it (the scheduler reads from updated_at)
             updated_at = CASE WHEN (schedules.schedule, schedules.time_zone) IS DISTINCT FROM (excluded.schedule, excluded.time_zone) THEN clock_timestamp() ELSE schedules.updated_at END
           RETURNING ${COLUMNS}`,
          [JSON.stringify(code.map((c) => ({ id: c.id, name: c.name, schedule: c.schedule, time_zone: c.timeZone, payload: c.payload })))],
        );
        await announce(db);
        return rows.map(toSchedule);
      });
    },
    async create(row: { id: string; name: string } & ScheduleFields, actor: string): Promise<StoredSchedule> {
      return withTransaction(pool, async (db) => {
        const { rows } = await db.query(
          `INSERT INTO ${s}.schedules (id, name, schedule, time_zone, payload, enabled, source, created_by, updated_by)
           VALUES ($1, $2, $3, $4, $5, $6, 'runtime', $7, $7) RETURNING ${COLUMNS}`,
          [row.id, row.name, row.schedule, row.timeZone, JSON.stringify(row.payload), row.enabled, actor],
        );
        const created = toSchedule(rows[0]);
        await audit(db, actor, 'schedule.create', created.id, { after: created });
        await announce(db);
        return created;
      });
    },
    /** Changes a schedule under its row lock (`change` may throw to refuse). Null: no such schedule. */
    async update(id: string, change: (before: StoredSchedule) => Partial<ScheduleFields>, actor: string): Promise<StoredSchedule | null> {
      return withTransaction(pool, async (db) => {
        const { rows: found } = await db.query(`SELECT ${COLUMNS} FROM ${s}.schedules WHERE id = $1 FOR UPDATE`, [id]);
        if (!found[0]) return null;
        const before = toSchedule(found[0]);
        const next = { ...before, ...change(before) };
        const { rows } = await db.query(
          `UPDATE ${s}.schedules SET schedule = $2, time_zone = $3, payload = $4, enabled = $5, updated_by = $6, updated_at = clock_timestamp()
            WHERE id = $1 RETURNING ${COLUMNS}`,
          [id, next.schedule, next.timeZone, JSON.stringify(next.payload), next.enabled, actor],
        );
        const after = toSchedule(rows[0]);
        await audit(db, actor, 'schedule.update', id, { before, after });
        await announce(db);
        return after;
      });
    },
    async remove(id: string, actor: string, check: (before: StoredSchedule) => void): Promise<StoredSchedule | null> {
      return withTransaction(pool, async (db) => {
        const { rows } = await db.query(`SELECT ${COLUMNS} FROM ${s}.schedules WHERE id = $1 FOR UPDATE`, [id]);
        if (!rows[0]) return null;
        const before = toSchedule(rows[0]);
        check(before);
        await db.query(`DELETE FROM ${s}.schedules WHERE id = $1`, [id]);
        await audit(db, actor, 'schedule.delete', id, { before });
        await announce(db);
        return before;
      });
    },
    /** Records a run-now in `db`'s transaction, before its job is enqueued there. */
    async recordManualRun(db: Queryable, scheduleId: string, firing: string): Promise<void> {
      await db.query(`INSERT INTO ${s}.schedule_runs (schedule_id, firing, manual) VALUES ($1, $2, true)`, [scheduleId, firing]);
    },
    /**
     * Claims occurrence `dueAt` of schedule `id` in `db`'s transaction, before its job is enqueued
     * there, keyed by (schedule, occurrence): the schedule as it is now, or null when the occurrence
     * was claimed before (by another main: its insert waits for that one's commit) or the schedule
     * is gone, disabled, or no longer the expression and zone the occurrence was read from.
     */
    async claimOccurrence(db: Queryable, id: string, expression: { schedule: string; timeZone: string }, dueAt: Date): Promise<StoredSchedule | null> {
      const { rows } = await db.query(
        `WITH current AS (
           SELECT ${COLUMNS} FROM ${s}.schedules WHERE id = $1 AND enabled AND schedule = $2 AND time_zone = $3 FOR SHARE
         ), claimed AS (
           INSERT INTO ${s}.schedule_runs (schedule_id, firing, due_at) SELECT id, $4, $5 FROM current ON CONFLICT DO NOTHING RETURNING schedule_id
         )
         SELECT current.* FROM current JOIN claimed ON claimed.schedule_id = current.id`,
        [id, expression.schedule, expression.timeZone, dueAt.toISOString(), dueAt],
      );
      return rows[0] ? toSchedule(rows[0]) : null;
    },
    /** PostgreSQL's clock now, in ms since the epoch: the one every main's scheduler goes by. */
    async now(): Promise<number> {
      const { rows } = await pool.query(`SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS ms`);
      return rows[0].ms as number;
    },
    async setFiringJob(db: Queryable, scheduleId: string, firing: string, jobId: string): Promise<void> {
      await db.query(`UPDATE ${s}.schedule_runs SET job_id = $3 WHERE schedule_id = $1 AND firing = $2`, [scheduleId, firing, jobId]);
    },
    /** The last `limit` firings of each schedule of `ids`, newest first, with their jobs' states now. */
    async lastRuns(ids: string[], limit = 5): Promise<Map<string, ScheduleRun[]>> {
      const { rows } = await pool.query(
        `SELECT r.schedule_id, r.job_id, r.fired_at, r.due_at, r.manual, CASE WHEN r.job_id IS NULL THEN NULL ELSE coalesce(j.state, 'deleted') END AS state
           FROM unnest($1::uuid[]) AS sid(id)
           CROSS JOIN LATERAL (SELECT * FROM ${s}.schedule_runs WHERE schedule_id = sid.id ORDER BY fired_at DESC LIMIT $2) r
           LEFT JOIN LATERAL (${jobStatesSql(schema, bossSchema, 'ARRAY[r.job_id]')}) j ON true
          ORDER BY r.fired_at DESC`,
        [ids, limit],
      );
      const runs = new Map<string, ScheduleRun[]>(ids.map((id) => [id, []]));
      for (const r of rows) runs.get(r.schedule_id)!.push({ jobId: r.job_id, dueAt: iso(r.due_at) ?? null, state: r.state, at: iso(r.fired_at)!, manual: r.manual });
      return runs;
    },
  };
}

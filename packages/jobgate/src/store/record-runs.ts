// The run stage of a job whose record is its pg-boss row (queue-records.ts): what a runner on main
// writes besides pg-boss's own fetch and settle. On the way to success, nothing: pg-boss's fetch
// is the one executor's lock on the attempt, and its completion is the record's. An attempt that
// fails, is lost or is cancelled under its handler writes its row in `executions`, as any job's
// does; progress updates the row's `output` while it runs. The reads here (a pause, whether the
// attempt still holds its job) write nothing.
import type { Pool } from 'pg';
import { coalesce } from '../support/coalesce.ts';
import { assertSchemaName } from './schema-name.ts';
import { recordPlans } from './queue-records.ts';
import type { ErrorInfo, Route } from './ledger.ts';
import type { FinishedRow } from './rollup.ts';

/** A record's attempt as its runner knows it (pg-boss's fetched job). */
export interface RecordAttempt {
  name: string;
  id: string;
  /** pg-boss's retry_count when fetched: this attempt is retryCount + 1. */
  retryCount: number;
}

/** What an attempt's heartbeat finds: it still holds its job, the job was cancelled, or the queue gave the attempt up. */
export type Holding = 'held' | 'cancelled' | 'lost';

export type RecordRuns = ReturnType<typeof createRecordRuns>;

/**
 * `finished` hears of every record that completed or failed for good (main's rollup counts them),
 * as the ledger's own statements report theirs.
 */
export function createRecordRuns(pool: Pool, schema: string, bossSchema: string, finished: (rows: FinishedRow[]) => void = () => {}) {
  const s = assertSchemaName(schema);
  const b = assertSchemaName(bossSchema);
  const plans = recordPlans(bossSchema, schema);
  const sql = {
    // (the pauses in force: pause_of, migration 019)
    paused: `SELECT n AS name, ${s}.pause_of(n) IS NOT NULL AS paused FROM unnest($1::text[]) n`,
    holding: `SELECT state::text, retry_count FROM ${b}.job WHERE name = $1 AND id = $2`,
    progress: `
      UPDATE ${b}.job SET output = jsonb_build_object('progress', $4::int, 'message', $5::text)
       WHERE name = $1 AND id = $2 AND state = 'active' AND retry_count = $3`,
    // An attempt's row: written once (a second end of the same attempt changes nothing).
    ended: `
      INSERT INTO ${s}.executions (job_id, attempt, ran_on, started_at, outcome, finished_at, error, peak_rss_mb)
      VALUES ($1, $2, $3, coalesce($4::timestamptz, clock_timestamp()), $5, clock_timestamp(), $6, $7)
      ON CONFLICT (job_id, attempt) DO NOTHING`,
    // Attempts before $2 that have no row were cut short (their runner died, or pg-boss gave them up
    // by heartbeat or expiry): lost. Written by the attempt that follows, as the ledger's claim does.
    lostBefore: `
      INSERT INTO ${s}.executions (job_id, attempt, ran_on, started_at, outcome, finished_at, error)
      SELECT $1, a, 'main', clock_timestamp(), 'lost', clock_timestamp(), jsonb_build_object('code', 'JG_JOB_LOST', 'message', $3::text)
        FROM generate_series(1, $2 - 1) a
      ON CONFLICT (job_id, attempt) DO NOTHING`,
    // The queue gave the job up without its handler settling the last attempt (expired, or its
    // runner died): that attempt is lost, and the record says why it failed.
    gaveUp: `
      WITH job AS (
        UPDATE ${b}.job SET output = jsonb_build_object('error', jsonb_build_object('code', 'JG_JOB_LOST', 'message', $3::text))
         WHERE name = $1 AND id = $2 AND state = 'failed' AND data ? 'record' AND NOT coalesce(output ? 'error', false)
        RETURNING id, name, retry_count + 1 AS attempt, started_on, start_after, completed_on
      ), lost AS (
        INSERT INTO ${s}.executions (job_id, attempt, ran_on, started_at, outcome, finished_at, error)
        SELECT id, attempt, 'main', coalesce(started_on, clock_timestamp()), 'lost', clock_timestamp(), jsonb_build_object('code', 'JG_JOB_LOST', 'message', $3::text) FROM job
        ON CONFLICT (job_id, attempt) DO NOTHING
      )
      SELECT name, 'main' AS route, 'failed' AS state, start_after AS run_at, started_on AS started_at, completed_on AS finished_at FROM job`,
  };

  const pausedNames = coalesce(
    async (names: string[]): Promise<boolean[]> => {
      const { rows } = await pool.query(sql.paused, [[...new Set(names)]]);
      const paused = new Map(rows.map((r) => [r.name as string, r.paused as boolean]));
      return names.map((n) => paused.get(n) ?? false);
    },
    { maxItems: 500 },
  );

  return {
    /** Whether an operator paused `name` (its own pause or every job's) as of now; asked together, read together. */
    isPaused: (name: string): Promise<boolean> => pausedNames(name),
    /** Attempt `attempt` starts: those before it without a row were cut short (lost). Only a retry asks. */
    async lostBefore(id: string, attempt: number): Promise<void> {
      if (attempt > 1) await pool.query(sql.lostBefore, [id, attempt, 'the attempt was cut short (its runner stopped, or the queue gave it up)']);
    },
    /** Whether this attempt still holds its job (a read of pg-boss's row). */
    async holding(a: RecordAttempt): Promise<Holding> {
      const { rows } = await pool.query(sql.holding, [a.name, a.id]);
      const row = rows[0] as { state: string; retry_count: number } | undefined;
      if (row?.state === 'cancelled') return 'cancelled';
      return row?.state === 'active' && row.retry_count === a.retryCount ? 'held' : 'lost';
    },
    async setProgress(a: RecordAttempt, percent: number, message: string | null): Promise<void> {
      await pool.query(sql.progress, [a.name, a.id, a.retryCount, percent, message]);
    },
    /** An attempt that did not complete its job: its row (failed, or lost), once. */
    async attemptEnded(a: RecordAttempt, end: { ranOn: Route; startedAt: Date | string | null; outcome: 'failed' | 'lost'; error: ErrorInfo; peakRssMb: number | null }): Promise<void> {
      await pool.query(sql.ended, [a.id, a.retryCount + 1, end.ranOn, end.startedAt, end.outcome, JSON.stringify(end.error), end.peakRssMb]);
    },
    /** A record handed back to its queue while paused: held where pg-boss's fetch skips it (queue-records.ts syncBlocked). */
    async blockIfPaused(name: string, id: string): Promise<void> {
      await pool.query(plans.blockIfPaused, [name, [id]]);
    },
    /** A record this process settled for good (completed, or failed with no retry left): into the rollup. */
    settled(row: FinishedRow): void {
      finished([row]);
    },
    /** pg-boss gave the job up (dead letter): its last attempt is lost; false if it is not a record or was settled. */
    async gaveUp(name: string, id: string, message: string): Promise<boolean> {
      const { rows } = await pool.query(sql.gaveUp, [name, id, message]);
      finished(rows);
      return rows.length > 0;
    },
  };
}

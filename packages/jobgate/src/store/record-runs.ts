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
  /** The job's W3C traceparent (the fetcher sends it with the attempt's events). */
  traceparent?: string;
}

/** What an attempt's heartbeat finds: it still holds its job, the job was cancelled, or the queue gave the attempt up. */
export type Holding = 'held' | 'cancelled' | 'lost';

/** How an attempt that did not complete its job ended, as its runner tells it. */
export interface AttemptEnd {
  ranOn: Route;
  startedAt: Date | string | null;
  outcome: 'failed' | 'lost';
  error: ErrorInfo;
  peakRssMb: number | null;
  /** The job's state after it: `queued` while a retry follows. */
  state: 'queued' | 'failed';
  maxAttempts: number;
}

/**
 * What a runner writes for a job whose record is its pg-boss row, besides pg-boss's own fetch and
 * settle: main's (here) or the fetcher's (fetcher-records.ts), which tells main by job events.
 */
export interface RecordRuns {
  /** Whether an operator paused `name` (its own pause or every job's) as of now. */
  isPaused(name: string): Promise<boolean>;
  /** Attempt `attempt` starts: those before it without a row were cut short (lost). */
  lostBefore(id: string, attempt: number): Promise<void>;
  /** Whether this attempt still holds its job (a read of pg-boss's row). */
  holding(a: RecordAttempt): Promise<Holding>;
  setProgress(a: RecordAttempt, percent: number, message: string | null): Promise<void>;
  /** The attempt completed its job, before pg-boss's settle of the fetch; absent where that settle says all (main's). */
  completed?(a: RecordAttempt, end: { startedAt: Date | string | null; peakRssMb: number; maxAttempts: number }): Promise<void>;
  /** An attempt that did not complete its job, once. */
  attemptEnded(a: RecordAttempt, end: AttemptEnd): Promise<void>;
  /** A record handed back to its queue while paused: held where pg-boss's fetch skips it. */
  blockIfPaused(name: string, id: string): Promise<void>;
  /** A record this process settled for good (completed, or failed with no retry left). */
  settled(row: FinishedRow): void;
  /** pg-boss gave the job up (dead letter): its last attempt is lost; false if it is not a record or was settled. */
  gaveUp(name: string, id: string, message: string): Promise<boolean>;
  /** The fetcher's: an end of the job (completed, or failed for good) waits in its outbox for main, so no attempt of it runs. */
  endPending?(id: string): Promise<boolean>;
}

/**
 * Attempts of job $1 before $2 that have no row were cut short (their runner died, or pg-boss gave
 * them up by heartbeat or expiry): lost ($3: why), on `ranOn`. Written by the attempt that follows,
 * as the ledger's claim does. `s`: jobgate's schema, validated by the caller.
 */
export const lostBeforeSql = (s: string, ranOn: Route) => `
      INSERT INTO ${s}.executions (job_id, attempt, ran_on, started_at, outcome, finished_at, error)
      SELECT $1, a, '${ranOn}', clock_timestamp(), 'lost', clock_timestamp(), jsonb_build_object('code', 'JG_JOB_LOST', 'message', $3::text)
        FROM generate_series(1, $2 - 1) a
      ON CONFLICT (job_id, attempt) DO NOTHING`;

/** A running attempt's progress ($4, $5) on its record's row ($1 name, $2 id, $3 retry_count), while the attempt holds it. `b`: pg-boss's schema, validated by the caller. */
export const recordProgressSql = (b: string) => `
      UPDATE ${b}.job SET output = jsonb_build_object('progress', $4::int, 'message', $5::text)
       WHERE name = $1 AND id = $2 AND state = 'active' AND retry_count = $3`;

/**
 * An attempt's row ($1 job, $2 attempt, $3 ran_on, $4 started_at, $5 outcome, $6 error, $7 peak
 * RSS): written once (a second end of the same attempt changes nothing).
 */
export const attemptRowSql = (s: string) => `
      INSERT INTO ${s}.executions (job_id, attempt, ran_on, started_at, outcome, finished_at, error, peak_rss_mb)
      VALUES ($1, $2, $3, coalesce($4::timestamptz, clock_timestamp()), $5, clock_timestamp(), $6, $7)
      ON CONFLICT (job_id, attempt) DO NOTHING`;

/**
 * The queue gave record $2 of $1 up without its handler settling the last attempt (expired, or its
 * runner died): its row says why it failed ($3), and that attempt is lost, on `ranOn`. As CTEs:
 * `job` (id, name, attempt, max_attempts, started_on, start_after, completed_on, traceparent) and
 * the attempt's row.
 */
export const gaveUpSql = (s: string, b: string, ranOn: Route) => `
      job AS (
        UPDATE ${b}.job SET output = jsonb_build_object('error', jsonb_build_object('code', 'JG_JOB_LOST', 'message', $3::text))
         WHERE name = $1 AND id = $2 AND state = 'failed' AND data ? 'record' AND NOT coalesce(output ? 'error', false)
        RETURNING id, name, retry_count + 1 AS attempt, retry_limit + 1 AS max_attempts, started_on, start_after, completed_on, data->>'traceparent' AS traceparent
      ), lost AS (
        INSERT INTO ${s}.executions (job_id, attempt, ran_on, started_at, outcome, finished_at, error)
        SELECT id, attempt, '${ranOn}', coalesce(started_on, clock_timestamp()), 'lost', clock_timestamp(), jsonb_build_object('code', 'JG_JOB_LOST', 'message', $3::text) FROM job
        ON CONFLICT (job_id, attempt) DO NOTHING
      )`;

/** Whether attempt `a` still holds its job: a read of its pg-boss row in `bossSchema` (validated by the caller). */
export async function holding(pool: Pool, bossSchema: string, a: RecordAttempt): Promise<Holding> {
  const { rows } = await pool.query(`SELECT state::text, retry_count FROM ${bossSchema}.job WHERE name = $1 AND id = $2`, [a.name, a.id]);
  const row = rows[0] as { state: string; retry_count: number } | undefined;
  if (row?.state === 'cancelled') return 'cancelled';
  return row?.state === 'active' && row.retry_count === a.retryCount ? 'held' : 'lost';
}

/**
 * `finished` hears of every record that completed or failed for good (main's rollup counts them),
 * as the ledger's own statements report theirs.
 */
export function createRecordRuns(pool: Pool, schema: string, bossSchema: string, finished: (rows: FinishedRow[]) => void = () => {}): RecordRuns {
  const s = assertSchemaName(schema);
  const b = assertSchemaName(bossSchema);
  const plans = recordPlans(bossSchema, schema);
  const sql = {
    // (the pauses in force: pause_of, migration 019)
    paused: `SELECT n AS name, ${s}.pause_of(n) IS NOT NULL AS paused FROM unnest($1::text[]) n`,
    progress: recordProgressSql(b),
    ended: attemptRowSql(s),
    lostBefore: lostBeforeSql(s, 'main'),
    gaveUp: `
      WITH ${gaveUpSql(s, b, 'main')}
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
    holding: (a: RecordAttempt) => holding(pool, b, a),
    async setProgress(a: RecordAttempt, percent: number, message: string | null): Promise<void> {
      await pool.query(sql.progress, [a.name, a.id, a.retryCount, percent, message]);
    },
    /** An attempt that did not complete its job: its row (failed, or lost), once. */
    async attemptEnded(a: RecordAttempt, end: AttemptEnd): Promise<void> {
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

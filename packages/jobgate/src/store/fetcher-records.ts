// The run stage of a job the fetcher keeps no ledger row for (docs/storage-design.md): its record
// on this side is its pg-boss row, and main's record is the source of truth. What an attempt writes
// besides pg-boss's fetch and settle is what main must hear: one job event where it ends (written
// before pg-boss's settle, so a runner that dies between the two leaves the end in the outbox, and
// the retry pg-boss makes of it finds it there and does not run), and one per progress step.
//
// An event's number within its job is attempt × 2^20 + step, the end last (END_STEP): main applies
// a job's events in that order, each once (`seq > events_applied`, gaps allowed), with no counter
// on a row here. A fetcher without main's URL sends no events and writes none.
import type { Pool } from 'pg';
import { coalesce } from '../support/index.ts';
import { assertSchemaName } from './schema-name.ts';
import { jobQueues, recordAttemptsSql, recordColumnsOf } from './queue-records.ts';
import { toJob, withLatestAttempt, type Execution, type JobRecord, type Queryable } from './ledger.ts';
import { inlineParams } from './one-round-trip.ts';
import { attemptRowSql, gaveUpSql, holding, lostBeforeSql, recordProgressSql, type AttemptEnd, type RecordAttempt, type RecordRuns } from './record-runs.ts';

/** Steps of one attempt's events: progress counts up from 1, the end is the last. */
const STEPS = 2 ** 20;
const END_STEP = STEPS - 1;
/** An attempt's event number for `step`. */
const eventSeq = (attempt: number, step: number) => attempt * STEPS + step;

function plans(schema: string, bossSchema: string) {
  const s = assertSchemaName(schema);
  const b = assertSchemaName(bossSchema);
  // the event's data with the job's trace (sent with the event: there is no ledger row to read it from)
  const eventData = (fields: string) => `jsonb_strip_nulls(jsonb_build_object(${fields}))`;
  return {
    // The ends of attempts that completed their jobs, as many as came together (each written once,
    // however often a runner retries it after a database blip).
    completedEvents: `
      INSERT INTO ${s}.job_events (job_id, job_seq, type, attempt, data)
      SELECT id, seq, 'completed', attempt, data FROM jsonb_to_recordset($1::jsonb) AS x(id uuid, seq bigint, attempt int, data jsonb)
      ON CONFLICT (job_id, job_seq) DO NOTHING`,
    // An attempt that did not complete its job: its row (the fetcher's history of the job) and, when
    // main is known ($10), its event ($8: its number, $9: its data); each once.
    ended: `
      WITH attempt_row AS (${attemptRowSql(s)})
      INSERT INTO ${s}.job_events (job_id, job_seq, type, attempt, data)
      SELECT $1, $8, $5, $2, $9::jsonb WHERE $10
      ON CONFLICT (job_id, job_seq) DO NOTHING`,
    // in the fetcher's history (main's grant of attempt $2 writes them in main's)
    lostBefore: lostBeforeSql(s, 'fetcher'),
    // Progress is kept on pg-boss's row too (what a read of the job shows); sent only while the attempt holds the job.
    progress: `
      WITH held AS (${recordProgressSql(b)}
        RETURNING id, data->>'traceparent' AS traceparent)
      INSERT INTO ${s}.job_events (job_id, job_seq, type, attempt, data)
      SELECT id, $6, 'progress', $3 + 1, ${eventData(`'progress', $4::int, 'message', $5::text, 'traceparent', traceparent`)}
        FROM held WHERE $7
      ON CONFLICT (job_id, job_seq) DO NOTHING`,
    // An attempt that ended the job (completed, or failed for good) whose event main has not had yet.
    endPending: `
      SELECT EXISTS (SELECT 1 FROM ${s}.job_events WHERE job_id = $1 AND (type = 'completed' OR data->>'state' = 'failed')) AS pending`,
    // The queue gave the job up without its handler settling the last attempt (expired, or its runner
    // died): that attempt is lost, and main hears it as the job's end (unless the attempt wrote its
    // own end before it died: the same event number, which is kept).
    gaveUp: `
      WITH ${gaveUpSql(s, b, 'fetcher')}, lost_event AS (
        INSERT INTO ${s}.job_events (job_id, job_seq, type, attempt, data)
        SELECT id, attempt * ${STEPS} + ${END_STEP}, 'lost', attempt,
               ${eventData(`'state', 'failed', 'maxAttempts', max_attempts, 'startedAt', started_on, 'finishedAt', clock_timestamp(),
                            'error', jsonb_build_object('code', 'JG_JOB_LOST', 'message', $3::text), 'traceparent', traceparent`)}
          FROM job WHERE $4
        ON CONFLICT (job_id, job_seq) DO NOTHING)
      SELECT count(*)::int AS n FROM job`,
    // The ids of $1 (id, name, payload) that a job with another name or payload holds here: a ledger
    // row, or a record in one of the queues $2 (pg-boss's key is (name, id): each queue is probed).
    reusedIds: `
      WITH input AS (
        SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(id uuid, name text, payload jsonb)
      ), found AS (
        SELECT l.id, l.name, l.payload FROM ${s}.jobs l WHERE l.id IN (SELECT id FROM input)
        UNION ALL
        SELECT j.id, j.name, j.data->'payload' FROM ${b}.job j WHERE j.name = ANY($2::text[]) AND j.id IN (SELECT id FROM input)
      )
      SELECT DISTINCT i.id FROM input i JOIN found f ON f.id = i.id WHERE f.name <> i.name OR f.payload <> i.payload`,
    // The transaction locks of $1's ids, taken in one order by every submission: one that races
    // another for an id waits for it to end, then sees what it wrote (pg-boss's key is (name, id): its
    // insert alone lets one id in under two names), and two submissions of the same ids never
    // deadlock. By bucket (one of ${ID_LOCK_BUCKETS}), so a submission of 500 takes at most that many
    // locks of PostgreSQL's shared lock table; two submissions sharing a bucket take turns.
    lockIds: `
      SELECT pg_advisory_xact_lock(hashtext('jobgate.intake'), b)
        FROM (SELECT DISTINCT hashtext(lower(id)) & ${ID_LOCK_BUCKETS - 1} AS b FROM unnest($1::text[]) id ORDER BY b OFFSET 0) buckets`,
    getRecord: `
      SELECT ${recordColumnsOf('fetcher')} FROM ${b}.job j WHERE j.name IN (${jobQueues(b)}) AND j.id = $1 AND j.data ? 'record'`,
    latestAttempt: `${recordAttemptsSql(b)} AND j.id = $1`,
    // live per name, and failed in the last day: the ledger's countsByName for records
    countsByName: `
      SELECT j.name,
             count(*) FILTER (WHERE j.state IN ('created', 'retry'))::int AS queued,
             count(*) FILTER (WHERE j.state = 'active')::int AS active,
             count(*) FILTER (WHERE j.state = 'failed')::int AS failed
        FROM ${b}.job j
       WHERE j.name IN (${jobQueues(b)}) AND j.data ? 'record'
         AND (j.state IN ('created', 'retry', 'active') OR (j.state = 'failed' AND j.completed_on > clock_timestamp() - interval '1 day'))
       GROUP BY j.name`,
  };
}

export type FetcherRecords = ReturnType<typeof createFetcherRecords>;

/**
 * The fetcher's records in `bossSchema` (pg-boss's rows marked `record`), and the events of their
 * attempts in `schema`'s outbox when `emits` (main's URL is set).
 */
export function createFetcherRecords(pool: Pool, schema: string, bossSchema: string, deps: { executionRows(id: string): Promise<Execution[]> }) {
  const sql = plans(schema, bossSchema);
  /** The transaction set READ COMMITTED, then `ids` locked (sql.lockIds): LOCK_STATEMENTS statements, values written in. */
  const lockIdsStatements = (ids: string[]) => `SET TRANSACTION ISOLATION LEVEL READ COMMITTED;\n${inlineParams(sql.lockIds, [textArray(ids)])}`;
  const b = assertSchemaName(bossSchema);
  let emits = false;
  /** The next progress step of each attempt running in this process. */
  const steps = new Map<string, number>();
  const attemptKey = (a: RecordAttempt) => `${a.id}:${a.retryCount}`;

  /** An attempt's end event's data (as executions_emit shapes it, with the job's trace). */
  function endData(a: RecordAttempt, data: Record<string, unknown>): Record<string, unknown> {
    steps.delete(attemptKey(a));
    const clean = Object.fromEntries(Object.entries({ ...data, traceparent: a.traceparent }).filter(([, v]) => v !== null && v !== undefined));
    return { ...clean, finishedAt: new Date().toISOString() };
  }

  /**
   * The completed attempts' ends, written as they come: one statement while none is under way, and
   * those that came meanwhile together in the next (group commit). Each caller's promise resolves
   * once its end is committed, before pg-boss settles its fetch.
   */
  const writeCompleted = coalesce(
    async (ends: Array<{ id: string; seq: number; attempt: number; data: Record<string, unknown> }>) => {
      await pool.query(sql.completedEvents, [JSON.stringify(ends)]);
      return ends.map(() => undefined);
    },
    { maxItems: 500, maxInFlight: 1 },
  );

  const runs: RecordRuns & { endPending(id: string): Promise<boolean> } = {
    // the fetcher hears of pauses from main (its runner asks main for every attempt)
    isPaused: async () => false,
    async lostBefore(id: string, attempt: number): Promise<void> {
      if (attempt > 1) await pool.query(sql.lostBefore, [id, attempt, 'the attempt was cut short (its runner stopped, or the queue gave it up)']);
    },
    holding: (a: RecordAttempt) => holding(pool, b, a),
    async setProgress(a: RecordAttempt, percent: number, message: string | null): Promise<void> {
      const key = attemptKey(a);
      const step = steps.get(key) ?? 1;
      // (a handler reporting more steps than an attempt numbers keeps its row's progress current; main hears the last step it can number)
      if (step < END_STEP) steps.set(key, step + 1);
      await pool.query(sql.progress, [a.name, a.id, a.retryCount, percent, message, eventSeq(a.retryCount + 1, Math.min(step, END_STEP - 1)), emits && step < END_STEP]);
    },
    async completed(a, end): Promise<void> {
      const data = endData(a, { state: 'completed', maxAttempts: end.maxAttempts, startedAt: isoOf(end.startedAt), peakRssMb: end.peakRssMb });
      const attempt = a.retryCount + 1;
      if (emits) await writeCompleted({ id: a.id, seq: eventSeq(attempt, END_STEP), attempt, data });
    },
    async attemptEnded(a, end: AttemptEnd): Promise<void> {
      const data = endData(a, { state: end.state, maxAttempts: end.maxAttempts, startedAt: isoOf(end.startedAt), error: end.error, peakRssMb: end.peakRssMb });
      const attempt = a.retryCount + 1;
      await pool.query(sql.ended, [a.id, attempt, 'fetcher', end.startedAt, end.outcome, JSON.stringify(end.error), end.peakRssMb, eventSeq(attempt, END_STEP), JSON.stringify(data), emits]);
    },
    // the fetcher's pauses are main's: a job handed back is fetched again and asks main again
    blockIfPaused: async () => {},
    // the overview's rollup is main's, counted as main applies the events
    settled: () => {},
    async gaveUp(name: string, id: string, message: string): Promise<boolean> {
      const { rows } = await pool.query(sql.gaveUp, [name, id, message, emits]);
      return rows[0].n > 0;
    },
    /** Whether an end of this job (completed, or failed for good) waits in the outbox for main: then no attempt of it runs. */
    async endPending(id: string): Promise<boolean> {
      if (!emits) return false;
      const { rows } = await pool.query(sql.endPending, [id]);
      return rows[0].pending as boolean;
    },
  };

  return {
    runs,
    /** Whether events are written (main's URL is set): set once at start, as the ledger's emit_events. */
    setEmits(on: boolean): void {
      emits = on;
    },
    /** One record by id with its latest attempt, as the ledger's getJob answers (the fetcher's readJob). */
    async getRecord(id: string): Promise<JobRecord | null> {
      const { rows } = await pool.query(sql.getRecord, [id]);
      if (!rows[0]) return null;
      const job = toJob(rows[0]);
      const [ended, latest] = await Promise.all([deps.executionRows(id), pool.query(sql.latestAttempt, [id])]);
      job.executions = withLatestAttempt(ended, latest.rows);
      return job;
    },
    /**
     * The ids of `jobs` that another job (another name or payload) holds here, among its ledger rows
     * and the records of the queues `names`: read in the intake's transaction, after its inserts.
     */
    async reusedIds(jobs: Array<{ id: string; name: string; payload: unknown }>, names: string[], db: Queryable = pool): Promise<string[]> {
      const { rows } = await db.query(sql.reusedIds, [JSON.stringify(jobs), names]);
      return rows.map((r) => r.id as string);
    },
    /**
     * Holds `ids` for the intake's transaction `db` (sql.lockIds), first setting it READ COMMITTED
     * whatever the database's default: the look after the locks must see what a submission it
     * waited for wrote.
     */
    async lockIds(ids: string[], db: Queryable): Promise<void> {
      await db.query(lockIdsStatements(ids));
    },
    /** lockIds as statements with their values written in (LOCK_STATEMENTS of them), for the round trip that opens the intake's transaction. */
    lockIdsStatements,
    /** reusedIds as one statement with its values written in, for the round trip that opens the intake's transaction (its rows: `id`). */
    reusedIdsStatement(jobs: Array<{ id: string; name: string; payload: unknown }>, names: string[]): string {
      return inlineParams(sql.reusedIds, [JSON.stringify(jobs), textArray(names)]);
    },
    async countsByName(): Promise<Record<string, { queued: number; active: number; failed: number }>> {
      const { rows } = await pool.query(sql.countsByName);
      return Object.fromEntries(rows.map((r) => [r.name, { queued: r.queued, active: r.active, failed: r.failed }]));
    },
  };
}

/** How many statements lockIdsStatements answers (the intake counts its opening's results by them). */
export const LOCK_STATEMENTS = 2;

/** How many locks the intake's ids are spread over (a power of two): see sql.lockIds. */
const ID_LOCK_BUCKETS = 256;

/** A text[] literal of `values` (each quoted, `\\` and `"` escaped). */
const textArray = (values: string[]) => `{${values.map((v) => `"${v.replace(/[\\"]/g, '\\$&')}"`).join(',')}}`;

const isoOf = (v: Date | string | null) => (v instanceof Date ? v.toISOString() : v);

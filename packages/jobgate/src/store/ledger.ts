import type { Pool } from 'pg';
import { assertSchemaName } from './schema-name.ts';
import { inlineParams } from './one-round-trip.ts';
import { withTransaction } from './transaction.ts';

export const JobState = {
  queued: 'queued',
  forwarding: 'forwarding',
  forwarded: 'forwarded',
  active: 'active',
  completed: 'completed',
  failed: 'failed',
  cancelled: 'cancelled',
} as const;
export type JobState = (typeof JobState)[keyof typeof JobState];
export const JOB_STATES = Object.values(JobState);

export type Route = 'main' | 'fetcher';
/** Why a job runs where it does: its definition, the emergency override, or a per-run override. */
export type RouteReason = 'definition' | 'override' | 'run-on-main';
export type Outcome = 'running' | 'completed' | 'failed' | 'lost';

/** Anything that runs a parameterised query: a pg Pool, PoolClient or Client (e.g. inside the caller's transaction). */
export interface Queryable {
  query(text: string, values?: unknown[]): Promise<{ rows: any[]; rowCount: number | null }>;
}

export interface ErrorInfo {
  code: string;
  message: string;
  /** Since when (a refusal by the fetcher that keeps a job waiting: since its first refusal). */
  since?: string;
}

export interface Execution {
  attempt: number;
  ranOn: Route;
  startedAt: string;
  finishedAt?: string;
  outcome: Outcome;
  error?: ErrorInfo;
  peakRssMb?: number;
}

export interface JobRecord {
  id: string;
  name: string;
  route: Route;
  routeReason: RouteReason;
  state: JobState;
  /** The job an admin's retry created from this one. */
  retriedAs?: string;
  /** W3C traceparent: the enqueueing request's trace, shared by every log line about the job. */
  traceparent?: string;
  payload: unknown;
  priority: number;
  progress: number;
  progressMessage?: string;
  attempts: number;
  maxAttempts: number;
  runAt: string;
  createdAt: string;
  updatedAt: string;
  startedAt?: string;
  finishedAt?: string;
  error?: ErrorInfo;
  executions?: Execution[];
}

export interface StoredEvent {
  seq: number;
  jobId: string;
  jobSeq: number;
  type: 'active' | 'progress' | 'completed' | 'failed' | 'lost';
  attempt: number;
  at: string;
  data: Record<string, unknown>;
  /** The job's W3C traceparent. */
  traceparent?: string;
}

/** A job event from the fetcher, as main applies it (see the JobEvent wire schema). */
export interface AppliedEvent {
  jobId: string;
  seq: number;
  type: 'active' | 'progress' | 'completed' | 'failed' | 'lost';
  attempt: number;
  at: string;
  state?: string;
  startedAt?: string;
  finishedAt?: string;
  progress?: number;
  message?: string;
  error?: ErrorInfo;
  peakRssMb?: number;
}

export interface NewJob {
  id: string;
  name: string;
  route: Route;
  routeReason?: RouteReason;
  payload: unknown;
  priority: number;
  uniqueKey: string | null;
  maxAttempts: number;
  delaySeconds: number;
  /** W3C traceparent of the request that enqueued it (or of its own new trace). */
  traceparent?: string;
}

export interface ListFilter {
  state?: JobState;
  /** Any of these states (the bulk actions: only jobs they can act on). */
  states?: JobState[];
  /** Leave out jobs already retried (bulk retry: a second run must not retry them again). */
  notRetried?: boolean;
  name?: string;
  route?: Route;
  /** Jobs whose payload contains one of these (e.g. `{barcode: "737628064502"}` or `{barcode: 737628064502}`). */
  payload?: Array<Record<string, unknown>>;
  limit: number;
  cursor?: { createdAt: string; id: string };
}

const LIVE_STATES = `('queued', 'forwarding', 'forwarded', 'active')`;
const JOB_COLUMNS = `id, name, route, route_reason, retried_as, state, payload, priority, progress, progress_message, attempts, max_attempts,
  run_at, created_at, updated_at, started_at, finished_at, error, traceparent`;

const insertJobValues = (job: NewJob) => [
  job.id, job.name, job.route, JSON.stringify(job.payload), job.priority, job.uniqueKey, job.maxAttempts, job.delaySeconds, job.routeReason ?? 'definition', job.traceparent ?? null,
];

/** The ledger's SQL, as small named statements with `$n` parameters over one validated schema. */
function plans(schema: string) {
  const s = assertSchemaName(schema);
  return {
    // `onlyIf`: a condition the new row needs (insertJobStatement's queue entry), else no row.
    insertJob: (onlyIf = 'true') => `
      INSERT INTO ${s}.jobs (id, name, route, state, payload, priority, unique_key, max_attempts, run_at, route_reason, traceparent)
      SELECT $1::uuid, $2::text, $3::text, 'queued', $4::jsonb, $5::integer, $6::text, $7::integer,
             clock_timestamp() + $8::float8 * interval '1 second', $9::text, $10::text
       WHERE ${onlyIf}
      ON CONFLICT (name, unique_key) WHERE unique_key IS NOT NULL AND state IN ${LIVE_STATES} DO NOTHING
      RETURNING ${JOB_COLUMNS}`,
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
    findLiveByUniqueKey: `
      SELECT ${JOB_COLUMNS} FROM ${s}.jobs WHERE name = $1 AND unique_key = $2 AND state IN ${LIVE_STATES}`,
    getJob: `SELECT ${JOB_COLUMNS} FROM ${s}.jobs WHERE id = $1`,
    getExecutions: `
      SELECT attempt, ran_on, started_at, finished_at, outcome, error, peak_rss_mb
        FROM ${s}.executions WHERE job_id = $1 ORDER BY attempt`,
    claimAttempt: `SELECT outcome, wait_ms FROM ${s}.claim_attempt($1, $2, $3, $4, $5, $6)`,
    refreshClaim: `
      UPDATE ${s}.jobs SET claim_expires_at = clock_timestamp() + $3 * interval '1 second'
       WHERE id = $1 AND state = 'active' AND attempts = $2 AND claimed_by = $4`,
    // Only the attempt that holds the job may report on it (an abandoned one may still be running).
    setProgress: `
      UPDATE ${s}.jobs SET progress = $2, progress_message = $3, updated_at = clock_timestamp()
       WHERE id = $1 AND state = 'active' AND attempts = $4`,
    // Ends one attempt: the execution row and, in the same statement, the job's state.
    finishAttempt: `
      WITH e AS (
        UPDATE ${s}.executions SET outcome = $3, finished_at = clock_timestamp(), error = $5,
               peak_rss_mb = greatest(coalesce(peak_rss_mb, 0), $6)
         WHERE job_id = $1 AND attempt = $2 AND outcome = 'running'
        RETURNING job_id
      )
      UPDATE ${s}.jobs SET state = $4, error = CASE WHEN $4 = 'completed' THEN NULL ELSE coalesce($5, error) END, updated_at = clock_timestamp(),
             claimed_by = NULL, claim_expires_at = NULL,
             progress = CASE WHEN $4 = 'completed' THEN 100 ELSE progress END,
             finished_at = CASE WHEN $4 IN ('completed', 'failed', 'cancelled') THEN clock_timestamp() ELSE NULL END
       WHERE id = $1 AND attempts = $2 AND state = 'active'`,
    // The queue gave a job up without its handler settling it (expired or lost on the last attempt).
    failUnsettledExecutions: `
      UPDATE ${s}.executions SET outcome = 'lost', finished_at = clock_timestamp(),
             error = jsonb_build_object('code', 'JG_JOB_LOST', 'message', $2::text)
       WHERE job_id = $1 AND outcome = 'running'`,
    failUnsettledJob: `
      UPDATE ${s}.jobs SET state = 'failed', error = jsonb_build_object('code', 'JG_JOB_LOST', 'message', $2::text),
             claimed_by = NULL, claim_expires_at = NULL, finished_at = clock_timestamp(), updated_at = clock_timestamp()
       WHERE id = $1 AND state NOT IN ('completed', 'failed', 'cancelled')
      RETURNING attempts`,
    // With no attempt to report on, the job event says so itself (no execution trigger fires).
    emitFailed: `
      SELECT ${s}.emit_job_event($1, 'failed', greatest($2, 1),
        jsonb_build_object('state', 'failed', 'error', jsonb_build_object('code', 'JG_JOB_LOST', 'message', $3::text)))`,
    // Live counts per job name, plus failures of the last day, for status pages.
    countsByName: `
      SELECT name,
             count(*) FILTER (WHERE state IN ('queued', 'forwarding', 'forwarded'))::int AS queued,
             count(*) FILTER (WHERE state = 'active')::int AS active,
             count(*) FILTER (WHERE state = 'failed')::int AS failed
        FROM ${s}.jobs
       WHERE state IN ('queued', 'forwarding', 'forwarded', 'active')
          OR (state = 'failed' AND finished_at > clock_timestamp() - interval '1 day')
       GROUP BY name`,
    // one batch in one call, in per-job order (migration 010)
    applyJobEvents: `SELECT ${s}.apply_job_events($1::jsonb) AS applied`,
    // The forwarder takes queued jobs into 'forwarding'; the rest (cancelled, finished) are skipped.
    markForwarding: `
      UPDATE ${s}.jobs SET state = 'forwarding', updated_at = clock_timestamp()
       WHERE id = ANY($1::uuid[]) AND route = 'fetcher' AND state IN ('queued', 'forwarding') RETURNING id`,
    // Events may already have moved a job on (the fetcher can be faster than the answer): never back.
    markForwarded: `
      UPDATE ${s}.jobs SET state = 'forwarded', updated_at = clock_timestamp(),
             error = CASE WHEN error->>'code' = 'JG_FETCHER_REFUSES' THEN NULL ELSE error END
       WHERE id = ANY($1::uuid[]) AND route = 'fetcher' AND state IN ('queued', 'forwarding')`,
    // A job the fetcher refuses for now (a name or payload it does not know yet: deployed behind
    // main) keeps waiting with the reason, and since when, on show.
    noteRefused: `
      UPDATE ${s}.jobs SET updated_at = clock_timestamp(),
             error = jsonb_build_object('code', 'JG_FETCHER_REFUSES', 'message', $2::text,
                       'since', CASE WHEN error->>'code' = 'JG_FETCHER_REFUSES' THEN error->'since' ELSE to_jsonb(clock_timestamp()) END)
       WHERE id = ANY($1::uuid[]) AND route = 'fetcher' AND state IN ('queued', 'forwarding')`,
    refusedByFetcher: `
      SELECT name, error->>'message' AS reason, min(error->>'since') AS since, count(*)::int AS jobs
        FROM ${s}.jobs WHERE route = 'fetcher' AND state IN ('queued', 'forwarding') AND error->>'code' = 'JG_FETCHER_REFUSES'
       GROUP BY name, error->>'message' ORDER BY min(error->>'since') LIMIT 20`,
    // The override takes over jobs not yet delivered (or whose delivery is in doubt: the fetcher
    // must still claim them here, and cannot once they are main's).
    takeOverUndelivered: `
      WITH picked AS (
        SELECT id FROM ${s}.jobs
         WHERE route = 'fetcher' AND state IN ('queued', 'forwarding') AND name = ANY($4::text[])
           AND ($3::uuid[] IS NULL OR id = ANY($3::uuid[]))
         ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED
      )
      UPDATE ${s}.jobs j SET route = 'main', route_reason = $2, state = 'queued', updated_at = clock_timestamp()
        FROM picked WHERE j.id = picked.id
      RETURNING j.id, j.name, j.payload, j.priority, j.attempts, j.run_at, j.traceparent`,
    // Cancels jobs that have not started, and main's own running ones (their runner sees the claim
    // gone at its next heartbeat and stops); a job running on the fetcher is left to finish.
    cancelJobs: `
      UPDATE ${s}.jobs SET state = 'cancelled', finished_at = clock_timestamp(), updated_at = clock_timestamp(),
             error = jsonb_build_object('code', 'JG_CANCELLED', 'message', $2::text), claimed_by = NULL, claim_expires_at = NULL
       WHERE id = ANY($1::uuid[]) AND (state IN ('queued', 'forwarding', 'forwarded') OR (state = 'active' AND route = 'main'))
         -- a live claim by the fetcher means it is running there, whatever the state says: not ours to cancel
         AND NOT (route = 'fetcher' AND claimed_by IS NOT NULL AND claim_expires_at > clock_timestamp())
      RETURNING id`,
    failJobs: `
      UPDATE ${s}.jobs SET state = 'failed', error = $2, finished_at = clock_timestamp(), updated_at = clock_timestamp()
       WHERE id = ANY($1::uuid[]) AND route = 'fetcher' AND state IN ('queued', 'forwarding')`,
    // Routed jobs the fetcher has said nothing about for a while (their events may be lost).
    // Taken, not just read: a lease of at most a minute (updated_at set so that they count as quiet
    // again then) keeps the other reconcilers (several worker processes) off them; asked about,
    // they are touched, and one the fetcher could not be asked about is tried again after the lease.
    quietFetcherJobs: `
      UPDATE ${s}.jobs SET updated_at = clock_timestamp() - ($1 - least($1, 60)) * interval '1 second'
       WHERE id IN (
         SELECT id FROM ${s}.jobs
          WHERE route = 'fetcher' AND state IN ('forwarded', 'active') AND updated_at < clock_timestamp() - $1 * interval '1 second'
          ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED)
      RETURNING id, attempts, events_applied`,
    touchJob: `UPDATE ${s}.jobs SET updated_at = clock_timestamp() WHERE id = $1`,
    reconcileJob: `
      UPDATE ${s}.jobs SET state = $2, progress = $3, progress_message = $4, attempts = greatest(attempts, $5),
             error = CASE WHEN $2 = 'completed' THEN NULL ELSE coalesce($6, error) END,
             finished_at = CASE WHEN $2 IN ('completed', 'failed', 'cancelled') THEN coalesce(finished_at, clock_timestamp()) ELSE NULL END,
             updated_at = clock_timestamp()
       WHERE id = $1 AND route = 'fetcher' AND state NOT IN ('completed', 'failed', 'cancelled')
         -- only if nothing moved on main since the fetcher was asked (a later claim, an event applied)
         -- and the fetcher's answer is not older than what main knows
         AND attempts = $7 AND events_applied = $8 AND attempts <= $5`,
    reconcileExecution: `
      INSERT INTO ${s}.executions (job_id, attempt, ran_on, started_at, finished_at, outcome, error, peak_rss_mb)
      VALUES ($1, $2, 'fetcher', $3, $4, $5, $6, $7)
      ON CONFLICT (job_id, attempt) DO UPDATE
        SET finished_at = excluded.finished_at, outcome = excluded.outcome, error = excluded.error,
            peak_rss_mb = coalesce(excluded.peak_rss_mb, ${s}.executions.peak_rss_mb)`,
    // Fetcher jobs not yet delivered: how many, and how long the oldest has waited.
    outboxStats: `
      SELECT count(*)::int AS pending,
             coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0)::float8 AS oldest_age_seconds,
             count(*) FILTER (WHERE error->>'code' = 'JG_FETCHER_REFUSES')::int AS refused
        FROM ${s}.jobs WHERE route = 'fetcher' AND state IN ('queued', 'forwarding')`,
    // Any job routed to the fetcher that has not finished (the fetcher must stay awake for it).
    hasUnfinishedFetcherJobs: `
      SELECT EXISTS (SELECT 1 FROM ${s}.jobs WHERE route = 'fetcher' AND state IN ('queued', 'forwarding', 'forwarded', 'active')) AS pending`,
    setEmitEvents: `
      INSERT INTO ${s}.ledger_settings (key, value) VALUES ('emit_events', to_jsonb($1::boolean))
      ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
    // One sender at a time per ledger, so events leave in order; the lock ends with the transaction.
    lockEventSender: `SELECT pg_try_advisory_xact_lock(hashtext('jobgate.events.' || $1)) AS locked`,
    pendingEvents: `
      SELECT e.seq, e.job_id, e.job_seq, e.type, e.attempt, e.at, e.data, j.traceparent
        FROM ${s}.job_events e LEFT JOIN ${s}.jobs j ON j.id = e.job_id WHERE e.set_aside_at IS NULL ORDER BY e.seq LIMIT $1`,
    ackEvents: `DELETE FROM ${s}.job_events WHERE seq = ANY($1::bigint[])`,
    setEventsAside: `
      UPDATE ${s}.job_events SET set_aside_at = clock_timestamp(), set_aside_reason = r.reason
        FROM unnest($1::bigint[], $2::text[]) AS r(seq, reason) WHERE ${s}.job_events.seq = r.seq`,
    eventsSetAside: `
      SELECT count(*)::int AS n, min(set_aside_at) AS since FROM ${s}.job_events WHERE set_aside_at IS NOT NULL`,
    resendSetAside: `UPDATE ${s}.job_events SET set_aside_at = NULL, set_aside_reason = NULL WHERE set_aside_at IS NOT NULL`,
    deleteFinishedBefore: `
      DELETE FROM ${s}.jobs WHERE id IN (
        SELECT id FROM ${s}.jobs WHERE finished_at < clock_timestamp() - $1 * interval '1 second' LIMIT $2)`,
  };
}

type Row = Record<string, any>;
const iso = (v: unknown) => (v instanceof Date ? v.toISOString() : (v as string | undefined));

function toJob(row: Row): JobRecord {
  return {
    id: row.id,
    name: row.name,
    route: row.route,
    routeReason: row.route_reason,
    state: row.state,
    ...(row.retried_as ? { retriedAs: row.retried_as } : {}),
    payload: row.payload,
    priority: row.priority,
    progress: row.progress,
    ...(row.progress_message ? { progressMessage: row.progress_message } : {}),
    attempts: row.attempts,
    maxAttempts: row.max_attempts,
    runAt: iso(row.run_at)!,
    createdAt: iso(row.created_at)!,
    updatedAt: iso(row.updated_at)!,
    ...(row.started_at ? { startedAt: iso(row.started_at) } : {}),
    ...(row.finished_at ? { finishedAt: iso(row.finished_at) } : {}),
    ...(row.error ? { error: row.error } : {}),
    ...(row.traceparent ? { traceparent: row.traceparent } : {}),
  };
}

function toExecution(row: Row): Execution {
  return {
    attempt: row.attempt,
    ranOn: row.ran_on,
    startedAt: iso(row.started_at)!,
    ...(row.finished_at ? { finishedAt: iso(row.finished_at) } : {}),
    outcome: row.outcome,
    ...(row.error ? { error: row.error } : {}),
    ...(row.peak_rss_mb !== null ? { peakRssMb: row.peak_rss_mb } : {}),
  };
}

export function encodeCursor(createdAt: string, id: string): string {
  return Buffer.from(`${createdAt}|${id}`).toString('base64url');
}

export function parseCursor(cursor: string): { createdAt: string; id: string } | null {
  const [createdAt, id, extra] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  // only the shape this API hands out (PostgreSQL's timestamptz text and a uuid): anything else
  // would reach the query and fail there as a 500
  if (!createdAt || !id || extra !== undefined) return null;
  const at = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?)(?:([+-]\d{2})(?::?(\d{2}))?|Z)$/.exec(createdAt);
  if (!at) return null;
  // PostgreSQL has no year 0 (and a cursor we gave out never holds one)
  if (at[1]!.startsWith('0000')) return null;
  const iso = `${at[1]}T${at[2]}${at[3] ? `${at[3]}:${at[4] ?? '00'}` : 'Z'}`;
  // a real date: Date.parse rolls 02-30 over, so compare the day back
  if (Number.isNaN(Date.parse(iso)) || new Date(Date.parse(iso) + (at[3] ? Number(at[3]) * 3_600_000 + Math.sign(Number(at[3])) * Number(at[4] ?? 0) * 60_000 : 0)).toISOString().slice(0, 10) !== at[1]) return null;
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) return null;
  return { createdAt, id };
}

export interface TakenOver {
  id: string;
  name: string;
  payload: unknown;
  priority: number;
  /** Attempts made so far (on the fetcher); main numbers its own after them. */
  attempts: number;
  runAt: Date;
  traceparent?: string;
}

/**
 * The jobs list's statement. Only the filters given become conditions, so each can use its own
 * index (`state = $1` on jobs_by_state, the payload's containment on the GIN index); a catch-all
 * `($1 IS NULL OR state = $1)` would leave the planner only the created_at index.
 */
export function listJobsQuery(schema: string, filter: ListFilter): { text: string; values: unknown[] } {
  const values: unknown[] = [];
  const param = (v: unknown) => (values.push(v), `$${values.length}`);
  const where: string[] = [];
  if (filter.state) where.push(`state = ${param(filter.state)}`);
  if (filter.states?.length) where.push(`state = ANY(${param(filter.states)}::text[])`);
  if (filter.notRetried) where.push('retried_as IS NULL');
  if (filter.name) where.push(`name = ${param(filter.name)}`);
  if (filter.route) where.push(`route = ${param(filter.route)}`);
  if (filter.payload?.length) where.push(`(${filter.payload.map((p) => `payload @> ${param(JSON.stringify(p))}::jsonb`).join(' OR ')})`);
  if (filter.cursor) where.push(`(created_at, id) < (${param(filter.cursor.createdAt)}::timestamptz, ${param(filter.cursor.id)}::uuid)`);
  return {
    text: `SELECT ${JOB_COLUMNS}, created_at::text AS cursor_at FROM ${assertSchemaName(schema)}.jobs
            ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
            ORDER BY created_at DESC, id DESC LIMIT ${param(filter.limit + 1)}`,
    values,
  };
}

export type ClaimResult = { outcome: 'claimed' | 'gone' } | { outcome: 'wait'; waitMs: number };

export type Ledger = ReturnType<typeof createLedger>;

/** Our job ledger and executions over `pool`, in `schema` (see migrations/). */
export function createLedger(pool: Pool, schema: string) {
  const sql = plans(schema);
  return {
    schema,
    /** Inserts a queued job; `null` when a live job with the same unique key exists. */
    async insertJob(job: NewJob, db: Queryable = pool): Promise<JobRecord | null> {
      const { rows } = await db.query(sql.insertJob(), insertJobValues(job));
      return rows[0] ? toJob(rows[0]) : null;
    },
    /**
     * insertJob as parameter-less SQL that inserts only if `onlyIf` holds, to share one round trip
     * with the job's queue entry (see runTogether); read its row with `toJob`.
     */
    insertJobStatement(job: NewJob, onlyIf: string): string {
      return inlineParams(sql.insertJob(onlyIf), insertJobValues(job));
    },
    toJob,
    /**
     * Inserts the jobs whose id is new, in one statement. For each: `inserted`, or not and then
     * `same` (the job already here has this name and payload) or not (the id is reused for another job).
     */
    async insertBatchIfAbsent(jobs: Array<Omit<NewJob, 'uniqueKey'>>, db: Queryable = pool): Promise<Array<{ id: string; inserted: boolean; same: boolean }>> {
      const input = jobs.map((j) => ({ id: j.id, name: j.name, route: j.route, payload: j.payload, priority: j.priority, max_attempts: j.maxAttempts, delay_seconds: j.delaySeconds, traceparent: j.traceparent ?? null }));
      const { rows } = await db.query(sql.insertBatchIfAbsent, [JSON.stringify(input)]);
      return rows as Array<{ id: string; inserted: boolean; same: boolean }>;
    },
    async findLiveByUniqueKey(name: string, uniqueKey: string, db: Queryable = pool): Promise<JobRecord | null> {
      const { rows } = await db.query(sql.findLiveByUniqueKey, [name, uniqueKey]);
      return rows[0] ? toJob(rows[0]) : null;
    },
    async getJob(id: string, options: { executions?: boolean } = {}): Promise<JobRecord | null> {
      const { rows } = await pool.query(sql.getJob, [id]);
      if (!rows[0]) return null;
      const job = toJob(rows[0]);
      if (options.executions) job.executions = (await pool.query(sql.getExecutions, [id])).rows.map(toExecution);
      return job;
    },
    /** Newest first, with keyset paging (see listJobsQuery). */
    async listJobs(filter: ListFilter): Promise<{ jobs: JobRecord[]; nextCursor: string | null }> {
      const query = listJobsQuery(schema, filter);
      const { rows } = await pool.query(query.text, query.values);
      const page = rows.slice(0, filter.limit);
      const last = page.at(-1);
      return {
        jobs: page.map(toJob),
        nextCursor: rows.length > filter.limit && last ? encodeCursor(last.cursor_at, last.id) : null,
      };
    },
    async claimAttempt(args: { id: string; attempt: number; ranOn: Route; concurrency: number | null; perSecond: number | null; claimSeconds: number }): Promise<ClaimResult> {
      const { rows } = await pool.query(sql.claimAttempt, [args.id, args.attempt, args.ranOn, args.concurrency, args.perSecond, args.claimSeconds]);
      const row = rows[0] as { outcome: 'claimed' | 'gone' | 'wait'; wait_ms: number };
      return row.outcome === 'wait' ? { outcome: 'wait', waitMs: row.wait_ms } : { outcome: row.outcome };
    },
    /** False when this attempt no longer holds the job (its claim was taken over). */
    async refreshClaim(id: string, attempt: number, claimSeconds: number, ranOn: Route): Promise<boolean> {
      const { rowCount } = await pool.query(sql.refreshClaim, [id, attempt, claimSeconds, ranOn]);
      return (rowCount ?? 0) > 0;
    },
    async setProgress(id: string, attempt: number, percent: number, message: string | null): Promise<void> {
      await pool.query(sql.setProgress, [id, percent, message, attempt]);
    },
    /** Ends an attempt; `state` is the job's next state (`queued` when a retry follows). */
    async finishAttempt(args: { id: string; attempt: number; outcome: Exclude<Outcome, 'running'>; state: JobState; error: ErrorInfo | null; peakRssMb: number }): Promise<void> {
      await pool.query(sql.finishAttempt, [args.id, args.attempt, args.outcome, args.state, args.error ? JSON.stringify(args.error) : null, args.peakRssMb]);
    },
    async failUnsettled(id: string, message: string): Promise<boolean> {
      return withTransaction(pool, async (client) => {
        // The job first: the execution trigger then reports the lost attempt with the job failed.
        const failed = await client.query(sql.failUnsettledJob, [id, message]);
        if (!failed.rows[0]) return false;
        const lost = await client.query(sql.failUnsettledExecutions, [id, message]);
        if (!lost.rowCount) await client.query(sql.emitFailed, [id, failed.rows[0].attempts, message]);
        return true;
      });
    },
    async countsByName(): Promise<Record<string, { queued: number; active: number; failed: number }>> {
      const { rows } = await pool.query(sql.countsByName);
      return Object.fromEntries(rows.map((r) => [r.name, { queued: r.queued, active: r.active, failed: r.failed }]));
    },
    /**
     * Applies the fetcher's events, each once and in per-job order, in one transaction.
     * Returns how many were new and how many had been applied before.
     */
    async applyEvents(events: AppliedEvent[]): Promise<{ applied: number; ignored: number }> {
      const batch = events.map((e) => ({
        job: e.jobId, seq: e.seq, type: e.type, attempt: e.attempt, at: e.at, state: e.state ?? null, started_at: e.startedAt ?? null,
        finished_at: e.finishedAt ?? null, progress: e.progress ?? null, message: e.message ?? null, error: e.error ?? null, peak_rss_mb: e.peakRssMb ?? null,
      }));
      const { rows } = await pool.query(sql.applyJobEvents, [JSON.stringify(batch)]);
      const applied = rows[0].applied as number;
      return { applied, ignored: events.length - applied };
    },
    /** Ids (of `ids`) now being forwarded; the others are cancelled or finished and must not go. */
    async markForwarding(ids: string[]): Promise<Set<string>> {
      const { rows } = await pool.query(sql.markForwarding, [ids]);
      return new Set(rows.map((r) => r.id as string));
    },
    async markForwarded(ids: string[]): Promise<void> {
      await pool.query(sql.markForwarded, [ids]);
    },
    /**
     * Makes up to `limit` undelivered fetcher jobs main's (oldest first, or those of `ids`), of the
     * job `names` main can run, in the caller's transaction; the caller queues them on main in it.
     */
    async takeOverUndelivered(db: Queryable, limit: number, reason: Exclude<RouteReason, 'definition'>, names: string[], ids: string[] | null = null): Promise<TakenOver[]> {
      const { rows } = await db.query(sql.takeOverUndelivered, [limit, reason, ids, names]);
      return rows.map((r) => ({ id: r.id, name: r.name, payload: r.payload, priority: r.priority, attempts: r.attempts, runAt: r.run_at as Date, ...(r.traceparent ? { traceparent: r.traceparent } : {}) }));
    },
    /** Marks `id` as retried by `newId`; false if it already was, or if an attempt of it still runs. */
    async markRetried(id: string, newId: string, db: Queryable = pool): Promise<boolean> {
      // not while an attempt of it still runs (a job cancelled under a running handler stops at
      // the runner's next heartbeat): the copy would run beside it
      const s = assertSchemaName(schema);
      const { rowCount } = await db.query(
        `UPDATE ${s}.jobs SET retried_as = $2 WHERE id = $1 AND retried_as IS NULL
            AND NOT EXISTS (SELECT 1 FROM ${s}.executions WHERE job_id = $1 AND outcome = 'running')`,
        [id, newId],
      );
      return (rowCount ?? 0) > 0;
    },
    /** A running attempt whose job was cancelled under it: the attempt ends as failed, JG_CANCELLED. */
    async endCancelledAttempt(id: string, attempt: number, peakRssMb: number): Promise<void> {
      await pool.query(
        `UPDATE ${assertSchemaName(schema)}.executions SET outcome = 'failed', finished_at = clock_timestamp(), peak_rss_mb = $3,
                error = jsonb_build_object('code', 'JG_CANCELLED', 'message', 'the job was cancelled while this attempt ran')
          WHERE job_id = $1 AND attempt = $2 AND outcome = 'running'`,
        [id, attempt, peakRssMb],
      );
    },
    /** Ids (of `ids`) now cancelled; see the statement for which can be. */
    async cancelJobs(ids: string[], reason: string): Promise<string[]> {
      const { rows } = await pool.query(sql.cancelJobs, [ids, reason]);
      return rows.map((r) => r.id as string);
    },
    async failJobs(ids: string[], error: ErrorInfo): Promise<void> {
      await pool.query(sql.failJobs, [ids, JSON.stringify(error)]);
    },
    /** Quiet routed jobs, each with what main knew of it when taken (the reconciler's guard). */
    async quietFetcherJobs(olderThanSeconds: number, limit: number): Promise<Array<{ id: string; attempts: number; eventsApplied: number }>> {
      const { rows } = await pool.query(sql.quietFetcherJobs, [olderThanSeconds, limit]);
      return rows.map((r) => ({ id: r.id as string, attempts: r.attempts as number, eventsApplied: r.events_applied as number }));
    },
    /**
     * Brings a routed job in line with what the fetcher says of it (a lost event's repair): its
     * state, progress and executions. A job main already finished is left alone.
     */
    async reconcileFromFetcher(
      job: { id: string; attempts: number; eventsApplied: number },
      seen: { state: string; progress: number; progressMessage?: string; attempts: number; error?: ErrorInfo; executions?: Array<Omit<Execution, 'ranOn'>> },
    ): Promise<boolean> {
      const { id } = job;
      return withTransaction(pool, async (client) => {
        const state = seen.state === 'queued' ? 'forwarded' : seen.state;
        const { rowCount } = await client.query(sql.reconcileJob, [id, state, seen.progress, seen.progressMessage ?? null, seen.attempts, seen.error ? JSON.stringify(seen.error) : null, job.attempts, job.eventsApplied]);
        if (!rowCount) return false;
        for (const e of seen.executions ?? []) {
          await client.query(sql.reconcileExecution, [id, e.attempt, e.startedAt, e.finishedAt ?? null, e.outcome, e.error ? JSON.stringify(e.error) : null, e.peakRssMb ?? null]);
        }
        return true;
      });
    },
    async touchJob(id: string): Promise<void> {
      await pool.query(sql.touchJob, [id]);
    },
    /** Undelivered fetcher jobs: how many, the oldest's age, and how many of them the fetcher refuses for now. */
    async outboxStats(): Promise<{ pending: number; oldestAgeSeconds: number; refused: number }> {
      const { rows } = await pool.query(sql.outboxStats);
      return { pending: rows[0].pending, oldestAgeSeconds: Math.round(rows[0].oldest_age_seconds * 10) / 10, refused: rows[0].refused };
    },
    /** Keeps these jobs waiting with the fetcher's reason (the first refusal's time is kept). */
    async noteRefused(ids: string[], reason: string): Promise<void> {
      await pool.query(sql.noteRefused, [ids, reason]);
    },
    /** The jobs the fetcher refuses for now, by name and reason, with since when. */
    async refusedByFetcher(): Promise<Array<{ name: string; reason: string; since: string; jobs: number }>> {
      const { rows } = await pool.query(sql.refusedByFetcher);
      return rows.map((r) => ({ name: r.name, reason: r.reason, since: r.since, jobs: r.jobs }));
    },
    async hasUnfinishedFetcherJobs(): Promise<boolean> {
      const { rows } = await pool.query(sql.hasUnfinishedFetcherJobs);
      return rows[0].pending as boolean;
    },
    /** Makes every state change of a job also write a job event (the fetcher's ledger does). */
    async setEmitEvents(on: boolean): Promise<void> {
      await pool.query(sql.setEmitEvents, [on]);
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
    /** Deletes finished jobs (and, by cascade, their executions) older than `olderThanSeconds`, in batches. */
    async deleteFinished(olderThanSeconds: number, batchSize = 1000): Promise<number> {
      let total = 0;
      for (;;) {
        const { rowCount } = await pool.query(sql.deleteFinishedBefore, [olderThanSeconds, batchSize]);
        total += rowCount ?? 0;
        if ((rowCount ?? 0) < batchSize) return total;
      }
    },
  };
}

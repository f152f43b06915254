import type { Pool } from 'pg';
import { assertSchemaName } from './schema-name.ts';
import { inlineParams } from './one-round-trip.ts';
import { prepared, withTransaction } from './transaction.ts';
import { coalesce } from '../support/coalesce.ts';
import { canonicalTimestamp } from '../support/timestamp.ts';
import type { ErrorCode } from '../support/errors.ts';
import type { JobEvent } from '../protocol/wire.ts';
import type { Pause } from './pauses.ts';
import type { FinishedRow } from './rollup.ts';
import { recordPlans } from './queue-records.ts';

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
  /** Why the attempt (or the job) failed; a fetcher of a newer version may report a code this version does not list. */
  code: ErrorCode;
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
  /** The job whose handler enqueued this one (ctx.performLater). */
  parentId?: string;
  /** The batch this job is a member of. */
  memberOf?: string;
  /** The batch this job's handler opened (the latest, if several): GET /api/batches/:id. */
  batchId?: string;
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
  /** The pause a waiting job waits for (its name's, or `*`): it starts no attempt until resumed. Main's views only. */
  pausedBy?: Pause;
}

/**
 * A job event as the fetcher's outbox stores it (written by the emit_job_event trigger, migrations
 * 004/010): the wire shape (protocol/wire.ts JobEvent, the one definition) split into the columns
 * every event has and `data`, the rest of it. Main applies JobEvents as they come over the wire.
 */
export interface StoredEvent {
  /** Position in the outbox (set aside and acknowledged by it). */
  seq: number;
  jobId: JobEvent['jobId'];
  /** The event's number within its job (JobEvent.seq). */
  jobSeq: JobEvent['seq'];
  type: JobEvent['type'];
  attempt: JobEvent['attempt'];
  at: JobEvent['at'];
  data: Omit<Partial<JobEvent>, 'jobId' | 'seq' | 'type' | 'attempt' | 'at' | 'traceparent'>;
  traceparent?: JobEvent['traceparent'];
}

/** A stored event as it goes over the wire. */
export function toWireEvent(e: StoredEvent): JobEvent {
  return { jobId: e.jobId, seq: e.jobSeq, type: e.type, attempt: e.attempt, at: e.at, ...e.data, ...(e.traceparent ? { traceparent: e.traceparent } : {}) };
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
  /** The id of the request that enqueued it (it goes to the fetcher with a routed job). */
  requestId?: string;
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
  /** Jobs created before this time (ISO 8601). */
  createdBefore?: string;
  limit: number;
  cursor?: { createdAt: string; id: string };
}

/** A job is live (not finished) in these states: a `unique` job has at most one live twin. */
export const LIVE_STATES = ['queued', 'forwarding', 'forwarded', 'active'] as const satisfies readonly JobState[];
/** A job waiting to run, wherever it is. */
export const WAITING_STATES = ['queued', 'forwarding', 'forwarded'] as const satisfies readonly JobState[];
/** A state list as SQL, e.g. `('queued', 'forwarding')`. Only these constants go in, never input. */
export const inStates = (states: readonly JobState[]) => `(${states.map((s) => `'${s}'`).join(', ')})`;
export const JOB_COLUMNS = `id, name, route, route_reason, retried_as, state, payload, priority, progress, progress_message, attempts, max_attempts,
  run_at, created_at, updated_at, started_at, finished_at, error, traceparent, parent_id, batch_id`;

/** What a statement that finishes jobs answers, for the overview's rollup (rollup.ts). */
export const finishedColumns = (alias = '') => ['name', 'route', 'state', 'run_at', 'started_at', 'finished_at'].map((c) => (alias ? `${alias}.${c}` : c)).join(', ');

export const insertJobValues = (job: NewJob) => [
  job.id, job.name, job.route, JSON.stringify(job.payload), job.priority, job.uniqueKey, job.maxAttempts, job.delaySeconds, job.routeReason ?? 'definition', job.traceparent ?? null,
  job.requestId ?? null,
];

/**
 * Writes the rows of attempts a statement just ended. `ended` selects (id, attempt, outcome, error,
 * ran_on, started_at, peak_rss_mb, always): an attempt's row is written when it did not complete
 * its job (or `always`), and updated where it has one (running: the fetcher's ledger writes it as
 * the attempt starts). An attempt that completes its job is the job's row (migration 026).
 */
const endAttempts = (s: string, ended: string) => `
        INSERT INTO ${s}.executions AS ex (job_id, attempt, ran_on, started_at, outcome, finished_at, error, peak_rss_mb)
        SELECT a.id, a.attempt, a.ran_on, a.started_at, a.outcome, clock_timestamp(), a.error, a.peak_rss_mb
          FROM (${ended}) a
         WHERE a.always OR a.outcome <> 'completed' OR EXISTS (SELECT 1 FROM ${s}.executions x WHERE x.job_id = a.id AND x.attempt = a.attempt)
        ON CONFLICT (job_id, attempt) DO UPDATE
          SET outcome = excluded.outcome, finished_at = excluded.finished_at, error = excluded.error,
              peak_rss_mb = greatest(coalesce(ex.peak_rss_mb, 0), excluded.peak_rss_mb)
         WHERE ex.outcome = 'running'`;

/**
 * Whether the attempt `attempt` of job `id`, ending in job state `state`, sends its 'completed'
 * event from the statement that ends it: where this ledger sends events (the fetcher's) and the
 * attempt has no execution row (an attempt claimed by this release: migration 029). An attempt
 * with a row (claimed by the previous release) or that did not complete sends it from its row.
 */
const completesWithEvent = (s: string, id: string, attempt: string, state: string) => `(
          ${state} = 'completed'
          AND coalesce((SELECT (value #>> '{}')::boolean FROM ${s}.ledger_settings WHERE key = 'emit_events'), false)
          AND NOT EXISTS (SELECT 1 FROM ${s}.executions own WHERE own.job_id = ${id} AND own.attempt = ${attempt}))`;

/**
 * The 'completed' event of the attempts `ended` (a CTE returning endAttempts' columns, the job's
 * new event_seq, max_attempts and emits) completed, in the shape executions_emit gives every other
 * event.
 */
const completedEvent = (s: string, ended: string) => `
        INSERT INTO ${s}.job_events (job_id, job_seq, type, attempt, data)
        SELECT id, event_seq, 'completed', attempts,
               jsonb_strip_nulls(jsonb_build_object('state', 'completed', 'maxAttempts', max_attempts, 'startedAt', began,
                                                    'finishedAt', finished_at, 'peakRssMb', attempt_peak_rss_mb))
          FROM ${ended} WHERE emits`;

/** What endAttempts needs of a job a statement ended, as RETURNING columns of `alias`. */
const attemptColumns = (alias: string) => `${alias}.id, ${alias}.attempts, ${alias}.route AS ran_on, coalesce(${alias}.attempt_started_at, ${alias}.started_at, ${alias}.created_at) AS began, ${alias}.attempt_peak_rss_mb`;

/** The ledger's SQL, as small named statements with `$n` parameters over one validated schema. */
function plans(schema: string) {
  const s = assertSchemaName(schema);
  return {
    // with the batch its handler opened last, if any (migration 018)
    getJob: `SELECT ${JOB_COLUMNS}, (SELECT b.id FROM ${s}.batches b WHERE b.parent_id = $1 ORDER BY b.created_at DESC, b.id LIMIT 1) AS opened_batch
               FROM ${s}.jobs WHERE id = $1`,
    // every attempt: its execution row, or what the job's row says of its latest (migration 026)
    getExecutions: `
      SELECT attempt, ran_on, started_at, finished_at, outcome, error, peak_rss_mb
        FROM ${s}.attempts WHERE job_id = $1 ORDER BY attempt`,
    executionRows: `
      SELECT attempt, ran_on, started_at, finished_at, outcome, error, peak_rss_mb
        FROM ${s}.executions WHERE job_id = $1 ORDER BY attempt`,
    // (the attempt's execution row only where its events are sent from it: migration 026)
    claimAttempt: `SELECT outcome, wait_ms FROM ${s}.claim_attempt($1, $2, $3, $4, $5, $6, false)`,
    // many ungated claims in one call (migration 016), each answer with its claim's place in the call (n)
    claimAttempts: `SELECT n, outcome, wait_ms FROM ${s}.claim_attempts($1::jsonb)`,
    refreshClaim: `
      UPDATE ${s}.jobs SET claim_expires_at = clock_timestamp() + $3 * interval '1 second'
       WHERE id = $1 AND state = 'active' AND attempts = $2 AND claimed_by = $4`,
    // Only the attempt that holds the job may report on it (an abandoned one may still be running).
    setProgress: `
      UPDATE ${s}.jobs SET progress = $2, progress_message = $3, updated_at = clock_timestamp()
       WHERE id = $1 AND state = 'active' AND attempts = $4`,
    // Ends one attempt: the job's state and, in the same statement, the attempt's row (endAttempts).
    // A job cancelled while the attempt ran (its handler ended before its heartbeat heard) stays
    // cancelled; the claim the cancel left it goes, and the attempt's row says how it ended.
    finishAttempt: `
      WITH i AS (
        SELECT ${completesWithEvent(s, '$1::uuid', '$2::integer', '$4::text')} AS emits
      ), j AS (
        UPDATE ${s}.jobs SET state = $4, error = CASE WHEN $4 = 'completed' THEN NULL ELSE coalesce($5, error) END, updated_at = clock_timestamp(),
               claimed_by = NULL, claim_expires_at = NULL,
               progress = CASE WHEN $4 = 'completed' THEN 100 ELSE progress END,
               attempt_peak_rss_mb = greatest(coalesce(attempt_peak_rss_mb, 0), $6),
               finished_at = CASE WHEN $4 IN ('completed', 'failed', 'cancelled') THEN clock_timestamp() ELSE NULL END,
               event_seq = event_seq + (SELECT emits::integer FROM i)
         WHERE id = $1 AND attempts = $2 AND state = 'active'
        RETURNING ${attemptColumns(`${s}.jobs`)}, ${finishedColumns()}, ${s}.jobs.event_seq, ${s}.jobs.max_attempts, (SELECT emits FROM i) AS emits
      ), ev AS (${completedEvent(s, 'j')}
      ), c AS (
        UPDATE ${s}.jobs SET claimed_by = NULL, claim_expires_at = NULL, attempt_peak_rss_mb = greatest(coalesce(attempt_peak_rss_mb, 0), $6)
         WHERE id = $1 AND attempts = $2 AND state = 'cancelled' AND claimed_by IS NOT NULL
        RETURNING ${attemptColumns(`${s}.jobs`)}
      ), e AS (
        ${endAttempts(s, `SELECT id, attempts AS attempt, $3::text AS outcome, $5::jsonb AS error, ran_on, began AS started_at, attempt_peak_rss_mb AS peak_rss_mb, false AS always FROM j
                    UNION ALL SELECT id, attempts, $3::text, $5::jsonb, ran_on, began, attempt_peak_rss_mb, true FROM c`)}
      )
      SELECT name, ran_on AS route, state, run_at, started_at, finished_at FROM j`,
    // The same for attempts that end together ($2: their ids, so that each row is found by its key).
    // (the jobs first, in id order, as every statement that changes several jobs locks them)
    finishAttempts: `
      WITH locked AS (
        SELECT id FROM ${s}.jobs WHERE id = ANY($2::uuid[]) ORDER BY id FOR UPDATE
      ), input AS (
        SELECT x.*, ${completesWithEvent(s, 'x.id', 'x.attempt', 'x.state')} AS emits
          FROM jsonb_to_recordset($1::jsonb) AS x(id uuid, attempt integer, outcome text, state text, error jsonb, peak_rss_mb integer)
      ), j AS (
        UPDATE ${s}.jobs j SET state = i.state, error = CASE WHEN i.state = 'completed' THEN NULL ELSE coalesce(i.error, j.error) END,
               updated_at = clock_timestamp(), claimed_by = NULL, claim_expires_at = NULL,
               progress = CASE WHEN i.state = 'completed' THEN 100 ELSE j.progress END,
               attempt_peak_rss_mb = greatest(coalesce(j.attempt_peak_rss_mb, 0), i.peak_rss_mb),
               finished_at = CASE WHEN i.state IN ('completed', 'failed', 'cancelled') THEN clock_timestamp() ELSE NULL END,
               event_seq = j.event_seq + i.emits::integer
          FROM input i
         WHERE j.id IN (SELECT id FROM locked) AND j.id = i.id AND j.attempts = i.attempt AND j.state = 'active'
        RETURNING ${attemptColumns('j')}, j.name, j.state, j.run_at, j.started_at, j.finished_at, j.event_seq, j.max_attempts, i.emits
      ), ev AS (${completedEvent(s, 'j')}
      ), c AS (
        UPDATE ${s}.jobs c SET claimed_by = NULL, claim_expires_at = NULL, attempt_peak_rss_mb = greatest(coalesce(c.attempt_peak_rss_mb, 0), i.peak_rss_mb)
          FROM input i
         WHERE c.id IN (SELECT id FROM locked) AND c.id = i.id AND c.attempts = i.attempt AND c.state = 'cancelled' AND c.claimed_by IS NOT NULL
        RETURNING ${attemptColumns('c')}
      ), e AS (
        ${endAttempts(s, `SELECT j.id, j.attempts AS attempt, i.outcome, i.error, j.ran_on, j.began AS started_at, j.attempt_peak_rss_mb AS peak_rss_mb, false AS always
                      FROM j JOIN input i ON i.id = j.id AND i.attempt = j.attempts
                    UNION ALL
                    SELECT c.id, c.attempts, i.outcome, i.error, c.ran_on, c.began, c.attempt_peak_rss_mb, true
                      FROM c JOIN input i ON i.id = c.id AND i.attempt = c.attempts`)}
      )
      SELECT name, ran_on AS route, state, run_at, started_at, finished_at FROM j`,
    // An attempt claimed here that must not start after all (main says its job is paused): the job
    // waits as before the claim, with no execution of it (its 'active' event, if sent, main ignores:
    // main never granted the attempt).
    releaseAttempt: `
      WITH released AS (
        UPDATE ${s}.jobs SET state = 'queued', attempts = $2 - 1, claimed_by = NULL, claim_expires_at = NULL,
               started_at = CASE WHEN $2 = 1 THEN NULL ELSE started_at END, updated_at = clock_timestamp()
         WHERE id = $1 AND state = 'active' AND attempts = $2 AND claimed_by = $3
        RETURNING id
      )
      DELETE FROM ${s}.executions WHERE job_id IN (SELECT id FROM released) AND attempt = $2 AND outcome = 'running'`,
    // The queue gave a job up without its handler settling it (expired or lost on the last attempt).
    failUnsettledExecutions: `
      UPDATE ${s}.executions SET outcome = 'lost', finished_at = clock_timestamp(),
             error = jsonb_build_object('code', 'JG_JOB_LOST', 'message', $2::text)
       WHERE job_id = $1 AND outcome = 'running'`,
    // ... and the attempt that held it, when it has no row (main's: migration 026)
    lostAttempt: `
      INSERT INTO ${s}.executions (job_id, attempt, ran_on, started_at, outcome, finished_at, error, peak_rss_mb)
      SELECT id, attempts, route, coalesce(attempt_started_at, started_at, created_at), 'lost', clock_timestamp(),
             jsonb_build_object('code', 'JG_JOB_LOST', 'message', $2::text), attempt_peak_rss_mb
        FROM ${s}.jobs WHERE id = $1 AND attempts > 0
      ON CONFLICT (job_id, attempt) DO NOTHING`,
    failUnsettledJob: `
      WITH was AS (
        SELECT id, state FROM ${s}.jobs WHERE id = $1 AND state NOT IN ('completed', 'failed', 'cancelled') FOR UPDATE
      )
      UPDATE ${s}.jobs j SET state = 'failed', error = jsonb_build_object('code', 'JG_JOB_LOST', 'message', $2::text),
             claimed_by = NULL, claim_expires_at = NULL, finished_at = clock_timestamp(), updated_at = clock_timestamp()
        FROM was WHERE j.id = was.id
      RETURNING j.attempts, was.state AS was, ${finishedColumns('j')}`,
    // A running attempt whose job was cancelled under it ends as failed (JG_CANCELLED): its row,
    // and the claim the cancel left it (which said it still ran) goes.
    endCancelledAttempt: `
      WITH c AS (
        UPDATE ${s}.jobs SET claimed_by = NULL, claim_expires_at = NULL,
               attempt_peak_rss_mb = greatest(coalesce(attempt_peak_rss_mb, 0), $3)
         WHERE id = $1 AND attempts = $2 AND state = 'cancelled'
        RETURNING ${attemptColumns(`${s}.jobs`)}
      )
      ${endAttempts(s, `SELECT id, attempts AS attempt, 'failed'::text AS outcome, jsonb_build_object('code', 'JG_CANCELLED', 'message', 'the job was cancelled while this attempt ran') AS error,
                         ran_on, began AS started_at, attempt_peak_rss_mb AS peak_rss_mb, true AS always FROM c`)}`,
    // With no attempt to report on, the job event says so itself (no execution trigger fires).
    emitFailed: `
      SELECT ${s}.emit_job_event($1, 'failed', greatest($2, 1),
        jsonb_build_object('state', 'failed', 'error', jsonb_build_object('code', 'JG_JOB_LOST', 'message', $3::text)))`,
    // Live counts per job name, plus failures of the last day, for status pages; $1: only the jobs
    // of one route (main's own, not those it keeps the record of for the fetcher), or all (null).
    countsByName: `
      SELECT name,
             count(*) FILTER (WHERE state IN ${inStates(WAITING_STATES)})::int AS queued,
             count(*) FILTER (WHERE state = 'active')::int AS active,
             count(*) FILTER (WHERE state = 'failed')::int AS failed
        FROM ${s}.jobs
       WHERE (state IN ${inStates(LIVE_STATES)}
              OR (state = 'failed' AND finished_at > clock_timestamp() - interval '1 day'))
         AND ($1::text IS NULL OR route = $1)
       GROUP BY name`,
    deleteFinishedBefore: `
      DELETE FROM ${s}.jobs WHERE id IN (
        SELECT id FROM ${s}.jobs WHERE finished_at < clock_timestamp() - $1 * interval '1 second' LIMIT $2)`,
  };
}

type Row = Record<string, any>;
export const iso = (v: unknown) => (v instanceof Date ? v.toISOString() : (v as string | undefined));

export function toJob(row: Row): JobRecord {
  return {
    id: row.id,
    name: row.name,
    route: row.route,
    routeReason: row.route_reason,
    state: row.state,
    ...(row.retried_as ? { retriedAs: row.retried_as } : {}),
    ...(row.parent_id ? { parentId: row.parent_id } : {}),
    ...(row.batch_id ? { memberOf: row.batch_id } : {}),
    ...(row.opened_batch ? { batchId: row.opened_batch } : {}),
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

export function toExecution(row: Row): Execution {
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

/**
 * A record's attempts, in order: its rows in `executions` (those that failed, were lost or were
 * cancelled) and its latest, read from its pg-boss row (queue-records.ts recordAttemptsSql's rows).
 */
export function withLatestAttempt(rows: Execution[], latest: Row[]): Execution[] {
  return [...rows, ...latest.map(toExecution)].sort((a, b) => a.attempt - b.attempt);
}

export function encodeCursor(createdAt: string, id: string): string {
  return Buffer.from(`${createdAt}|${id}`).toString('base64url');
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * A jobs list cursor this API handed out (encodeCursor), with its time in canonicalTimestamp's
 * form; null for anything else, which would otherwise reach the query and fail there as a 500.
 */
export function parseCursor(cursor: string): { createdAt: string; id: string } | null {
  const [at, id, extra] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  if (!at || !id || extra !== undefined || !UUID.test(id)) return null;
  const createdAt = canonicalTimestamp(at);
  return createdAt === null ? null : { createdAt, id: id.toLowerCase() };
}

/**
 * A job filter as SQL conditions on the jobs table (ANDed; none: every job), each value a
 * parameter added through `param` (which answers its `$n`). Only the filters given become
 * conditions, so each can use its own index (`state = $1` on jobs_by_state, `name = $1` on
 * jobs_by_name); a catch-all `($1 IS NULL OR state = $1)` would leave the planner only the
 * created_at index. The payload's containment has no index (migration 031): it filters the rows
 * another condition's index reads, newest first.
 */
export function jobFilterWhere(filter: Omit<ListFilter, 'limit'>, param: (v: unknown) => string): string[] {
  const where: string[] = [];
  if (filter.state) where.push(`state = ${param(filter.state)}`);
  if (filter.states?.length) where.push(`state = ANY(${param(filter.states)}::text[])`);
  if (filter.notRetried) where.push('retried_as IS NULL');
  if (filter.name) where.push(`name = ${param(filter.name)}`);
  if (filter.route) where.push(`route = ${param(filter.route)}`);
  if (filter.payload?.length) where.push(`(${filter.payload.map((p) => `payload @> ${param(JSON.stringify(p))}::jsonb`).join(' OR ')})`);
  if (filter.createdBefore) where.push(`created_at < ${param(filter.createdBefore)}::timestamptz`);
  if (filter.cursor) where.push(`(created_at, id) < (${param(filter.cursor.createdAt)}::timestamptz, ${param(filter.cursor.id)}::uuid)`);
  return where;
}

/**
 * `bossSchema`: also the jobs whose record is their pg-boss row there (queue-records.ts), merged
 * into one page: the ledger's page and each job queue's, each read from its own index, then
 * the newest of them all.
 */
export function listJobsQuery(schema: string, filter: ListFilter, bossSchema?: string): { text: string; values: unknown[] } {
  const values: unknown[] = [];
  const param = (v: unknown) => (values.push(v), `$${values.length}`);
  const where = jobFilterWhere(filter, param);
  const limit = param(filter.limit + 1);
  const ledger = `SELECT ${JOB_COLUMNS}, created_at::text AS cursor_at FROM ${assertSchemaName(schema)}.jobs
            ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
            ORDER BY created_at DESC, id DESC LIMIT ${limit}`;
  const records = bossSchema ? recordPlans(bossSchema).listBranch(filter, param, limit) : null;
  return {
    text: records ? `SELECT * FROM ((${ledger}) UNION ALL (${records})) page ORDER BY created_at DESC, id DESC LIMIT ${limit}` : ledger,
    values,
  };
}

/**
 * claimed: run it; gone: finished, cancelled or not this side's; paused: an operator paused it (hand
 * the fetched job back, unstarted); wait: try again after waitMs (another attempt holds it, or a gate).
 */
export type ClaimResult = { outcome: 'claimed' | 'gone' | 'paused' } | { outcome: 'wait'; waitMs: number };
export interface ClaimArgs { id: string; attempt: number; ranOn: Route; concurrency: number | null; perSecond: number | null; claimSeconds: number }
export interface FinishArgs { id: string; attempt: number; outcome: Exclude<Outcome, 'running'>; state: JobState; error: ErrorInfo | null; peakRssMb: number }
const claimResult = (row: { outcome: 'claimed' | 'gone' | 'paused' | 'wait'; wait_ms: number }): ClaimResult =>
  row.outcome === 'wait' ? { outcome: 'wait', waitMs: row.wait_ms } : { outcome: row.outcome };

export type Ledger = ReturnType<typeof createLedger>;

/**
 * The job ledger and its executions over `pool`, in `schema` (see migrations/): what both sides do
 * with a job they run (claim, attempt, progress, settle, prune). Each side adds its own part:
 * main-ledger.ts, fetcher-ledger.ts. `finished` hears of every job a statement here completed or
 * failed, once that statement is committed (main counts them into the overview's rollup).
 */
export function createLedger(pool: Pool, schema: string, finished: (rows: FinishedRow[]) => void = () => {}) {
  const sql = plans(schema);

  async function claimOne(args: ClaimArgs): Promise<ClaimResult> {
    const { rows } = await pool.query(sql.claimAttempt, [args.id, args.attempt, args.ranOn, args.concurrency, args.perSecond, args.claimSeconds]);
    return claimResult(rows[0]);
  }
  const claimUngated = coalesce(
    async (claims: ClaimArgs[]): Promise<ClaimResult[]> => {
      // (one alone too: claim_attempts grants a first attempt with one UPDATE, migration 037)
      const { rows } = await pool.query(sql.claimAttempts, [JSON.stringify(claims.map((c, n) => ({ n, id: c.id, attempt: c.attempt, ran_on: c.ranOn, claim_seconds: c.claimSeconds, running_row: false })))]);
      // each answer with its place in the call
      const answers: ClaimResult[] = new Array(claims.length);
      for (const r of rows) answers[r.n as number] = claimResult(r);
      return answers;
    },
    { maxItems: 500 },
  );
  // (prepared once per connection: planning its CTEs took 0.4 ms, 0.8 ms for several ends, about as much as running it)
  const finishAttempt = coalesce(
    async (ends: FinishArgs[]): Promise<void[]> => {
      if (ends.length === 1) {
        const e = ends[0]!;
        finished((await pool.query(prepared(sql.finishAttempt, [e.id, e.attempt, e.outcome, e.state, e.error ? JSON.stringify(e.error) : null, e.peakRssMb]))).rows);
      } else {
        const input = ends.map((e) => ({ id: e.id, attempt: e.attempt, outcome: e.outcome, state: e.state, error: e.error, peak_rss_mb: e.peakRssMb }));
        finished((await pool.query(prepared(sql.finishAttempts, [JSON.stringify(input), input.map((e) => e.id)]))).rows);
      }
      return ends.map(() => undefined);
    },
    { maxItems: 500 },
  );

  return {
    schema,
    toJob,
    async getJob(id: string, options: { executions?: boolean; db?: Queryable } = {}): Promise<JobRecord | null> {
      const { rows } = await (options.db ?? pool).query(sql.getJob, [id]);
      if (!rows[0]) return null;
      const job = toJob(rows[0]);
      if (options.executions) job.executions = (await pool.query(sql.getExecutions, [id])).rows.map(toExecution);
      return job;
    },
    /** The job's rows in `executions` alone (a job without a ledger row has only those). */
    async executionRows(id: string): Promise<Execution[]> {
      return (await pool.query(sql.executionRows, [id])).rows.map(toExecution);
    },
    /**
     * Claims an attempt (claim_attempt: a compare-and-set, and the job's gates). Claims without a
     * gate that are asked for together (a fetched batch, several workers) go in one call.
     */
    async claimAttempt(args: ClaimArgs): Promise<ClaimResult> {
      if (args.concurrency !== null || args.perSecond !== null) return claimOne(args);
      return claimUngated(args);
    },
    /** False when this attempt no longer holds the job (its claim was taken over). */
    async refreshClaim(id: string, attempt: number, claimSeconds: number, ranOn: Route): Promise<boolean> {
      const { rowCount } = await pool.query(sql.refreshClaim, [id, attempt, claimSeconds, ranOn]);
      return (rowCount ?? 0) > 0;
    },
    async setProgress(id: string, attempt: number, percent: number, message: string | null): Promise<void> {
      await pool.query(sql.setProgress, [id, percent, message, attempt]);
    },
    /** Undoes this side's claim of an attempt that does not start after all (see the statement). */
    async releaseAttempt(id: string, attempt: number, ranOn: Route): Promise<void> {
      await pool.query(sql.releaseAttempt, [id, attempt, ranOn]);
    },
    /** Ends an attempt; `state` is the job's next state (`queued` when a retry follows). Attempts that end together are written together. */
    finishAttempt,
    async failUnsettled(id: string, message: string): Promise<boolean> {
      const failed = await withTransaction(pool, async (client) => {
        // The job first: the execution trigger then reports the lost attempt with the job failed.
        const failed = await client.query(sql.failUnsettledJob, [id, message]);
        if (!failed.rows[0]) return [];
        let told = ((await client.query(sql.failUnsettledExecutions, [id, message])).rowCount ?? 0) > 0;
        if (!told && failed.rows[0].was === 'active') told = ((await client.query(sql.lostAttempt, [id, message])).rowCount ?? 0) > 0;
        if (!told) await client.query(sql.emitFailed, [id, failed.rows[0].attempts, message]);
        return failed.rows;
      });
      finished(failed);
      return failed.length > 0;
    },
    /** A running attempt whose job was cancelled under it: the attempt ends as failed, JG_CANCELLED. */
    async endCancelledAttempt(id: string, attempt: number, peakRssMb: number): Promise<void> {
      await pool.query(sql.endCancelledAttempt, [id, attempt, peakRssMb]);
    },
    /** Per job name: waiting, active, and failed in the last day; `route` counts only the jobs that run there. */
    async countsByName(route?: Route): Promise<Record<string, { queued: number; active: number; failed: number }>> {
      const { rows } = await pool.query(sql.countsByName, [route ?? null]);
      return Object.fromEntries(rows.map((r) => [r.name, { queued: r.queued, active: r.active, failed: r.failed }]));
    },
    /**
     * Prunes what grows beside the jobs: the overview's rollup minutes older than `rollupDays` (it
     * shows the last day), and batches that finished (callbacks enqueued) and schedule firings
     * older than `olderThanDays`, as the jobs they count.
     */
    async pruneHistory(options: { rollupDays: number; olderThanDays: number }): Promise<{ minutes: number; batches: number; firings: number; attempts: number }> {
      const s = assertSchemaName(schema);
      const [minutes, batches, firings, attempts] = await Promise.all([
        pool.query(`DELETE FROM ${s}.job_minutes WHERE minute < clock_timestamp() - $1 * interval '1 day'`, [options.rollupDays]),
        pool.query(`DELETE FROM ${s}.batches WHERE state = 'finished' AND NOT dispatch_due AND finished_at < clock_timestamp() - $1 * interval '1 day'`, [options.olderThanDays]),
        pool.query(`DELETE FROM ${s}.schedule_runs WHERE fired_at < clock_timestamp() - $1 * interval '1 day'`, [options.olderThanDays]),
        // the attempts' rows of jobs recorded by their pg-boss row (queue-records.ts), which pg-boss
        // deletes as old (its queues' deleteAfterSeconds); a ledger job's go with it
        pool.query(
          `DELETE FROM ${s}.executions e WHERE e.finished_at < clock_timestamp() - $1 * interval '1 day' AND NOT EXISTS (SELECT 1 FROM ${s}.jobs j WHERE j.id = e.job_id)`,
          [options.olderThanDays],
        ),
      ]);
      return { minutes: minutes.rowCount ?? 0, batches: batches.rowCount ?? 0, firings: firings.rowCount ?? 0, attempts: attempts.rowCount ?? 0 };
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

// main's part of the ledger: jobs enqueued and routed, the outbox's delivery state, the events the
// fetcher reports, the override's takeover, the admin's actions, the reconciler's repairs.
import type { Pool } from 'pg';
import type { Logger } from '../support/index.ts';
import type { JobEvent } from '../protocol/wire.ts';
import { assertSchemaName } from './schema-name.ts';
import { inlineParams } from './one-round-trip.ts';
import { durably, openTransaction, withTransaction } from './transaction.ts';
import { notPaused, withPausedBy } from './pauses.ts';
import { createRollup } from './rollup.ts';
import { recordPlans } from './queue-records.ts';
import { createRecordRuns } from './record-runs.ts';
import { createLedger, encodeCursor, finishedColumns, inStates, insertJobValues, JOB_COLUMNS, jobFilterWhere, LIVE_STATES, listJobsQuery, WAITING_STATES, toJob, withLatestAttempt, type Execution, type ErrorInfo, type JobRecord, type JobState, type ListFilter, type NewJob, type Queryable, type Route, type RouteReason } from './ledger.ts';

/** A routed job main has not delivered yet (or whose delivery is in doubt): the override may take it over. */
export const UNDELIVERED_STATES = ['queued', 'forwarding'] as const satisfies readonly JobState[];

/** A fetcher job the override moved to main, as the takeover reads it. */
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

/** What the admin's cancel and delete by filter match: the list's filters (at least one, or none for every job). */
export type BulkFilter = Omit<ListFilter, 'limit' | 'cursor' | 'states' | 'notRetried'>;

/** A job a cancel or delete ended: enough to find its queue entry (main's jobs have one until they run). */
export interface EndedJob {
  id: string;
  name: string;
  route: Route;
  routeReason: RouteReason;
  /** Its state before: a `queued` job of main's still has its queue entry waiting in pg-boss. */
  was: JobState;
  /** Recorded by its pg-boss row (queue-records.ts): that row is the job, never an entry to drop. */
  record?: true;
}

/** A page of a bulk cancel or delete (MainLedger.endPage). */
export interface BulkPage {
  /** Jobs the page read, and those of them it cancelled or deleted. */
  seen: number;
  ended: number;
  /** Where the next page starts (absent: the page was empty). */
  next?: { createdAt: string; id: string };
  /** Main's jobs among the ended that had not started, by name and route reason: their queue entries are still in pg-boss. */
  entries: QueueEntries;
}

/** Ids from `from` (inclusive) to `below` (exclusive); either end open when absent. */
export interface IdRange {
  from?: string;
  below?: string;
}

/** Jobs of main's whose pg-boss entries are to go, by name and route reason (which say their queue). */
export type QueueEntries = Array<{ name: string; routeReason: RouteReason; ids: string[] }>;

/** Finished, the states a delete acts on. */
export const FINISHED_STATES = ['completed', 'failed', 'cancelled'] as const satisfies readonly JobState[];

const toForward = (r: Record<string, any>): ToForward => ({ id: r.id, name: r.name, payload: r.payload, priority: r.priority, ...(r.request_id ? { requestId: r.request_id } : {}), ...(r.traceparent ? { traceparent: r.traceparent } : {}) });

/** Jobs held for one delivery (MainLedger.holdToForward): `delivered` or `lease` ends the hold. */
export interface HeldToForward {
  jobs: ToForward[];
  delivered(): Promise<void>;
  lease(leaseSeconds: number): Promise<void>;
  /** Lets go of the jobs with nothing written: they are due again at once (a no-op once the hold has ended). */
  release(): Promise<void>;
}

/** A routed job as the forwarder sends it. */
export interface ToForward {
  id: string;
  name: string;
  payload: unknown;
  priority: number;
  requestId?: string;
  traceparent?: string;
}

/**
 * Whether an attempt of the job `alias` (a row of jobs) still runs: its claim lives (a cancelled
 * job's keeps it until its handler stops), or its execution row says so (a routed job's, from the
 * fetcher's events).
 */
const attemptRuns = (s: string, alias: string) =>
  `((${alias}.claimed_by IS NOT NULL AND ${alias}.claim_expires_at > clock_timestamp()) OR EXISTS (SELECT 1 FROM ${s}.executions e WHERE e.job_id = ${alias}.id AND e.outcome = 'running'))`;

/** A row limit written into SQL text: a positive whole number, nothing else. */
function asLimit(n: number): number {
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`a row limit is a positive whole number, not ${n}`);
  return n;
}

/**
 * main's SQL, as small named statements with `$n` parameters over one validated schema. A statement
 * that changes several jobs at once locks them in id order first (`id IN (SELECT … ORDER BY id FOR
 * UPDATE)`), as claim_attempts and apply_job_events_finishing do, so two of them never wait on each other.
 */
function plans(schema: string) {
  const s = assertSchemaName(schema);
  /** The jobs of $1, locked in id order: what a statement that changes several of them matches on. */
  const lockedIds = `id IN (SELECT id FROM ${s}.jobs WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE)`;
  // The forwarder's next `limit` jobs (see holdToForward), locked, those another delivery holds skipped.
  const dueToForward = (columns: string, limit = '$1') => `
      SELECT ${columns} FROM ${s}.jobs
       WHERE route = 'fetcher' AND state IN ${inStates(UNDELIVERED_STATES)}
         AND run_at <= clock_timestamp() AND (forward_after IS NULL OR forward_after <= clock_timestamp())
         AND ${notPaused(s, 'name')}
       ORDER BY priority DESC, created_at LIMIT ${limit} FOR UPDATE SKIP LOCKED`;
  return {
    // `onlyIf`: a condition the new row needs (insertJobStatement's queue entry), else no row.
    insertJob: (onlyIf = 'true') => `
      INSERT INTO ${s}.jobs (id, name, route, state, payload, priority, unique_key, max_attempts, run_at, route_reason, traceparent, request_id)
      SELECT $1::uuid, $2::text, $3::text, 'queued', $4::jsonb, $5::integer, $6::text, $7::integer,
             clock_timestamp() + $8::float8 * interval '1 second', $9::text, $10::text, $11::text
       WHERE ${onlyIf}
      ON CONFLICT (name, unique_key) WHERE unique_key IS NOT NULL AND state IN ${inStates(LIVE_STATES)} DO NOTHING
      RETURNING ${JOB_COLUMNS}`,
    // Many jobs in one statement (a handler's children, a batch): a job whose id is taken (the same
    // child enqueued by an earlier attempt of its parent) or whose unique key is live is skipped.
    insertJobs: `
      INSERT INTO ${s}.jobs (id, name, route, state, payload, priority, unique_key, max_attempts, run_at, route_reason, traceparent, request_id, parent_id, batch_id)
      SELECT x.id, x.name, x.route, 'queued', x.payload, x.priority, x.unique_key, x.max_attempts,
             clock_timestamp() + x.delay_seconds * interval '1 second', x.route_reason, x.traceparent, x.request_id, x.parent_id, x.batch_id
        FROM jsonb_to_recordset($1::jsonb) AS x(id uuid, name text, route text, payload jsonb, priority integer, unique_key text, max_attempts integer,
                                                delay_seconds float8, route_reason text, traceparent text, request_id text, parent_id uuid, batch_id uuid)
      ON CONFLICT DO NOTHING
      RETURNING id`,
    findLiveByUniqueKey: `
      SELECT ${JOB_COLUMNS} FROM ${s}.jobs WHERE name = $1 AND unique_key = $2 AND state IN ${inStates(LIVE_STATES)}`,
    // one batch in one call, in per-job order, with the jobs it finished (migrations 010, 025)
    applyJobEvents: `SELECT applied, finished FROM ${s}.apply_job_events_finishing($1::jsonb)`,
    // The forwarder's take under a lease of $2 seconds at once (a delivery that cannot hold its
    // jobs: see holdToForward and the forwarder).
    takeToForward: `
      UPDATE ${s}.jobs j SET forward_after = clock_timestamp() + $2 * interval '1 second'
        FROM (${dueToForward('id')}) picked
       WHERE j.id = picked.id
      RETURNING j.id, j.name, j.payload, j.priority, j.request_id, j.traceparent`,
    // The forwarder takes the next jobs to deliver (migration 017): due, not under another delivery's
    // lease nor a failed one's backoff, highest priority then oldest, held by row locks in a
    // transaction left open while the delivery is sent: a delivery that lands in time marks them
    // `forwarded` in it (the take writes nothing of its own); a longer one puts them under a lease
    // (renewForwardLease: the only change, no indexed column, a heap-only update, migration 032's
    // fillfactor leaves it room) and lets go, and the lease keeps every other forwarder off them
    // until it is renewed, ends or lapses. The state says `forwarding` once a delivery is held up
    // (deferForward, markForwarding); a delivery that lands goes from `queued` to `forwarded`.
    // A paused name's jobs stay (migration 022): read here, so a pause holds from its commit on.
    // (its limit written in: it goes with the BEGIN in one round trip, which takes no parameters)
    holdToForward: (limit: number) => dueToForward('id, name, payload, priority, request_id, traceparent', String(asLimit(limit))),
    renewForwardLease: `
      UPDATE ${s}.jobs SET forward_after = clock_timestamp() + $2 * interval '1 second'
       WHERE ${lockedIds} AND route = 'fetcher' AND state IN ${inStates(UNDELIVERED_STATES)}`,
    // A failed delivery: `forwarding` (tried, not taken), tried again after 1, 2, 4 … seconds, at most $2
    // apart; or after $3 seconds, as the fetcher asked (its Retry-After), with no failure counted.
    deferForward: `
      UPDATE ${s}.jobs SET state = 'forwarding', updated_at = clock_timestamp(), forward_tries = forward_tries + ($3::float8 IS NULL)::int,
             forward_after = clock_timestamp() + coalesce($3::float8, least($2::float8, power(2, least(forward_tries, 20)))) * interval '1 second'
       WHERE ${lockedIds} AND route = 'fetcher' AND state IN ${inStates(UNDELIVERED_STATES)}`,
    // These are being forwarded; the rest (main's now, cancelled, finished) are skipped.
    markForwarding: `
      UPDATE ${s}.jobs SET state = 'forwarding', updated_at = clock_timestamp()
       WHERE ${lockedIds} AND route = 'fetcher' AND state IN ${inStates(UNDELIVERED_STATES)} RETURNING id`,
    // Events may already have moved a job on (the fetcher can be faster than the answer): never back.
    markForwarded: `
      UPDATE ${s}.jobs SET state = 'forwarded', updated_at = clock_timestamp(),
             error = CASE WHEN error->>'code' = 'JG_FETCHER_REFUSES' THEN NULL ELSE error END
       WHERE ${lockedIds} AND route = 'fetcher' AND state IN ${inStates(UNDELIVERED_STATES)}`,
    // A job the fetcher refuses for now (a name or payload it does not know yet: deployed behind
    // main) keeps waiting with the reason, and since when, on show.
    noteRefused: `
      UPDATE ${s}.jobs SET updated_at = clock_timestamp(),
             error = jsonb_build_object('code', 'JG_FETCHER_REFUSES', 'message', $2::text,
                       'since', CASE WHEN error->>'code' = 'JG_FETCHER_REFUSES' THEN error->'since' ELSE to_jsonb(clock_timestamp()) END)
       WHERE ${lockedIds} AND route = 'fetcher' AND state IN ${inStates(UNDELIVERED_STATES)}`,
    refusedByFetcher: `
      SELECT name, error->>'message' AS reason, min(error->>'since') AS since, count(*)::int AS jobs
        FROM ${s}.jobs WHERE route = 'fetcher' AND state IN ${inStates(UNDELIVERED_STATES)} AND error->>'code' = 'JG_FETCHER_REFUSES'
       GROUP BY name, error->>'message' ORDER BY min(error->>'since') LIMIT 20`,
    // The override takes over jobs not yet delivered (or whose delivery is in doubt: the fetcher
    // must still claim them here, and cannot once they are main's). A paused name's stay in the
    // outbox, held, until it is resumed.
    takeOverUndelivered: `
      WITH picked AS (
        SELECT id FROM ${s}.jobs
         WHERE route = 'fetcher' AND state IN ${inStates(UNDELIVERED_STATES)} AND name = ANY($4::text[])
           AND ${notPaused(s, 'name')}
           AND ($3::uuid[] IS NULL OR id = ANY($3::uuid[]))
         ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED
      )
      UPDATE ${s}.jobs j SET route = 'main', route_reason = $2, state = 'queued', updated_at = clock_timestamp()
        FROM picked WHERE j.id = picked.id
      RETURNING j.id, j.name, j.payload, j.priority, j.attempts, j.run_at, j.traceparent`,
    // Cancels the jobs `which` names (an SQL condition on id) that have not started, and main's own
    // running ones (their runner sees the claim gone at its next heartbeat and stops); a job running
    // on the fetcher is left to finish. As CTEs `picked` and `ended`, for a statement to go on
    // from: `ended` has each job with its state before (`was`), to find its queue entry.
    cancelJobs: (which: string, reason: string) => `
      picked AS (
        SELECT id, state FROM ${s}.jobs
         WHERE ${which} AND (state IN ${inStates(WAITING_STATES)} OR (state = 'active' AND route = 'main'))
           -- a live claim by the fetcher means it is running there, whatever the state says: not ours to cancel
           AND NOT (route = 'fetcher' AND claimed_by IS NOT NULL AND claim_expires_at > clock_timestamp())
         ORDER BY id FOR UPDATE),
      ended AS (
        -- a running attempt keeps its claim until its handler stops (endCancelledAttempt): it says the attempt still runs
        UPDATE ${s}.jobs j SET state = 'cancelled', finished_at = clock_timestamp(), updated_at = clock_timestamp(),
               error = jsonb_build_object('code', 'JG_CANCELLED', 'message', ${reason}::text),
               claimed_by = CASE WHEN picked.state = 'active' THEN j.claimed_by END, claim_expires_at = CASE WHEN picked.state = 'active' THEN j.claim_expires_at END
          FROM picked WHERE j.id = picked.id
        RETURNING j.id, j.name, j.route, j.route_reason, picked.state AS was)`,
    // Deletes the jobs `which` names that finished (their executions go by cascade), but not one
    // whose cancelled attempt is still stopping (its runner ends it at its next heartbeat). CTEs as above.
    deleteJobs: (which: string) => `
      picked AS (
        SELECT id FROM ${s}.jobs j
         WHERE ${which} AND state IN ${inStates(FINISHED_STATES)}
           AND NOT ${attemptRuns(s, 'j')}
         ORDER BY id FOR UPDATE),
      ended AS (
        DELETE FROM ${s}.jobs j USING picked WHERE j.id = picked.id
        RETURNING j.id, j.name, j.route, j.route_reason, j.state AS was)`,
    // A page of a bulk action (`page`: up to $1 jobs matching `where`, newest first, read from the
    // list's indexes), what `ended` did with it, and where the next page starts. Only the ids of
    // main's jobs that had not started come back (grouped by name): their queue entries go next.
    bulkPage: (where: string, act: string) => `
      WITH page AS (
        SELECT id, created_at FROM ${s}.jobs WHERE ${where} ORDER BY created_at DESC, id DESC LIMIT $1),
      ${act}
      SELECT (SELECT count(*) FROM page)::int AS seen,
             (SELECT count(*) FROM ended)::int AS ended,
             (SELECT jsonb_build_object('createdAt', created_at::text, 'id', id) FROM page ORDER BY created_at, id LIMIT 1) AS next,
             (SELECT coalesce(jsonb_agg(q), '[]') FROM (
                SELECT name, route_reason AS "routeReason", array_agg(id) AS ids FROM ended
                 WHERE route = 'main' AND was <> 'active' GROUP BY name, route_reason) q) AS entries`,
    failJobs: `
      UPDATE ${s}.jobs SET state = 'failed', error = $2, finished_at = clock_timestamp(), updated_at = clock_timestamp()
       WHERE ${lockedIds} AND route = 'fetcher' AND state IN ${inStates(UNDELIVERED_STATES)}
      RETURNING ${finishedColumns()}`,
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
             -- a finished job's attempt is over: its claim ends with it
             claimed_by = CASE WHEN $2 IN ('completed', 'failed', 'cancelled') THEN NULL ELSE claimed_by END,
             claim_expires_at = CASE WHEN $2 IN ('completed', 'failed', 'cancelled') THEN NULL ELSE claim_expires_at END,
             updated_at = clock_timestamp()
       WHERE id = $1 AND route = 'fetcher' AND state NOT IN ('completed', 'failed', 'cancelled')
         -- only if nothing moved on main since the fetcher was asked (a later claim, an event applied)
         -- and the fetcher's answer is not older than what main knows
         AND attempts = $7 AND events_applied = $8 AND attempts <= $5
      RETURNING ${finishedColumns()}`,
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
        FROM ${s}.jobs WHERE route = 'fetcher' AND state IN ${inStates(UNDELIVERED_STATES)}`,
    // Any job routed to the fetcher that has not finished (the fetcher must stay awake for it).
    hasUnfinishedFetcherJobs: `
      SELECT EXISTS (SELECT 1 FROM ${s}.jobs WHERE route = 'fetcher' AND state IN ${inStates(LIVE_STATES)}) AS pending`,
  };
}

export type MainLedger = ReturnType<typeof createMainLedger>;

/** Main's jobs among `ended` that had not started, grouped as endPage groups them: the queue entries still in pg-boss. */
export function queueEntriesOf(ended: readonly EndedJob[]): QueueEntries {
  const groups = new Map<string, QueueEntries[number]>();
  for (const job of ended) {
    if (job.route !== 'main' || job.was === 'active' || job.record) continue;
    const key = `${job.name}\u0000${job.routeReason}`;
    const group = groups.get(key) ?? { name: job.name, routeReason: job.routeReason, ids: [] };
    group.ids.push(job.id);
    groups.set(key, group);
  }
  return [...groups.values()];
}

const toEnded = (r: Record<string, any>): EndedJob => ({ id: r.id, name: r.name, route: r.route, routeReason: r.route_reason, was: r.was });
const recordEnded = (r: Record<string, any>): EndedJob => ({ id: r.id, name: r.name, route: 'main', routeReason: 'definition', was: r.was, record: true });

/**
 * `bossSchema`: main's pg-boss schema, whose rows are the records of jobs that need no ledger row
 * (queue-records.ts): every read here shows them beside the ledger's own.
 */
export function createMainLedger(pool: Pool, schema: string, options: { logger?: Logger; bossSchema?: string } = {}) {
  const sql = plans(schema);
  const records = options.bossSchema ? recordPlans(options.bossSchema, schema) : null;
  const forwardChannel = `jg_forward_${assertSchemaName(schema)}`.slice(0, 63);
  // every job main finishes counts into the overview's rollup (rollup.ts)
  const rollup = createRollup(pool, schema, options);
  const ledger = createLedger(pool, schema, rollup.count);
  /** A job whose record is its pg-boss row; its attempts are its executions rows and its latest, from the row. */
  async function getRecord(id: string, options: { executions?: boolean; db?: Queryable }): Promise<JobRecord | null> {
    if (!records) return null;
    const { rows } = await (options.db ?? pool).query(records.getRecord, [id]);
    if (!rows[0]) return null;
    const job = toJob(rows[0]);
    if (options.executions) {
      const [failed, latest] = await Promise.all([ledger.executionRows(id), pool.query(records.latestAttempt, [id])]);
      job.executions = withLatestAttempt(failed, latest.rows);
    }
    return job;
  }
  return {
    ...ledger,
    /** The overview's rollup this ledger counts into: closed (its last counts written) as main stops. */
    rollup,
    /** Main's pg-boss schema, where the jobs recorded by their pg-boss row are (queue-records.ts). */
    bossSchema: options.bossSchema,
    /** How jobs recorded by their pg-boss row run (null without main's pg-boss schema: every job then has a ledger row). */
    recordRuns: options.bossSchema ? createRecordRuns(pool, schema, options.bossSchema, rollup.count) : null,
    /** A job as every view shows it: with its executions if asked, and the pause it waits for. */
    async getJob(id: string, options: { executions?: boolean; db?: Queryable } = {}): Promise<JobRecord | null> {
      const job = (await ledger.getJob(id, options)) ?? (await getRecord(id, options));
      return job && (await withPausedBy(options.db ?? pool, schema, [job]))[0]!;
    },
    /** Per job name: waiting, active, and failed in the last day, records included; `route` counts only the jobs that run there. */
    async countsByName(route?: Route): Promise<Record<string, { queued: number; active: number; failed: number }>> {
      const counts = await ledger.countsByName(route);
      if (!records || route === 'fetcher') return counts;
      for (const r of (await pool.query(records.countsByName)).rows) {
        const c = counts[r.name] ?? { queued: 0, active: 0, failed: 0 };
        counts[r.name] = { queued: c.queued + r.queued, active: c.active + r.active, failed: c.failed + r.failed };
      }
      return counts;
    },
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
    /** Inserts queued jobs in one statement; returns the ids written (see the statement for what is skipped). */
    async insertJobs(db: Queryable, jobs: Array<NewJob & { parentId?: string; batchId?: string }>): Promise<Set<string>> {
      if (jobs.length === 0) return new Set();
      const rows = jobs.map((j) => ({
        id: j.id, name: j.name, route: j.route, payload: j.payload, priority: j.priority, unique_key: j.uniqueKey, max_attempts: j.maxAttempts, delay_seconds: j.delaySeconds,
        route_reason: j.routeReason ?? 'definition', traceparent: j.traceparent ?? null, request_id: j.requestId ?? null, parent_id: j.parentId ?? null, batch_id: j.batchId ?? null,
      }));
      const { rows: written } = await db.query(sql.insertJobs, [JSON.stringify(rows)]);
      return new Set(written.map((r) => r.id as string));
    },
    async findLiveByUniqueKey(name: string, uniqueKey: string, db: Queryable = pool): Promise<JobRecord | null> {
      const { rows } = await db.query(sql.findLiveByUniqueKey, [name, uniqueKey]);
      return rows[0] ? toJob(rows[0]) : null;
    },
    /** Newest first, with keyset paging (see listJobsQuery). */
    async listJobs(filter: ListFilter): Promise<{ jobs: JobRecord[]; nextCursor: string | null }> {
      const query = listJobsQuery(schema, filter, options.bossSchema);
      const { rows } = await pool.query(query.text, query.values);
      const page = rows.slice(0, filter.limit);
      const last = page.at(-1);
      return {
        jobs: await withPausedBy(pool, schema, page.map(toJob)),
        nextCursor: rows.length > filter.limit && last ? encodeCursor(last.cursor_at, last.id) : null,
      };
    },
    /**
     * Applies the fetcher's events, each once and in per-job order, in one transaction.
     * Returns how many were new and how many had been applied before.
     */
    async applyEvents(events: JobEvent[]): Promise<{ applied: number; ignored: number }> {
      const batch = events.map((e) => ({
        job: e.jobId, seq: e.seq, type: e.type, attempt: e.attempt, at: e.at, state: e.state ?? null, started_at: e.startedAt ?? null,
        finished_at: e.finishedAt ?? null, progress: e.progress ?? null, message: e.message ?? null, error: e.error ?? null, peak_rss_mb: e.peakRssMb ?? null,
      }));
      // (a deadlock with another batch's finishes, through the batch trigger, is retried: events apply once each)
      const { rows } = await durably(() => pool.query(sql.applyJobEvents, [JSON.stringify(batch)]));
      const applied = rows[0].applied as number;
      rollup.count(rows[0].finished);
      return { applied, ignored: events.length - applied };
    },
    /** Up to `limit` jobs to deliver now, each under a lease of `leaseSeconds` (see holdToForward). */
    async takeToForward(limit: number, leaseSeconds: number): Promise<ToForward[]> {
      const { rows } = await pool.query(sql.takeToForward, [limit, leaseSeconds]);
      return rows.map(toForward);
    },
    /** Whether main's pool can spare a connection now: no one waits for one, and one more stays free beside it. */
    spareConnection(): boolean {
      return pool.waitingCount === 0 && pool.idleCount + Math.max(0, (pool.options.max ?? 10) - pool.totalCount) >= 2;
    },
    /**
     * Up to `limit` jobs to deliver now, held by row locks in a transaction left open for their
     * delivery, with nothing written yet (see holdToForward). Exactly one of `delivered` (the
     * fetcher took them: they are marked forwarded), `lease` (the delivery takes longer or failed:
     * they go under a lease of `leaseSeconds`, see renewForwardLease) and `release` ends it.
     * A connection lost meanwhile lets go of them, as a lapsed lease would.
     */
    async holdToForward(limit: number): Promise<HeldToForward> {
      const tx = await openTransaction(pool, sql.holdToForward(limit));
      const jobs: ToForward[] = tx.opened.map(toForward);
      if (jobs.length === 0) await tx.rollback();
      const ids = jobs.map((j) => j.id);
      return {
        jobs,
        delivered: () => tx.commit({ text: sql.markForwarded, values: [ids] }),
        lease: (leaseSeconds: number) => tx.commit({ text: sql.renewForwardLease, values: [ids, leaseSeconds] }),
        release: () => tx.rollback(),
      };
    },
    /** Keeps a delivery's jobs off the other forwarders for `leaseSeconds` more. */
    async renewForwardLease(ids: string[], leaseSeconds: number): Promise<void> {
      await pool.query(sql.renewForwardLease, [ids, leaseSeconds]);
    },
    /** The delivery of these failed: each is tried again after its backoff (at most `maxDelaySeconds`). */
    async deferForward(ids: string[], maxDelaySeconds: number, retryAfterSeconds: number | null = null): Promise<void> {
      await pool.query(sql.deferForward, [ids, maxDelaySeconds, retryAfterSeconds]);
    },
    /** Ids (of `ids`) now being forwarded; the others are main's now, cancelled or finished and must not go. */
    async markForwarding(ids: string[]): Promise<Set<string>> {
      const { rows } = await pool.query(sql.markForwarding, [ids]);
      return new Set(rows.map((r) => r.id as string));
    },
    /** The channel a new routed job is announced on (NOTIFY), where the forwarder listens. */
    forwardChannel,
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
            AND NOT ${attemptRuns(s, s + '.jobs')}`,
        [id, newId],
      );
      if ((rowCount ?? 0) > 0) return true;
      return records ? ((await db.query(records.markRetried, [id, newId])).rowCount ?? 0) > 0 : false;
    },
    /** Ids (of `ids`) now cancelled; see the statement for which can be. */
    async cancelJobs(ids: string[], reason: string): Promise<string[]> {
      const { rows } = await durably(() => pool.query(`WITH ${sql.cancelJobs('id = ANY($1::uuid[])', '$2')} SELECT id FROM ended`, [ids, reason]));
      return rows.map((r) => r.id as string);
    },
    /** cancelJobs in `db`'s transaction, each job with what it takes to drop its queue entry there too. */
    async cancelJobsIn(db: Queryable, ids: string[], reason: string): Promise<EndedJob[]> {
      const { rows } = await db.query(`WITH ${sql.cancelJobs('id = ANY($1::uuid[])', '$2')} SELECT * FROM ended`, [ids, reason]);
      if (!records) return rows.map(toEnded);
      const cancelled = await db.query(`WITH ${records.cancel('j.id = ANY($1::uuid[])', '$2')} SELECT * FROM cancelled`, [ids, reason]);
      return [...rows.map(toEnded), ...cancelled.rows.map(recordEnded)];
    },
    /** Deletes those of `ids` that finished (see the statement), in `db`'s transaction. */
    async deleteJobsIn(db: Queryable, ids: string[]): Promise<EndedJob[]> {
      const { rows } = await db.query(`WITH ${sql.deleteJobs('id = ANY($1::uuid[])')} SELECT * FROM ended`, [ids]);
      if (!records) return rows.map(toEnded);
      const deleted = await db.query(`WITH ${records.delete('j.id = ANY($1::uuid[])')} SELECT * FROM deleted`, [ids]);
      return [...rows.map(toEnded), ...deleted.rows.map(recordEnded)];
    },
    /**
     * endPage for the jobs recorded by their pg-boss row (null without them): up to `limit` records
     * matching `filter` (newest first, after its cursor), cancelled or deleted in one statement.
     */
    async endRecordsPage(db: Queryable, action: 'cancel' | 'delete', filter: Omit<ListFilter, 'limit'>, limit: number, reason: string): Promise<Omit<BulkPage, 'entries'> | null> {
      if (!records) return null;
      const values: unknown[] = [];
      const param = (v: unknown) => (values.push(v), `$${values.length}`);
      const page = records.listBranch(filter, param, param(limit));
      if (!page) return { seen: 0, ended: 0 };
      const which = '(j.name, j.id) IN (SELECT name, id FROM page)';
      const act = action === 'cancel' ? records.cancel(which, param(reason)) : records.delete(which);
      const { rows } = await db.query(
        `WITH page AS (${page}), ${act}
         SELECT (SELECT count(*) FROM page)::int AS seen, (SELECT count(*) FROM ${action === 'cancel' ? 'cancelled' : 'deleted'})::int AS ended,
                (SELECT jsonb_build_object('createdAt', cursor_at, 'id', id) FROM page ORDER BY created_at, id LIMIT 1) AS next`,
        values,
      );
      return { seen: rows[0].seen, ended: rows[0].ended, next: rows[0].next ?? undefined };
    },
    /**
     * One page of a bulk cancel or delete, in one statement in `db`'s transaction: up to `limit`
     * jobs matching `filter` (newest first, after its cursor) are read from the list's indexes,
     * locked in id order and cancelled (`reason`) or deleted. Answers how many were read and ended,
     * the cursor of the next page, and the ids of main's jobs whose queue entries wait in pg-boss.
     * `ids`: only jobs whose ids are in this range (pages of disjoint ranges can run at once).
     */
    async endPage(db: Queryable, action: 'cancel' | 'delete', filter: Omit<ListFilter, 'limit'>, limit: number, reason: string, ids: IdRange = {}): Promise<BulkPage> {
      const values: unknown[] = [limit];
      const param = (v: unknown) => (values.push(v), `$${values.length}`);
      const where = jobFilterWhere(filter, param);
      if (ids.from) where.push(`id >= ${param(ids.from)}::uuid`);
      if (ids.below) where.push(`id < ${param(ids.below)}::uuid`);
      const act = action === 'cancel' ? sql.cancelJobs('id IN (SELECT id FROM page)', param(reason)) : sql.deleteJobs('id IN (SELECT id FROM page)');
      const { rows } = await db.query(sql.bulkPage(where.length ? where.join(' AND ') : 'true', act), values);
      const r = rows[0];
      return { seen: r.seen, ended: r.ended, next: r.next ?? undefined, entries: r.entries };
    },
    /** How many jobs match `filter`. */
    async countMatching(filter: Omit<ListFilter, 'limit'>): Promise<number> {
      const values: unknown[] = [];
      const where = jobFilterWhere(filter, (v) => (values.push(v), `$${values.length}`));
      const { rows } = await pool.query(`SELECT count(*)::int AS n FROM ${assertSchemaName(schema)}.jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''}`, values);
      const recordValues: unknown[] = [];
      const page = records?.listBranch(filter, (v) => (recordValues.push(v), `$${recordValues.length}`), 'ALL');
      return (rows[0].n as number) + (page ? (await pool.query(`SELECT count(*)::int AS n FROM (${page}) r`, recordValues)).rows[0].n : 0);
    },
    async failJobs(ids: string[], error: ErrorInfo): Promise<void> {
      rollup.count((await pool.query(sql.failJobs, [ids, JSON.stringify(error)])).rows);
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
      const moved = await withTransaction(pool, async (client) => {
        const state = seen.state === 'queued' ? 'forwarded' : seen.state;
        const { rows } = await client.query(sql.reconcileJob, [id, state, seen.progress, seen.progressMessage ?? null, seen.attempts, seen.error ? JSON.stringify(seen.error) : null, job.attempts, job.eventsApplied]);
        if (rows.length === 0) return rows;
        for (const e of seen.executions ?? []) {
          await client.query(sql.reconcileExecution, [id, e.attempt, e.startedAt, e.finishedAt ?? null, e.outcome, e.error ? JSON.stringify(e.error) : null, e.peakRssMb ?? null]);
        }
        return rows;
      });
      rollup.count(moved);
      return moved.length > 0;
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
  };
}

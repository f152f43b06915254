// Jobs whose record is their pg-boss row (docs/storage-design.md): a job that runs where it was
// enqueued needs no ledger row, since pg-boss's row already holds its payload, state, attempts and
// times. This module reads such rows as jobgate's JobRecord, for every view that lists or shows
// jobs beside the ledger's own rows (routed jobs, and jobs written before this design).
//
// A pg-boss row is a record only when its data says so (`record: 1`): rows of jobs that also have a
// ledger row (written by earlier releases, or routed jobs the override runs on main) carry no mark,
// so no view shows a job twice and none has to look a row up in the other table.
import { assertSchemaName } from './schema-name.ts';
import type { QueuedData } from '../define/queue-policy.ts';
import type { JobState, ListFilter, Route } from './ledger.ts';

/** What pg-boss stores as the data of a job whose record it is. */
export interface RecordData extends QueuedData {
  record: 1;
  /** The job whose handler enqueued this one. */
  parentId?: string;
  /** The batch this job is a member of. */
  batchId?: string;
  /** The job an admin's retry created from this one. */
  retriedAs?: string;
}

/** The states of pg-boss a jobgate state is made of (pg-boss's `retry`: queued again after a failed attempt). */
const BOSS_STATES: Record<JobState, readonly string[]> = {
  queued: ['created', 'retry'],
  forwarding: [],
  forwarded: [],
  active: ['active'],
  completed: ['completed'],
  failed: ['failed'],
  cancelled: ['cancelled'],
};

/** pg-boss's states for jobgate's `states` (none: no record can be in them). */
const bossStatesOf = (states: readonly JobState[]): string[] => [...new Set(states.flatMap((s) => BOSS_STATES[s]))];

/** A job queue's name (`column` holds one), not one of jobgate's own queues. */
const jobQueueName = (column: string) => `${column} NOT LIKE 'jobgate.%'`;
/** The queues that hold jobs (jobgate's own system queues are named `jobgate.…`, which no job may be). */
export const jobQueues = (b: string) => `SELECT name FROM ${b}.queue WHERE ${jobQueueName('name')}`;

/**
 * A record's (pg-boss row `j`) state as jobgate names it. A record the fetcher did not run because
 * main owns it now (taken over under the emergency override, or finished there) ends completed in
 * pg-boss with `takenOver` in its output: cancelled here, as the ledger's row of such a job is.
 */
const RECORD_STATE = `CASE WHEN j.state IN ('created', 'retry') THEN 'queued' WHEN j.state = 'completed' AND j.output ? 'takenOver' THEN 'cancelled' ELSE j.state::text END`;

/**
 * A record (pg-boss row `j`) as the ledger's columns (ledger.ts JOB_COLUMNS), in their order.
 * Attempts: pg-boss counts a retry as the next fetch starts (retry_count), and `started_on` says
 * whether the latest attempt started. `output` holds the progress (`progress`, `message`) while
 * the job runs and keeps the last of it when the attempt ends, with a failed attempt's `error`
 * and a completing one's `peakRssMb`.
 */
export const recordColumnsOf = (route: Route) => `
  j.id, j.name, '${route}'::text AS route, 'definition'::text AS route_reason, (j.data->>'retriedAs')::uuid AS retried_as,
  ${RECORD_STATE} AS state,
  j.data->'payload' AS payload, j.priority,
  (CASE WHEN j.state = 'completed' THEN 100 ELSE coalesce((j.output->>'progress')::smallint, 0) END)::smallint AS progress, j.output->>'message' AS progress_message,
  j.retry_count + (j.started_on IS NOT NULL)::int AS attempts, j.retry_limit + 1 AS max_attempts,
  j.start_after AS run_at, j.created_on AS created_at, greatest(j.created_on, j.started_on, j.completed_on) AS updated_at,
  j.started_on AS started_at, CASE WHEN j.state IN ('completed', 'failed', 'cancelled') THEN j.completed_on END AS finished_at,
  CASE WHEN j.state <> 'completed' THEN j.output->'error' END AS error,
  j.data->>'traceparent' AS traceparent, (j.data->>'parentId')::uuid AS parent_id, (j.data->>'batchId')::uuid AS batch_id`;
/** Main's records (its own jobs), as the ledger's columns. */
export const RECORD_COLUMNS = recordColumnsOf('main');

/** pg-boss's live rows of the jobs main's ledger keeps (not records, not jobgate's own queues): jobgate_ledger_live's predicate, on `j`. */
const ledgerLive = (j = '') => `${j}state IN ('created', 'retry', 'active') AND ${jobQueueName(`${j}name`)} AND NOT ${j}data ? 'record'`;

/**
 * The indexes of ours on main's pg-boss job table. jobgate_records_ended: records that failed or
 * were cancelled, for the list's filters by those states (rare among the rows a queue keeps;
 * pg-boss's own indexes read jobs by name and creation, or its live jobs); a job that completes
 * never enters it. jobgate_ledger_live: the live pg-boss rows of jobs that are not records (those
 * main's ledger keeps: gated, unique, batched, children), so the live records per name are
 * counted from indexes alone (pg-boss's live rows less these) and not by reading every live job's
 * data; a record never enters it. Made once by whichever process starts first (an advisory lock
 * keeps two from racing), on the partitioned table, so pg-boss's queue partitions get them too;
 * building one holds writes to pg-boss's jobs back for as long as it reads them (seconds at a
 * million jobs), once, at the first start that lacks it.
 */
export function ensureRecordIndexes(bossSchema: string): string {
  const b = assertSchemaName(bossSchema);
  // (only when it is missing: even CREATE INDEX IF NOT EXISTS locks the table against writes first)
  return `
    SELECT pg_advisory_xact_lock(hashtext('jobgate.record-indexes.${b}'));
    DO $$ BEGIN
      IF to_regclass('${b}.jobgate_records_ended') IS NULL THEN
        CREATE INDEX jobgate_records_ended ON ${b}.job (name, state, created_on) WHERE state IN ('failed', 'cancelled');
      END IF;
      IF to_regclass('${b}.jobgate_ledger_live') IS NULL THEN
        CREATE INDEX jobgate_ledger_live ON ${b}.job (name, state) WHERE ${ledgerLive()};
      END IF;
    END $$;`;
}

/**
 * The attempts of records that their pg-boss row says and no `executions` row does (a record's
 * running attempt, or the one that completed it), with the columns of the view `attempts`; a
 * statement to add conditions on `j` to (AND …).
 */
export function recordAttemptsSql(bossSchema: string): string {
  const b = assertSchemaName(bossSchema);
  return `
      SELECT j.id AS job_id, j.retry_count + 1 AS attempt, 'main'::text AS ran_on, j.started_on AS started_at,
             CASE WHEN j.state = 'active' THEN NULL ELSE j.completed_on END AS finished_at,
             CASE WHEN j.state = 'active' THEN 'running' ELSE 'completed' END AS outcome,
             NULL::jsonb AS error, (j.output->>'peakRssMb')::int AS peak_rss_mb
        FROM ${b}.job j
       WHERE j.name IN (${jobQueues(b)}) AND j.data ? 'record' AND j.started_on IS NOT NULL AND j.state IN ('active', 'completed')`;
}

/**
 * The state of each job of `ids` (SQL for a uuid[]) as (id, state) rows, recorded by its ledger
 * row in `schema` or, given `bossSchema`, by its pg-boss row there; a job with neither (deleted)
 * has no row.
 */
export function jobStatesSql(schema: string, bossSchema: string | undefined, ids: string): string {
  const ledger = `SELECT id, state FROM ${assertSchemaName(schema)}.jobs WHERE id = ANY(${ids})`;
  if (!bossSchema) return ledger;
  const b = assertSchemaName(bossSchema);
  return `${ledger} UNION ALL SELECT j.id, ${RECORD_STATE} FROM ${b}.job j WHERE j.name IN (${jobQueues(b)}) AND j.id = ANY(${ids}) AND j.data ? 'record'`;
}

/**
 * How long a record cancelled under a running attempt is taken to be still stopping when that
 * attempt has written no row yet (its runner notices at its next heartbeat and writes it): it is
 * neither deleted nor retried meanwhile, or a copy could run beside it. A runner that died never
 * writes it; after this long the record is taken to have stopped.
 */
const STOPPING_SECONDS = 300;

/**
 * The SQL that reads records from pg-boss's tables in `bossSchema` and changes them as the
 * admin's actions do; `schema`: jobgate's (the attempts' rows).
 */
export function recordPlans(bossSchema: string, schema = 'jobgate') {
  const b = assertSchemaName(bossSchema);
  const s = assertSchemaName(schema);
  // Records not finished, per name: every live row of the job queues (pg-boss's job_i14) less those
  // of ledger jobs (jobgate_ledger_live), both read from an index alone, counted per name and state.
  const liveByName = `
      SELECT name, 'main' AS side,
             coalesce(sum(n) FILTER (WHERE state IN ('created', 'retry')), 0)::int AS queued,
             coalesce(sum(n) FILTER (WHERE state = 'active'), 0)::int AS running
        FROM (SELECT j.name, j.state, count(*) AS n FROM ${b}.job j
               WHERE j.state IN ('created', 'retry', 'active') AND ${jobQueueName('j.name')} GROUP BY j.name, j.state
              UNION ALL
              SELECT j.name, j.state, -count(*) FROM ${b}.job j WHERE ${ledgerLive('j.')} GROUP BY j.name, j.state) live
       GROUP BY name HAVING sum(n) > 0`;
  /** Whether record `j` was cancelled under an attempt that may still be stopping (see STOPPING_SECONDS). */
  const stopping = `(j.state = 'cancelled' AND j.started_on IS NOT NULL AND j.completed_on > clock_timestamp() - interval '${STOPPING_SECONDS} seconds'
     AND NOT EXISTS (SELECT 1 FROM ${s}.executions x WHERE x.job_id = j.id AND x.attempt = j.retry_count + 1))`;
  /** The records of `which` (a condition on `j`, one of the job queues' rows). */
  const records = (which: string) => `j.name IN (${jobQueues(b)}) AND ${which} AND j.data ? 'record'`;
  return {
    /**
     * Cancels the records `which` names that have not finished (a running one's runner sees it at
     * its next heartbeat and stops); as a CTE `cancelled` (id, name, created_on).
     */
    cancel: (which: string, reason: string) => `
      picked AS (
        SELECT j.name, j.id, j.state FROM ${b}.job j WHERE ${records(which)} AND j.state < 'completed' ORDER BY j.id FOR UPDATE),
      cancelled AS (
        UPDATE ${b}.job j SET state = 'cancelled', completed_on = clock_timestamp(),
               output = jsonb_build_object('error', jsonb_build_object('code', 'JG_CANCELLED', 'message', ${reason}::text))
          FROM picked p WHERE j.name = p.name AND j.id = p.id
        RETURNING j.id, j.name, j.created_on, CASE WHEN p.state = 'active' THEN 'active' ELSE 'queued' END AS was)`,
    /** Deletes the records `which` names that finished (not one still stopping), with their attempts' rows; as a CTE `deleted`. */
    delete: (which: string) => `
      deleted AS (
        DELETE FROM ${b}.job j WHERE ${records(which)} AND j.state IN ('completed', 'failed', 'cancelled') AND NOT ${stopping}
        RETURNING j.id, j.name, j.created_on, j.state::text AS was),
      attempts_deleted AS (DELETE FROM ${s}.executions WHERE job_id IN (SELECT id FROM deleted))`,
    /**
     * Holds what a pause holds where pg-boss looks (its `blocked`, which its fetch skips): every
     * waiting record of $1 (a job name; null: every name) is blocked while a pause of its name or
     * of every job is in force, and unblocked once none is. Run by the statements that pause,
     * resume and expire pauses, in their transactions.
     */
    syncBlocked: `
      UPDATE ${b}.job j SET blocked = (${s}.pause_of(j.name) IS NOT NULL)
       WHERE j.name IN (${jobQueues(b)}) AND ($1::text IS NULL OR j.name = $1) AND j.data ? 'record'
         AND j.state IN ('created', 'retry') AND j.pending_dependencies = 0
         AND j.blocked IS DISTINCT FROM (${s}.pause_of(j.name) IS NOT NULL)`,
    /**
     * The transactions writing to pg-boss's job table now, but ours (their virtual ids): after a
     * pause or a resume commits, those that may yet commit a record written or held by the pauses
     * as they were before. A statement takes its table's lock before its snapshot, so a
     * (read-committed) transaction that writes a record after this read sees the change; one
     * whose snapshot is older (repeatable read) and writes only later is not found.
     */
    jobWriters: `
      SELECT DISTINCT l.virtualtransaction AS vxid FROM pg_locks l
       WHERE l.locktype = 'relation' AND l.mode = 'RowExclusiveLock' AND l.granted AND l.pid <> pg_backend_pid()
         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
         AND l.relation IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = '${b}.job'::regclass UNION ALL SELECT '${b}.job'::regclass)`,
    /** Which of the transactions $1 (virtual ids, as jobWriters answers them) have not ended yet. */
    stillOpen: `SELECT virtualxid AS vxid FROM pg_locks WHERE locktype = 'virtualxid' AND virtualxid = ANY($1::text[])`,
    /**
     * Holds the records $2 (an array) of $1 if their name is paused now: records written together
     * (performManyLater), or one handed back while paused. The hold itself is hold_record's
     * (migration 033), as at every enqueue (heldIfPaused).
     */
    blockIfPaused: `
      SELECT ${s}.hold_record('${b}', $1, id) FROM unnest($2::uuid[]) AS id WHERE ${s}.pause_of($1) IS NOT NULL`,
    /**
     * Columns beside a record read back at enqueue (as `j`): it is held now if its name is paused
     * (migration 033; the function runs only then, in the same statement).
     */
    heldIfPaused: `CASE WHEN ${s}.pause_of(j.name) IS NOT NULL THEN ${s}.hold_record('${b}', j.name, j.id) END AS held`,
    /** Marks record $1 retried as $2: once, and not while an attempt of it may still be stopping. */
    markRetried: `
      UPDATE ${b}.job j SET data = j.data || jsonb_build_object('retriedAs', $2::text)
       WHERE ${records('j.id = $1')} AND NOT j.data ? 'retriedAs' AND NOT ${stopping}`,
    /**
     * One record by id ($1), or none (pg-boss's key is (name, id): each job queue's is probed), with
     * the batch its handler opened last, if any, as the ledger's getJob.
     */
    getRecord: `
      SELECT ${RECORD_COLUMNS}, (SELECT bt.id FROM ${s}.batches bt WHERE bt.parent_id = $1 ORDER BY bt.created_at DESC, bt.id LIMIT 1) AS opened_batch
        FROM ${b}.job j
       WHERE j.name IN (${jobQueues(b)}) AND j.id = $1 AND j.data ? 'record'`,
    /**
     * The newest records matching `filter` (up to `limit`, a parameter), newest first as the list
     * orders them, with `cursor_at`; null when no record can match (a routed job's filter). Each
     * job queue is read in creation order from pg-boss's own (name, created_on) index (the rare
     * end states from ours, ensureRecordIndexes) and the queues' pages are merged.
     */
    listBranch(filter: Omit<ListFilter, 'limit'>, param: (v: unknown) => string, limit: string): string | null {
      if (filter.route === 'fetcher') return null;
      const where = [`j.name = q.name`, `j.data ? 'record'`];
      const states = filter.state ? [filter.state] : filter.states?.length ? filter.states : null;
      if (states) {
        const boss = bossStatesOf(states);
        if (boss.length === 0) return null;
        // as literals (only the constants above), so the planner can read a partial index that holds them
        where.push(`j.state IN (${boss.map((st) => `'${st}'`).join(', ')})`);
      }
      if (filter.notRetried) where.push(`NOT j.data ? 'retriedAs'`);
      if (filter.payload?.length) where.push(`(${filter.payload.map((p) => `j.data->'payload' @> ${param(JSON.stringify(p))}::jsonb`).join(' OR ')})`);
      if (filter.createdBefore) where.push(`j.created_on < ${param(filter.createdBefore)}::timestamptz`);
      if (filter.cursor) where.push(`(j.created_on, j.id) < (${param(filter.cursor.createdAt)}::timestamptz, ${param(filter.cursor.id)}::uuid)`);
      const queues = filter.name ? `SELECT ${param(filter.name)}::text AS name` : jobQueues(b);
      return `
        SELECT r.* FROM (${queues}) q CROSS JOIN LATERAL (
          SELECT ${RECORD_COLUMNS}, j.created_on::text AS cursor_at FROM ${b}.job j
           WHERE ${where.join(' AND ')}
           ORDER BY j.created_on DESC, j.id DESC LIMIT ${limit}) r`;
    },
    /**
     * Live records per job name (liveByName: from indexes alone), and those that failed in the last
     * day (from jobgate_records_ended, the failed ones' rows read): the ledger's countsByName.
     */
    countsByName: `
      SELECT name, sum(queued)::int AS queued, sum(active)::int AS active, sum(failed)::int AS failed FROM (
        SELECT name, queued, running AS active, 0 AS failed FROM (${liveByName}) live
        UNION ALL
        SELECT j.name, 0, 0, count(*) FROM ${b}.job j
         WHERE j.state = 'failed' AND ${jobQueueName('j.name')} AND j.data ? 'record' AND j.completed_on > clock_timestamp() - interval '1 day'
         GROUP BY j.name) c
       GROUP BY name`,
    /** Records not finished, per job name: waiting and running (the overview's live counts; main runs them all). */
    liveByName,
    /** A record's attempts: its rows in `executions` (those that failed, were lost or were cancelled) and its latest, from its row. */
    latestAttempt: `${recordAttemptsSql(b)} AND j.id = $1`,
  };
}

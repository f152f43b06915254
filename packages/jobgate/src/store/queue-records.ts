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
import type { JobState, ListFilter } from './ledger.ts';

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
export const bossStatesOf = (states: readonly JobState[]): string[] => [...new Set(states.flatMap((s) => BOSS_STATES[s]))];

/** The queues that hold jobs (jobgate's own system queues are named `jobgate.…`, which no job may be). */
const jobQueues = (b: string) => `SELECT name FROM ${b}.queue WHERE name NOT LIKE 'jobgate.%'`;

/**
 * A record (pg-boss row `j`) as the ledger's columns (ledger.ts JOB_COLUMNS), in their order.
 * Attempts: pg-boss counts a retry as the next fetch starts (retry_count), and `started_on` says
 * whether the latest attempt started. Progress rides in `output` while the job runs; a failed
 * attempt's error is `output.error`.
 */
export const RECORD_COLUMNS = `
  j.id, j.name, 'main'::text AS route, 'definition'::text AS route_reason, (j.data->>'retriedAs')::uuid AS retried_as,
  CASE WHEN j.state IN ('created', 'retry') THEN 'queued' ELSE j.state::text END AS state,
  j.data->'payload' AS payload, j.priority,
  (CASE WHEN j.state = 'completed' THEN 100 WHEN j.state = 'active' THEN coalesce((j.output->>'progress')::smallint, 0) ELSE 0 END)::smallint AS progress,
  CASE WHEN j.state = 'active' THEN j.output->>'message' END AS progress_message,
  j.retry_count + (j.started_on IS NOT NULL)::int AS attempts, j.retry_limit + 1 AS max_attempts,
  j.start_after AS run_at, j.created_on AS created_at, greatest(j.created_on, j.started_on, j.completed_on) AS updated_at,
  j.started_on AS started_at, CASE WHEN j.state IN ('completed', 'failed', 'cancelled') THEN j.completed_on END AS finished_at,
  CASE WHEN j.state <> 'completed' THEN j.output->'error' END AS error,
  j.data->>'traceparent' AS traceparent, (j.data->>'parentId')::uuid AS parent_id, (j.data->>'batchId')::uuid AS batch_id`;

/**
 * The one index of ours on pg-boss's job table: records that failed or were cancelled, for the
 * list's filters by those states (rare among the rows a queue keeps; pg-boss's own indexes read
 * jobs by name and creation, or its live jobs). A job that completes never enters it. Made once
 * by whichever process starts first (an advisory lock keeps two from racing), on the partitioned
 * table, so pg-boss's queue partitions get it too.
 */
export function ensureRecordIndexes(bossSchema: string): string {
  const b = assertSchemaName(bossSchema);
  return `
    SELECT pg_advisory_xact_lock(hashtext('jobgate.record-indexes.${b}'));
    CREATE INDEX IF NOT EXISTS jobgate_records_ended ON ${b}.job (name, state, created_on) WHERE state IN ('failed', 'cancelled');`;
}

/** The SQL that reads records from pg-boss's tables in `bossSchema`. */
export function recordPlans(bossSchema: string) {
  const b = assertSchemaName(bossSchema);
  return {
    schema: b,
    /** One record by id ($1), or none (pg-boss's key is (name, id): each job queue's is probed). */
    getRecord: `
      SELECT ${RECORD_COLUMNS} FROM ${b}.job j
       WHERE j.name IN (${jobQueues(b)}) AND j.id = $1 AND j.data ? 'record'`,
    /**
     * The newest records matching `filter` (up to `limit`, a parameter), newest first as the list
     * orders them, with `cursor_at`; null when no record can match (a routed job's filter). Each
     * job queue is read in creation order from pg-boss's own (name, created_on) index and the
     * queues' pages are merged: no index of ours on pg-boss's table.
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
    /** Live records per job name, and those that failed in the last day (the ledger's countsByName). */
    countsByName: `
      SELECT j.name,
             count(*) FILTER (WHERE j.state IN ('created', 'retry'))::int AS queued,
             count(*) FILTER (WHERE j.state = 'active')::int AS active,
             count(*) FILTER (WHERE j.state = 'failed')::int AS failed
        FROM ${b}.job j
       WHERE j.name IN (${jobQueues(b)}) AND j.data ? 'record'
         AND (j.state < 'completed' OR (j.state = 'failed' AND j.completed_on > clock_timestamp() - interval '1 day'))
       GROUP BY j.name`,
    /** A record's attempts: its rows in `executions` (those that failed, were lost or were cancelled) and its latest, from its row. */
    latestAttempt: `
      SELECT j.retry_count + 1 AS attempt, 'main'::text AS ran_on, j.started_on AS started_at,
             CASE WHEN j.state = 'active' THEN NULL ELSE j.completed_on END AS finished_at,
             CASE WHEN j.state = 'active' THEN 'running' ELSE 'completed' END AS outcome,
             NULL::jsonb AS error, NULL::int AS peak_rss_mb
        FROM ${b}.job j
       WHERE j.name IN (${jobQueues(b)}) AND j.id = $1 AND j.data ? 'record' AND j.started_on IS NOT NULL AND j.state IN ('active', 'completed')`,
  };
}

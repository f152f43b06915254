// What a run costs the database, counted the same way for every row of the bench: WAL bytes (heap
// and index writes together, full-page images included, from a CHECKPOINT), row writes (inserts,
// updates and deletes per table) and CPU seconds of the bench's own PostgreSQL (its postmaster and
// everything it started, exited backends included), so other clusters on the host do not count.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';

/** The fields of /proc/<pid>/stat after the command name (state first), or null once it is gone. */
function statFields(pid: number | string): string[] | null {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  } catch {
    return null;
  }
}

/** utime + stime of `pid` in seconds (and its reaped children's, with `children`); 0 once it is gone. */
function cpuOf(pid: number | string, children = false): number {
  const f = statFields(pid);
  if (!f) return 0;
  const own = Number(f[11]) + Number(f[12]);
  return (children ? own + Number(f[13]) + Number(f[14]) : own) / 100; // clock ticks of 1/100 s
}

/**
 * CPU seconds the bench's PostgreSQL has used so far: its postmaster (with the backends it has
 * reaped) and every live process it started. `dataDir`: the cluster's data directory (its
 * postmaster.pid names the postmaster); without one (BENCH_DATABASE_URL), NaN: the host's other
 * clusters cannot be told apart from it.
 */
export function postgresCpuSeconds(dataDir: string | null): number {
  if (!dataDir) return NaN;
  let postmaster: number;
  try {
    postmaster = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return NaN;
  }
  let total = cpuOf(postmaster, true);
  for (const pid of readdirSync('/proc')) {
    if (/^\d+$/.test(pid) && Number(statFields(pid)?.[1]) === postmaster) total += cpuOf(pid);
  }
  return total;
}

/** CPU seconds of other processes by name (the apps), and of this script. */
export function processCpuSeconds(pids: Record<string, number>): Record<string, number> {
  const self = process.cpuUsage();
  return { ...Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuOf(pid)])), 'this script': (self.user + self.system) / 1e6 };
}

/** Rows inserted, updated and deleted so far, per table of this database. */
export async function rowWrites(pool: pg.Pool): Promise<Map<string, number>> {
  const { rows } = await pool.query(`SELECT schemaname || '.' || relname AS t, (n_tup_ins + n_tup_upd + n_tup_del)::float8 AS n FROM pg_stat_user_tables`);
  return new Map(rows.map((r) => [r.t as string, r.n as number]));
}

/** Idle time inside every window after its last job: trailing writes land in it, alike for every row. */
const TAIL_MS = 2_000;

export interface Writes {
  /** WAL bytes per job (pg_current_wal_lsn() after − before, from a CHECKPOINT). */
  walPerJob: number;
  /** Row writes per job, and the same by table (≥ 0.01 per job), largest first. */
  rowsPerJob: number;
  byTable: Array<[table: string, perJob: number]>;
  /** CPU ms per job of the bench's PostgreSQL (NaN outside the embedded cluster), and of the Node processes measured. */
  postgresCpuMsPerJob: number;
  nodeCpuMsPerJob: number;
  /**
   * WAL bytes per job by the relation a record writes first (pg_walinspect; its full-page images
   * included), largest first; records that write no relation (commits) as 'no relation'. Empty
   * where the extension is not installed.
   */
  walByRelation: Array<[relation: string, perJob: number]>;
  /** From the first enqueue to the last job settled. */
  seconds: number;
  perSecond: number;
}

/** The most jobs a second `cores` could run at this CPU cost per job (2 cores give 2 CPU-seconds a second). */
export const capacityBound = (w: Writes, cores: number) => (cores * 1000) / (w.postgresCpuMsPerJob + w.nodeCpuMsPerJob);

/**
 * Runs `run` (which makes `jobs` jobs go from enqueue to their end) between two readings of the
 * WAL position, the row counters and PostgreSQL's CPU. A VACUUM and a CHECKPOINT first, so every
 * run pays its own full-page images alike and none of an earlier run's cleanup. Row counters are flushed by each backend within PostgreSQL's idle
 * interval (10 s): the reading after waits that long (`settleMs`), outside the timed part.
 */
export async function measureWrites(
  pool: pg.Pool,
  dataDir: string | null,
  jobs: number,
  run: () => Promise<void>,
  options: { nodeCpuSeconds?: () => number; settleMs?: number } = {},
): Promise<Writes> {
  const settleMs = options.settleMs ?? 11_000;
  const nodeCpu = options.nodeCpuSeconds ?? (() => processCpuSeconds({})['this script']!);
  await sleep(settleMs); // earlier runs' counters in, so they do not land in this one
  // earlier runs' dead rows pruned and hint bits set now, not inside this window (with data
  // checksums, as PostgreSQL 18 initialises by default, a first hint bit on a page logs the page)
  await pool.query('VACUUM');
  await pool.query('CHECKPOINT');
  const rowsBefore = await rowWrites(pool);
  const { rows: [before] } = await pool.query(`SELECT pg_current_wal_lsn() AS lsn`);
  const cpuBefore = postgresCpuSeconds(dataDir);
  const nodeBefore = nodeCpu();
  const started = performance.now();
  await run();
  const seconds = (performance.now() - started) / 1000;
  // the writes that trail the last job (a reporter's delete, an outbox's prune) are part of its cost
  await sleep(TAIL_MS);
  const cpuAfter = postgresCpuSeconds(dataDir);
  const nodeAfter = nodeCpu();
  const { rows: [wal] } = await pool.query(`SELECT pg_current_wal_lsn() AS lsn, pg_wal_lsn_diff(pg_current_wal_lsn(), $1)::float8 AS bytes`, [before.lsn]);
  const walByRelation = await walOfRelations(pool, before.lsn, wal.lsn, wal.bytes, jobs);
  await sleep(settleMs);
  const rowsAfter = await rowWrites(pool);
  const byTable = [...rowsAfter]
    .map(([table, n]) => [table, (n - (rowsBefore.get(table) ?? 0)) / jobs] as [string, number])
    .filter(([, n]) => n >= 0.01)
    .sort((a, b) => b[1] - a[1]);
  return {
    walPerJob: wal.bytes / jobs,
    rowsPerJob: byTable.reduce((sum, [, n]) => sum + n, 0),
    byTable,
    walByRelation,
    postgresCpuMsPerJob: ((cpuAfter - cpuBefore) * 1000) / jobs,
    nodeCpuMsPerJob: ((nodeAfter - nodeBefore) * 1000) / jobs,
    seconds,
    perSecond: jobs / seconds,
  };
}

/** WAL per job between two positions by the relation each record writes first (its block 0). */
async function walOfRelations(pool: pg.Pool, from: string, to: string, bytes: number, jobs: number): Promise<Array<[string, number]>> {
  try {
    await pool.query('CREATE EXTENSION IF NOT EXISTS pg_walinspect');
  } catch {
    return [];
  }
  const { rows } = await pool.query(
    `SELECT coalesce(pg_filenode_relation(CASE WHEN b.reltablespace = (SELECT dattablespace FROM pg_database WHERE datname = current_database()) THEN 0 ELSE b.reltablespace END, b.relfilenode)::text, 'relfilenode ' || b.relfilenode) AS rel,
            sum(b.record_length)::float8 AS bytes
       FROM pg_get_wal_block_info($1, $2) b WHERE b.block_id = 0 GROUP BY 1`,
    [from, to],
  );
  const byRelation: Array<[string, number]> = rows.map((r) => [r.rel as string, r.bytes / jobs]);
  const onRelations = rows.reduce((sum, r) => sum + r.bytes, 0);
  byRelation.push(['no relation (commits, other records)', Math.max(0, bytes - onRelations) / jobs]);
  return byRelation.sort((a, b) => b[1] - a[1]);
}

/** "12.3 rows (7.0 pgboss_raw.j…, …)" for a row's note. */
export function describeWrites(w: Writes): string {
  const tables = w.byTable.slice(0, 6).map(([t, n]) => `${n.toFixed(2)} ${t}`).join(', ');
  return `${Math.round(w.walPerJob)} B WAL, ${w.rowsPerJob.toFixed(1)} row writes (${tables}); CPU ms per job: PostgreSQL ${w.postgresCpuMsPerJob.toFixed(2)}, Node ${w.nodeCpuMsPerJob.toFixed(2)}`;
}

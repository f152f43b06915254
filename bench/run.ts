// npm run bench [-- --quick]: jobgate against plain pg-boss, measured in one run on one PostgreSQL.
// Prints one table (figure, jobgate, baseline, ratio, target, pass), writes bench-results.json and
// appends the run (date, cores, load, table) to bench/RESULTS.md.
// Every figure is a ratio to raw pg-boss measured here and now: absolute times drift between runs
// on shared machines, ratios hold (../shared/PERF.md).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { z } from 'zod';
import { createLogger } from '../packages/jobgate/src/support/index.ts';
import { createBoss, createFetcherLedger, createMainLedger, createOverviewStore, migrate, queuedCondition, recordBossWrite, runTogether, type PgBoss } from '../packages/jobgate/src/store/index.ts';
import { mainJobsViews } from '../test/support/main-jobs.ts';
import { startEmbeddedPostgres } from '../scripts/embedded-postgres.ts';
import { createCatalogue, createMainRuntime, defineJob, demoHeavy } from '../packages/jobgate/src/internal.ts';
import { cursorDeep, fillLedger, listCases } from '../test/fixtures/big-ledger.ts';
import { appendResults, resultsTable, type BenchResults, type BenchRow } from './results-file.ts';
import { localFloors, queueSettled, RAW_QUEUE, RAW_WORK, routedFloor, sixteenInFlight } from './floors.ts';
import { capacityBound, describeWrites, measureWrites, postgresCpuSeconds, processCpuSeconds, type Writes } from './writes.ts';
import { peakRate, PHASES, pressureRun, type PressurePath } from './pressure.ts';
import { benchRouted } from './bench-jobs.ts';

const ROOT = join(import.meta.dirname, '..');
const quick = process.argv.includes('--quick');
/** `--pressure-rate N`: the pressure section offers N jobs/s instead of half the measured peak (to compare two versions at one rate). */
const rateArg = process.argv.indexOf('--pressure-rate');
const fixedRate = rateArg > 0 ? Number(process.argv[rateArg + 1]) : null;
if (fixedRate !== null && !(fixedRate > 0)) throw new Error('--pressure-rate takes a number of jobs per second');
/** `--pressure-seconds 5,5,45`: the pressure phases' lengths (xid, readers, kills), e.g. a full-length kills phase in a quick run. */
const secondsArg = process.argv.indexOf('--pressure-seconds');
const phaseArg = secondsArg > 0 ? (() => {
  const [xid, readers, kills] = (process.argv[secondsArg + 1] ?? '').split(',').map(Number);
  if (![xid, readers, kills].every((n) => n! > 0)) throw new Error('--pressure-seconds takes three lengths in seconds: xid,readers,kills');
  return { xid: xid!, readers: readers!, kills: kills! };
})() : null;
/** `--only enqueue,local,routed,…`: run some sections (to profile one); the table then has only their rows. */
const onlyArg = process.argv.indexOf('--only');
const only = onlyArg > 0 ? new Set(process.argv[onlyArg + 1]?.split(',')) : null;
const runs = (section: string) => !only || only.has(section);
/** `--profile-sql`: PostgreSQL with pg_stat_statements; prints where the database's time goes per routed job. */
const profileSql = process.argv.includes('--profile-sql');
const logger = createLogger({ level: 'warn', name: 'bench' });
/** The queues' own error logs (a connection cut at the end of a run) are noise here. */
const quiet = createLogger({ level: 'silent', name: 'bench' });
const SIZES = quick
  ? { enqueue: 300, rounds: 3, local: 1_000, routed: 500, latency: 30, fanout: 2_000, writes: 1_000 }
  : { enqueue: 1_000, rounds: 5, local: 5_000, routed: 5_000, latency: 100, fanout: 10_000, writes: 5_000 };
/**
 * jobgate's queues poll every half second (a missed NOTIFY costs little) and run pg-boss's
 * supervision at the product's default, every 30 s. Raw pg-boss's run it every second: its
 * workers' burst mode (burstWhenReadyExceeds) reads a queue's ready count from the monitor's
 * stats, and at 30 s its pipeline fell from about 440 to 34 jobs/s; jobgate's workers wake each
 * other instead. The monitor writes each queue's row every interval (main has a queue per job
 * name): at 1 s, 0.9 of a row per routed job, time rather than work, which raw pays for its burst.
 */
const TIMINGS = { pollIntervalSeconds: 0.5, superviseIntervalSeconds: 30, cronIntervalSeconds: 30, heartbeatSeconds: 30 };
const RAW_TIMINGS = { ...TIMINGS, superviseIntervalSeconds: 1 };

type Row = BenchRow;
const rows: Row[] = [];

const median = (xs: number[]) => percentile(xs, 50);
function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

function record(row: Omit<Row, 'ratio' | 'pass'>, pass: (ratio: number, row: Omit<Row, 'ratio' | 'pass'>) => boolean | null) {
  const ratio = row.jobgate / row.baseline;
  const full = { ...row, jobgate: round(row.jobgate), baseline: round(row.baseline), ratio: round(ratio), pass: pass(ratio, row) };
  rows.push(full);
  console.log(`  ${full.figure}: jobgate ${full.jobgate} ${row.unit}, baseline ${full.baseline} ${row.unit}, ratio ${full.ratio} → ${full.pass === null ? 'reported' : full.pass ? 'pass' : 'MISS'}${row.note ? ` (${row.note})` : ''}`);
}

// ------------------------------------------------------------------ database

/** The embedded cluster's data directory (its postmaster's CPU is the bench's PostgreSQL CPU); null under BENCH_DATABASE_URL. */
let dataDir: string | null = null;

async function database(): Promise<{ url: string; stop(): Promise<void> }> {
  const name = `bench_${randomBytes(4).toString('hex')}`;
  let adminUrl: string;
  let stopCluster = async () => {};
  if (process.env.BENCH_DATABASE_URL) adminUrl = process.env.BENCH_DATABASE_URL;
  else {
    const flags = profileSql ? ['-c', 'shared_preload_libraries=pg_stat_statements', '-c', 'pg_stat_statements.track=all', '-c', 'pg_stat_statements.track_planning=on'] : [];
    dataDir = join(ROOT, '.data/bench-pg');
    const cluster = await startEmbeddedPostgres({ dataDir, port: 54349, logger, flags });
    adminUrl = cluster.url('postgres');
    stopCluster = () => cluster.stop();
  }
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${name}"`);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async stop() {
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).finally(() => c.end());
      await stopCluster();
    },
  };
}

// ------------------------------------------------------------------ in-process: enqueue and local throughput

/** Handler runs of each no-op, counted as raw pg-boss's handler counts its own (reading the jobs' states back would time the reads too). */
const ran = { noop: 0, noop50: 0 };
const noop = defineJob({ name: 'bench.noop', payload: z.strictObject({ n: z.number().int() }), run: async () => void ran.noop++ });
/** The same no-op, for the runtime that fetches 50 jobs at a time. */
const noop50 = defineJob({ name: 'bench.noop50', payload: z.strictObject({ n: z.number().int() }), run: async () => void ran.noop50++ });

async function inProcess(url: string) {
  const pool = new pg.Pool({ connectionString: url, max: 5 });
  pool.on('error', () => {});
  await migrate(pool, 'jobgate');
  const ledger = createMainLedger(pool, 'jobgate', { bossSchema: 'pgboss_main' });
  const boss = createBoss({ connectionString: url, schema: 'pgboss_main', poolSize: 5, timings: TIMINGS, logger: quiet });
  await boss.start();
  await pool.query(mainJobsViews());
  // raw pg-boss as its users run it: none of its statements prepared (jobgate's own pg-boss prepares the recurring ones)
  const raw = createBoss({ connectionString: url, schema: 'pgboss_raw', poolSize: 5, timings: RAW_TIMINGS, logger: quiet, prepare: false });
  await raw.start();
  await raw.createQueue('raw.noop', RAW_QUEUE);
  const jobs = createMainRuntime({ pool, boss, ledger, catalogue: createCatalogue([noop]), logger: quiet, timings: TIMINGS, workerConcurrency: 4 });
  await jobs.start();
  await jobs.pause(); // enqueue first, with no worker competing
  // the same at 50 jobs per fetch (issue 17 compares both batch sizes), on a queue of its own
  const jobs50 = createMainRuntime({ pool, boss, ledger, catalogue: createCatalogue([noop50]), logger: quiet, timings: TIMINGS, workerConcurrency: 4, batchSize: 50 });
  await jobs50.start();
  await jobs50.pause();
  return { pool, ledger, boss, raw, jobs, jobs50 };
}

async function enqueueLatency(env: Awaited<ReturnType<typeof inProcess>>) {
  console.log('enqueue latency (performLater vs raw boss.send, same queue options)');
  const mine: number[] = [];
  const theirs: number[] = [];
  const floor: number[] = [];
  let n = 0;
  // The least any design with a ledger row beside pg-boss's row can cost: raw send and the ledger's
  // insert in one round trip (what performLater sends), with none of jobgate's own code around it.
  const sendWithLedgerRow = async () => {
    const id = randomUUID();
    const queued = await recordBossWrite((db) => env.raw.send('raw.noop', { n: n++ }, { id, db }), id);
    const row = { id, name: 'raw.noop', route: 'main' as const, routeReason: 'definition' as const, payload: { n }, priority: 0, uniqueKey: null, maxAttempts: 3, delaySeconds: 0 };
    await runTogether(env.pool, [queued, env.ledger.insertJobStatement(row, queuedCondition(queued, 'raw.noop', id))]);
  };
  // warm up all, then alternate rounds so drift hits each alike
  for (let i = 0; i < 100; i++) {
    await env.jobs.performLater(noop, { n: n++ });
    await env.raw.send('raw.noop', { n: n++ });
    await sendWithLedgerRow();
  }
  for (let r = 0; r < SIZES.rounds; r++) {
    for (const [out, send] of [
      [mine, () => env.jobs.performLater(noop, { n: n++ })],
      [theirs, () => env.raw.send('raw.noop', { n: n++ })],
      [floor, sendWithLedgerRow],
    ] as const) {
      for (let i = 0; i < SIZES.enqueue / SIZES.rounds; i++) {
        const t = performance.now();
        await send();
        out.push(performance.now() - t);
      }
    }
  }
  record({ figure: 'enqueue p50, sequential', jobgate: median(mine), baseline: median(theirs), unit: 'ms', target: '≤ 1.10×' }, (r) => r <= 1.1);
  record({ figure: 'enqueue p99, sequential', jobgate: percentile(mine, 99), baseline: percentile(theirs, 99), unit: 'ms', target: 'reported' }, () => null);
  record({ figure: 'enqueue p50, design floor (raw send + ledger row, one round trip)', jobgate: median(floor), baseline: median(theirs), unit: 'ms', target: 'reported', note: 'what two rows per job cost before any jobgate code runs' }, () => null);

  const inFlight = async (send: () => Promise<unknown>) => {
    const latencies: number[] = [];
    let left = SIZES.enqueue;
    const started = performance.now();
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (left-- > 0) {
        const t = performance.now();
        await send();
        latencies.push(performance.now() - t);
      }
    }));
    return { p50: median(latencies), perSecond: SIZES.enqueue / ((performance.now() - started) / 1000) };
  };
  const a = await inFlight(() => env.jobs.performLater(noop, { n: n++ }));
  const b = await inFlight(() => env.raw.send('raw.noop', { n: n++ }));
  record({ figure: 'enqueue p50, 16 in flight', jobgate: a.p50, baseline: b.p50, unit: 'ms', target: '≤ 1.10×' }, (r) => r <= 1.1);
  record({ figure: 'enqueue throughput, 16 in flight', jobgate: a.perSecond, baseline: b.perSecond, unit: 'jobs/s', target: 'reported' }, () => null);
}

async function localThroughput(env: Awaited<ReturnType<typeof inProcess>>, url: string) {
  console.log(`local throughput (${SIZES.local} no-op jobs, one per fetch, then 50 per fetch, 4 workers, both)`);
  // drain what the enqueue rows left, fill both queues alike, analyze (PERF.md: stale stats are the biggest trap)
  await drainNoop(env);
  for (let i = 0; i < SIZES.local; i += 500) {
    await Promise.all(Array.from({ length: Math.min(500, SIZES.local - i) }, (_, k) => env.jobs.performLater(noop, { n: i + k })));
  }
  await env.raw.insert('raw.noop', Array.from({ length: SIZES.local }, (_, n) => ({ data: { n } })));
  await env.pool.query('ANALYZE');

  const completed = async () => (await env.pool.query(`SELECT count(*)::int AS n FROM public.main_jobs WHERE state = 'completed'`)).rows[0].n as number;
  ran.noop = 0;
  const mine = await timedLocalRun(() => env.jobs.resume(), () => ran.noop >= SIZES.local, 20);
  // (untimed: every job's completion written, as raw pg-boss's are by the time its next run starts)
  while ((await completed()) < SIZES.local) await sleep(50);
  await env.jobs.pause();

  let done = 0;
  const raw = await timedLocalRun(
    () => env.raw.work('raw.noop', { batchSize: 1, burstWhenReadyExceeds: 1, localConcurrency: 4, pollingIntervalSeconds: 0.5, notifyPollingIntervalSeconds: 0.5 }, async () => {
      done++;
    }),
    () => done >= SIZES.local,
    20,
  );
  const theirs = raw.perSecond;
  await env.raw.offWork('raw.noop');
  record({ figure: 'local throughput', jobgate: mine.perSecond, baseline: theirs, unit: 'jobs/s', target: '≥ 0.85×', note: `jobgate ${mine.cpu}; raw ${raw.cpu}` }, (r) => r >= 0.85);

  // The least a design with a ledger beside pg-boss can cost: raw work whose handler makes the
  // ledger's two writes per attempt (claim, finish) and nothing else of jobgate's.
  const ids = Array.from({ length: SIZES.local }, () => randomUUID());
  await env.raw.createQueue('raw.floor', RAW_QUEUE);
  await createFetcherLedger(env.pool, 'jobgate').insertBatchIfAbsent(ids.map((id, n) => ({ id, name: 'raw.floor', route: 'main' as const, payload: { n }, priority: 0, maxAttempts: 3, delaySeconds: 0 })));
  await env.raw.insert('raw.floor', ids.map((id, n) => ({ id, data: { n } })));
  await env.pool.query('ANALYZE');
  done = 0;
  const floor = await timedLocalRun(
    () => env.raw.work('raw.floor', { batchSize: 1, burstWhenReadyExceeds: 1, localConcurrency: 4, pollingIntervalSeconds: 0.5, notifyPollingIntervalSeconds: 0.5 }, async ([job]) => {
      await env.ledger.claimAttempt({ id: job!.id, attempt: 1, ranOn: 'main', concurrency: null, perSecond: null, claimSeconds: 60 });
      await env.ledger.finishAttempt({ id: job!.id, attempt: 1, outcome: 'completed', state: 'completed', error: null, peakRssMb: 0 });
      done++;
    }),
    () => done >= SIZES.local,
    20,
  );
  await env.raw.offWork('raw.floor');
  record({ figure: 'local throughput, design floor (raw work + the ledger\'s claim and finish)', jobgate: floor.perSecond, baseline: theirs, unit: 'jobs/s', target: 'reported', note: 'what the ledger\'s two writes per attempt cost before any jobgate code runs' }, () => null);
  await localThroughputAtBatch(env, 50);
  void url;
  return theirs;
}

/**
 * What the enqueue rows leave queued, on both sides (bench.noop's runtime is paused, raw.noop is never
 * worked there): gone, so every later section starts both sides empty. Left behind, raw pg-boss's
 * thousands of unworked rows slowed its pipeline in the writes section to about half (585 -> 325
 * jobs/s at 5,000 jobs) while jobgate's side had none: the routed rows' baseline was unfair.
 */
async function drainNoop(env: Awaited<ReturnType<typeof inProcess>>) {
  await env.pool.query(`DELETE FROM pgboss_main.job WHERE name = 'bench.noop'`);
  await env.pool.query(`DELETE FROM pgboss_raw.job WHERE name = 'raw.noop'`);
  await env.pool.query(`UPDATE jobgate.jobs SET state = 'cancelled' WHERE state = 'queued'`);
}

/**
 * Writes per job, the same way for every design (writes.ts): raw pg-boss, jobgate on main, and the
 * design floors (floors.ts), each a pipeline of SIZES.writes no-op jobs enqueued 16 in flight while
 * 4 workers run them. Answers the raw pipeline (the routed rows' baseline: its enqueue is timed, as
 * the routed rows time performLater) and the routed floor.
 */
async function writesPerJob(env: Awaited<ReturnType<typeof inProcess>>): Promise<{ raw: Writes; routedFloor: Writes | null }> {
  const count = SIZES.writes;
  const cores = availableParallelism();
  console.log(`writes per job (${count} no-op jobs a run: enqueued 16 in flight while 4 workers run them, to the last settled; WAL from a CHECKPOINT)`);
  await env.pool.query(`CREATE SCHEMA IF NOT EXISTS bench_floor`);
  await drainNoop(env);
  await env.pool.query('ANALYZE');
  const floors = localFloors({ pool: env.pool, raw: env.raw, schema: 'pgboss_raw' });
  const measure = (run: () => Promise<void>) => measureWrites(env.pool, dataDir, count, run);
  // Raw pg-boss's pipeline is the routed rows' baseline, so it is measured at its best: before and
  // after jobgate's, the faster of the two. Its first run after the earlier sections (the enqueue
  // rows, then a million-job backlog written and deleted) was seen at half speed, its PostgreSQL
  // CPU per job 2.5-3x its run after jobgate's (245 against 582 jobs/s); why is not known.
  const rawFirst = await measure(() => floors.raw(count));
  const mine = await measure(async () => {
    await env.jobs.resume();
    await sixteenInFlight(count, (n) => env.jobs.performLater(noop, { n }));
    await queueSettled(env.pool, 'pgboss_main', noop.name);
    await env.jobs.pause();
  });
  const rawAfter = await measure(() => floors.raw(count));
  const raw = rawAfter.perSecond > rawFirst.perSecond ? rawAfter : rawFirst;
  const bound = (w: Writes) => `; CPU-bound at ${Math.round(capacityBound(w, cores))} jobs/s on ${cores} cores`;
  record({ figure: 'pipeline throughput on main (enqueue 16 in flight + run)', jobgate: mine.perSecond, baseline: raw.perSecond, unit: 'jobs/s', target: 'reported', note: `jobgate ${describeWrites(mine)}${bound(mine)}; raw (the faster of ${Math.round(rawFirst.perSecond)} jobs/s before jobgate's run and ${Math.round(rawAfter.perSecond)} after) ${describeWrites(raw)}${bound(raw)}` }, () => null);
  record({ figure: 'WAL per job run on main', jobgate: mine.walPerJob, baseline: raw.walPerJob, unit: 'B', target: '≤ 1.3×' }, (r) => r <= 1.3);
  record({ figure: 'row writes per job run on main', jobgate: mine.rowsPerJob, baseline: raw.rowsPerJob, unit: 'rows', target: 'reported' }, () => null);
  const floor = async (figure: string, run: () => Promise<void>, note: string) => {
    const w = await measure(run);
    record({ figure: `WAL per job, design floor: ${figure}`, jobgate: w.walPerJob, baseline: raw.walPerJob, unit: 'B', target: 'reported', note: `${note}; ${describeWrites(w)}; ${Math.round(w.perSecond)} jobs/s${bound(w)}` }, () => null);
    return w;
  };
  await floor("pg-boss's row as the record", () => floors.record(count), "jobgate's facts in pg-boss's data, a per-minute rollup counted in memory and flushed once a second");
  await floor('a narrow side row at enqueue', () => floors.sideRow(count), 'an immutable row (3 indexes) written with pg-boss\'s in one round trip');
  const routed = runs('routed')
    ? await floor('routed, both sides', () => routedFloor({ pool: env.pool, raw: env.raw, schema: 'pgboss_raw' }, count), "main's narrow record written at enqueue, delivery, grant and end; the fetcher's pg-boss row, deleted once reported; hops batched")
    : null;
  return { raw, routedFloor: routed };
}

/** Jobgate's runtime and raw pg-boss, both fetching `batch` jobs at a time with 4 workers. */
async function localThroughputAtBatch(env: Awaited<ReturnType<typeof inProcess>>, batch: number) {
  const queue = `raw.noop${batch}`;
  await env.raw.createQueue(queue, RAW_QUEUE);
  for (let i = 0; i < SIZES.local; i += 500) {
    await Promise.all(Array.from({ length: Math.min(500, SIZES.local - i) }, (_, k) => env.jobs50.performLater(noop50, { n: i + k })));
  }
  await env.raw.insert(queue, Array.from({ length: SIZES.local }, (_, n) => ({ data: { n } })));
  await env.pool.query('ANALYZE');
  const completed = async () => (await env.pool.query(`SELECT count(*)::int AS n FROM public.main_jobs WHERE name = $1 AND state = 'completed'`, [noop50.name])).rows[0].n as number;
  ran.noop50 = 0;
  if (profileSql) await resetSqlProfile(env.pool);
  const mine = await timedLocalRun(() => env.jobs50.resume(), () => ran.noop50 >= SIZES.local, 20);
  while ((await completed()) < SIZES.local) await sleep(50);
  if (profileSql) await printSqlProfile(env.pool, SIZES.local, `local job at batch ${batch}`);
  await env.jobs50.pause();
  let done = 0;
  if (profileSql) await resetSqlProfile(env.pool);
  const raw = await timedLocalRun(
    () => env.raw.work(queue, { batchSize: batch, burstWhenBatchFull: true, localConcurrency: 4, pollingIntervalSeconds: 0.5, notifyPollingIntervalSeconds: 0.5 }, async (jobs) => {
      done += jobs.length;
    }),
    () => done >= SIZES.local,
    20,
  );
  if (profileSql) await printSqlProfile(env.pool, SIZES.local, `raw pg-boss job at batch ${batch}`);
  await env.raw.offWork(queue);
  record({ figure: `local throughput, batch ${batch}`, jobgate: mine.perSecond, baseline: raw.perSecond, unit: 'jobs/s', target: '≥ 0.6×', note: `jobgate ${mine.cpu}; raw ${raw.cpu}` }, (r) => r >= 0.6);
}

/**
 * Raw pg-boss: `insert` of `count` jobs in one call, worked here as the local rows work (4 workers,
 * one per fetch); seconds of the insert plus seconds from the first fetch to the last handled. Its
 * best case: the new rows are analyzed between the two, untimed (PERF.md: a fetch planned on stale
 * statistics is the biggest trap), and the workers start with the queue's counts known.
 */
async function rawFanOut(env: Awaited<ReturnType<typeof inProcess>>, count: number): Promise<number> {
  await env.raw.createQueue('raw.fanout', RAW_QUEUE);
  let done = 0;
  const inserting = performance.now();
  await env.raw.insert('raw.fanout', Array.from({ length: count }, (_, n) => ({ data: { n } })));
  const insertSeconds = (performance.now() - inserting) / 1000;
  await env.pool.query('ANALYZE pgboss_raw.job');
  const started = performance.now();
  await env.raw.work('raw.fanout', { batchSize: 1, burstWhenReadyExceeds: 1, localConcurrency: 4, pollingIntervalSeconds: 0.5, notifyPollingIntervalSeconds: 0.5 }, async () => {
    done++;
  });
  while (done < count) await sleep(20);
  const seconds = insertSeconds + (performance.now() - started) / 1000;
  await env.raw.offWork('raw.fanout');
  return seconds;
}

async function rawLatency(env: Awaited<ReturnType<typeof inProcess>>): Promise<number[]> {
  // send → handler start, LISTEN/NOTIFY on, one job at a time
  await env.raw.createQueue('raw.latency', { notify: true });
  let resolveStart: ((at: number) => void) | null = null;
  await env.raw.work('raw.latency', { batchSize: 1, pollingIntervalSeconds: 0.5, notifyPollingIntervalSeconds: 0.5 }, async () => {
    resolveStart?.(performance.now());
  });
  const latencies: number[] = [];
  for (let i = 0; i < SIZES.latency + 5; i++) {
    const started = new Promise<number>((r) => (resolveStart = r));
    const t = performance.now();
    await env.raw.send('raw.latency', { i });
    const at = await started;
    if (i >= 5) latencies.push(at - t);
    await sleep(20);
  }
  await env.raw.offWork('raw.latency');
  return latencies;
}

async function backlogScale(env: Awaited<ReturnType<typeof inProcess>>) {
  console.log('backlog scale (performLater p50 and the admin jobs list with 10k / 100k / 1M jobs in the ledger)');
  await env.pool.query(`TRUNCATE jobgate.jobs CASCADE; DELETE FROM pgboss_main.job WHERE data ? 'record' AND name NOT LIKE 'bench.%'`);
  let filled = 0;
  const enqueueP50: Record<number, number> = {};
  const listSlowest: Record<number, { ms: number; label: string }> = {};
  // The overview's rollup as a day of finishing jobs leaves it (what the trigger writes, at about
  // 400 jobs a minute per job name and side): 1,440 minutes × 5 names × 2 sides.
  await env.pool.query(`
    INSERT INTO jobgate.job_minutes (minute, name, side, completed, failed, waits)
    SELECT date_trunc('minute', now()) - m * interval '1 minute', n, sd, 400 + m % 50, m % 7, ARRAY[m % 5, 10, 20, 40, 80, 40, 20, 10, 5, 2, 1, 0, 0, 0, 0, 0]
      FROM generate_series(0, 1439) m, unnest(ARRAY['demo.heavy', 'demo.light', 'movies.fetch', 'notifications.send', 'rare.job']) n, unnest(ARRAY['main', 'fetcher']) sd
    ON CONFLICT DO NOTHING`);
  await env.pool.query('ANALYZE jobgate.job_minutes');
  const overview = createOverviewStore(env.pool, 'jobgate', 'pgboss_main');
  const overviewCases: Array<[string, () => Promise<unknown>]> = [
    ['chart series, last hour', () => overview.series('hour')],
    ['chart series, last day', () => overview.series('day')],
    ['waiting and running now, by name and side', () => overview.live()],
  ];
  const overviewMs: Record<number, Record<string, number>> = {};
  const payloadMs: Record<number, { oneName?: number; everyName?: number }> = {};
  for (const size of [10_000, 100_000, 1_000_000]) {
    const t = performance.now();
    await fillLedger(env.pool, 'jobgate', filled + 1, size, 'pgboss_main');
    filled = size;
    const fillSeconds = (performance.now() - t) / 1000;
    const latencies: number[] = [];
    for (let i = 0; i < 250; i++) {
      const started = performance.now();
      await env.jobs.performLater(noop, { n: i });
      if (i >= 50) latencies.push(performance.now() - started);
    }
    enqueueP50[size] = median(latencies);
    // the admin API's own query, every filter the dashboard offers: warm once, then the median of 5
    // the payload filter apart: it reads in creation order (no GIN index), with its own target
    let slowest = { ms: 0, label: '' };
    for (const [label, filter] of listCases(await cursorDeep(env.pool, 'jobgate'))) {
      await env.ledger.listJobs(filter);
      const times: number[] = [];
      for (let i = 0; i < 5; i++) {
        const started = performance.now();
        await env.ledger.listJobs(filter);
        times.push(performance.now() - started);
      }
      if (filter.payload) payloadMs[size] = { ...payloadMs[size], [filter.name ? 'oneName' : 'everyName']: median(times) };
      else if (median(times) > slowest.ms) slowest = { ms: median(times), label };
    }
    listSlowest[size] = slowest;
    overviewMs[size] = {};
    // as autovacuum leaves a ledger at rest (the live counts read an index only once its pages are marked all-visible)
    await env.pool.query('VACUUM ANALYZE jobgate.jobs, pgboss_main.job');
    for (const [label, read] of overviewCases) {
      await read();
      const times: number[] = [];
      for (let i = 0; i < 5; i++) {
        const started = performance.now();
        await read();
        times.push(performance.now() - started);
      }
      overviewMs[size]![label] = median(times);
    }
    console.log(`  ${size.toLocaleString('en')} jobs (filled in ${fillSeconds.toFixed(1)} s): performLater p50 ${enqueueP50[size]!.toFixed(2)} ms, slowest list filter ${slowest.ms.toFixed(1)} ms (${slowest.label})`);
  }
  record({ figure: 'enqueue p50 at 100k jobs vs at 10k', jobgate: enqueueP50[100_000]!, baseline: enqueueP50[10_000]!, unit: 'ms', target: 'reported' }, () => null);
  record({ figure: 'enqueue p50 at 1M jobs vs at 10k', jobgate: enqueueP50[1_000_000]!, baseline: enqueueP50[10_000]!, unit: 'ms', target: '≤ 1.2×' }, (r) => r <= 1.2);
  record(
    { figure: 'jobs list, slowest dashboard filter but the payload at 1M jobs (vs at 10k)', jobgate: listSlowest[1_000_000]!.ms, baseline: listSlowest[10_000]!.ms, unit: 'ms', target: '< 300 ms', note: `slowest: ${listSlowest[1_000_000]!.label}` },
    (_r, row) => row.jobgate < 300,
  );
  record(
    { figure: 'jobs list, payload filter within one job name at 1M jobs (vs at 10k)', jobgate: payloadMs[1_000_000]!.oneName!, baseline: payloadMs[10_000]!.oneName!, unit: 'ms', target: '< 1 s', note: `across every name ${payloadMs[1_000_000]!.everyName!.toFixed(1)} ms (no GIN index: read in creation order)` },
    (_r, row) => row.jobgate < 1_000,
  );
  for (const [label] of overviewCases) {
    record(
      { figure: `overview: ${label}, at 1M jobs (vs at 10k)`, jobgate: overviewMs[1_000_000]![label]!, baseline: overviewMs[10_000]![label]!, unit: 'ms', target: '< 100 ms', note: label.startsWith('chart') ? 'reads the per-minute rollup (14,400 rows for a day), not the ledger' : 'a third of the 1M jobs are waiting or running in this ledger; measured after VACUUM, as autovacuum leaves a ledger at rest' },
      (_r, row) => row.jobgate < 100,
    );
  }
  await env.pool.query(`TRUNCATE jobgate.jobs CASCADE; DELETE FROM pgboss_main.job WHERE data ? 'record' AND name NOT LIKE 'bench.%'`);
  await env.pool.query(`TRUNCATE jobgate.job_minutes`);
}

// ------------------------------------------------------------------ both apps as processes: the routed path

/** The bench's own jobs (bench.hog, bench.fanout), beyond what the demo jobs may be asked for. */
const BENCH_JOBS = join(ROOT, 'bench/bench-jobs.ts');

/** The jobs API's token for the bench's own main (API_TOKENS). */
const BENCH_API_TOKEN = 'bench-api-token-0123456789abcdef';

function spawnApp(app: 'main' | 'fetcher', env: Record<string, string>): Promise<{ child: ChildProcess; url: string; stop(): Promise<void> }> {
  // (NODE_OPTIONS reaches the apps, e.g. --cpu-prof or a preload to debug them)
  const child = spawn(process.execPath, ['--conditions=jobgate-source', join(ROOT, `apps/${app}/src/main.ts`)], {
    cwd: ROOT,
    env: { ...(process.env.NODE_OPTIONS ? { NODE_OPTIONS: process.env.NODE_OPTIONS } : {}), PATH: process.env.PATH, HOME: process.env.HOME, HOST: '127.0.0.1', LOG_LEVEL: 'warn', JOBGATE_DEMO_JOBS: 'true', JOBGATE_JOB_MODULES: BENCH_JOBS, JOBGATE_POLL_INTERVAL_SECONDS: String(TIMINGS.pollIntervalSeconds), JOBGATE_SUPERVISE_INTERVAL_SECONDS: String(TIMINGS.superviseIntervalSeconds), ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      // BENCH_APP_LOGS=<file>: the apps' log lines kept there (why a row is slow), with the app's name
      if (process.env.BENCH_APP_LOGS) appendFileSync(process.env.BENCH_APP_LOGS, `${app} ${line}\n`);
      if (line.includes('"msg":"listening"')) {
        const port = JSON.parse(line).port as number;
        resolve({
          child,
          url: `http://127.0.0.1:${port}`,
          stop: () => new Promise<void>((r) => (child.exitCode !== null ? r() : (child.once('exit', () => r()), child.kill('SIGTERM')))),
        });
      }
    });
    child.once('exit', (code) => reject(new Error(`${app} exited ${code} before listening`)));
  });
}

async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/**
 * An in-process local run: starts it, waits until `finished` says every one of SIZES.local jobs is
 * done, and answers jobs per second and the CPU ms per job PostgreSQL and this process used meanwhile.
 */
async function timedLocalRun(start: () => Promise<unknown>, finished: () => boolean | Promise<boolean>, pollMs: number): Promise<{ perSecond: number; cpu: string }> {
  const before = cpuSeconds();
  const t = performance.now();
  await start();
  while (!(await finished())) await sleep(pollMs);
  const perSecond = SIZES.local / ((performance.now() - t) / 1000);
  const after = cpuSeconds();
  const perJob = (part: string) => (((after[part]! - before[part]!) * 1000) / SIZES.local).toFixed(2);
  return { perSecond, cpu: `PostgreSQL ${perJob('postgres')}, Node ${perJob('this script (performLater)')} CPU ms per job` };
}

/** CPU seconds used so far by the bench's own PostgreSQL (writes.ts) and by this script. */
function cpuSeconds(): Record<string, number> {
  return { postgres: postgresCpuSeconds(dataDir), 'this script (performLater)': processCpuSeconds({})['this script']! };
}

/** Enqueues through main's HTTP API (performLater behind it); returns the job id. */
async function enqueueOn(base: string, name: string, payload: object): Promise<string> {
  const r = await fetch(`${base}/api/jobs/${name}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${BENCH_API_TOKEN}` }, body: JSON.stringify({ payload }) });
  if (r.status !== 202) throw new Error(`enqueue answered ${r.status}: ${await r.text()}`);
  return ((await r.json()) as { id: string }).id;
}

type App = Awaited<ReturnType<typeof spawnApp>>;

/** Both apps as real processes on one database; main can be restarted with other settings. */
async function startPair(url: string, fetcherEnv: Record<string, string>, mainEnv: Record<string, string>) {
  const secret = `whsec_${randomBytes(32).toString('base64')}`;
  const [mainPort, fetcherPort] = [await freePort(), await freePort()];
  // 'listening' is logged at info: the apps log at info, their stdout is only read for that line
  const common = { DATABASE_URL: url, FETCHER_SHARED_SECRET: secret, LOG_LEVEL: 'info', API_TOKENS: BENCH_API_TOKEN };
  const fetcher = await spawnApp('fetcher', { ...common, PORT: String(fetcherPort), MAIN_SERVICE_URL: `http://127.0.0.1:${mainPort}`, ...fetcherEnv });
  const startMain = (env: Record<string, string>) => spawnApp('main', { ...common, PORT: String(mainPort), FETCHER_SERVICE_URL: `http://127.0.0.1:${fetcherPort}`, ...env });
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  pool.on('error', () => {});
  const pair = {
    fetcher,
    main: await startMain(mainEnv),
    pool,
    async restartMain(env: Record<string, string>): Promise<App> {
      await pair.main.stop();
      pair.main = await startMain({ ...mainEnv, ...env });
      return pair.main;
    },
    async stop() {
      await Promise.all([pair.main.stop(), fetcher.stop()]);
      await pool.end();
    },
  };
  // the bench's reads of every job main knows (main made its schemas by now)
  await pool.query(mainJobsViews());
  return pair;
}

/**
 * performLater against main's database from this process: what the product's code calls, without
 * main's HTTP API in front (that API is not the hop being measured). Runs no workers.
 */
async function mainEnqueuer(url: string) {
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  pool.on('error', () => {});
  const boss = createBoss({ connectionString: url, schema: 'pgboss_main', poolSize: 4, timings: TIMINGS, logger: quiet });
  await boss.start();
  const jobs = createMainRuntime({ pool, boss, ledger: createMainLedger(pool, 'jobgate', { bossSchema: 'pgboss_main' }), catalogue: createCatalogue([demoHeavy]), logger: quiet, timings: TIMINGS, workerConcurrency: 1 });
  return {
    enqueue: async () => (await jobs.performLater(demoHeavy, {})).job.id,
    async stop() {
      await boss.stop({ graceful: false, close: true }).catch(() => {});
      await pool.end().catch(() => {});
    },
  };
}

/** `writes`: the raw pipeline (the routed rows' baseline) and the routed design floor; null when the routed rows do not run. */
async function routed(url: string, writes: { raw: Writes; routedFloor: Writes | null } | null, rawLatencies: number[], rawFanOutSeconds: number | null) {
  const pair = await startPair(url, {}, {});
  const { pool } = pair;
  const enqueuer = await mainEnqueuer(url);
  try {
    for (const batch of !writes ? [] : quick ? [1, 500] : [1, 50, 500]) {
      const { raw: rawPipeline, routedFloor: routedFloorWrites } = writes!;
      const main = await pair.restartMain({ FETCHER_FORWARD_BATCH_SIZE: String(batch) });
      const count = batch === 1 ? Math.min(SIZES.routed, 1_000) : SIZES.routed;
      const ids: string[] = [];
      if (profileSql) await resetSqlProfile(pool);
      const pids = { main: main.child.pid!, fetcher: pair.fetcher.child.pid! };
      const cpuReadings: Array<Record<string, number>> = [];
      const spent = await measureWrites(
        pool,
        dataDir,
        count,
        async () => {
          await sixteenInFlight(count, async () => ids.push(await enqueuer.enqueue()));
          const deadline = Date.now() + 600_000;
          for (;;) {
            const { rows } = await pool.query(`SELECT count(*)::int AS n FROM jobgate.jobs WHERE id = ANY($1::uuid[]) AND state = 'completed'`, [ids]);
            if (rows[0].n === ids.length || Date.now() > deadline) break;
            await sleep(200);
          }
        },
        {
          // measureWrites reads it once before the run and once after: kept per process for the note
          nodeCpuSeconds: () => {
            const now = processCpuSeconds(pids);
            cpuReadings.push(now);
            return Object.values(now).reduce((a, b) => a + b, 0);
          },
        },
      );
      const { rows } = await pool.query(
        `SELECT extract(epoch FROM max(j.finished_at) - min(j.created_at))::float8 AS span,
                extract(epoch FROM max(j.created_at) - min(j.created_at))::float8 AS enqueueing,
                extract(epoch FROM max(e.started_at) - min(e.started_at))::float8 AS starting,
                count(*) FILTER (WHERE j.state = 'completed')::int AS done
           FROM jobgate.jobs j LEFT JOIN jobgate.attempts e ON e.job_id = j.id WHERE j.id = ANY($1::uuid[])`,
        [ids],
      );
      if (profileSql) {
        await printSqlProfile(pool, count, `routed job at batch ${batch}`);
        console.log(`  WAL per routed job at batch ${batch} by relation (pg_walinspect, ${Math.round(spent.walPerJob)} B in all): ${spent.walByRelation.filter(([, b]) => b >= 20).map(([rel, b]) => `${rel} ${Math.round(b)}`).join(', ')}`);
      }
      const cores = availableParallelism();
      const [cpuBefore, cpuAfter] = cpuReadings;
      const nodeByProcess = cpuBefore && cpuAfter ? Object.keys(cpuAfter).map((p) => `${p} ${(((cpuAfter[p]! - (cpuBefore[p] ?? 0)) * 1000) / count).toFixed(2)}`).join(', ') : 'not read';
      const phases = `${describeWrites(spent)} (Node: both apps and this script, which enqueues: ${nodeByProcess}); CPU-bound at ${Math.round(capacityBound(spent, cores))} jobs/s on ${cores} cores; enqueues over ${rows[0].enqueueing.toFixed(1)} s, handler starts over ${rows[0].starting.toFixed(1)} s, last done ${rows[0].span.toFixed(1)} s after the first enqueue`;
      record(
        {
          figure: `routed throughput, batch ${batch}`, jobgate: rows[0].done / rows[0].span, baseline: rawPipeline.perSecond, unit: 'jobs/s', target: batch === 500 ? '≥ 0.45×' : 'reported',
          note: `${count} jobs, performLater (16 at a time) to completion in main's ledger, against raw send (16 at a time) while raw work runs them; ${phases}`,
        },
        (r) => (batch === 500 ? r >= 0.45 : null),
      );
      if (batch === 500) {
        record({ figure: 'WAL per routed job (both sides)', jobgate: spent.walPerJob, baseline: rawPipeline.walPerJob, unit: 'B', target: '≤ 3×', note: routedFloorWrites ? `design floor ${Math.round(routedFloorWrites.walPerJob)} B (${(routedFloorWrites.walPerJob / rawPipeline.walPerJob).toFixed(2)}×)` : undefined }, (r) => r <= 3);
        record({ figure: 'row writes per routed job (both sides)', jobgate: spent.rowsPerJob, baseline: rawPipeline.rowsPerJob, unit: 'rows', target: '≤ ~10', note: routedFloorWrites ? `design floor ${routedFloorWrites.rowsPerJob.toFixed(1)}` : undefined }, (_r, row) => row.jobgate <= 10.5);
      }
      if (batch === 500) {
        // one at a time: from just before performLater (as raw is timed from just before send) to the
        // handler's start on the fetcher (its claim at main), on this machine's one clock
        const latencies: number[] = [];
        const hops: number[][] = [];
        for (let i = 0; i < SIZES.latency + 5; i++) {
          const sentAt = Date.now();
          const id = await enqueuer.enqueue();
          const deadline = Date.now() + 30_000;
          for (;;) {
            // main's grant of the first attempt (the fetcher's own start comes with its event, later)
            const { rows: started } = await pool.query(`SELECT extract(epoch FROM attempt_started_at)::float8 * 1000 AS at FROM jobgate.jobs WHERE id = $1 AND attempt_started_at IS NOT NULL`, [id]);
            if (started[0]) {
              if (i >= 5) {
                latencies.push(started[0].at - sentAt);
                // where the time goes, on PostgreSQL's clock: committed at main, accepted by the fetcher (its pg-boss row), fetched
                // there (by pg-boss's worker), claimed at main
                const { rows: at } = await pool.query(
                  `SELECT extract(epoch FROM j.created_at)::float8 * 1000 AS created, extract(epoch FROM f.created_on)::float8 * 1000 AS accepted,
                          extract(epoch FROM f.started_on)::float8 * 1000 AS claimed_there, extract(epoch FROM j.attempt_started_at)::float8 * 1000 AS claimed_at_main
                     FROM jobgate.jobs j LEFT JOIN pgboss_fetcher.job f ON f.name = j.name AND f.id = j.id
                    WHERE j.id = $1`,
                  [id],
                );
                const p = at[0];
                hops.push([p.created - sentAt, p.accepted - p.created, p.claimed_there - p.accepted, p.claimed_at_main - p.claimed_there]);
              }
              break;
            }
            if (Date.now() > deadline) throw new Error(`job ${id} did not start within 30 s`);
            await sleep(20); // the latency is read off the claim's own timestamp: polling faster only loads the machine it measures
          }
        }
        record(
          {
            figure: 'routed latency p50 (enqueue → handler start)', jobgate: median(latencies), baseline: median(rawLatencies), unit: 'ms', target: '≤ raw + 10 ms',
            note: `p50 of each hop: ${['committed at main', 'accepted by the fetcher', 'fetched there', 'claimed at main'].map((what, k) => `${what} +${median(hops.map((h) => h[k]!)).toFixed(1)} ms`).join(', ')}`,
          },
          (_r, row) => row.jobgate <= row.baseline + 10,
        );
        record({ figure: 'routed latency p99', jobgate: percentile(latencies, 99), baseline: percentile(rawLatencies, 99), unit: 'ms', target: 'reported' }, () => null);
      }
    }
    if (rawFanOutSeconds !== null) await fanOut(pair, rawFanOutSeconds);
  } finally {
    await enqueuer.stop();
    await pair.stop();
  }
}

/** Starts counting statements afresh for printSqlProfile (`--profile-sql`: the bench's PostgreSQL loads pg_stat_statements). */
async function resetSqlProfile(pool: pg.Pool) {
  await pool.query(`CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset()`);
}

/** Where PostgreSQL's time went per job since pg_stat_statements was last reset: the top statements, then by part. */
async function printSqlProfile(pool: pg.Pool, count: number, what: string) {
  const { rows: top } = await pool.query(
    `SELECT calls, round(((total_exec_time + total_plan_time) / $1)::numeric, 3) AS ms_per_job, left(regexp_replace(query, '\\s+', ' ', 'g'), 110) AS query
       FROM pg_stat_statements ORDER BY total_exec_time + total_plan_time DESC LIMIT 15`,
    [count],
  );
  console.log(`  PostgreSQL time per ${what} (pg_stat_statements, top 15):`);
  for (const r of top) console.log(`    ${String(r.ms_per_job).padStart(7)} ms  ${String(r.calls).padStart(6)} calls  ${r.query}`);
  // the same time by part (top-level statements only: a function's or trigger's inner statements count in its caller)
  const { rows: all } = await pool.query(`SELECT query, (total_exec_time + total_plan_time)::float8 AS ms FROM pg_stat_statements WHERE toplevel`);
  const parts: Array<[string, RegExp]> = [
    ['replay stores (signed requests)', /signed_requests/],
    ["the fetcher's queue (pg-boss)", /pgboss_fetcher\./],
    ["main's queue (pg-boss)", /pgboss_main\./],
    ["the fetcher's event outbox and gated jobs' ledger", /jobgate_fetcher\./],
    ["main's ledger", /jobgate\./],
  ];
  const byPart = new Map<string, number>();
  for (const r of all) {
    const part = parts.find(([, re]) => re.test(r.query))?.[0] ?? 'other (transaction control, catalog)';
    byPart.set(part, (byPart.get(part) ?? 0) + r.ms / count);
  }
  console.log(`  PostgreSQL time per ${what} by part: ${[...byPart].sort((a, b) => b[1] - a[1]).map(([part, ms]) => `${part} ${ms.toFixed(2)} ms`).join('; ')}`);
}

/**
 * One job (bench.fanout, on main) enqueues FANOUT routed children in its own transaction as one
 * batch; from the parent's start until every child is completed in main's ledger, against raw
 * pg-boss inserting as many and working them locally (rawFanOut).
 */
async function fanOut(pair: Awaited<ReturnType<typeof startPair>>, rawSeconds: number) {
  const { pool } = pair;
  if (profileSql) await resetSqlProfile(pool);
  const pids = { main: pair.main.child.pid!, fetcher: pair.fetcher.child.pid! };
  const [cpuBefore, pgBefore] = [processCpuSeconds(pids), postgresCpuSeconds(dataDir)];
  const parent = await enqueueOn(pair.main.url, 'bench.fanout', { children: SIZES.fanout });
  const deadline = Date.now() + 900_000;
  // (watched through the children's batch, which finishes with its last child: a count of the
  // children every 250 ms was a scan of the ledger, load on the machine being measured)
  for (;;) {
    const { rows } = await pool.query(`SELECT pending, state FROM jobgate.batches WHERE parent_id = $1`, [parent]);
    if (rows[0]?.state === 'finished') break;
    if (Date.now() > deadline) throw new Error(`fan-out: ${rows[0]?.pending ?? 'all'} of ${SIZES.fanout} children still pending after 15 minutes`);
    await sleep(250);
  }
  const { rows: [completed] } = await pool.query(`SELECT count(*)::int AS n FROM jobgate.jobs WHERE parent_id = $1 AND state = 'completed'`, [parent]);
  if (completed.n !== SIZES.fanout) throw new Error(`fan-out: ${completed.n} of ${SIZES.fanout} children completed`);
  // the parent (a job main runs without a gate) is recorded by its pg-boss row; its children by the ledger
  const { rows } = await pool.query(
    `SELECT extract(epoch FROM (SELECT max(finished_at) FROM jobgate.jobs WHERE parent_id = $1) - p.started_on)::float8 AS span,
            extract(epoch FROM p.completed_on - p.started_on)::float8 AS parent_ran,
            extract(epoch FROM (SELECT max(created_at) - min(created_at) FROM jobgate.jobs WHERE parent_id = $1))::float8 AS written,
            extract(epoch FROM (SELECT max(f.completed_on) FROM pgboss_fetcher.job f WHERE f.name = 'demo.heavy' AND f.id IN (SELECT id FROM jobgate.jobs WHERE parent_id = $1)) - p.started_on)::float8 AS ran_there
       FROM pgboss_main.job p WHERE p.id = $1`,
    [parent],
  );
  if (!rows[0]) throw new Error(`fan-out: the parent ${parent} is not in pg-boss's job table`);
  const r = rows[0];
  const [cpuAfter, pgAfter] = [processCpuSeconds(pids), postgresCpuSeconds(dataDir)];
  const perChild = (seconds: number) => ((seconds * 1000) / SIZES.fanout).toFixed(2);
  const cpu = `CPU per child: PostgreSQL ${perChild(pgAfter - pgBefore)} ms, Node main ${perChild(cpuAfter.main! - cpuBefore.main!)} ms, fetcher ${perChild(cpuAfter.fetcher! - cpuBefore.fetcher!)} ms`;
  if (profileSql) await printSqlProfile(pool, SIZES.fanout, 'fan-out child');
  record(
    {
      figure: `fan-out: ${SIZES.fanout.toLocaleString('en')} routed children from one job`, jobgate: SIZES.fanout / r.span, baseline: SIZES.fanout / rawSeconds, unit: 'jobs/s', target: '≥ 0.45×',
      note: `parent's start to the last child completed in main's ledger ${r.span.toFixed(1)} s (settled on the fetcher ${r.ran_there?.toFixed(1) ?? '?'} s; the parent's attempt, children written with its success: ${r.parent_ran.toFixed(2)} s); raw pg-boss insert of as many worked locally ${rawSeconds.toFixed(1)} s; ${cpu}`,
    },
    (ratio) => ratio >= 0.45,
  );
}

// ------------------------------------------------------------------ memory isolation

/** A process's resident set, read as the kernel counts it (what a container limit counts). */
function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

/** Samples `pid`'s RSS every 100 ms until `until` settles; returns the samples. */
async function sampleRss(pid: number, until: Promise<unknown>): Promise<number[]> {
  const samples = [rssMb(pid)];
  let done = false;
  void until.finally(() => (done = true)).catch(() => {});
  while (!done) {
    await sleep(100);
    samples.push(rssMb(pid));
  }
  return samples;
}

async function memoryIsolation(url: string) {
  console.log('memory isolation (main while the fetcher holds 1 GiB; the fetcher during 100,000 movies)');
  const pair = await startPair(url, { FETCHER_MEMORY_LIMIT_MB: '4096' }, {});
  try {
    const { main, fetcher, pool } = pair;
    const waitDone = async (id: string, seconds: number) => {
      const deadline = Date.now() + seconds * 1000;
      for (;;) {
        const { rows } = await pool.query(`SELECT state FROM public.main_jobs WHERE id = $1`, [id]);
        if (rows[0]?.state === 'completed') return;
        if (rows[0]?.state === 'failed' || Date.now() > deadline) throw new Error(`job ${id} ended ${rows[0]?.state ?? 'missing'}`);
        await sleep(50);
      }
    };
    // warm both (forward, claim, events, a movies page) before reading idle figures
    for (const body of [{}, {}, {}]) await waitDone(await enqueueOn(main.url, 'bench.hog', body), 60);
    await waitDone(await enqueueOn(main.url, 'movies.fetch', { provider: 'demo', batchSize: 500, maxMovies: 1_000 }), 60);
    await sleep(2_000);
    const idle = (pid: number) => sampleRss(pid, sleep(3_000)).then(median);
    const fetcherIdle = await idle(fetcher.child.pid!);

    // the import first: a fetcher that has held a gigabyte keeps much of it resident afterwards
    const movies = await enqueueOn(main.url, 'movies.fetch', { provider: 'demo', batchSize: 500, maxMovies: 100_000 });
    const importing = waitDone(movies, 600);
    const during = await sampleRss(fetcher.child.pid!, importing);
    const { rows } = await pool.query(`SELECT count(*)::int AS n FROM jobgate_fetcher.movies`).catch(() => ({ rows: [{ n: NaN }] }));
    record(
      { figure: 'fetcher peak RSS during a 100,000-movie import (vs fetcher idle)', jobgate: Math.max(...during), baseline: fetcherIdle, unit: 'MB', target: '< idle + 100 MB', note: `${rows[0].n} movies stored` },
      (_r, row) => row.jobgate - row.baseline < 100,
    );

    const mainIdle = await idle(main.child.pid!);
    const hog = await enqueueOn(main.url, 'bench.hog', { allocateMb: 1024, sleepMs: 4_000 });
    const running = waitDone(hog, 120);
    const [mainDuring, fetcherDuring] = await Promise.all([sampleRss(main.child.pid!, running), sampleRss(fetcher.child.pid!, running)]);
    record(
      { figure: 'main RSS while the fetcher runs a 1 GiB job (vs main idle)', jobgate: Math.max(...mainDuring), baseline: mainIdle, unit: 'MB', target: '< idle + 10 MB', note: `fetcher peak ${Math.round(Math.max(...fetcherDuring))} MB (idle ${Math.round(fetcherIdle)} MB)` },
      (_r, row) => row.jobgate - row.baseline < 10,
    );
  } finally {
    await pair.stop();
  }
}

// ------------------------------------------------------------------ startup

/** The node flags render.yaml's start command gives `app` (e.g. main's --max-semi-space-size). */
function renderFlags(app: 'main' | 'fetcher'): string[] {
  const blueprint = readFileSync(join(ROOT, 'render.yaml'), 'utf8');
  const command = new RegExp(`name: jobgate-${app}\\n[\\s\\S]*?startCommand: exec node (.*)apps/${app}/dist/main\\.js`).exec(blueprint);
  if (!command) throw new Error(`render.yaml has no start command for jobgate-${app}`);
  return command[1]!.trim().split(/\s+/).filter(Boolean);
}

/**
 * The reference apps as Render runs them (built JavaScript, `npm run build`) against the sources
 * run by Node's type stripping (`--conditions=jobgate-source`, what `npm start` does): time from spawn to
 * the first /healthz 200, and RSS after 3 s idle. Each app alternates between the two, 3 times.
 */
async function startup(url: string) {
  const build = spawn('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'inherit' });
  if ((await new Promise((r) => build.once('exit', r))) !== 0) throw new Error('npm run build failed');
  const secret = `whsec_${randomBytes(32).toString('base64')}`;
  async function once(app: 'main' | 'fetcher', built: boolean): Promise<{ ms: number; rssMb: number }> {
    const port = await freePort();
    const started = performance.now();
    const args = built ? [...renderFlags(app), join(ROOT, `apps/${app}/dist/main.js`)] : ['--conditions=jobgate-source', join(ROOT, `apps/${app}/src/main.ts`)];
    const child = spawn(process.execPath, args, {
      cwd: ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn', DATABASE_URL: url, FETCHER_SHARED_SECRET: secret },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    try {
      for (;;) {
        if (child.exitCode !== null) throw new Error(`${app} exited ${child.exitCode}`);
        const ok = await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false);
        if (ok) break;
        await sleep(10);
      }
      const ms = performance.now() - started;
      await sleep(3_000);
      return { ms, rssMb: rssMb(child.pid!) };
    } finally {
      await new Promise<void>((r) => (child.exitCode !== null ? r() : (child.once('exit', () => r()), child.kill('SIGTERM'))));
    }
  }
  for (const app of ['main', 'fetcher'] as const) {
    const built: Array<{ ms: number; rssMb: number }> = [];
    const stripped: Array<{ ms: number; rssMb: number }> = [];
    // the first start migrates and installs pg-boss's schema: not part of either figure
    await once(app, true);
    for (let i = 0; i < 3; i++) {
      built.push(await once(app, true));
      stripped.push(await once(app, false));
    }
    record({ figure: `${app} start to /healthz 200, built JS (vs type stripping)`, jobgate: median(built.map((b) => b.ms)), baseline: median(stripped.map((s) => s.ms)), unit: 'ms', target: 'reported' }, () => null);
    // the target is on the built app, as Render runs it: its idle memory is memory jobs cannot use
    record({ figure: `${app} idle RSS, built JS (vs type stripping)`, jobgate: median(built.map((b) => b.rssMb)), baseline: median(stripped.map((s) => s.rssMb)), unit: 'MB', target: '≤ 110 MB built', note: `started as render.yaml starts it${renderFlags(app).length ? ` (${renderFlags(app).join(' ')})` : ''}` }, (_r, row) => row.jobgate <= 110);
  }
}

// ------------------------------------------------------------------ pressure (bench/pressure.ts)

/** The connection string with an application_name (which the kills phase picks connections by; it wins over the one a pool sets). */
const named = (url: string, name: string) => {
  const u = new URL(url);
  u.searchParams.set('application_name', name);
  return u.toString();
};

const pressureJob = defineJob({ name: 'bench.pressure', payload: z.strictObject({ run: z.string().max(40), n: z.number().int() }), run: async () => {} });

/** Open and completed jobs of a run, from main's ledger (jobs of `name` whose payload names the run). */
async function ledgerProgress(observer: pg.Pool, name: string, run: string): Promise<{ completed: number; open: number }> {
  const { rows } = await observer.query(
    `SELECT count(*) FILTER (WHERE state = 'completed')::int AS completed, count(*) FILTER (WHERE state NOT IN ('completed', 'failed', 'cancelled'))::int AS open
       FROM public.main_jobs WHERE name = $1 AND payload->>'run' = $2`,
    [name, run],
  );
  return rows[0];
}
async function ledgerPickups(observer: pg.Pool, name: string, run: string, from: Date, to: Date): Promise<number[]> {
  const { rows } = await observer.query(
    `SELECT extract(epoch FROM started_at - created_at)::float8 * 1000 AS ms FROM public.main_jobs
      WHERE name = $1 AND payload->>'run' = $2 AND created_at BETWEEN $3 AND $4 AND started_at IS NOT NULL`,
    [name, run, from, to],
  );
  return rows.map((r) => r.ms as number);
}

/** Raw pg-boss in this process: its own schema, four workers, one job per fetch (as the local rows). */
async function rawPressurePath(url: string): Promise<{ path: PressurePath; stop(): Promise<void> }> {
  const raw = createBoss({ connectionString: named(url, 'bench-raw'), schema: 'pgboss_raw', poolSize: 5, timings: RAW_TIMINGS, logger: quiet, prepare: false });
  await raw.start();
  await raw.createQueue('raw.pressure', RAW_QUEUE);
  await raw.work('raw.pressure', RAW_WORK, async () => {});
  return {
    path: {
      label: 'raw pg-boss',
      async enqueue(run, n) {
        if (!(await raw.send('raw.pressure', { run, n }))) throw new Error('not accepted');
      },
      async progress(observer, run) {
        const { rows } = await observer.query(
          `SELECT count(*) FILTER (WHERE state = 'completed')::int AS completed, count(*) FILTER (WHERE state < 'completed')::int AS open
             FROM pgboss_raw.job WHERE name = 'raw.pressure' AND data->>'run' = $1`,
          [run],
        );
        return rows[0];
      },
      async pickups(observer, run, from, to) {
        const { rows } = await observer.query(
          `SELECT extract(epoch FROM started_on - created_on)::float8 * 1000 AS ms FROM pgboss_raw.job
            WHERE name = 'raw.pressure' AND data->>'run' = $1 AND created_on BETWEEN $2 AND $3 AND started_on IS NOT NULL`,
          [run, from, to],
        );
        return rows.map((r) => r.ms as number);
      },
      schemas: ['pgboss_raw'],
      appConnections: ['bench-raw'],
    },
    stop: () => raw.stop({ graceful: false, close: true }).catch(() => {}),
  };
}

/** jobgate's runtime in this process, running its jobs on main (four workers, one job per fetch). */
async function mainPressurePath(url: string): Promise<{ path: PressurePath; stop(): Promise<void> }> {
  const pool = new pg.Pool({ connectionString: named(url, 'bench-jobgate'), max: 5 });
  pool.on('error', () => {});
  const boss = createBoss({ connectionString: named(url, 'bench-jobgate'), schema: 'pgboss_main', poolSize: 5, timings: TIMINGS, logger: quiet });
  await boss.start();
  const ledger = createMainLedger(pool, 'jobgate', { bossSchema: 'pgboss_main' });
  const jobs = createMainRuntime({ pool, boss, ledger, catalogue: createCatalogue([pressureJob]), logger: quiet, timings: TIMINGS, workerConcurrency: 4 });
  await jobs.start();
  return {
    path: {
      label: 'jobgate, run on main',
      enqueue: async (run, n) => void (await jobs.performLater(pressureJob, { run, n })),
      progress: (observer, run) => ledgerProgress(observer, pressureJob.name, run),
      pickups: (observer, run, from, to) => ledgerPickups(observer, pressureJob.name, run, from, to),
      schemas: ['jobgate', 'pgboss_main'],
      appConnections: ['bench-jobgate'],
    },
    async stop() {
      await jobs.stop(1_000).catch(() => {});
      await ledger.rollup.close().catch(() => {});
      await pool.end().catch(() => {});
    },
  };
}

/** Both apps as processes; this process enqueues as the web app does (performLater on main's database). */
async function routedPressurePath(url: string): Promise<{ path: PressurePath; stop(): Promise<void> }> {
  const pair = await startPair(url, {}, {});
  const pool = new pg.Pool({ connectionString: named(url, 'bench-app'), max: 4 });
  pool.on('error', () => {});
  const boss = createBoss({ connectionString: named(url, 'bench-app'), schema: 'pgboss_main', poolSize: 4, timings: TIMINGS, logger: quiet, client: true });
  await boss.start();
  const ledger = createMainLedger(pool, 'jobgate', { bossSchema: 'pgboss_main' });
  const app = createMainRuntime({ pool, boss, ledger, catalogue: createCatalogue([benchRouted]), logger: quiet, timings: TIMINGS, workerConcurrency: 1 });
  return {
    path: {
      label: 'jobgate, routed',
      enqueue: async (run, n) => void (await app.performLater(benchRouted, { run, n })),
      progress: (observer, run) => ledgerProgress(observer, benchRouted.name, run),
      pickups: (observer, run, from, to) => ledgerPickups(observer, benchRouted.name, run, from, to),
      schemas: ['jobgate', 'jobgate_fetcher', 'pgboss_fetcher', 'pgboss_main'],
      appConnections: ['jobgate-%', 'bench-app'],
    },
    async stop() {
      await boss.stop({ graceful: false, close: true }).catch(() => {});
      await ledger.rollup.close().catch(() => {});
      await pool.end().catch(() => {});
      await pair.stop();
    },
  };
}

/**
 * Each jobgate path at half its own peak, and raw pg-boss at the same rate, through the phases of
 * bench/pressure.ts: the share of offered jobs completed in each phase (target ≥ 90 %), and the
 * seconds until throughput and depth recover (target ≤ 1.5× raw's, or 5 s if longer).
 */
async function pressure(url: string) {
  const phaseSeconds = phaseArg ?? (quick ? { xid: 15, readers: 15, kills: 10 } : { xid: 60, readers: 60, kills: 45 });
  const timing = { phaseSeconds, warmSeconds: quick ? 5 : 10, recoveryCeilingSeconds: quick ? 30 : 120 };
  const observer = new pg.Pool({ connectionString: named(url, 'bench-observer'), max: 2 });
  observer.on('error', () => {});
  console.log(`pressure (phases ${PHASES.map((p) => `${p} ${phaseSeconds[p]} s`).join(', ')}; each path at half jobgate's peak for it)`);
  try {
    const paths = [[mainPressurePath, 'run on main'], [routedPressurePath, 'routed']] as const;
    // `--only pressure-routed` (or pressure-main): one path's phases, to look into one
    for (const [open, label] of paths.filter(([, l]) => runs('pressure') || runs(l === 'routed' ? 'pressure-routed' : 'pressure-main'))) {
      const mine = await open(url);
      let rate: number;
      let ours: Awaited<ReturnType<typeof pressureRun>>;
      try {
        await mine.path.enqueue('warm', 0);
        rate = fixedRate ?? Math.max(5, Math.round((await peakRate(observer, mine.path, quick ? 1_000 : 3_000)) / 2));
        ours = await pressureRun({ url, observer, path: mine.path, perSecond: rate, ...timing });
      } finally {
        await mine.stop();
      }
      const rawPath = await rawPressurePath(url);
      let theirs: Awaited<ReturnType<typeof pressureRun>>;
      try {
        theirs = await pressureRun({ url, observer, path: rawPath.path, perSecond: rate, ...timing });
      } finally {
        await rawPath.stop();
      }
      for (const [i, phase] of PHASES.entries()) {
        const a = ours.phases[i]!;
        const b = theirs.phases[i]!;
        const describe = (r: typeof a) => `pickup p50 ${Math.round(r.pickupP50Ms)} / p99 ${Math.round(r.pickupP99Ms)} ms, ${r.completed} of ${r.offered}, dead tuples ${r.deadTuples.map(([t, n]) => `${t} ${n}`).join(', ') || 'none'}${r.killed ? `, connections killed ${Object.entries(r.killed).map(([app, n]) => `${app} ${n}`).join(', ') || 'none'}` : ''}`;
        record({ figure: `pressure, ${label}, ${phase}: offered jobs completed in the phase (${rate}/s)`, jobgate: a.share * 100, baseline: b.share * 100, unit: '%', target: '≥ 90 %', note: `jobgate ${describe(a)}; raw ${describe(b)}` }, (_r, row) => row.jobgate >= 90);
        const recovery = (r: typeof a) => r.recoverySeconds ?? timing.recoveryCeilingSeconds * 10;
        record({ figure: `pressure, ${label}, ${phase}: seconds to recover`, jobgate: recovery(a), baseline: recovery(b), unit: 's', target: '≤ 1.5× raw or 5 s', note: a.recoverySeconds === null || b.recoverySeconds === null ? `not recovered within ${timing.recoveryCeilingSeconds} s: ${a.recoverySeconds === null ? 'jobgate' : ''} ${b.recoverySeconds === null ? 'raw' : ''}` : undefined }, (_r, row) => row.jobgate <= Math.max(1.5 * row.baseline, 5));
      }
      record({ figure: `pressure, ${label}: accepted jobs completed`, jobgate: ours.completed, baseline: ours.accepted, unit: 'jobs', target: 'all', note: `raw pg-boss ${theirs.completed} of ${theirs.accepted}` }, (_r, row) => row.jobgate === row.baseline);
    }
  } finally {
    await observer.end();
  }
}

// ------------------------------------------------------------------ run

const started = Date.now();
const loadAtStart = loadavg();
const db = await database();
let failed = false;
let env: Awaited<ReturnType<typeof inProcess>> | null = null;
const closeInProcess = async () => {
  if (!env) return;
  const e = env;
  env = null;
  await e.jobs50.stop(1_000).catch(() => {});
  await e.jobs.stop(1_000).catch(() => {});
  await e.raw.stop({ graceful: false, close: true }).catch(() => {});
  await e.pool.end().catch(() => {});
};
try {
  env = await inProcess(db.url);
  if (runs('enqueue')) await enqueueLatency(env);
  if (runs('backlog')) await backlogScale(env);
  const writes = runs('writes') || runs('routed') ? await writesPerJob(env) : null;
  if (runs('local')) await localThroughput(env, db.url);
  if (runs('routed') || runs('fanout')) {
    const rawLatencies = await rawLatency(env);
    const rawFanOutSeconds = runs('fanout') ? await rawFanOut(env, SIZES.fanout) : null;
    await closeInProcess();
    await routed(db.url, writes, rawLatencies, rawFanOutSeconds);
  }
  await closeInProcess();
  if (runs('pressure') || runs('pressure-routed') || runs('pressure-main')) await pressure(db.url);
  if (runs('memory')) await memoryIsolation(db.url);
  if (runs('startup')) await startup(db.url);
} catch (err) {
  failed = true;
  console.error(err);
} finally {
  await closeInProcess();
  await db.stop();
}

console.log(`\n${resultsTable(rows)}`);
/** The checkout's short commit, or nothing outside a git checkout. */
function commit(): string | undefined {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() || undefined;
  } catch {
    return undefined;
  }
}
const cpuModel = cpus()[0]?.model;
const sha = commit();
const results: BenchResults = {
  at: new Date().toISOString(),
  quick,
  ...(failed ? { failed } : {}),
  seconds: Math.round((Date.now() - started) / 1000),
  args: process.argv.slice(2),
  ...(sha ? { commit: sha } : {}),
  versions: { node: process.version, pgBoss: (await import('pg-boss/package.json', { with: { type: 'json' } })).default.version },
  machine: { cpus: availableParallelism(), ...(cpuModel ? { cpuModel } : {}), memoryGb: Math.round(totalmem() / 2 ** 30), loadAverage: { atStart: loadAtStart, atEnd: loadavg() } },
  rows,
};
writeFileSync(join(ROOT, 'bench-results.json'), `${JSON.stringify(results, null, 2)}\n`);
appendResults(join(ROOT, 'bench/RESULTS.md'), results);
console.log(`\nbench-results.json written, bench/RESULTS.md extended (${results.seconds} s)`);
process.exit(failed ? 1 : 0);

// npx node bench/bulk-cancel.ts [jobs]: the admin's cancel and delete by filter at scale. Enqueues
// `jobs` (default 100,000) delayed jobs of 10 KB each through performManyLater (as a token flooding
// POST /api/jobs would have: main's jobs, each with its pg-boss entry, beside 10% routed ones and
// other jobs that must be left alone), then times one bulk cancel by name and one bulk delete.
// BENCH_DATABASE_URL: a server to create a scratch database on (else an embedded PostgreSQL).
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { z } from 'zod';
import { createLogger } from '../packages/jobgate/src/support/index.ts';
import { createAdminStore, createBoss, createMainLedger, migrate } from '../packages/jobgate/src/store/index.ts';
import { createCatalogue, createJobActions, createMainRuntime, defineJob } from '../packages/jobgate/src/internal.ts';
import { startEmbeddedPostgres } from '../scripts/embedded-postgres.ts';
import { mainJobsSql } from '../test/support/main-jobs.ts';

const COUNT = Number(process.argv[2] ?? 100_000);
const quiet = createLogger({ level: 'silent', name: 'bench' });
// pg-boss's own defaults: its monitor counting 100,000 jobs every second would be measured too
const TIMINGS = { pollIntervalSeconds: 2, superviseIntervalSeconds: 30, cronIntervalSeconds: 30, heartbeatSeconds: 30 };
const Payload = z.strictObject({ n: z.number().int(), blob: z.string() });
const flood = defineJob({ name: 'bench.flood', payload: Payload, run: async () => {} });
const floodRemote = defineJob({ name: 'bench.flood-remote', payload: Payload, runsOnFetcher: true, run: async () => {} });
const bystander = defineJob({ name: 'bench.bystander', payload: Payload, run: async () => {} });

/**
 * A scratch database cloned from one already filled with `COUNT` jobs (filled by `fill` the first
 * time, then kept as `bench_bulk_tpl_<count>`: filling takes minutes on a busy machine).
 */
async function scratchDatabase(fill: (url: string) => Promise<void>): Promise<{ url: string; drop(): Promise<void> }> {
  let adminUrl = process.env.BENCH_DATABASE_URL;
  let stopCluster = async () => {};
  if (!adminUrl) {
    const cluster = await startEmbeddedPostgres({ dataDir: join(import.meta.dirname, '../.data/bench-pg'), port: 54349, logger: quiet });
    adminUrl = cluster.url('postgres');
    stopCluster = () => cluster.stop();
  }
  const urlOf = (name: string) => Object.assign(new URL(adminUrl), { pathname: `/${name}` }).toString();
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  const template = `bench_bulk_tpl_${COUNT}`;
  const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [template]);
  if (!rowCount) {
    await admin.query(`CREATE DATABASE "${template}_filling"`);
    await fill(urlOf(`${template}_filling`));
    await admin.query(`ALTER DATABASE "${template}_filling" RENAME TO "${template}"`);
  }
  const name = `bench_bulk_${randomBytes(4).toString('hex')}`;
  await admin.query(`CREATE DATABASE "${name}" TEMPLATE "${template}"`);
  await admin.end();
  return {
    url: urlOf(name),
    async drop() {
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).finally(() => c.end());
      await stopCluster();
    },
  };
}

const catalogue = () => createCatalogue([flood, floodRemote, bystander]);

/** The flood: main's jobs (a ledger row and a pg-boss entry each); beside it, routed jobs of another name and main's jobs of a third, which the cancel must leave alone. */
async function fill(url: string): Promise<void> {
  const pool = new pg.Pool({ connectionString: url, max: 5 });
  const boss = createBoss({ connectionString: url, schema: 'pgboss_main', poolSize: 5, timings: TIMINGS, logger: quiet });
  try {
    await migrate(pool, 'jobgate');
    await boss.start();
    const jobs = createMainRuntime({ pool, boss, ledger: createMainLedger(pool, 'jobgate', { bossSchema: 'pgboss_main' }), catalogue: catalogue(), logger: quiet, timings: TIMINGS, workerConcurrency: 1 });
    await jobs.prepare();
    const blob = 'x'.repeat(10_000);
    const started = performance.now();
    const write = async (def: typeof flood, count: number) => {
      for (let at = 0; at < count; at += 5_000) {
        const n = Math.min(5_000, count - at);
        await jobs.spawn({ jobs: Array.from({ length: n }, (_, i) => ({ id: crypto.randomUUID(), name: def.name, payload: { n: at + i, blob }, delaySeconds: 31_536_000 })), batches: [], seal: [] });
      }
    };
    await write(flood, COUNT);
    await write(floodRemote, COUNT / 10);
    await write(bystander, 1_000);
    await pool.query('ANALYZE jobgate.jobs; ANALYZE pgboss_main.job');
    console.log(`enqueued ${COUNT.toLocaleString('en')} delayed 10 KB jobs of bench.flood (+${(COUNT / 10).toLocaleString('en')} routed, +1,000 bystanders) in ${((performance.now() - started) / 1000).toFixed(1)} s (kept as a template)`);
  } finally {
    await boss.stop({ graceful: false, close: true }).catch(() => {});
    await pool.end().catch(() => {});
  }
}

const db = await scratchDatabase(fill);
const pool = new pg.Pool({ connectionString: db.url, max: 5 });
pool.on('error', () => {});
const boss = createBoss({ connectionString: db.url, schema: 'pgboss_main', poolSize: 5, timings: TIMINGS, logger: quiet });
try {
  await boss.start();
  const ledger = createMainLedger(pool, 'jobgate', { bossSchema: 'pgboss_main' });
  const jobs = createMainRuntime({ pool, boss, ledger, catalogue: catalogue(), logger: quiet, timings: TIMINGS, workerConcurrency: 1 });
  await jobs.prepare();
  const actions = createJobActions({ jobs, ledger, pool, store: createAdminStore(pool, 'jobgate') });
  const count = async (sql: string) => (await pool.query(sql)).rows[0].n as number;
  // CPU seconds of this database's backends (the server may be shared) and of this process: on a
  // busy machine the wall-clock time says more about the neighbours than about the work
  const ticks = async () => {
    const { rows } = await pool.query(`SELECT pid FROM pg_stat_activity WHERE datname = current_database()`);
    let sum = 0;
    for (const { pid } of rows) {
      try {
        const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
        sum += Number(fields[11]) + Number(fields[12]);
      } catch {}
    }
    const self = process.cpuUsage();
    return { db: sum / 100, node: (self.user + self.system) / 1e6 };
  };
  await Promise.all(Array.from({ length: 5 }, () => pool.query('SELECT 1'))); // every connection open before counting
  const timed = async (what: string, run: () => Promise<{ done: number }>) => {
    const [t, cpu] = [performance.now(), await ticks()];
    const { done } = await run();
    const after = await ticks();
    console.log(`${what}: ${done.toLocaleString('en')} jobs in ${((performance.now() - t) / 1000).toFixed(2)} s (CPU: PostgreSQL ${(after.db - cpu.db).toFixed(2)} s, node ${(after.node - cpu.node).toFixed(2)} s; load average ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} cores)`);
  };
  await timed('cancel by name', () => actions.bulk('cancel', { name: flood.name }, 'bench'));
  console.log(`  left: ${await count(`SELECT count(*)::int AS n FROM (${mainJobsSql()}) jobs WHERE name = '${flood.name}' AND state <> 'cancelled'`)} not cancelled, ${await count(`SELECT count(*)::int AS n FROM pgboss_main.job WHERE name = '${flood.name}'`)} pg-boss entries; bystanders queued: ${await count(`SELECT count(*)::int AS n FROM (${mainJobsSql()}) jobs WHERE name <> '${flood.name}' AND state = 'queued'`)}`);
  await timed('cancel routed by name', () => actions.bulk('cancel', { name: floodRemote.name }, 'bench'));
  await timed('delete cancelled', () => actions.bulk('delete', { state: 'cancelled' }, 'bench'));
  console.log(`  left: ${await count(`SELECT count(*)::int AS n FROM (${mainJobsSql()}) jobs`)} jobs, ${await count(`SELECT count(*)::int AS n FROM pgboss_main.job WHERE name LIKE 'bench.%'`)} pg-boss entries`);
} finally {
  await boss.stop({ graceful: false, close: true }).catch(() => {});
  await pool.end().catch(() => {});
  await db.drop();
}

// The `db` and `e2e` tiers' global setup: a PostgreSQL (embedded in .data/test-pg on a free port,
// unless TEST_DATABASE_URL is set) and a template database with our migrations and pg-boss's
// schema, which each test file clones. Both tiers of one run share one cluster and one template
// (global setups run in vitest's main process: the state lives on globalThis, counted per tier).
import { join } from 'node:path';
import { mainJobsViews } from './main-jobs.ts';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { createLogger } from '../../packages/jobgate/src/support/index.ts';
import { PgBoss, applyAppSchema, migrate } from '../../packages/jobgate/src/store/index.ts';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../scripts/embedded-postgres.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A server-level connection string (any database on it); test files create their own databases. */
    adminDatabaseUrl: string;
    templateDatabase: string;
    /** This run's prefix for database names: `jgt_p<pid>_`, so two runs on one server leave each other's alone. */
    databasePrefix: string;
  }
}

/** Every database this run creates starts with it (its pid), so it can tell its own from another run's. */
const PREFIX = `jgt_p${process.pid}_`;

/** Whether the run that made `database` still runs (on this machine); names from before the prefix count as stale. */
function runIsAlive(database: string): boolean {
  const pid = Number(/^jgt_p(\d+)_/.exec(database)?.[1]);
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export const TEST_SCHEMA = 'jobgate';
export const TEST_BOSS_SCHEMA = 'pgboss_main';

interface SharedDatabase {
  adminUrl: string;
  template: string;
  stop(): Promise<void>;
}
const shared = globalThis as typeof globalThis & { jobgateTestDatabase?: { ready: Promise<SharedDatabase>; users: number } };

async function admin<T>(adminUrl: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

async function startDatabase(): Promise<SharedDatabase> {
  const logger = createLogger({ level: 'warn', name: 'test-setup' });
  let embedded: EmbeddedPostgres | null = null;
  let adminUrl: string;
  if (process.env.TEST_DATABASE_URL) {
    adminUrl = process.env.TEST_DATABASE_URL;
  } else {
    // 54339 when free; another checkout's run holding it makes this one take any free port
    embedded = await startEmbeddedPostgres({ dataDir: join(import.meta.dirname, '../../.data/test-pg'), port: 54339, logger });
    adminUrl = embedded.url('postgres');
  }
  // Databases a crashed earlier run left behind: its process is gone (another run's, still alive, stays).
  await admin(adminUrl, async (c) => {
    const { rows } = await c.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE 'jgt\\_%'`);
    for (const { datname } of rows) if (!runIsAlive(datname)) await c.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
  });
  const template = `${PREFIX}template`;
  await admin(adminUrl, (c) => c.query(`CREATE DATABASE "${template}"`));
  const templateUrl = withDatabase(adminUrl, template);
  const pool = new pg.Pool({ connectionString: templateUrl, max: 2 });
  await migrate(pool, TEST_SCHEMA);
  // the reference apps' own table, as they make it at boot: in-process tests run their movies.fetch on it
  await applyAppSchema(pool, TEST_SCHEMA, join(import.meta.dirname, '../../apps/tables/movies.sql'));
  await createCounterTables(pool);
  await pool.end();
  const boss = new PgBoss({ connectionString: templateUrl, schema: TEST_BOSS_SCHEMA, supervise: false, schedule: false });
  boss.on('error', () => {});
  await boss.start();
  await boss.stop({ graceful: false, close: true });
  // every job main knows, for the tests' own reads (main-jobs.ts)
  await admin(templateUrl, (c) => c.query(mainJobsViews(TEST_SCHEMA, TEST_BOSS_SCHEMA)));
  return {
    adminUrl,
    template,
    async stop() {
      await admin(adminUrl, async (c) => {
        const { rows } = await c.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE starts_with(datname, $1)`, [PREFIX]);
        for (const { datname } of rows) await c.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
      }).catch(() => {});
      await embedded?.stop();
    },
  };
}

export async function setup(project: TestProject): Promise<() => Promise<void>> {
  const state = (shared.jobgateTestDatabase ??= { ready: startDatabase(), users: 0 });
  state.users++;
  const { adminUrl, template } = await state.ready;
  project.provide('adminDatabaseUrl', adminUrl);
  project.provide('templateDatabase', template);
  project.provide('databasePrefix', PREFIX);
  return async () => {
    if (--state.users > 0) return;
    shared.jobgateTestDatabase = undefined;
    await (await state.ready).stop();
  };
}

export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/** The two counters of FAULTS.md that the test jobs write: one row per handler run (and its events), one effect per job. */
export async function createCounterTables(pool: Pick<pg.Pool, 'query'>): Promise<void> {
  await pool.query(`CREATE TABLE public.test_events (
    seq bigserial PRIMARY KEY, job_id uuid NOT NULL, job_name text NOT NULL, attempt integer NOT NULL,
    event text NOT NULL, pid integer NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp(), detail jsonb)`);
  await pool.query(`CREATE TABLE public.test_effects (job_id uuid PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())`);
}

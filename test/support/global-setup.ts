// Once per `npm test`: a PostgreSQL (embedded in .data/test-pg unless TEST_DATABASE_URL is set)
// and a template database with our migrations and pg-boss's schema, which each test file clones.
import { join } from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { createLogger } from '../../packages/jobgate/src/support/index.ts';
import { PgBoss, migrate } from '../../packages/jobgate/src/store/index.ts';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../scripts/embedded-postgres.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A server-level connection string (any database on it); test files create their own databases. */
    adminDatabaseUrl: string;
    templateDatabase: string;
  }
}

export const TEST_SCHEMA = 'jobgate';
export const TEST_BOSS_SCHEMA = 'pgboss_main';

let embedded: EmbeddedPostgres | null = null;
let adminUrl = '';
let template = '';

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export async function setup(project: TestProject): Promise<void> {
  const logger = createLogger({ level: 'warn', name: 'test-setup' });
  if (process.env.TEST_DATABASE_URL) {
    adminUrl = process.env.TEST_DATABASE_URL;
  } else {
    embedded = await startEmbeddedPostgres({ dataDir: join(import.meta.dirname, '../../.data/test-pg'), port: 54339, logger });
    adminUrl = embedded.url('postgres');
  }
  // Databases a crashed earlier run left behind.
  await admin(async (c) => {
    const { rows } = await c.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE 'jgt\\_%'`);
    for (const { datname } of rows) await c.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
  });
  template = `jgt_template_${process.pid}`;
  await admin((c) => c.query(`CREATE DATABASE "${template}"`));
  const templateUrl = withDatabase(adminUrl, template);
  const pool = new pg.Pool({ connectionString: templateUrl, max: 2 });
  await migrate(pool, TEST_SCHEMA);
  // The two counters of FAULTS.md: one row per handler run (and its events), one effect per job.
  await pool.query(`CREATE TABLE public.test_events (
    seq bigserial PRIMARY KEY, job_id uuid NOT NULL, job_name text NOT NULL, attempt integer NOT NULL,
    event text NOT NULL, pid integer NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp(), detail jsonb)`);
  await pool.query(`CREATE TABLE public.test_effects (job_id uuid PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())`);
  await pool.end();
  const boss = new PgBoss({ connectionString: templateUrl, schema: TEST_BOSS_SCHEMA, supervise: false, schedule: false });
  boss.on('error', () => {});
  await boss.start();
  await boss.stop({ graceful: false, close: true });
  project.provide('adminDatabaseUrl', adminUrl);
  project.provide('templateDatabase', template);
}

export async function teardown(): Promise<void> {
  await admin(async (c) => {
    const { rows } = await c.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE 'jgt\\_%'`);
    for (const { datname } of rows) await c.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
  }).catch(() => {});
  await embedded?.stop();
}

export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

import { readdir, readFile } from 'node:fs/promises';
import type { Pool } from 'pg';
import type { Logger } from '../support/index.ts';
import { assertSchemaName } from './schema-name.ts';
import { withTransaction } from './transaction.ts';

const MIGRATIONS_DIR = new URL('../../migrations/', import.meta.url);
const MIGRATION_FILE = /^(\d{3})_[a-z0-9_]+\.sql$/;
/** Both apps, and several instances of each, may start at once: one migrates, the others wait. */
const MIGRATION_LOCK = 'jobgate.migrate';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export async function loadMigrations(): Promise<Migration[]> {
  const files = (await readdir(MIGRATIONS_DIR)).filter((f) => MIGRATION_FILE.test(f)).sort();
  return Promise.all(
    files.map(async (name) => ({ version: Number(name.slice(0, 3)), name, sql: await readFile(new URL(name, MIGRATIONS_DIR), 'utf8') })),
  );
}

/**
 * Applies the numbered, append-only migrations that are missing, all in one transaction under an
 * advisory lock; safe to run twice or from several processes at once. Returns the versions applied.
 */
export async function migrate(pool: Pool, schema: string, logger?: Logger): Promise<number[]> {
  assertSchemaName(schema);
  const migrations = await loadMigrations();
  return withTransaction(pool, async (client) => {
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [MIGRATION_LOCK]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await client.query(`SET LOCAL search_path TO ${schema}`);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const { rows } = await client.query<{ version: number }>('SELECT version FROM schema_migrations');
    const done = new Set(rows.map((r) => r.version));
    const applied: number[] = [];
    for (const m of migrations) {
      if (done.has(m.version)) continue;
      await client.query(m.sql);
      await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      applied.push(m.version);
    }
    if (applied.length > 0) logger?.info({ schema, applied }, 'migrations applied');
    return applied;
  });
}

import { readdir, readFile } from 'node:fs/promises';
import type { Pool, PoolClient } from 'pg';
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
 * One transaction under the advisory lock every schema change takes, with `schema` created if
 * missing and first on the search path: what runs in it creates its tables there.
 */
function inSchemaUnderLock<T>(pool: Pool, schema: string, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  assertSchemaName(schema);
  return withTransaction(pool, async (client) => {
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [MIGRATION_LOCK]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await client.query(`SET LOCAL search_path TO ${schema}`);
    return fn(client);
  });
}

/**
 * Applies the numbered, append-only migrations that are missing, all in one transaction under an
 * advisory lock; safe to run twice or from several processes at once. Returns the versions applied.
 * They create jobgate's own tables only. `side: 'fetcher'` (createFetcher) is seen by the
 * migrations as the setting `jobgate.side`: the fetcher's ledger leaves out the indexes only main
 * reads (migration 030).
 */
export async function migrate(pool: Pool, schema: string, logger?: Logger, options: { side?: 'main' | 'fetcher' } = {}): Promise<number[]> {
  const migrations = await loadMigrations();
  return inSchemaUnderLock(pool, schema, async (client) => {
    if (options.side) await client.query(`SELECT set_config('jobgate.side', $1, true)`, [options.side]);
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

/**
 * An app's own tables beside jobgate's: runs the SQL in `file` in `schema` (the search path),
 * under the lock migrations take, so app instances starting at once apply it one at a time. The
 * SQL must be idempotent (`CREATE TABLE IF NOT EXISTS …`): it runs at every boot and is not
 * recorded. The reference apps keep their `movies` table this way (apps/tables/movies.sql).
 */
export async function applyAppSchema(pool: Pool, schema: string, file: string | URL): Promise<void> {
  const sql = await readFile(file, 'utf8');
  await inSchemaUnderLock(pool, schema, (client) => client.query(sql));
}

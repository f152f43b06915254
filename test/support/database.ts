import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, inject } from 'vitest';
import { createMainLedger, type MainLedger } from '../../packages/jobgate/src/store/index.ts';
import { TEST_BOSS_SCHEMA, TEST_SCHEMA, withDatabase } from './setup-database.ts';

export { TEST_SCHEMA, TEST_BOSS_SCHEMA } from './setup-database.ts';

export interface TestDatabase {
  url: string;
  pool: pg.Pool;
  drop(): Promise<void>;
}

/**
 * A fresh database cloned from the migrated template: one per test file (or per test that needs its
 * own). `empty: true`: a database with nothing of ours in it (no migration, no reference app table).
 */
export async function createTestDatabase(options: { empty?: boolean } = {}): Promise<TestDatabase> {
  const adminUrl = inject('adminDatabaseUrl');
  const name = `${inject('databasePrefix')}${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(options.empty ? `CREATE DATABASE "${name}"` : `CREATE DATABASE "${name}" TEMPLATE "${inject('templateDatabase')}"`);
  } finally {
    await admin.end();
  }
  const url = withDatabase(adminUrl, name);
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  pool.on('error', () => {});
  return {
    url,
    pool,
    async drop() {
      await pool.end();
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).finally(() => c.end());
    },
  };
}

/**
 * For a test file that works on main's ledger directly: a database of its own and the ledger over
 * it, made before the file's tests and gone after them (the ledger's rollup closed first). Read
 * `db` and `ledger` inside the tests, once made.
 */
export function mainLedgerPerFile(): { readonly db: TestDatabase; readonly ledger: MainLedger } {
  let db: TestDatabase | undefined;
  let ledger: MainLedger | undefined;
  beforeAll(async () => {
    db = await createTestDatabase();
    ledger = createMainLedger(db.pool, TEST_SCHEMA, { bossSchema: TEST_BOSS_SCHEMA });
  });
  afterAll(async () => {
    await ledger?.rollup.close();
    await db?.drop();
  });
  return {
    get db() {
      if (!db) throw new Error('mainLedgerPerFile: the database is made before the tests, not while the file loads');
      return db;
    },
    get ledger() {
      if (!ledger) throw new Error('mainLedgerPerFile: the ledger is made before the tests, not while the file loads');
      return ledger;
    },
  };
}

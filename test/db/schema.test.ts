// packages/jobgate/schema.sql is generated (scripts/dump-schema.ts): it must be the schema the
// migrations make, and running it must make that same schema again (nothing left out).
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { REGENERATE, SCHEMA_FILE, dumpSchema } from '../../scripts/dump-schema.ts';
import { migrate } from '../../packages/jobgate/src/store/index.ts';
import { createTestDatabase, TEST_SCHEMA, type TestDatabase } from '../support/database.ts';
import { withDatabase } from '../support/setup-database.ts';

/** The statements, without the header comment (which names the last migration applied). */
const statements = (text: string) => text.slice(text.indexOf('\nSET '));

let db: TestDatabase;
let committed: string;
beforeAll(async () => {
  // the library's migrations alone (the test template also holds the reference apps' own table)
  db = await createTestDatabase({ empty: true });
  await migrate(db.pool, TEST_SCHEMA);
  committed = await readFile(SCHEMA_FILE, 'utf8');
});
afterAll(() => db?.drop());

describe('packages/jobgate/schema.sql', () => {
  it('is the schema after every migration', async () => {
    expect(TEST_SCHEMA).toBe('jobgate');
    const current = await dumpSchema(db.pool, TEST_SCHEMA);
    expect(current, `packages/jobgate/schema.sql is out of date: regenerate it with \`${REGENERATE}\` and commit it`).toBe(committed);
  });

  it('says it is generated, and how to regenerate it', () => {
    expect(committed.split('\n')[0]).toMatch(/^-- GENERATED FILE: do not edit\. Regenerate with `npm run schema`/);
  });

  it('runs, in an empty database, and makes that same schema', async () => {
    const admin = inject('adminDatabaseUrl');
    const name = `${inject('databasePrefix')}schema_${randomBytes(4).toString('hex')}`;
    const client = new pg.Client({ connectionString: admin });
    await client.connect();
    await client.query(`CREATE DATABASE "${name}"`);
    await client.end();
    const pool = new pg.Pool({ connectionString: withDatabase(admin, name), max: 1 });
    try {
      await pool.query(`CREATE SCHEMA ${TEST_SCHEMA}`);
      await pool.query(committed);
      expect(statements(await dumpSchema(pool, TEST_SCHEMA))).toBe(statements(committed));
    } finally {
      await pool.end();
      const drop = new pg.Client({ connectionString: admin });
      await drop.connect();
      await drop.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).finally(() => drop.end());
    }
  });
});

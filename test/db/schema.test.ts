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
    // (its connection may still be closing when the database is dropped WITH (FORCE) below, as createTestDatabase's pools)
    pool.on('error', () => {});
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

describe("the fetcher's ledger (migrated as the fetcher's: jobgate.side)", () => {
  const MAIN_ONLY = ['jobs_by_created', 'jobs_by_name', 'jobs_failed_or_cancelled', 'jobs_on_main', 'jobs_to_forward', 'jobs_undelivered'];
  const FETCHER_READS = ['jobs_failed_recent', 'jobs_finished', 'jobs_live_by_name', 'jobs_pkey'];
  const indexesOf = async (schema: string) =>
    (await db.pool.query<{ indexname: string }>(`SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = 'jobs' ORDER BY 1`, [schema])).rows.map((r) => r.indexname);

  it('keeps only the indexes its own reads use; main keeps every one', async () => {
    await migrate(db.pool, 'side_fetcher', undefined, { side: 'fetcher' });
    const fetcher = await indexesOf('side_fetcher');
    for (const index of FETCHER_READS) expect(fetcher).toContain(index);
    for (const index of MAIN_ONLY) expect(fetcher).not.toContain(index);
    // the payload's GIN index is gone on both sides (migration 031: the payload filter reads in creation order)
    expect(fetcher).not.toContain('jobs_payload');
    expect(await indexesOf(TEST_SCHEMA)).not.toContain('jobs_payload');
    const main = await indexesOf(TEST_SCHEMA);
    for (const index of [...FETCHER_READS, ...MAIN_ONLY]) expect(main).toContain(index);
  });

  it("drops them from a fetcher's ledger migrated by an earlier release (an upgrade in place), with its rows", async () => {
    // every migration as an earlier release applied them (all indexes), then this one's as the fetcher's
    await migrate(db.pool, 'side_upgrade');
    await db.pool.query(`INSERT INTO side_upgrade.jobs (id, name, route, state, payload, max_attempts, run_at) VALUES (gen_random_uuid(), 'a.job', 'fetcher', 'queued', '{"n": 1}', 3, now())`);
    const latest = (await db.pool.query<{ v: number }>('SELECT max(version) AS v FROM side_upgrade.schema_migrations')).rows[0]!.v;
    expect(latest).toBeGreaterThanOrEqual(30);
    await db.pool.query('DELETE FROM side_upgrade.schema_migrations WHERE version = 30');
    expect(await indexesOf('side_upgrade')).toContain('jobs_by_name');
    expect(await migrate(db.pool, 'side_upgrade', undefined, { side: 'fetcher' })).toContain(30);
    const after = await indexesOf('side_upgrade');
    // the ones migration 030 drops (the release it upgrades from had not yet the later ones)
    for (const index of ['jobs_by_created', 'jobs_by_name', 'jobs_to_forward', 'jobs_undelivered']) expect(after).not.toContain(index);
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM side_upgrade.jobs WHERE name = 'a.job'`)).rows[0].n).toBe(1);
  });
});

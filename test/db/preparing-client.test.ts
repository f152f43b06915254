// pg-boss's connections prepare the statements it runs again and again (store/transaction.ts
// PreparingClient): a text with values, once it recurred, runs by name; a one-off does not; a
// statement whose result a migration changed is prepared afresh after the one failure PostgreSQL
// reports for it.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PreparingClient } from '../../packages/jobgate/src/store/transaction.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';

let db: TestDatabase;
let pool: pg.Pool;
beforeAll(async () => {
  db = await createTestDatabase();
  // one connection: what it has prepared is what the next statement finds
  pool = new pg.Pool({ connectionString: db.url, max: 1, Client: PreparingClient });
  await pool.query('CREATE TABLE prep_t (a int)');
  await pool.query('INSERT INTO prep_t VALUES (1), (2)');
});
afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

const prepared = async () => (await pool.query<{ statement: string }>('SELECT statement FROM pg_prepared_statements')).rows.map((r) => r.statement);

describe('a PreparingClient', () => {
  it('prepares a text with values once it recurred, and runs a one-off as it is', async () => {
    const text = 'SELECT a FROM prep_t WHERE a = $1';
    for (let i = 0; i < 2; i++) expect((await pool.query(text, [1])).rows).toEqual([{ a: 1 }]);
    expect(await prepared()).not.toContain(text);
    // the third run prepares it (the pool's callback form), a checked-out client's promise form runs it by name
    expect((await pool.query(text, [2])).rows).toEqual([{ a: 2 }]);
    const client = await pool.connect();
    try {
      expect((await client.query(text, [1])).rows).toEqual([{ a: 1 }]);
    } finally {
      client.release();
    }
    expect(await prepared()).toContain(text);
    await pool.query('SELECT a FROM prep_t WHERE a = $1 AND a > 0', [1]);
    expect(await prepared()).not.toContain('SELECT a FROM prep_t WHERE a = $1 AND a > 0');
  });

  it('prepares a statement afresh after a migration changed what it returns', async () => {
    const text = 'SELECT * FROM prep_t WHERE a = $1';
    for (let i = 0; i < 3; i++) await pool.query(text, [1]);
    expect(await prepared()).toContain(text);
    await pool.query('ALTER TABLE prep_t ADD COLUMN b int DEFAULT 7');
    await expect(pool.query(text, [1])).rejects.toThrow(/cached plan must not change result type/);
    expect((await pool.query(text, [1])).rows).toEqual([{ a: 1, b: 7 }]);
  });
});

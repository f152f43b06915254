// A connection that dies while it changes hands must not end the process. pg-pool hands a released
// client to a waiting checkout inside the read that released it, with its own 'error' listener
// already off and the new holder's not yet on: a FATAL in that same read (pg_terminate_backend,
// PostgreSQL stopping) was emitted with no one listening, an uncaught exception that killed main
// under the bench's connection kills. guardConnections closes the gap.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { guardConnections, onFreshConnection, withTransaction } from '../../packages/jobgate/src/store/index.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase({ empty: true });
});
afterAll(async () => {
  await db?.drop();
});

describe('a pool jobgate was given', () => {
  for (const when of ['before', 'after'] as const) {
    it(`survives a connection failing as it is handed to a waiting checkout (guarded ${when} its first connection)`, async () => {
      const pool = new pg.Pool({ connectionString: db.url, max: 1 });
      pool.on('error', () => {});
      try {
        if (when === 'before') guardConnections(pool);
        const holder = await pool.connect();
        // the host's connections opened before it handed the pool over are guarded too
        if (when === 'after') guardConnections(pool);
        let armed = true;
        let failedOver = false;
        pool.on('acquire', (client) => {
          if (!armed) return;
          armed = false;
          // what pg does with a FATAL read together with the ReadyForQuery that released the
          // client: emitted at once, before the waiting holder's code runs (its resumption is
          // queued after this)
          queueMicrotask(() => {
            failedOver = true;
            client.emit('error', new Error('terminating connection due to administrator command'));
          });
        });
        const waiting = withTransaction(pool, (client) => client.query('SELECT 1 AS one'));
        holder.release();
        const { rows } = await waiting;
        expect(failedOver).toBe(true);
        expect(rows).toEqual([{ one: 1 }]);
      } finally {
        await pool.end();
      }
    });
  }
});

describe('work on a connection that is killed under it', () => {
  /** Runs `work` while the backend of its first try (found by its application_name) is killed mid-statement. */
  async function killedOnce<T>(work: (pool: pg.Pool) => Promise<T>): Promise<{ outcome: PromiseSettledResult<T>; killed: number }> {
    const pool = new pg.Pool({ connectionString: db.url, max: 2, application_name: 'killed-once' });
    pool.on('error', () => {});
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    try {
      const running = Promise.allSettled([work(pool)]);
      let killed = 0;
      for (const deadline = Date.now() + 20_000; killed === 0 && Date.now() < deadline; ) {
        const { rows } = await admin.query(`SELECT count(*)::int AS n FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'killed-once' AND query LIKE '%pg_sleep%' AND state = 'active') t`);
        killed = rows[0].n;
        if (killed === 0) await new Promise((r) => setTimeout(r, 10));
      }
      return { outcome: (await running)[0]!, killed };
    } finally {
      await admin.end();
      await pool.end();
    }
  }

  it('fails as it is, and is answered on a fresh connection when tried again by onFreshConnection', async () => {
    const slow = (pool: pg.Pool) => withTransaction(pool, (client) => client.query('SELECT pg_sleep(0.3), 42 AS answer'));
    const bare = await killedOnce(slow);
    expect(bare.killed).toBe(1);
    expect(bare.outcome.status).toBe('rejected');

    let tries = 0;
    const again = await killedOnce((pool) => onFreshConnection(() => (tries++, slow(pool))));
    expect(again.killed).toBe(1);
    expect(again.outcome.status).toBe('fulfilled');
    expect((again.outcome as PromiseFulfilledResult<pg.QueryResult>).value.rows[0].answer).toBe(42);
    expect(tries).toBe(2);
  });

  it('does not try again on an error of the statement itself', async () => {
    const pool = new pg.Pool({ connectionString: db.url, max: 1 });
    let tries = 0;
    try {
      await expect(onFreshConnection(() => (tries++, pool.query('SELECT 1 / 0')))).rejects.toThrow(/division by zero/);
      expect(tries).toBe(1);
    } finally {
      await pool.end();
    }
  });
});

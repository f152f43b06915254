// A connection that dies while it changes hands must not end the process. pg-pool hands a released
// client to a waiting checkout inside the read that released it, with its own 'error' listener
// already off and the new holder's not yet on: a FATAL in that same read (pg_terminate_backend,
// PostgreSQL stopping) was emitted with no one listening, an uncaught exception that killed main
// under the bench's connection kills. guardConnections closes the gap.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { guardConnections, withTransaction } from '../../packages/jobgate/src/store/index.ts';
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

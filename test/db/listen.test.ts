// The forwarder's LISTEN connection (store/listen.ts): it hears a NOTIFY committed by another
// connection, and close() returns within a second even while it is still connecting (a stop
// during start-up, or while PostgreSQL is away), so main's shutdown never hangs on it.
import { createServer, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../packages/jobgate/src/support/index.ts';
import { listenFor } from '../../packages/jobgate/src/store/index.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { waitFor } from '../support/wait.ts';

const logger = createLogger({ level: 'silent', name: 'test' });
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

describe('listenFor', () => {
  it('calls back on each committed NOTIFY of its channel, and not for another channel', async () => {
    let heard = 0;
    const listener = listenFor({ connectionString: db.url, channel: 'jg_listen_test', onNotify: () => heard++, logger });
    try {
      // once when it is listening (whatever was sent before is for the caller to look up)
      await waitFor('listening', () => heard === 1, { timeoutMs: 30_000, intervalMs: 20 });
      await db.pool.query(`SELECT pg_notify('jg_other_channel', '')`);
      await db.pool.query(`SELECT pg_notify('jg_listen_test', '')`);
      await waitFor('the notification', () => heard === 2, { timeoutMs: 30_000, intervalMs: 20 });
      // a NOTIFY rolled back is never heard
      await db.pool.query(`BEGIN; SELECT pg_notify('jg_listen_test', ''); ROLLBACK`);
      await sleep(200);
      expect(heard).toBe(2);
    } finally {
      await listener.close();
    }
  });

  it('closes within a second while its connection is still being opened', async () => {
    // a server that accepts and never answers: the client waits in connect()
    const sockets: Socket[] = [];
    const silent = createServer((s) => sockets.push(s));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as { port: number };
    try {
      const listener = listenFor({ connectionString: `postgres://nobody@127.0.0.1:${port}/none`, channel: 'jg_listen_test', onNotify: () => {}, logger });
      await waitFor('the connection attempt', () => sockets.length > 0, { timeoutMs: 30_000, intervalMs: 20 });
      const started = performance.now();
      await listener.close();
      // it does not wait out the connect attempt (which never ends here)
      expect(performance.now() - started).toBeLessThan(5_000);
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
    }
  });
});

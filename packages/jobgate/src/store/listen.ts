import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { Logger } from '../support/index.ts';

/**
 * LISTENs on `channel` over a connection of its own and calls `onNotify` for each notification,
 * and once after every (re)connect (what was sent while it was away is not replayed: the caller
 * looks for itself). A lost connection (a PostgreSQL restart) is reopened with backoff; meanwhile
 * the caller's own poll carries on. `channel` must be a plain lowercase identifier.
 */
export function listenFor(options: { connectionString: string; channel: string; onNotify: () => void; logger: Logger; applicationName?: string }): { close(): Promise<void> } {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(options.channel)) throw new Error(`channel ${JSON.stringify(options.channel)} is not a plain identifier`);
  const closing = new AbortController();
  // resolves once close() was called, however late it is awaited
  const closed = new Promise<void>((resolve) => closing.signal.addEventListener('abort', () => resolve(), { once: true }));
  let client: pg.Client | null = null;

  const loop = (async () => {
    for (let failures = 0; !closing.signal.aborted; ) {
      const c = new pg.Client({ connectionString: options.connectionString, application_name: options.applicationName ?? 'jobgate-listen', connectionTimeoutMillis: 5_000, keepAlive: true });
      const ended = new Promise<unknown>((resolve) => {
        c.on('error', resolve);
        c.on('end', () => resolve(null));
      });
      // close() ends it, connected or still connecting
      client = c;
      try {
        await c.connect();
        c.on('notification', () => options.onNotify());
        await c.query(`LISTEN ${options.channel}`);
        // closed while connecting: nothing to listen for
        if (closing.signal.aborted) break;
        if (failures > 0) options.logger.info({ channel: options.channel }, 'listening again');
        failures = 0;
        options.onNotify();
        const why = await Promise.race([ended, closed]);
        if (!closing.signal.aborted) options.logger.warn({ err: why, channel: options.channel }, 'lost the LISTEN connection; reconnecting (polling meanwhile)');
      } catch (err) {
        failures++;
        if (failures === 1 || failures % 10 === 0) options.logger.warn({ err, failures, channel: options.channel }, 'cannot LISTEN; retrying (polling meanwhile)');
      } finally {
        client = null;
        await c.end().catch(() => {});
      }
      await sleep(Math.min(5_000, 250 * 2 ** Math.min(failures, 5)), undefined, { signal: closing.signal }).catch(() => {});
    }
  })();

  return {
    /**
     * Stops listening. A connection still being opened cannot be cut short (node-postgres ends it
     * only once connected): close() does not wait for it past a second; it ends by itself within
     * its connect timeout.
     */
    async close(): Promise<void> {
      closing.abort();
      void client?.end().catch(() => {});
      await Promise.race([loop, sleep(1_000)]);
    },
  };
}

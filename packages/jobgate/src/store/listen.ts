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
  let client: pg.Client | null = null;

  const loop = (async () => {
    for (let failures = 0; !closing.signal.aborted; ) {
      const c = new pg.Client({ connectionString: options.connectionString, application_name: options.applicationName ?? 'jobgate-listen', connectionTimeoutMillis: 10_000, keepAlive: true });
      const ended = new Promise<unknown>((resolve) => {
        c.on('error', resolve);
        c.on('end', () => resolve(null));
      });
      try {
        await c.connect();
        c.on('notification', () => options.onNotify());
        await c.query(`LISTEN ${options.channel}`);
        client = c;
        if (failures > 0) options.logger.info({ channel: options.channel }, 'listening again');
        failures = 0;
        options.onNotify();
        const why = await Promise.race([ended, new Promise((resolve) => closing.signal.addEventListener('abort', resolve, { once: true }))]);
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
    async close(): Promise<void> {
      closing.abort();
      await client?.end().catch(() => {});
      await loop;
    },
  };
}

import type { Pool, PoolClient } from 'pg';
import pRetry from 'p-retry';
import { isTransientDatabaseError } from '../support/errors.ts';

/**
 * Runs `fn` inside BEGIN … COMMIT on one pooled connection (ROLLBACK on a throw).
 * A checked-out pg client that loses its connection between two queries emits 'error', and an
 * unheard 'error' kills the process (seen when PostgreSQL stops mid-transaction): listen while
 * the client is out, and let the failed query report the error instead.
 */
export async function withTransaction<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  const onError = (err: Error) => {
    broken = err;
  };
  client.on('error', onError);
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    if (!broken) await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.off('error', onError);
    // A broken connection must not go back into the pool.
    client.release(broken ?? false);
  }
}

/** Ledger writes that outlive a short database outage (a restart takes seconds) and a broken deadlock: retried, so they must be idempotent. */
export const durably = <T>(write: () => Promise<T>) =>
  pRetry(write, { retries: 6, minTimeout: 200, maxTimeout: 3_000, shouldRetry: ({ error }) => isTransientDatabaseError(error) });

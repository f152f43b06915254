import { randomUUID } from 'node:crypto';
import type { Pool } from 'pg';
import { assertSchemaName } from './schema-name.ts';

export interface WakeState {
  /** Some main process is waking the fetcher right now. */
  waking: boolean;
  /** When the oldest wake-up in flight began; null when none is. */
  wakingSince: string | null;
}

export type WakeStore = ReturnType<typeof createWakeStore>;

/**
 * Which main processes are waking the fetcher now, shared through PostgreSQL so every process (a
 * web role, the CLI) sees a wake-up that a worker runs. A waker that dies leaves a row that counts
 * only until its deadline.
 */
export function createWakeStore(pool: Pool, schema: string) {
  const s = assertSchemaName(schema);
  const waker = randomUUID();
  // a fast wake-up ends before its start is written: the two writes go in the order they happened
  let last: Promise<unknown> = Promise.resolve();
  const inOrder = (write: () => Promise<unknown>): Promise<void> => {
    const next = last.catch(() => {}).then(write);
    last = next;
    return next.then(() => {});
  };
  return {
    began(since: Date, deadlineMs: number): Promise<void> {
      return inOrder(() => pool.query(
        `WITH gone AS (DELETE FROM ${s}.fetcher_wakes WHERE until < clock_timestamp())
         INSERT INTO ${s}.fetcher_wakes (waker, since, until) VALUES ($1, $2, $2::timestamptz + $3 * interval '1 millisecond')
         ON CONFLICT (waker) DO UPDATE SET since = excluded.since, until = excluded.until`,
        [waker, since, deadlineMs],
      ));
    },
    ended(): Promise<void> {
      return inOrder(() => pool.query(`DELETE FROM ${s}.fetcher_wakes WHERE waker = $1`, [waker]));
    },
    async current(): Promise<WakeState> {
      const { rows } = await pool.query(`SELECT min(since) AS since FROM ${s}.fetcher_wakes WHERE until > clock_timestamp()`);
      const since = rows[0]?.since as Date | null;
      return { waking: since !== null, wakingSince: since?.toISOString() ?? null };
    },
  };
}

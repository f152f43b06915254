import { setTimeout as sleep } from 'node:timers/promises';
import type { Pool } from 'pg';
import { assertSchemaName } from './schema-name.ts';
import { onFreshConnection } from './transaction.ts';

/** What a signed request's id found: new, or seen before (with the answer it got, if it is done). */
export type ReplayCheck =
  | { seen: false }
  | { seen: true; sameBody: boolean; answer: { status: number; type: string; body: string } | null };

export type ReplayStore = ReturnType<typeof createReplayStore>;

/** How long a replay of a message still being handled waits for its answer, and how often it looks. */
const ANSWER_WAIT_MS = 500;
const ANSWER_POLL_MS = 25;

/**
 * Remembers each accepted signed request (by webhook-id) until its timestamp leaves the signature
 * window, with the answer it got, so that a replay acts at most once (see migration 013).
 */
export function createReplayStore(pool: Pool, schema: string) {
  const s = assertSchemaName(schema);
  let writes = 0;
  return {
    /** Records `id` as being handled, unless it was seen (and has not expired). */
    async begin(id: string, bodyHash: Buffer, expiresAt: Date): Promise<ReplayCheck> {
      // (tried again on a fresh connection: should the first try have been recorded unheard, the
      // message answers "still being handled" and its sender's next message goes under a new id)
      const inserted = await onFreshConnection(() => pool.query(
        `INSERT INTO ${s}.signed_requests (webhook_id, body_hash, expires_at) VALUES ($1, $2, $3)
         ON CONFLICT (webhook_id) DO UPDATE SET body_hash = excluded.body_hash, status = NULL, answer = NULL, expires_at = excluded.expires_at
           WHERE ${s}.signed_requests.expires_at < clock_timestamp()
         RETURNING webhook_id`,
        [id, bodyHash, expiresAt],
      ));
      // now and then, rows whose window has passed go (one indexed delete, bounded; the next one retries it)
      if (++writes % 200 === 0) await pool.query(`DELETE FROM ${s}.signed_requests WHERE webhook_id IN (SELECT webhook_id FROM ${s}.signed_requests WHERE expires_at < clock_timestamp() LIMIT 1000)`).catch(() => {});
      if (inserted.rowCount === 1) return { seen: false };
      // being handled: its answer is stored just after it is sent, so a moment's wait usually finds it
      let row: { body_hash: Buffer; status: number | null; answer: { type: string; body: string } | null } | undefined;
      for (let waited = 0; ; waited += ANSWER_POLL_MS) {
        row = (await pool.query(`SELECT body_hash, status, answer FROM ${s}.signed_requests WHERE webhook_id = $1`, [id])).rows[0];
        if (!row || row.status !== null || Buffer.compare(row.body_hash, bodyHash) !== 0 || waited >= ANSWER_WAIT_MS) break;
        await sleep(ANSWER_POLL_MS);
      }
      // gone meanwhile (its first delivery failed and was forgotten): treat as still in progress
      if (!row) return { seen: true, sameBody: true, answer: null };
      return {
        seen: true,
        sameBody: Buffer.compare(row.body_hash as Buffer, bodyHash) === 0,
        answer: row.status === null || !row.answer ? null : { status: row.status, type: row.answer.type, body: row.answer.body },
      };
    },
    /** The answer the first delivery got, for later replays. */
    async finish(id: string, answer: { status: number; type: string; body: string }): Promise<void> {
      await onFreshConnection(() => pool.query(`UPDATE ${s}.signed_requests SET status = $2, answer = $3 WHERE webhook_id = $1`, [id, answer.status, JSON.stringify({ type: answer.type, body: answer.body })]));
    },
    /** The first delivery failed on our side (5xx): a retry with the same id may do it again. */
    async forget(id: string): Promise<void> {
      await onFreshConnection(() => pool.query(`DELETE FROM ${s}.signed_requests WHERE webhook_id = $1`, [id]));
    },
  };
}

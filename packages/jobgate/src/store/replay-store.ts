import { setTimeout as sleep } from 'node:timers/promises';
import type { Pool } from 'pg';
import { assertSchemaName } from './schema-name.ts';
import { onFreshConnection } from './transaction.ts';

/** What a signed request's id found: new, or seen before (with the answer it got, if it is done). */
export type ReplayCheck =
  | { seen: false }
  | { seen: true; sameBody: boolean; answer: { status: number; type: string; body: string } | null };

export type ReplayStore = ReturnType<typeof createReplayStore>;

/**
 * How long a replay of a message recorded as still being handled (by a process of the previous
 * release, which recorded a message before acting on it) waits for its answer, and how often it looks.
 */
const ANSWER_WAIT_MS = 500;
const ANSWER_POLL_MS = 25;

/**
 * Remembers each accepted signed request (by webhook-id) until its timestamp leaves the signature
 * window, with the answer it got, so that a replay gets that answer and does nothing again (see
 * migrations 013 and 036). A message is looked up before it is handled (`check`: a read) and
 * recorded once, with its answer, before that answer is sent (`record`: one write): its sender,
 * and anyone who saw the answer, can only replay it once it is recorded. A copy that comes while
 * the first is being handled is handled too; every route that records its messages acts once by
 * its own key (a job's id at intake, an event's number, the attempt a claim names, a child's key),
 * so the copy changes nothing and gets the same outcome.
 */
export function createReplayStore(pool: Pool, schema: string) {
  const s = assertSchemaName(schema);
  let writes = 0;
  return {
    /** Whether `id` was recorded (and has not expired), with its answer. */
    async check(id: string, bodyHash: Buffer): Promise<ReplayCheck> {
      let row: { body_hash: Buffer; status: number | null; answer: { type: string; body: string } | null } | undefined;
      for (let waited = 0; ; waited += ANSWER_POLL_MS) {
        row = (await onFreshConnection(() => pool.query(`SELECT body_hash, status, answer FROM ${s}.signed_requests WHERE webhook_id = $1 AND expires_at >= clock_timestamp()`, [id]))).rows[0];
        // (a row without an answer was recorded by the previous release as being handled: its answer comes soon)
        if (!row || row.status !== null || Buffer.compare(row.body_hash, bodyHash) !== 0 || waited >= ANSWER_WAIT_MS) break;
        await sleep(ANSWER_POLL_MS);
      }
      if (!row) return { seen: false };
      return {
        seen: true,
        sameBody: Buffer.compare(row.body_hash as Buffer, bodyHash) === 0,
        answer: row.status === null || !row.answer ? null : { status: row.status, type: row.answer.type, body: row.answer.body },
      };
    },
    /** Records `id` with the answer it got (a copy handled at the same time may have recorded it first: that one stays). */
    async record(id: string, bodyHash: Buffer, expiresAt: Date, answer: { status: number; type: string; body: string }): Promise<void> {
      await onFreshConnection(() => pool.query(
        `INSERT INTO ${s}.signed_requests (webhook_id, body_hash, expires_at, status, answer) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (webhook_id) DO UPDATE SET body_hash = excluded.body_hash, status = excluded.status, answer = excluded.answer, expires_at = excluded.expires_at
           WHERE ${s}.signed_requests.expires_at < clock_timestamp()`,
        [id, bodyHash, expiresAt, answer.status, JSON.stringify({ type: answer.type, body: answer.body })],
      ));
      // now and then, rows whose window has passed go (one indexed delete, bounded, not waited for; the next one retries it)
      if (++writes % 200 === 0) void pool.query(`DELETE FROM ${s}.signed_requests WHERE webhook_id IN (SELECT webhook_id FROM ${s}.signed_requests WHERE expires_at < clock_timestamp() LIMIT 1000)`).catch(() => {});
    },
  };
}

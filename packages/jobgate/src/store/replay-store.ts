import { setTimeout as sleep } from 'node:timers/promises';
import type { Pool } from 'pg';
import { coalesce } from '../support/index.ts';
import { assertSchemaName } from './schema-name.ts';
import { onFreshConnection, prepared } from './transaction.ts';

/** What a signed request's id found: new, or seen before (with the answer it got, if it is done). */
export type ReplayCheck =
  | { seen: false }
  | { seen: true; sameBody: boolean; answer: { status: number; type: string; body: string } | null };

export type ReplayStore = ReturnType<typeof createReplayStore>;

type Answer = { status: number; type: string; body: string };
type Row = { webhook_id: string; body_hash: Buffer; status: number | null; answer: { type: string; body: string } | null };
/** A look at an id (before its message is handled), or the record of one (once it is answered). */
type Op = { look: string } | { record: { id: string; bodyHash: Buffer; expiresAt: Date; answer: Answer } };
/** Each op's own outcome: a look's row (if any), or its failure (the statement it shared failed, and so did its own). */
type Outcome = { row: Row | undefined } | { failed: unknown };

/**
 * How long a replay of a message recorded as still being handled (by a process of a release that
 * recorded a message before acting on it) waits for its answer, and how often it looks.
 */
const ANSWER_WAIT_MS = 500;
const ANSWER_POLL_MS = 25;

/**
 * Remembers each accepted signed request (by webhook-id) until its timestamp leaves the signature
 * window, with the answer it got, so that a replay gets that answer and does nothing again (see
 * migrations 013 and 036). A message is looked up before it is handled (`check`: a read) and
 * recorded once, with its answer, as that answer is sent (`record`: one write). The looks and
 * records of the requests handled at the same time go to the database together, one statement
 * for all of them (a record rides with the looks of the next requests): a request's answer waits
 * for no write, and a message costs its look on the way in, and a share of a statement after.
 *
 * A copy that comes before the first is recorded (while it is handled, or in the moment after it
 * is answered) is handled too; every route that records its messages acts once by its own key (a
 * job's id at intake, an event's number, the attempt a claim names, a child's key), so the copy
 * changes nothing and gets the same outcome. A copy that reaches the process that answered the
 * first waits for that record, and gets the stored answer.
 */
export function createReplayStore(pool: Pool, schema: string) {
  const s = assertSchemaName(schema);
  const lookText = `SELECT webhook_id, body_hash, status, answer FROM ${s}.signed_requests WHERE webhook_id = ANY($1::text[]) AND expires_at >= clock_timestamp()`;
  // (a copy handled at the same time may have recorded it first: that one stays)
  const insertText = `INSERT INTO ${s}.signed_requests (webhook_id, body_hash, expires_at, status, answer)
      SELECT * FROM unnest($1::text[], $2::bytea[], $3::timestamptz[], $4::int[], $5::jsonb[])
      ON CONFLICT (webhook_id) DO UPDATE SET body_hash = excluded.body_hash, status = excluded.status, answer = excluded.answer, expires_at = excluded.expires_at
        WHERE ${s}.signed_requests.expires_at < clock_timestamp()`;
  // both in one statement: the look reads the table as it was before the records (its ids are other messages')
  const bothText = `WITH recorded AS (${insertText.replace(/\$(\d)\b/g, (_, n: string) => `$${Number(n) + 1}`)}) ${lookText}`;

  /** Runs `ops` as one statement: the looks' rows, by id. */
  async function run(ops: Op[]): Promise<Map<string, Row>> {
    const looks = [...new Set(ops.flatMap((o) => ('look' in o ? [o.look] : [])))];
    // one record per id (copies handled side by side record the same message: the first stays)
    const records = [...new Map(ops.flatMap((o) => ('record' in o ? [[o.record.id, o.record] as const] : [])).reverse()).values()];
    const columns = [
      records.map((r) => r.id),
      records.map((r) => r.bodyHash),
      records.map((r) => r.expiresAt),
      records.map((r) => r.answer.status),
      records.map((r) => JSON.stringify({ type: r.answer.type, body: r.answer.body })),
    ];
    const query = looks.length === 0 ? prepared(insertText, columns, 'replay') : records.length === 0 ? prepared(lookText, [looks], 'replay') : prepared(bothText, [looks, ...columns], 'replay');
    const { rows } = await onFreshConnection(() => pool.query<Row>(query));
    return new Map(rows.map((r) => [r.webhook_id, r]));
  }

  const together = coalesce(
    async (ops: Op[]): Promise<Outcome[]> => {
      try {
        const rows = await run(ops);
        return ops.map((o) => ({ row: 'look' in o ? rows.get(o.look) : undefined }));
      } catch (err) {
        // one op's own fault (a value the table refuses) must not fail the others: each alone then
        if (ops.length === 1) return [{ failed: err }];
        return Promise.all(ops.map((o) => run([o]).then((rows) => ({ row: 'look' in o ? rows.get(o.look) : undefined }), (e: unknown) => ({ failed: e }))));
      }
    },
    { maxItems: 500, maxInFlight: 2 },
  );
  const settle = async (op: Op): Promise<Row | undefined> => {
    const outcome = await together(op);
    if ('failed' in outcome) throw outcome.failed;
    return outcome.row;
  };

  /** Records this process has answered and not yet written: a copy of one waits for it. */
  const pending = new Map<string, Promise<unknown>>();
  let writes = 0;
  return {
    /** Whether `id` was recorded (and has not expired), with its answer. */
    async check(id: string, bodyHash: Buffer): Promise<ReplayCheck> {
      await pending.get(id);
      let row: Row | undefined;
      for (let waited = 0; ; waited += ANSWER_POLL_MS) {
        row = await settle({ look: id });
        // (a row without an answer was recorded by an earlier release as being handled: its answer comes soon)
        if (!row || row.status !== null || Buffer.compare(row.body_hash, bodyHash) !== 0 || waited >= ANSWER_WAIT_MS) break;
        await sleep(ANSWER_POLL_MS);
      }
      if (!row) return { seen: false };
      return {
        seen: true,
        sameBody: Buffer.compare(row.body_hash, bodyHash) === 0,
        answer: row.status === null || !row.answer ? null : { status: row.status, type: row.answer.type, body: row.answer.body },
      };
    },
    /**
     * Records `id` with the answer it got (a copy handled at the same time may have recorded it
     * first: that one stays). A copy that reaches this process from now on waits for it.
     */
    record(id: string, bodyHash: Buffer, expiresAt: Date, answer: Answer): Promise<void> {
      const written = settle({ record: { id, bodyHash, expiresAt, answer } }).then(() => undefined);
      const waitFor = written.catch(() => {});
      pending.set(id, waitFor);
      void waitFor.then(() => pending.get(id) === waitFor && pending.delete(id));
      // now and then, rows whose window has passed go (one indexed delete, bounded, not waited for; the next one retries it)
      if (++writes % 200 === 0) void pool.query(`DELETE FROM ${s}.signed_requests WHERE webhook_id IN (SELECT webhook_id FROM ${s}.signed_requests WHERE expires_at < clock_timestamp() LIMIT 1000)`).catch(() => {});
      return written;
    },
  };
}

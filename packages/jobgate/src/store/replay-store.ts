import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Pool } from 'pg';
import { coalesce } from '../support/index.ts';
import { assertSchemaName } from './schema-name.ts';
import { onFreshConnection, prepared } from './transaction.ts';

/** What taking a signed request's id found: new (taken: the message is this request's to handle), or seen before (with the answer it got, if it has one yet). */
export type ReplayCheck =
  | { seen: false }
  | { seen: true; sameBody: boolean; answer: { status: number; type: string; body: string } | null };

export type ReplayStore = ReturnType<typeof createReplayStore>;

type Answer = { status: number; type: string; body: string };
type Row = { webhook_id: string; taken: boolean; body_hash: Buffer | null; status: number | null; answer: { type: string; body: string } | null; token?: string };
type Take = { id: string; bodyHash: Buffer; expiresAt: Date };
/** An answer to write for an id taken under `token`, or (null) one to let go: its handling failed on our side. */
type End = { id: string; token: string; answer: Answer | null };

/**
 * How long a copy of a message taken by a request still being handled elsewhere (another process,
 * or one that died before answering) waits for its answer, and how often it looks.
 */
const ANSWER_WAIT_MS = 500;
const ANSWER_POLL_MS = 25;
/** How long a copy of a message this process is handling waits for its answer before it is told the message is still being handled. */
const IN_PROCESS_WAIT_MS = 30_000;

/** Statements that failed on what one op gave them (a value the table refuses): the ops of that batch go again one by one. */
const isDataError = (err: unknown) => /^2[23]/.test(String((err as { code?: unknown }).code ?? ''));

/** By webhook-id: the order a statement locks its rows in (two processes locking the same rows never wait for each other in turn). */
const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/**
 * Remembers each accepted signed request (by webhook-id) until its timestamp leaves the signature
 * window, with the answer it got, so that a copy gets that answer and does nothing again (see
 * migrations 013 and 036). A message's id is taken before it is handled (`check`: a row written
 * without its answer, or the row already there read), and its answer written as it is sent
 * (`record`, or `release` after a 5xx): the answer never waits for that write. A copy finds the id taken and handles
 * nothing: it gets the stored answer, waiting for it while the first is handled (in this process,
 * until it is written; elsewhere, a moment, then "still being handled"). The takes of the requests
 * handled at the same time go to the database in one statement, and their answers in another.
 */
export function createReplayStore(pool: Pool, schema: string) {
  const s = assertSchemaName(schema);
  // A taken row carries the statement's token until its answer ($4, in `answer`, its status null): the
  // same statement run again after its reply was lost (onFreshConnection) finds its own rows taken,
  // and an answer or a release touches only the row it took. (An expired row is taken again; the
  // row of a request taken at the same moment by another process is not read by this statement.)
  const takeText = `
    WITH taken AS (
      INSERT INTO ${s}.signed_requests (webhook_id, body_hash, expires_at, answer)
      SELECT id, hash, expires, jsonb_build_object('taking', $4::text) FROM unnest($1::text[], $2::bytea[], $3::timestamptz[]) AS t(id, hash, expires)
      ON CONFLICT (webhook_id) DO UPDATE SET body_hash = excluded.body_hash, expires_at = excluded.expires_at, status = NULL, answer = excluded.answer
        WHERE ${s}.signed_requests.expires_at < clock_timestamp()
      RETURNING webhook_id)
    SELECT webhook_id, true AS taken, NULL::bytea AS body_hash, NULL::int AS status, NULL::jsonb AS answer FROM taken
    UNION ALL
    SELECT r.webhook_id, r.status IS NULL AND r.answer->>'taking' IS NOT DISTINCT FROM $4::text, r.body_hash, r.status, r.answer FROM ${s}.signed_requests r
     WHERE r.webhook_id = ANY($1::text[]) AND r.webhook_id NOT IN (SELECT webhook_id FROM taken) AND r.expires_at >= clock_timestamp()`;
  const endText = `
    WITH answered AS (
      UPDATE ${s}.signed_requests r SET status = a.status, answer = a.answer
        FROM unnest($1::text[], $2::text[], $3::int[], $4::jsonb[]) AS a(id, token, status, answer)
       WHERE r.webhook_id = a.id AND r.status IS NULL AND r.answer->>'taking' = a.token)
    DELETE FROM ${s}.signed_requests r USING unnest($5::text[], $6::text[]) AS d(id, token)
     WHERE r.webhook_id = d.id AND r.status IS NULL AND r.answer->>'taking' = d.token`;

  /** Runs `statement` for a batch; on a value one op gave that the table refuses, each op alone (its own outcome). */
  function batched<I, O>(statement: (items: I[]) => Promise<O[]>) {
    const together = coalesce(
      async (items: I[]): Promise<Array<{ out: O } | { failed: unknown }>> => {
        try {
          return (await statement(items)).map((out) => ({ out }));
        } catch (err) {
          if (items.length === 1 || !isDataError(err)) return items.map(() => ({ failed: err }));
          const alone = [];
          for (const item of items) alone.push(await statement([item]).then(([out]) => ({ out: out! }), (e: unknown) => ({ failed: e })));
          return alone;
        }
      },
      { maxItems: 500, maxInFlight: 2 },
    );
    return async (item: I): Promise<O> => {
      const outcome = await together(item);
      if ('failed' in outcome) throw outcome.failed;
      return outcome.out;
    };
  }

  const takeOne = batched(async (takes: Take[]): Promise<Array<Row | undefined>> => {
    // one row per id (the copies of one message in a batch: the first takes it, the others find it taken)
    const firsts = new Map<string, Take>();
    for (const t of takes) if (!firsts.has(t.id)) firsts.set(t.id, t);
    const ids = [...firsts.values()].sort(byId);
    const token = randomUUID();
    const { rows } = await onFreshConnection(() => pool.query<Row>(prepared(takeText, [ids.map((t) => t.id), ids.map((t) => t.bodyHash), ids.map((t) => t.expiresAt), token], 'replay')));
    const found = new Map(rows.map((r) => [r.webhook_id, r.taken ? { ...r, token } : r]));
    return takes.map((t) => {
      const row = found.get(t.id);
      // a copy in the same batch: taken, by the first of them
      return row?.taken && firsts.get(t.id) !== t ? { ...row, taken: false, body_hash: firsts.get(t.id)!.bodyHash } : row;
    });
  });
  const endOne = batched(async (ends: End[]): Promise<void[]> => {
    const answered = ends.filter((e) => e.answer).sort(byId);
    const released = ends.filter((e) => !e.answer).sort(byId);
    const values = [
      answered.map((e) => e.id),
      answered.map((e) => e.token),
      answered.map((e) => e.answer!.status),
      answered.map((e) => JSON.stringify({ type: e.answer!.type, body: e.answer!.body })),
      released.map((e) => e.id),
      released.map((e) => e.token),
    ];
    await onFreshConnection(() => pool.query(prepared(endText, values, 'replay')));
    return ends.map(() => undefined);
  });

  /** The ids this process took and has not answered (or let go) in the database yet: a copy waits for them. */
  const pending = new Map<string, { token: string; ended: Promise<void>; end: () => void }>();
  let writes = 0;
  return {
    /**
     * Takes `id` for the request that brought it, unless it was taken before (and has not expired):
     * then answers what that one got, waiting while it is handled. `{ seen: false }`: taken, the
     * request is handled, and its answer goes to `answer` (or `release`).
     */
    async check(id: string, bodyHash: Buffer, expiresAt: Date): Promise<ReplayCheck> {
      for (let polled = 0; ; ) {
        const row = await takeOne({ id, bodyHash, expiresAt });
        if (row?.taken) {
          let end!: () => void;
          const ended = new Promise<void>((resolve) => (end = resolve));
          pending.set(id, { token: row.token!, ended, end });
          // now and then, rows whose window has passed go (one indexed delete, bounded, not waited for; the next one retries it)
          if (++writes % 200 === 0) void pool.query(`DELETE FROM ${s}.signed_requests WHERE webhook_id IN (SELECT webhook_id FROM ${s}.signed_requests WHERE expires_at < clock_timestamp() LIMIT 1000)`).catch(() => {});
          return { seen: false };
        }
        // (no row: another process took it at the same moment, and this statement could not read its row yet)
        const sameBody = row?.body_hash ? Buffer.compare(row.body_hash, bodyHash) === 0 : true;
        const answer = row && row.status !== null && row.answer ? { status: row.status, type: row.answer.type, body: row.answer.body } : null;
        if (answer || !sameBody) return { seen: true, sameBody, answer };
        // being handled: here, until its answer is written (or a while); elsewhere, a moment
        const mine = pending.get(id);
        if (mine) {
          let timer: NodeJS.Timeout | undefined;
          const ended = await Promise.race([mine.ended.then(() => true), new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), IN_PROCESS_WAIT_MS)))]).finally(() => clearTimeout(timer));
          if (!ended) return { seen: true, sameBody, answer: null };
          continue;
        }
        if (polled >= ANSWER_WAIT_MS) return { seen: true, sameBody, answer: null };
        await sleep(ANSWER_POLL_MS);
        polled += ANSWER_POLL_MS;
      }
    },
    /** Writes the answer of a taken id (sent meanwhile: nothing waits for it but a copy). */
    record(id: string, answer: Answer): Promise<void> {
      return settle(id, answer);
    },
    /** Lets a taken id go (its handling failed on our side, 5xx): a retry under it is handled. */
    release(id: string): Promise<void> {
      return settle(id, null);
    },
  };

  function settle(id: string, answer: Answer | null): Promise<void> {
    const mine = pending.get(id);
    if (!mine) return Promise.reject(new Error(`signed request ${id} was not taken here`));
    const written = endOne({ id, token: mine.token, answer });
    void written.catch(() => {}).finally(() => {
      if (pending.get(id) === mine) pending.delete(id);
      mine.end();
    });
    return written;
  }
}

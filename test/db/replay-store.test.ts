// The replay store behind every state-changing signed route (store/replay-store.ts): a message's id
// is taken before it is handled, and its answer written as that answer is sent; a copy handles
// nothing and gets that answer. The takes of requests handled at the same time share one
// statement, and so do their answers. Rows recorded by an earlier release (an id recorded as being
// handled, then answered) are read the same way.
import { createHash, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pool } from 'pg';
import { createReplayStore, type ReplayStore } from '../../packages/jobgate/src/store/index.ts';
import { createTestDatabase, TEST_SCHEMA, type TestDatabase } from '../support/database.ts';

let db: TestDatabase;
let store: ReplayStore;
const hash = (body: string) => createHash('sha256').update(body).digest();
const inFiveMinutes = () => new Date(Date.now() + 300_000);
const answer = { status: 200, type: 'application/json', body: '{"outcome":"claimed"}' };

beforeAll(async () => {
  db = await createTestDatabase();
  store = createReplayStore(db.pool, TEST_SCHEMA);
});
afterAll(async () => {
  await db?.drop();
});

/** Row writes to the store's table so far, once the statistics have caught up (each backend reports its counts up to a second late). */
async function rowWrites(): Promise<number> {
  const read = async () => {
    await db.pool.query('SELECT pg_stat_clear_snapshot()');
    const { rows } = await db.pool.query(
      `SELECT n_tup_ins + n_tup_upd + n_tup_del AS n FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'signed_requests'`,
      [TEST_SCHEMA],
    );
    return Number(rows[0].n);
  };
  let last = await read();
  for (let unchangedMs = 0, waited = 0; unchangedMs < 1_500 && waited < 10_000; waited += 250) {
    await sleep(250);
    const now = await read();
    unchangedMs = now === last ? unchangedMs + 250 : 0;
    last = now;
  }
  return last;
}

describe('the replay store', () => {
  it("a message's id is taken before it is handled and its answer written as it is sent; a copy gets that answer, and another body under its id is told apart", async () => {
    const id = `clm_${randomUUID()}`;
    expect(await store.check(id, hash('a'), inFiveMinutes())).toEqual({ seen: false });
    await store.record(id, answer);
    expect(await store.check(id, hash('a'), inFiveMinutes())).toEqual({ seen: true, sameBody: true, answer });
    expect(await store.check(id, hash('b'), inFiveMinutes())).toMatchObject({ seen: true, sameBody: false });
  });

  it('a copy that comes while the first is handled handles nothing: here it waits for the answer; in another process it waits a moment, then is told the first is still being handled', async () => {
    const id = `clm_${randomUUID()}`;
    expect(await store.check(id, hash('a'), inFiveMinutes())).toEqual({ seen: false });
    const other = createReplayStore(db.pool, TEST_SCHEMA);
    // another process: nothing to handle, and no answer yet
    expect(await other.check(id, hash('a'), inFiveMinutes())).toEqual({ seen: true, sameBody: true, answer: null });
    // this process: the copy waits for the answer
    const copy = store.check(id, hash('a'), inFiveMinutes());
    await sleep(100);
    await store.record(id, answer);
    expect(await copy).toEqual({ seen: true, sameBody: true, answer });
    expect(await other.check(id, hash('a'), inFiveMinutes())).toEqual({ seen: true, sameBody: true, answer });
  });

  it('copies taken at the same moment, in one process or in two, are handled once', async () => {
    const id = `clm_${randomUUID()}`;
    const other = createReplayStore(db.pool, TEST_SCHEMA);
    const copies = [store, store, other, other].map((s) => s.check(id, hash('a'), inFiveMinutes()));
    // (the copies wait for the answer of the one taken, or are told it is still being handled)
    const first = await Promise.race(copies.map((c, i) => c.then((r) => (r.seen ? new Promise<never>(() => {}) : i))));
    await (first < 2 ? store : other).record(id, answer);
    const all = await Promise.all(copies);
    expect(all.filter((r) => !r.seen)).toHaveLength(1);
    for (const r of all.filter((r) => r.seen)) expect(r).toMatchObject({ seen: true, sameBody: true });
  });

  it('an id let go (its handling failed on our side) is handled again', async () => {
    const id = `clm_${randomUUID()}`;
    expect(await store.check(id, hash('a'), inFiveMinutes())).toEqual({ seen: false });
    await store.release(id);
    expect(await store.check(id, hash('a'), inFiveMinutes())).toEqual({ seen: false });
    await store.record(id, answer);
  });

  it('costs two row writes per message (its id taken, its answer), on an unlogged table', async () => {
    const before = await rowWrites();
    for (let i = 0; i < 10; i++) {
      const id = `clm_${randomUUID()}`;
      await store.check(id, hash('a'), inFiveMinutes());
      await store.record(id, answer);
    }
    const after = await rowWrites();
    expect(after - before).toBe(20);
    const { rows } = await db.pool.query(`SELECT relpersistence FROM pg_class WHERE oid = $1::regclass`, [`${TEST_SCHEMA}.signed_requests`]);
    expect(rows[0].relpersistence).toBe('u');
  });

  it('an id whose window has passed is new again', async () => {
    const id = `clm_${randomUUID()}`;
    await db.pool.query(`INSERT INTO ${TEST_SCHEMA}.signed_requests (webhook_id, body_hash, expires_at, status, answer) VALUES ($1, $2, $3, 200, $4)`, [id, hash('a'), new Date(Date.now() - 1_000), JSON.stringify({ type: answer.type, body: answer.body })]);
    expect(await store.check(id, hash('a'), inFiveMinutes())).toEqual({ seen: false });
    const again = { ...answer, body: '{"outcome":"gone"}' };
    await store.record(id, again);
    expect(await store.check(id, hash('a'), inFiveMinutes())).toEqual({ seen: true, sameBody: true, answer: again });
  });

  it('the takes and the answers of messages handled at the same time go to the database together, each with its own outcome', async () => {
    let statements = 0;
    const counted = { query: (...args: unknown[]) => (statements++, (db.pool.query as (...a: unknown[]) => unknown)(...args)) } as unknown as Pool;
    const together = createReplayStore(counted, TEST_SCHEMA);
    const ids = Array.from({ length: 20 }, () => `clm_${randomUUID()}`);
    const first = await Promise.all(ids.slice(0, 10).map((id, i) => together.check(id, hash(`body ${i}`), inFiveMinutes())));
    expect(first).toEqual(ids.slice(0, 10).map(() => ({ seen: false })));
    statements = 0;
    // ten answers and twenty takes (ten of them of ids just answered), all at once
    const [, taken] = await Promise.all([
      Promise.all(ids.slice(0, 10).map((id, i) => together.record(id, { ...answer, body: `{"n":${i}}` }))),
      Promise.all(ids.map((id, i) => together.check(id, hash(`body ${i}`), inFiveMinutes()))),
    ]);
    expect(statements).toBeLessThan(10);
    expect(taken.slice(0, 10)).toEqual(ids.slice(0, 10).map((_, i) => ({ seen: true, sameBody: true, answer: { ...answer, body: `{"n":${i}}` } })));
    expect(taken.slice(10)).toEqual(ids.slice(10).map(() => ({ seen: false })));
    await Promise.all(ids.slice(10).map((id) => together.record(id, answer)));
  });

  it('an answer the table refuses fails alone: the answers that went with it are written', async () => {
    const [refused, fine] = [`clm_${randomUUID()}`, `clm_${randomUUID()}`];
    for (const id of [refused, fine]) expect(await store.check(id, hash('a'), inFiveMinutes())).toEqual({ seen: false });
    // (jsonb takes no NUL character)
    const [bad, good] = await Promise.allSettled([store.record(refused, { ...answer, body: 'a NUL: \u0000' }), store.record(fine, answer)]);
    expect(bad.status).toBe('rejected');
    expect(good.status).toBe('fulfilled');
    expect(await store.check(fine, hash('a'), inFiveMinutes())).toEqual({ seen: true, sameBody: true, answer });
  });

  it('a statement run again after its reply was lost finds its own take, and a release run again lets go only of its own', async () => {
    // a pool that runs a statement and loses its reply once, as a connection killed just after COMMIT does
    const losing = (lose: (text: string) => boolean, meanwhile: () => Promise<unknown> = async () => {}) => {
      let lost = false;
      return {
        query: async (...args: unknown[]) => {
          const result = await (db.pool.query as (...a: unknown[]) => Promise<unknown>)(...args);
          const text = String((args[0] as { text?: string }).text ?? args[0]);
          if (!lost && lose(text)) {
            lost = true;
            await meanwhile();
            throw Object.assign(new Error('Connection terminated unexpectedly'), { code: '57P01' });
          }
          return result;
        },
      } as unknown as Pool;
    };
    const id = `clm_${randomUUID()}`;
    const takes = createReplayStore(losing((text) => text.includes('INSERT INTO')), TEST_SCHEMA);
    expect(await takes.check(id, hash('a'), inFiveMinutes())).toEqual({ seen: false });
    await takes.record(id, answer);
    expect(await store.check(id, hash('a'), inFiveMinutes())).toEqual({ seen: true, sameBody: true, answer });
    // a release whose reply is lost, while another process takes the id it let go: that take stays
    const other = createReplayStore(db.pool, TEST_SCHEMA);
    const again = `clm_${randomUUID()}`;
    let otherTook: unknown;
    const releases = createReplayStore(losing((text) => text.includes('DELETE FROM'), async () => (otherTook = await other.check(again, hash('a'), inFiveMinutes()))), TEST_SCHEMA);
    expect(await releases.check(again, hash('a'), inFiveMinutes())).toEqual({ seen: false });
    await releases.release(again);
    expect(otherTook).toEqual({ seen: false });
    const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM ${TEST_SCHEMA}.signed_requests WHERE webhook_id = $1`, [again]);
    expect(rows[0].n).toBe(1);
    await other.record(again, answer);
    expect(await store.check(again, hash('a'), inFiveMinutes())).toEqual({ seen: true, sameBody: true, answer });
  });

  it("an id an earlier release recorded as being handled: a copy waits a moment for its answer, and is told it is still being handled after that", async () => {
    const recordAsPrevious = (id: string) =>
      db.pool.query(`INSERT INTO ${TEST_SCHEMA}.signed_requests (webhook_id, body_hash, expires_at) VALUES ($1, $2, $3)`, [id, hash('a'), inFiveMinutes()]);
    const answered = `clm_${randomUUID()}`;
    await recordAsPrevious(answered);
    const replay = store.check(answered, hash('a'), inFiveMinutes());
    await sleep(100);
    await db.pool.query(`UPDATE ${TEST_SCHEMA}.signed_requests SET status = $2, answer = $3 WHERE webhook_id = $1`, [answered, answer.status, JSON.stringify({ type: answer.type, body: answer.body })]);
    expect(await replay).toEqual({ seen: true, sameBody: true, answer });
    const stuck = `clm_${randomUUID()}`;
    await recordAsPrevious(stuck);
    expect(await store.check(stuck, hash('a'), inFiveMinutes())).toEqual({ seen: true, sameBody: true, answer: null });
  });
});

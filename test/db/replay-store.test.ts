// The replay store behind every state-changing signed route (store/replay-store.ts): a message is
// looked up before it is handled and recorded once, with its answer, as that answer is sent; a
// replay gets that answer. The looks and records of requests handled at the same time share one
// statement. Rows recorded by an earlier release (an id recorded as being handled, then answered)
// are read the same way.
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
  it('a message is recorded once, with its answer; a replay finds that answer, and another body under its id is told apart', async () => {
    const id = `clm_${randomUUID()}`;
    expect(await store.check(id, hash('a'))).toEqual({ seen: false });
    await store.record(id, hash('a'), inFiveMinutes(), answer);
    expect(await store.check(id, hash('a'))).toEqual({ seen: true, sameBody: true, answer });
    expect(await store.check(id, hash('b'))).toMatchObject({ seen: true, sameBody: false });
  });

  it('a copy handled at the same time records nothing over the first record', async () => {
    const id = `clm_${randomUUID()}`;
    await store.record(id, hash('a'), inFiveMinutes(), answer);
    await store.record(id, hash('a'), inFiveMinutes(), { ...answer, body: '{"outcome":"wait"}' });
    expect(await store.check(id, hash('a'))).toEqual({ seen: true, sameBody: true, answer });
  });

  it('costs one row write per message', async () => {
    const before = await rowWrites();
    for (let i = 0; i < 10; i++) {
      const id = `clm_${randomUUID()}`;
      await store.check(id, hash('a'));
      await store.record(id, hash('a'), inFiveMinutes(), answer);
    }
    const after = await rowWrites();
    expect(after - before).toBe(10);
  });

  it('an id whose window has passed is new again, and recording it replaces the old record', async () => {
    const id = `clm_${randomUUID()}`;
    await store.record(id, hash('a'), new Date(Date.now() - 1_000), answer);
    expect(await store.check(id, hash('a'))).toEqual({ seen: false });
    const again = { ...answer, body: '{"outcome":"gone"}' };
    await store.record(id, hash('a'), inFiveMinutes(), again);
    expect(await store.check(id, hash('a'))).toEqual({ seen: true, sameBody: true, answer: again });
  });

  it("an id the previous release recorded as being handled: a replay waits a moment for its answer, and is told it is still being handled after that", async () => {
    const recordAsPrevious = (id: string) =>
      db.pool.query(`INSERT INTO ${TEST_SCHEMA}.signed_requests (webhook_id, body_hash, expires_at) VALUES ($1, $2, $3)`, [id, hash('a'), inFiveMinutes()]);
    const answered = `clm_${randomUUID()}`;
    await recordAsPrevious(answered);
    const replay = store.check(answered, hash('a'));
    await sleep(100);
    await db.pool.query(`UPDATE ${TEST_SCHEMA}.signed_requests SET status = $2, answer = $3 WHERE webhook_id = $1`, [answered, answer.status, JSON.stringify({ type: answer.type, body: answer.body })]);
    expect(await replay).toEqual({ seen: true, sameBody: true, answer });
    const stuck = `clm_${randomUUID()}`;
    await recordAsPrevious(stuck);
    expect(await store.check(stuck, hash('a'))).toEqual({ seen: true, sameBody: true, answer: null });
  });

  it('the looks and records of messages handled at the same time go to the database together, each with its own outcome', async () => {
    let statements = 0;
    const counted = { query: (...args: unknown[]) => (statements++, (db.pool.query as (...a: unknown[]) => unknown)(...args)) } as unknown as Pool;
    const together = createReplayStore(counted, TEST_SCHEMA);
    const ids = Array.from({ length: 20 }, () => `clm_${randomUUID()}`);
    await Promise.all(ids.slice(0, 10).map((id, i) => together.record(id, hash(`body ${i}`), inFiveMinutes(), { ...answer, body: `{"n":${i}}` })));
    statements = 0;
    // ten records of new messages and twenty looks (ten at recorded ones), all at once
    const [looks] = await Promise.all([
      Promise.all(ids.map((id, i) => together.check(id, hash(`body ${i}`)))),
      Promise.all(ids.slice(10).map((id, i) => together.record(id, hash(`body ${i + 10}`), inFiveMinutes(), { ...answer, body: `{"n":${i + 10}}` }))),
    ]);
    expect(statements).toBeLessThan(10);
    expect(looks.slice(0, 10)).toEqual(ids.slice(0, 10).map((_, i) => ({ seen: true, sameBody: true, answer: { ...answer, body: `{"n":${i}}` } })));
    // each look read the table as it was before the records it went with
    expect(looks.slice(10)).toEqual(ids.slice(10).map(() => ({ seen: false })));
    expect(await Promise.all(ids.slice(10).map((id, i) => together.check(id, hash(`body ${i + 10}`))))).toEqual(ids.slice(10).map((_, i) => ({ seen: true, sameBody: true, answer: { ...answer, body: `{"n":${i + 10}}` } })));
  });

  it('a copy that comes to the process that answered the first before its record is written waits for that record, and gets its answer', async () => {
    const id = `clm_${randomUUID()}`;
    const recording = store.record(id, hash('a'), inFiveMinutes(), answer);
    expect(await store.check(id, hash('a'))).toEqual({ seen: true, sameBody: true, answer });
    await recording;
  });

  it('a record the table refuses fails alone: the looks and records that went with it are answered', async () => {
    const fine = `clm_${randomUUID()}`;
    const looked = `clm_${randomUUID()}`;
    await store.record(looked, hash('a'), inFiveMinutes(), answer);
    // (jsonb takes no NUL character)
    const [refused, recorded, look] = await Promise.allSettled([
      store.record(`clm_${randomUUID()}`, hash('a'), inFiveMinutes(), { ...answer, body: 'a NUL: \u0000' }),
      store.record(fine, hash('a'), inFiveMinutes(), answer),
      store.check(looked, hash('a')),
    ]);
    expect(refused.status).toBe('rejected');
    expect(recorded.status).toBe('fulfilled');
    expect(look).toEqual({ status: 'fulfilled', value: { seen: true, sameBody: true, answer } });
    expect(await store.check(fine, hash('a'))).toEqual({ seen: true, sameBody: true, answer });
  });
});

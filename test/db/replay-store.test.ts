// The replay store behind every state-changing signed route (store/replay-store.ts): a message's
// id acts once; a replay gets the first delivery's answer, also when it comes while that answer is
// still being written (the answer is stored just after it is sent).
import { createHash, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

describe('the replay store', () => {
  it('a replay that comes while the first answer is being stored waits for it and gets it', async () => {
    const id = `clm_${randomUUID()}`;
    expect(await store.begin(id, hash('a'), inFiveMinutes())).toEqual({ seen: false });
    const replay = store.begin(id, hash('a'), inFiveMinutes());
    await sleep(100);
    await store.finish(id, answer);
    expect(await replay).toEqual({ seen: true, sameBody: true, answer });
  });

  it('a replay of a message still being handled after the wait is told so (no answer), and one with another body is told that', async () => {
    const id = `clm_${randomUUID()}`;
    await store.begin(id, hash('a'), inFiveMinutes());
    expect(await store.begin(id, hash('a'), inFiveMinutes())).toEqual({ seen: true, sameBody: true, answer: null });
    expect(await store.begin(id, hash('b'), inFiveMinutes())).toMatchObject({ seen: true, sameBody: false });
  });

  it('a forgotten id (its first delivery failed on our side) may act again', async () => {
    const id = `clm_${randomUUID()}`;
    await store.begin(id, hash('a'), inFiveMinutes());
    await store.forget(id);
    expect(await store.begin(id, hash('a'), inFiveMinutes())).toEqual({ seen: false });
  });
});

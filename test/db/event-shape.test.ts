// The job event has one definition: the wire schema (protocol/wire.ts JobEvent). The fetcher's
// outbox rows are written in SQL, by a trigger on attempts' rows (migrations 004/010) and by the
// statement that completes an attempt (migration 029): every kind of event, read back the way the
// dispatcher sends it, must pass that schema, or main would refuse it.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFetcherLedger, toWireEvent, type FetcherLedger, type StoredEvent } from '../../packages/jobgate/src/store/index.ts';
import { JobEvent } from '../../packages/jobgate/src/protocol/index.ts';
import { createTestDatabase, TEST_SCHEMA, type TestDatabase } from '../support/database.ts';

let db: TestDatabase;
let ledger: FetcherLedger;

beforeAll(async () => {
  db = await createTestDatabase();
  ledger = createFetcherLedger(db.pool, TEST_SCHEMA);
  await ledger.setEmitEvents(true);
});
afterAll(async () => {
  await db?.drop();
});

describe('the job events the fetcher stores', () => {
  it('are JobEvents on the wire, for every kind written: progress, completed, failed, lost, and a previous release\'s active', async () => {
    const [done, failed, lost, before, pairA, pairB] = [randomUUID(), randomUUID(), randomUUID(), randomUUID(), randomUUID(), randomUUID()];
    await ledger.insertBatchIfAbsent([done, failed, lost, before, pairA, pairB].map((id) => ({ id, name: 'shape.job', route: 'fetcher' as const, payload: {}, priority: 0, maxAttempts: 2, delaySeconds: 0, traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' })));
    for (const id of [done, failed, lost, pairA, pairB]) expect(await ledger.claimAttempt({ id, attempt: 1, ranOn: 'fetcher', concurrency: null, perSecond: null, claimSeconds: 30 })).toEqual({ outcome: 'claimed' });
    // the previous release's claim (six arguments) writes the attempt's running row, sent as 'active'
    await db.pool.query(`SELECT * FROM ${TEST_SCHEMA}.claim_attempt($1, 1, 'fetcher', NULL, NULL, 30)`, [before]);
    await ledger.setProgress(done, 1, 50, 'half way');
    await ledger.finishAttempt({ id: done, attempt: 1, outcome: 'completed', state: 'completed', error: null, peakRssMb: 42 });
    await ledger.finishAttempt({ id: failed, attempt: 1, outcome: 'failed', state: 'failed', error: { code: 'JG_JOB_FAILED', message: 'boom' }, peakRssMb: 10 });
    expect(await ledger.failUnsettled(lost, 'the queue gave up on it')).toBe(true);
    await ledger.finishAttempt({ id: before, attempt: 1, outcome: 'completed', state: 'completed', error: null, peakRssMb: 7 });
    // ends that come together are written by one statement (finishAttempts)
    await Promise.all([pairA, pairB].map((id) => ledger.finishAttempt({ id, attempt: 1, outcome: 'completed', state: 'completed', error: null, peakRssMb: 5 })));

    const sent: StoredEvent[] = [];
    await ledger.deliverEvents(100, async (events) => {
      sent.push(...events);
    });
    const types = new Set(sent.map((e) => e.type));
    expect(types).toEqual(new Set(['active', 'progress', 'completed', 'failed', 'lost']));
    // one event per step: an attempt this release claimed sends no 'active' (main granted it), and
    // its end once; one claimed by the previous release sends both, from its row, as it did
    const kinds = (id: string) => sent.filter((e) => e.jobId === id).map((e) => [e.jobSeq, e.type]);
    expect(kinds(done)).toEqual([[1, 'progress'], [2, 'completed']]);
    expect(kinds(failed)).toEqual([[1, 'failed']]);
    expect(kinds(lost)).toEqual([[1, 'lost']]);
    expect(kinds(before)).toEqual([[1, 'active'], [2, 'completed']]);
    for (const id of [pairA, pairB]) expect(kinds(id)).toEqual([[1, 'completed']]);
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM ${TEST_SCHEMA}.executions WHERE job_id = $1`, [done])).rows[0].n).toBe(0);
    for (const stored of sent) {
      const wire = toWireEvent(stored);
      const parsed = JobEvent.safeParse(wire);
      expect(parsed.success, `${stored.type}: ${JSON.stringify(wire)} ${parsed.error?.message ?? ''}`).toBe(true);
    }
    // the fields main needs are there, typed as the wire says
    const completed = sent.map(toWireEvent).find((e) => e.jobId === done && e.type === 'completed')!;
    expect(completed).toMatchObject({ state: 'completed', peakRssMb: 42, traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });
    expect(sent.map(toWireEvent).find((e) => e.type === 'progress')).toMatchObject({ progress: 50, message: 'half way' });
  });
});

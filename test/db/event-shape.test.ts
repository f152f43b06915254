// The job event has one definition: the wire schema (protocol/wire.ts JobEvent). The fetcher's
// outbox rows are written by a trigger in SQL (migrations 004/010): every kind of event it writes,
// read back the way the dispatcher sends it, must pass that schema, or main would refuse it.
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
  it('are JobEvents on the wire, for every kind the trigger writes: active, progress, completed, failed, lost', async () => {
    const [done, failed, lost] = [randomUUID(), randomUUID(), randomUUID()];
    await ledger.insertBatchIfAbsent([done, failed, lost].map((id) => ({ id, name: 'shape.job', route: 'fetcher' as const, payload: {}, priority: 0, maxAttempts: 2, delaySeconds: 0, traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' })));
    for (const id of [done, failed, lost]) expect(await ledger.claimAttempt({ id, attempt: 1, ranOn: 'fetcher', concurrency: null, perSecond: null, claimSeconds: 30 })).toEqual({ outcome: 'claimed' });
    await ledger.setProgress(done, 1, 50, 'half way');
    await ledger.finishAttempt({ id: done, attempt: 1, outcome: 'completed', state: 'completed', error: null, peakRssMb: 42 });
    await ledger.finishAttempt({ id: failed, attempt: 1, outcome: 'failed', state: 'failed', error: { code: 'JG_JOB_FAILED', message: 'boom' }, peakRssMb: 10 });
    expect(await ledger.failUnsettled(lost, 'the queue gave up on it')).toBe(true);

    const sent: StoredEvent[] = [];
    await ledger.deliverEvents(100, async (events) => {
      sent.push(...events);
    });
    const types = new Set(sent.map((e) => e.type));
    expect(types).toEqual(new Set(['active', 'progress', 'completed', 'failed', 'lost']));
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

// Jobs whose record is their pg-boss row (store/queue-records.ts) read like the ledger's jobs:
// listed in one newest-first order with the ledger's rows (paged by one cursor across both), every
// filter of the list applied to them, shown by getJob with their attempts, counted per name. A
// pg-boss row without the record mark (the queue entry of a job the ledger records) is not shown
// twice.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBoss, type JobRecord, type ListFilter, type PgBoss } from '../../packages/jobgate/src/store/index.ts';
import type { RecordData } from '../../packages/jobgate/src/store/queue-records.ts';
import { createLogger } from '../../packages/jobgate/src/support/index.ts';
import { mainLedgerPerFile, TEST_BOSS_SCHEMA } from '../support/database.ts';

const t = mainLedgerPerFile();
let boss: PgBoss;
const timings = { pollIntervalSeconds: 120, superviseIntervalSeconds: 300, cronIntervalSeconds: 30, heartbeatSeconds: 30 };
const TRACE = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

beforeAll(async () => {
  boss = createBoss({ connectionString: t.db.url, schema: TEST_BOSS_SCHEMA, poolSize: 2, timings, logger: createLogger({ level: 'warn', name: 'test' }) });
  await boss.start();
  for (const q of ['rec.a', 'rec.b']) await boss.createQueue(q, { retryLimit: 1, retryDelay: 0 });
});
afterAll(async () => {
  await boss?.stop({ graceful: false, close: true });
});

/** A record: a job of `queue` written as pg-boss's row alone. */
async function record(queue: string, payload: unknown, extra: Partial<RecordData> = {}, startAfter?: number): Promise<string> {
  const id = randomUUID();
  const data: RecordData = { payload, traceparent: TRACE, record: 1, ...extra };
  await boss.send(queue, data, { id, ...(startAfter ? { startAfter } : {}) });
  return id;
}
/** A job the ledger records (a routed one: its row is its outbox). */
async function ledgerJob(name: string, payload: unknown): Promise<string> {
  const id = randomUUID();
  await t.ledger.insertJob({ id, name, route: 'fetcher', payload, priority: 0, uniqueKey: null, maxAttempts: 1, delaySeconds: 0 });
  return id;
}
/** Every page of the list under `filter`, `limit` at a time. */
async function allPages(filter: Omit<ListFilter, 'limit' | 'cursor'>, limit: number): Promise<JobRecord[]> {
  const jobs: JobRecord[] = [];
  let cursor: ListFilter['cursor'];
  for (;;) {
    const page = await t.ledger.listJobs({ ...filter, limit, ...(cursor ? { cursor } : {}) });
    jobs.push(...page.jobs);
    if (!page.nextCursor) return jobs;
    const [createdAt, id] = Buffer.from(page.nextCursor, 'base64url').toString('utf8').split('|');
    cursor = { createdAt: createdAt!, id: id! };
  }
}
const ids = (jobs: JobRecord[]) => jobs.map((j) => j.id);

describe('jobs recorded by their pg-boss row', () => {
  const made: string[] = [];
  let completed: string;
  let failed: string;
  let active: string;

  beforeAll(async () => {
    // oldest first: records of two queues and ledger jobs, interleaved
    made.push(await record('rec.a', { n: 1, sku: 'x' }));
    made.push(await ledgerJob('rec.routed', { n: 2 }));
    made.push(await record('rec.b', { n: 3 }));
    made.push(await record('rec.a', { n: 4, sku: 'y' }, {}, 3_600)); // delayed: it stays queued
    made.push(await ledgerJob('rec.routed', { n: 5, sku: 'x' }));
    made.push(await record('rec.b', { n: 6 }, { parentId: made[0], batchId: randomUUID() }));
    made.push(await record('rec.a', { n: 7 }));
    // a queue entry without the mark (a job the ledger records) is never listed as a record
    await boss.send('rec.a', { payload: { n: 99 } });
    // a completes, b fails for good after its two attempts, one stays active
    [completed, , failed, , , , active] = made as [string, string, string, string, string, string, string];
    const [first] = await boss.fetch('rec.a', { batchSize: 1 });
    expect(first!.id).toBe(completed);
    await boss.complete('rec.a', completed);
    for (let attempt = 1; attempt <= 2; attempt++) {
      const [job] = await boss.fetch('rec.b', { batchSize: 1 });
      expect(job!.id).toBe(failed);
      await boss.fail('rec.b', failed, { error: { code: 'JG_HANDLER_ERROR', message: `boom ${attempt}` } });
    }
    const fetched = await boss.fetch('rec.a', { batchSize: 2 });
    expect(fetched.map((j) => j.id)).toContain(active);
    for (const j of fetched) if (j.id !== active) await boss.cancel('rec.a', j.id);
  });

  it('lists them with the ledger rows, newest first, paged by one cursor across both', async () => {
    const everything = await allPages({}, 50);
    expect(ids(everything)).toEqual([...made].reverse());
    for (const limit of [1, 2, 3]) expect(ids(await allPages({}, limit))).toEqual([...made].reverse());
  });

  it('shows a record as a job: its state, attempts, payload, times, trace, parent and batch', async () => {
    const done = (await t.ledger.getJob(completed, { executions: true }))!;
    expect(done).toMatchObject({ id: completed, name: 'rec.a', route: 'main', routeReason: 'definition', state: 'completed', payload: { n: 1, sku: 'x' }, progress: 100, attempts: 1, maxAttempts: 2, traceparent: TRACE });
    expect(Date.parse(done.finishedAt!)).toBeGreaterThanOrEqual(Date.parse(done.startedAt!));
    expect(done.executions).toEqual([expect.objectContaining({ attempt: 1, ranOn: 'main', outcome: 'completed' })]);

    const gaveUp = (await t.ledger.getJob(failed))!;
    expect(gaveUp).toMatchObject({ state: 'failed', attempts: 2, maxAttempts: 2, error: { code: 'JG_HANDLER_ERROR', message: 'boom 2' } });
    expect(gaveUp.finishedAt).toBeDefined();

    const running = (await t.ledger.getJob(active, { executions: true }))!;
    expect(running).toMatchObject({ state: 'active', attempts: 1 });
    expect(running.finishedAt).toBeUndefined();
    expect(running.executions).toEqual([expect.objectContaining({ attempt: 1, outcome: 'running' })]);

    const child = (await t.ledger.getJob(made[5]!))!;
    expect(child).toMatchObject({ state: 'queued', attempts: 0, parentId: made[0] });
    expect(child.memberOf).toMatch(/^[0-9a-f-]{36}$/);
    expect(await t.ledger.getJob(randomUUID())).toBeNull();
  });

  it('applies every filter of the list to them', async () => {
    const [r1, l2, r3, r4, l5, r6, r7] = made as [string, string, string, string, string, string, string];
    expect(ids(await allPages({ name: 'rec.a' }, 2))).toEqual([r7, r4, r1]);
    expect(ids(await allPages({ name: 'rec.routed' }, 2))).toEqual([l5, l2]);
    expect(ids(await allPages({ route: 'fetcher' }, 2))).toEqual([l5, l2]);
    expect(ids(await allPages({ route: 'main' }, 2))).toEqual([r7, r6, r4, r3, r1]);
    expect(ids(await allPages({ state: 'queued' }, 2))).toEqual([r6, l5, r4, l2]);
    expect(ids(await allPages({ state: 'active' }, 2))).toEqual([r7]);
    expect(ids(await allPages({ state: 'completed' }, 2))).toEqual([r1]);
    expect(ids(await allPages({ state: 'failed' }, 2))).toEqual([r3]);
    expect(ids(await allPages({ state: 'forwarding' }, 2))).toEqual([]);
    expect(ids(await allPages({ states: ['completed', 'failed'] }, 2))).toEqual([r3, r1]);
    expect(ids(await allPages({ payload: [{ sku: 'x' }] }, 2))).toEqual([l5, r1]);
    expect(ids(await allPages({ name: 'rec.a', payload: [{ sku: 'y' }, { n: 7 }] }, 1))).toEqual([r7, r4]);
    const before = (await t.ledger.getJob(r4))!.createdAt;
    expect(ids(await allPages({ createdBefore: before }, 2))).toEqual([r3, l2, r1]);
  });

  it('counts them per job name with the ledger rows', async () => {
    const counts = await t.ledger.countsByName();
    expect(counts['rec.a']).toEqual({ queued: 1, active: 1, failed: 0 });
    expect(counts['rec.b']).toEqual({ queued: 1, active: 0, failed: 1 });
    expect(counts['rec.routed']).toEqual({ queued: 2, active: 0, failed: 0 });
    expect((await t.ledger.countsByName('fetcher'))['rec.a']).toBeUndefined();
  });
});

// A worker that finds jobs keeps fetching without waiting for its poll interval: pg-boss bursts at
// batchSize 1 only on its cached ready count, which lags (queue cache + monitor interval), so a
// backlog would otherwise go one job per poll interval per worker.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createLogger } from '../../packages/jobgate/src/support/index.ts';
import { createBoss, createMainLedger, ensureQueue, workWhileFull, type PgBoss } from '../../packages/jobgate/src/store/index.ts';
import { createCatalogue, createMainRuntime, defineJob, type MainRuntime } from '../../packages/jobgate/src/internal.ts';
import { createTestDatabase, TEST_BOSS_SCHEMA, TEST_SCHEMA, type TestDatabase } from '../support/database.ts';
import { waitFor } from '../support/wait.ts';

let ran = 0;
const tick = defineJob({ name: 'test.tick', payload: z.strictObject({ n: z.number() }), run: async () => void ran++ });

let db: TestDatabase;
let boss: PgBoss;
let jobs: MainRuntime;
// a poll far longer than the test may take, and stale queue stats for the whole run
const timings = { pollIntervalSeconds: 120, superviseIntervalSeconds: 300, cronIntervalSeconds: 30, heartbeatSeconds: 30 };

beforeAll(async () => {
  db = await createTestDatabase();
  const logger = createLogger({ level: 'warn', name: 'test' });
  boss = createBoss({ connectionString: db.url, schema: TEST_BOSS_SCHEMA, poolSize: 3, timings, logger });
  await boss.start();
  jobs = createMainRuntime({ pool: db.pool, boss, ledger: createMainLedger(db.pool, TEST_SCHEMA), catalogue: createCatalogue([tick]), logger, timings, workerConcurrency: 2 });
  await jobs.start();
});
afterAll(async () => {
  await jobs?.stop(1_000);
  await db?.drop();
});

describe('workers with a backlog', () => {
  it('drain it back to back, not one job per poll interval', async () => {
    await jobs.pause();
    for (let n = 0; n < 40; n++) await jobs.performLater(tick, { n });
    const started = Date.now();
    await jobs.resume(); // each worker's first fetch finds one job; the rest must follow at once
    await waitFor('40 jobs ran', async () => ran === 40, { timeoutMs: 30_000 });
    console.log(`40 queued jobs, 2 workers, 120 s poll: all ran ${Date.now() - started} ms after resume`);
    expect(ran).toBe(40);
  });
});

// Jobs that become due by time come with no NOTIFY: one worker of the queue polls, and each full
// fetch wakes one idle worker of the queue, which wakes the next: every worker gets one.
const WIDE = 4;
let running = 0;
let widest = 0;
const wide = defineJob({
  name: 'test.wide',
  payload: z.strictObject({ n: z.number() }),
  run: async () => {
    widest = Math.max(widest, ++running);
    // held until every worker runs one (or long enough for the backstop poll to be the only way there)
    const until = Date.now() + 20_000;
    while (running < WIDE && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 50));
    running--;
  },
});

describe('workers of a queue with due jobs and no NOTIFY', () => {
  it('each full fetch wakes an idle worker, until every worker runs a job', async () => {
    const wideDb = await createTestDatabase();
    const logger = createLogger({ level: 'warn', name: 'test' });
    // the first worker polls every second; its siblings' backstop (30 s) is longer than the jobs are held
    const wideTimings = { ...timings, pollIntervalSeconds: 1 };
    const wideBoss = createBoss({ connectionString: wideDb.url, schema: TEST_BOSS_SCHEMA, poolSize: 4, timings: wideTimings, logger });
    await wideBoss.start();
    const runtime = createMainRuntime({ pool: wideDb.pool, boss: wideBoss, ledger: createMainLedger(wideDb.pool, TEST_SCHEMA), catalogue: createCatalogue([wide]), logger, timings: wideTimings, workerConcurrency: WIDE });
    try {
      await runtime.start();
      // delayed: due in a second, announced by no NOTIFY
      for (let n = 0; n < WIDE * 2; n++) await runtime.performLater(wide, { n }, { delaySeconds: 1 });
      await waitFor(`${WIDE} jobs of the queue ran at once`, async () => widest === WIDE, { timeoutMs: 25_000 });
      expect(widest).toBe(WIDE);
    } finally {
      await runtime.stop(1_000);
      await wideDb.drop();
    }
  });
});

// A fetch whose connection was killed (pg_terminate_backend, a reset) fails in pg-boss's worker,
// which then waits its poll interval. pg-boss reports it as an 'error' event naming the worker: a
// copy of the error's own fields (its code among them) with `queue` and `worker` added
// (node_modules/pg-boss/dist/manager.js, the worker's onError). The kill cannot be timed to land
// inside a fetch of a millisecond, so this test reports one as pg-boss would.
describe('a worker whose fetch lost its connection', () => {
  it('fetches again at once (on a new connection), not at its next poll; a fetch that failed otherwise waits for the poll', async () => {
    const picked: string[] = [];
    // no NOTIFY on this queue: only the poll (120 s) or a wake-up reaches its idle worker
    await ensureQueue(boss, 'test.lost', { notify: false });
    await workWhileFull(boss, 'test.lost', { batchSize: 1, pollingIntervalSeconds: 120, localConcurrency: 1 }, async (fetched) => {
      for (const job of fetched) picked.push(job.id as string);
      return fetched.map((job) => ({ id: job.id, status: 'completed' }));
    });
    const worker = boss.getWipData().find((w) => w.name === 'test.lost')!.id;
    // its first fetch (empty) is done: it waits its poll now
    // (pg-boss starts lastFetchedOn at null and sets it once a fetch has answered)
    await waitFor('the worker idle', async () => (boss.getWipData().find((w) => w.id === worker)?.lastFetchedOn ?? null) !== null || null, { timeoutMs: 10_000 });
    const report = (err: Record<string, unknown>) => boss.emit('error', { ...err, queue: 'test.lost', worker } as unknown as Error);

    const first = (await boss.send('test.lost', {}))!;
    // a failure that is not a lost connection: the worker keeps to its poll
    report({ code: '42P01', message: 'relation does not exist (Queue: test.lost)' });
    await new Promise((r) => setTimeout(r, 3_000));
    expect(picked).toEqual([]);

    report({ code: '57P01', message: 'terminating connection due to administrator command (Queue: test.lost)' });
    await waitFor('the job fetched after the lost connection', async () => picked.includes(first) || null, { timeoutMs: 30_000 });
    await boss.offWork('test.lost');
  });
});

describe('idle queues', () => {
  it('are polled together, one statement an interval: no worker of an idle queue fetches on its own, and a job due by time is fetched at the next poll', async () => {
    const logger = createLogger({ level: 'warn', name: 'test' });
    const quick = createBoss({ connectionString: db.url, schema: TEST_BOSS_SCHEMA, poolSize: 3, timings: { ...timings, pollIntervalSeconds: 0.5 }, logger });
    await quick.start();
    try {
      const names = ['test.idle.a', 'test.idle.b', 'test.idle.c'];
      const picked: string[] = [];
      for (const name of names) {
        await ensureQueue(quick, name);
        await workWhileFull(quick, name, { batchSize: 1, pollingIntervalSeconds: 0.5, notifyPollingIntervalSeconds: 0.5, localConcurrency: 2 }, async (fetched) => {
          for (const job of fetched) picked.push(job.id as string);
          return fetched.map((job) => ({ id: job.id, status: 'completed' }));
        });
      }
      const ours = () => quick.getWipData().filter((w) => names.includes(w.name));
      await waitFor('every worker idle after its first fetch', async () => (ours().length === 6 && ours().every((w) => w.lastFetchedOn)) || null, { timeoutMs: 10_000 });
      // six poll intervals: a worker polling on its own would have fetched six times (pg-boss polls
      // every worker until its LISTEN is up: a window in which some worker fetched is looked at again)
      const quiet = async () => {
        const before = ours().map((w) => [w.id, w.lastFetchedOn]);
        await new Promise((r) => setTimeout(r, 3_000));
        return JSON.stringify(ours().map((w) => [w.id, w.lastFetchedOn])) === JSON.stringify(before);
      };
      let windows = 0;
      while (!(await quiet()) && ++windows < 3);
      expect(windows).toBeLessThan(3);
      // due in a second, so no NOTIFY: only the shared poll wakes a worker for it before each worker's own 30 s backstop
      const id = (await quick.send('test.idle.b', {}, { startAfter: 1 }))!;
      await waitFor('the delayed job fetched at a poll', async () => picked.includes(id) || null, { timeoutMs: 15_000 });
    } finally {
      await quick.stop({ graceful: false, close: true });
    }
  });
});

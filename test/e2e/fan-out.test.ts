// Fan-out and batches across real processes (issue 18): a handler's children commit with its
// success and are never doubled by its retry; a batch's callbacks run once, whatever crashed.
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { call, databasePerTest, enqueue, handlerStarts, startPair, states } from '../support/gateway.ts';
import { startMain } from '../support/apps.ts';
import { waitFor } from '../support/wait.ts';
import { FETCHER_JOBS } from '../support/fetcher-jobs.ts';

const t = databasePerTest();

/** The parent's children in main's ledger. */
async function childrenOf(parentId: string): Promise<string[]> {
  const { rows } = await t.db.pool.query('SELECT id FROM public.main_jobs WHERE parent_id = $1', [parentId]);
  return rows.map((r) => r.id as string);
}

/** test.batch-done's runs for this batch, by event (`batch-finish`, `batch-success`, `batch-failure`). */
async function callbackRuns(batchId: string): Promise<Array<{ event: string; detail: any }>> {
  const { rows } = await t.db.pool.query(`SELECT event, detail FROM public.test_events WHERE job_name = 'test.batch-done' AND detail->>'id' = $1 AND event LIKE 'batch-%' ORDER BY seq`, [batchId]);
  return rows;
}

async function batchOf(parentId: string): Promise<string> {
  const { rows } = await t.db.pool.query(`SELECT detail->>'batchId' AS batch FROM public.test_events WHERE job_id = $1 AND event = 'end'`, [parentId]);
  return rows[0].batch as string;
}

describe('fan-out from a handler', () => {
  it('a parent that enqueues 500 children and then throws leaves none behind; its retry enqueues them once', async () => {
    t.pair = await startPair(t.db);
    const parent = await enqueue(t.pair.main, 'test.fanout', { children: 500, firstAttempt: 'throw' });
    // attempt 1 threw after enqueueing: nothing of its children (nor its batch) was written
    await waitFor('attempt 1 failed', async () => (await t.db.pool.query(`SELECT 1 FROM public.main_attempts WHERE job_id = $1 AND attempt = 1 AND outcome = 'failed'`, [parent])).rowCount === 1, { timeoutMs: 30_000 });
    expect(await childrenOf(parent)).toEqual([]);
    expect((await t.db.pool.query('SELECT count(*)::int AS n FROM jobgate.batches WHERE parent_id = $1', [parent])).rows[0].n).toBe(0);
    // attempt 2 (2 s later) succeeds: its 500 children, once each, and its batch finishes with them
    await t.allCompleted([parent]);
    const children = await childrenOf(parent);
    expect(children).toHaveLength(500);
    await t.allCompleted(children, 90_000);
    expect(await handlerStarts(t.db, children)).toBe(500);
    const batchId = await batchOf(parent);
    await waitFor('the batch callbacks', async () => (await callbackRuns(batchId)).length === 2, { timeoutMs: 30_000 });
    expect((await callbackRuns(batchId)).map((r) => r.event).sort()).toEqual(['batch-finish', 'batch-success']);
    const parentJson = await call(t.pair.main.url, 'GET', `/api/jobs/${parent}`);
    expect(parentJson.json.batchId).toBe(batchId);
  });

  it('children written by an attempt that then failed are not written again by its retry (keyed by parent and place)', async () => {
    t.pair = await startPair(t.db);
    const parent = await enqueue(t.pair.main, 'test.fanout', { children: 50, firstAttempt: 'commit-then-throw' });
    await waitFor('attempt 1 failed', async () => (await t.db.pool.query(`SELECT 1 FROM public.main_attempts WHERE job_id = $1 AND attempt = 1 AND outcome = 'failed'`, [parent])).rowCount === 1, { timeoutMs: 30_000 });
    // ctx.transaction committed them before the throw
    expect(await childrenOf(parent)).toHaveLength(50);
    await t.allCompleted([parent]);
    const children = await childrenOf(parent);
    expect(children).toHaveLength(50);
    await t.allCompleted(children);
    expect(await handlerStarts(t.db, children)).toBe(50);
    const batchId = await batchOf(parent);
    // the batch was sealed only by the attempt that succeeded: it finished then, once
    await waitFor('the batch callbacks', async () => (await callbackRuns(batchId)).length === 2, { timeoutMs: 30_000 });
    await sleep(1_500);
    expect((await callbackRuns(batchId)).map((r) => r.event).sort()).toEqual(['batch-finish', 'batch-success']);
  });

  it('a fetcher job enqueues its children at main over the signed API; its retry does not double them', async () => {
    t.pair = await startPair(t.db);
    const parent = await enqueue(t.pair.main, 'test.fanout-remote', { children: 300, firstAttempt: 'commit-then-throw', batch: false });
    await t.allCompleted([parent], 60_000);
    const children = await childrenOf(parent);
    expect(children).toHaveLength(300);
    await t.allCompleted(children, 90_000);
    expect(await handlerStarts(t.db, children)).toBe(300);
    // main's children of a fetcher parent run on main
    const { rows } = await t.db.pool.query(`SELECT DISTINCT route FROM public.main_jobs WHERE parent_id = $1`, [parent]);
    expect(rows).toEqual([{ route: 'main' }]);
  });
});

describe('batches', () => {
  it('a batch of 200 routed children with 3 failures runs onFinish once with 197/3, onFailure, and not onSuccess', async () => {
    t.pair = await startPair(t.db);
    const parent = await enqueue(t.pair.main, 'test.fanout', { children: 200, child: 'test.remote-once', failEvery: 60 });
    await t.allCompleted([parent]);
    const children = await childrenOf(parent);
    expect(children).toHaveLength(200);
    const batchId = await batchOf(parent);
    await waitFor('the batch callbacks', async () => (await callbackRuns(batchId)).length >= 2, { timeoutMs: 90_000 });
    await sleep(1_500); // a callback run twice would show by now
    const runs = await callbackRuns(batchId);
    expect(runs.map((r) => r.event).sort()).toEqual(['batch-failure', 'batch-finish']);
    const finish = runs.find((r) => r.event === 'batch-finish')!.detail;
    expect(finish.counts).toEqual({ queued: 0, active: 0, completed: 197, failed: 3, cancelled: 0 });
    expect(finish.properties).toEqual({ parent });
    expect(await states(t.db, children)).toEqual({ completed: 197, failed: 3 });
    const api = await call(t.pair.main.url, 'GET', `/api/batches/${batchId}`);
    expect(api.status).toBe(200);
    expect(api.json).toMatchObject({ id: batchId, state: 'finished', counts: { queued: 0, active: 0, completed: 197, failed: 3, cancelled: 0 }, properties: { parent } });
    expect(api.json.callbacks.map((c: { on: string }) => c.on).sort()).toEqual(['failure', 'finish']);
    expect(api.json.callbacks.every((c: { state: string }) => c.state === 'completed')).toBe(true);
    expect((await call(t.pair.main.url, 'GET', '/api/batches/not-a-uuid')).status).toBe(422);
    expect((await call(t.pair.main.url, 'GET', `/api/batches/${parent}`)).status).toBe(404);
  });

  it('main killed (-9) after the last child ended and before the callback was enqueued: it runs once after the restart', async () => {
    // main's loops look every 30 s here, so the batch waits finished and due, and main dies in between
    t.pair = await startPair(t.db, { startFetcher: false, mainEnv: { JOBGATE_POLL_INTERVAL_SECONDS: '30' } });
    const parent = await enqueue(t.pair.main, 'test.fanout', { children: 20 });
    const due = await waitFor('the batch finished, its callbacks due', async () => {
      const { rows } = await t.db.pool.query(`SELECT id FROM jobgate.batches WHERE parent_id = $1 AND state = 'finished' AND dispatch_due`, [parent]);
      return rows[0]?.id as string | undefined;
    }, { timeoutMs: 30_000, intervalMs: 20 });
    t.pair.main.kill('SIGKILL');
    await t.pair.main.exited;
    // the window was hit: nothing was enqueued for it before the kill
    expect((await t.db.pool.query(`SELECT count(*)::int AS n FROM public.main_jobs WHERE name = 'test.batch-done'`)).rows[0].n).toBe(0);
    await t.pair.startMain({ JOBGATE_POLL_INTERVAL_SECONDS: '0.5' });
    await waitFor('the batch callbacks', async () => (await callbackRuns(due)).length >= 2, { timeoutMs: 30_000 });
    await sleep(1_500);
    expect((await callbackRuns(due)).map((r) => r.event).sort()).toEqual(['batch-finish', 'batch-success']);
    expect((await t.db.pool.query(`SELECT count(*)::int AS n FROM public.main_jobs WHERE name = 'test.batch-done'`)).rows[0].n).toBe(2);
    expect((await call(t.pair.main.url, 'GET', `/api/batches/${due}`)).json).toMatchObject({ state: 'finished', counts: { completed: 20 } });
  });

  it('main killed (-9) while the last children end on the fetcher: the callback runs once, with two mains racing for it', async () => {
    t.pair = await startPair(t.db);
    // as many as the fetcher runs at once (JOBGATE_WORKER_CONCURRENCY, 4): a child starts only once main granted its claim
    const parent = await enqueue(t.pair.main, 'test.fanout', { children: 4, child: 'test.record-remote', sleepMs: 4_000 });
    await t.allCompleted([parent]);
    const batchId = await batchOf(parent);
    const children = await childrenOf(parent);
    await waitFor('every child running on the fetcher', async () => (await handlerStarts(t.db, children)) === 4, { timeoutMs: 30_000 });
    t.pair.main.kill('SIGKILL');
    await t.pair.main.exited;
    // they end while main is away: their events wait on the fetcher
    await waitFor('every child ended on the fetcher', async () => (await t.db.pool.query(`SELECT count(*)::int AS n FROM ${FETCHER_JOBS} WHERE id = ANY($1::uuid[]) AND state = 'completed'`, [children])).rows[0].n === 4, { timeoutMs: 60_000 });
    expect(await callbackRuns(batchId)).toEqual([]);
    // main again, and a second main on the same database: both run the batch dispatcher
    await t.pair.startMain();
    const second = await startMain({ DATABASE_URL: t.db.url, JOBGATE_DEMO_JOBS: 'true', FETCHER_SHARED_SECRET: 'whsec_' + Buffer.alloc(32, 7).toString('base64'), FETCHER_SERVICE_URL: 'http://127.0.0.1:9' });
    try {
      await waitFor('the batch callbacks', async () => (await callbackRuns(batchId)).length >= 2, { timeoutMs: 60_000 });
      await sleep(2_000);
      expect((await callbackRuns(batchId)).map((r) => r.event).sort()).toEqual(['batch-finish', 'batch-success']);
      const { rows } = await t.db.pool.query(`SELECT count(*)::int AS n FROM public.main_jobs WHERE name = 'test.batch-done'`);
      expect(rows[0].n).toBe(2);
    } finally {
      await second.stop();
    }
  });
});

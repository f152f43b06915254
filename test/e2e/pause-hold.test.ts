// A pause is in force when its call returns: a job of a paused name enqueued after it never starts an
// attempt on either side until the resume (no execution row, no retry spent, however long the pause
// lasts), and GET /api/jobs/:id, the admin pages and the CLI show it waiting with the pause named.
// Main's forwarder holds routed jobs in the outbox, workers stop fetching, and a job fetched in the
// moment before a process heard of the pause is handed back to its queue unstarted.
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { admin, adminHeaders, call, databasePerTest, enqueue, handlerStarts, startPair, type Pair } from '../support/gateway.ts';
import { randomUUID } from 'node:crypto';
import { runCli } from '../support/cli.ts';
import { waitFor } from '../support/wait.ts';
import { TEST_SCHEMA } from '../support/database.ts';
import { createMainLedger, createPauseStore } from '../../packages/jobgate/src/store/index.ts';

const t = databasePerTest();
const WAITING = ['queued', 'forwarding', 'forwarded'];

const getJob = async (pair: Pair, id: string) => (await call(pair.main.url, 'GET', `/api/jobs/${id}`)).json;

/** Asks the API every half second for `ms`: each time every job of `ids` waits, named by `pause`, with no attempt. */
async function heldFor(pair: Pair, ids: string[], pause: string, ms: number): Promise<void> {
  const until = Date.now() + ms;
  do {
    for (const id of ids) {
      const job = await getJob(pair, id);
      expect(WAITING, `${job.name} ${id}: ${JSON.stringify(job)}`).toContain(job.state);
      expect(job.executions, `${job.name} ${id}`).toEqual([]);
      expect(job.attempts).toBe(0);
      expect(job.pausedBy, `${job.name} ${id}`).toMatchObject({ name: pause });
    }
    await sleep(500);
  } while (Date.now() < until);
  expect(await handlerStarts(t.db, ids)).toBe(0);
}

/** Each job of `ids` completed with exactly one execution, attempt 1, where it should run. */
async function ranOnce(pair: Pair, ids: string[], ranOn: Record<string, string>): Promise<void> {
  await t.allCompleted(ids, 60_000);
  for (const id of ids) {
    const job = await getJob(pair, id);
    expect(job.executions.map((e: { attempt: number; outcome: string; ranOn: string }) => [e.attempt, e.outcome, e.ranOn])).toEqual([[1, 'completed', ranOn[job.name]]]);
    expect(job.attempts).toBe(1);
    expect(job.pausedBy).toBeUndefined();
  }
}

describe('a pause holds the jobs enqueued after it', () => {
  it('a routed job enqueued right after its pause answered waits 10 s, named, with no execution; a running one finishes; it runs once after resume', async () => {
    // the fetcher hears of pauses late (it asks main every 10 s): the pause must hold without it
    const pair = (t.pair = await startPair(t.db, { fetcherEnv: { JOBGATE_POLL_INTERVAL_SECONDS: '10' } }));
    const running = await enqueue(pair.main, 'demo.heavy', { sleepMs: 3_000 });
    await waitFor('the first job runs on the fetcher', async () => (await getJob(pair, running)).state === 'active', { timeoutMs: 30_000 });

    const paused = await admin(pair.main, 'POST', '/jobs/demo.heavy/pause', { reason: 'provider down' });
    expect(paused.status).toBe(200);
    const held = await enqueue(pair.main, 'demo.heavy', { sleepMs: 10 });
    await heldFor(pair, [held], 'demo.heavy', 10_000);
    // the job running when the pause came finished meanwhile
    expect((await getJob(pair, running)).state).toBe('completed');
    expect((await getJob(pair, held)).pausedBy).toMatchObject({ name: 'demo.heavy', reason: 'provider down', by: expect.stringMatching(/^admin/), expiresAt: null });
    // the outbox holds it: the fetcher never had it
    expect((await admin(pair.main, 'GET', '/fetcher_service')).json.outbox.pending).toBe(1);
    // the admin pages say so too
    const page = await fetch(`${pair.main.url}/admin/jobs/${held}`, { headers: adminHeaders });
    expect(await page.text()).toMatch(/paused[^<]*demo\.heavy/);

    expect((await admin(pair.main, 'POST', '/jobs/demo.heavy/resume', {})).status).toBe(200);
    await ranOnce(pair, [held], { 'demo.heavy': 'fetcher' });
  });

  it('a main job (demo.light) enqueued right after its pause answered waits the same, and runs once after resume', async () => {
    const pair = (t.pair = await startPair(t.db));
    expect((await admin(pair.main, 'POST', '/jobs/demo.light/pause', { reason: 'db migration' })).status).toBe(200);
    const held = await enqueue(pair.main, 'demo.light', { sleepMs: 10 });
    await heldFor(pair, [held], 'demo.light', 5_000);
    expect((await admin(pair.main, 'POST', '/jobs/demo.light/resume', {})).status).toBe(200);
    await ranOnce(pair, [held], { 'demo.light': 'main' });
  });

  it('pausing every job (*) holds main and routed jobs alike, named by *; the CLI shows it', async () => {
    const pair = (t.pair = await startPair(t.db));
    expect((await admin(pair.main, 'POST', '/jobs/*/pause', { reason: 'maintenance window' })).status).toBe(200);
    const held = [await enqueue(pair.main, 'demo.heavy', { sleepMs: 10 }), await enqueue(pair.main, 'demo.light', { sleepMs: 10 })];
    await heldFor(pair, held, '*', 5_000);
    const shown = await runCli(t.db.url, ['jobs', 'show', held[0]!, '--json']);
    expect(shown.code).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({ state: 'queued', pausedBy: { name: '*', reason: 'maintenance window' }, executions: [] });
    expect((await admin(pair.main, 'POST', '/jobs/*/resume', {})).status).toBe(200);
    await ranOnce(pair, held, { 'demo.heavy': 'fetcher', 'demo.light': 'main' });
  });

  it('a fetcher that has not heard of the pause yet hands the job it fetched back unstarted: it shows waiting, no retry is spent', async () => {
    // the fetcher asks main for its pauses every 15 s: it fetches the held job before it hears
    const pair = (t.pair = await startPair(t.db, { fetcherEnv: { JOBGATE_POLL_INTERVAL_SECONDS: '15', JOBGATE_WORKER_CONCURRENCY: '1' } }));
    // one handler at a time on the fetcher: `held` is delivered while `blocker` runs, and fetched after it
    // (enqueued together, the fetcher would take them in either order: the blocker must run first)
    const blocker = await enqueue(pair.main, 'test.remote', { sleepMs: 6_000, label: 'blocker' });
    await waitFor('the blocker runs', async () => (await getJob(pair, blocker)).state === 'active', { timeoutMs: 30_000, intervalMs: 50 });
    const held = await enqueue(pair.main, 'test.remote', { sleepMs: 10, label: 'held' });
    await waitFor('the held job is delivered while the blocker runs', async () => (await getJob(pair, held)).state === 'forwarded', { timeoutMs: 30_000, intervalMs: 50 });
    expect((await getJob(pair, blocker)).state).toBe('active');
    expect((await admin(pair.main, 'POST', '/jobs/test.remote/pause', { reason: 'quota' })).status).toBe(200);

    await pair.fetcher!.waitForLog('the held job handed back', (l) => l.msg === 'job paused: handed back to its queue unstarted' && l.jobId === held, 30_000);
    // main's answer made it ask for the pauses at once (its own poll is 15 s away)
    await pair.fetcher!.waitForLog('the fetcher knows', (l) => l.msg === 'paused jobs changed' && l.paused?.includes('test.remote'), 5_000);
    await heldFor(pair, [held], 'test.remote', 5_000);
    expect((await getJob(pair, blocker)).state).toBe('completed');

    expect((await admin(pair.main, 'POST', '/jobs/test.remote/resume', {})).status).toBe(200);
    await ranOnce(pair, [held], { 'test.remote': 'fetcher' });
    expect(await handlerStarts(t.db, [held])).toBe(1);
  });

  it('a pause longer than the job expiry spends no retry, even while a main worker has not heard of the pause', async () => {
    // main reads the pauses every 20 s; the CLI (another process) pauses: main's worker fetches before it hears
    const pair = (t.pair = await startPair(t.db, { mainEnv: { JOBGATE_POLL_INTERVAL_SECONDS: '20' } }));
    expect((await runCli(t.db.url, ['pause', 'test.timeout', '--reason', 'long pause'])).code).toBe(0);
    // test.timeout: timeoutSeconds 1, so pg-boss expires an attempt 31 s after it started
    const held = await enqueue(pair.main, 'test.timeout', { sleepMs: 10 });
    // held where pg-boss looks (a job recorded by its pg-boss row is written blocked while its name
    // is paused), or, fetched anyway, handed back unstarted: either way it never starts and spends no retry
    await heldFor(pair, [held], 'test.timeout', 40_000);
    const { rows } = await t.db.pool.query(`SELECT state, retry_count FROM pgboss_main.job WHERE id = $1`, [held]);
    expect(rows).toEqual([{ state: 'created', retry_count: 0 }]);
    expect((await runCli(t.db.url, ['resume', 'test.timeout'])).code).toBe(0);
    await ranOnce(pair, [held], { 'test.timeout': 'main' });
  }, 180_000);
});

describe('a pause in the ledger', () => {
  it('holds from its commit: claims answer paused and write nothing, the outbox keeps the jobs, and an unclaimed fetcher attempt never shows', async () => {
    const ledger = createMainLedger(t.db.pool, TEST_SCHEMA);
    const pauses = createPauseStore(t.db.pool, TEST_SCHEMA);
    const insert = async (name: string, route: 'main' | 'fetcher') => {
      const id = randomUUID();
      await ledger.insertJob({ id, name, route, payload: {}, priority: 0, uniqueKey: null, maxAttempts: 3, delaySeconds: 0 });
      return id;
    };
    const [local, routed, other] = [await insert('p.local', 'main'), await insert('p.routed', 'fetcher'), await insert('p.other', 'fetcher')];
    await pauses.pause({ name: 'p.local', reason: 'r1', actor: 'test' });
    await pauses.pause({ name: 'p.routed', reason: 'r2', actor: 'test' });
    const claim = (id: string, ranOn: 'main' | 'fetcher') => ledger.claimAttempt({ id, attempt: 1, ranOn, concurrency: null, perSecond: null, claimSeconds: 30 });
    expect(await claim(local, 'main')).toEqual({ outcome: 'paused' });
    expect(await claim(routed, 'fetcher')).toEqual({ outcome: 'paused' });
    // the forwarder takes only what is not paused
    const first = await ledger.holdToForward(10);
    expect(first.jobs.map((j) => j.id)).toEqual([other]);
    await first.lease(30);
    // the fetcher's 'active' event for an attempt main did not grant: counted, not shown
    expect(await ledger.applyEvents([{ jobId: routed, seq: 1, type: 'active', attempt: 1, at: new Date().toISOString(), state: 'active' }])).toEqual({ applied: 1, ignored: 0 });
    const held = await ledger.getJob(routed, { executions: true });
    expect(held).toMatchObject({ state: 'queued', attempts: 0, executions: [], pausedBy: { name: 'p.routed', reason: 'r2', by: 'test', expiresAt: null } });
    expect((await ledger.listJobs({ limit: 10 })).jobs.map((j) => [j.id, j.pausedBy?.name ?? null])).toEqual(expect.arrayContaining([[local, 'p.local'], [routed, 'p.routed'], [other, null]]));

    // every job (*): the job's own pause is named first, * for the rest
    await pauses.pause({ name: '*', reason: 'all', actor: 'test' });
    expect((await ledger.getJob(local))!.pausedBy!.name).toBe('p.local');
    await pauses.resume({ name: 'p.local', actor: 'test' });
    expect((await ledger.getJob(local))!.pausedBy!.name).toBe('*');
    expect(await claim(local, 'main')).toEqual({ outcome: 'paused' });
    await pauses.resume({ name: '*', actor: 'test' });

    // resumed: claimed as usual, and the view no longer names a pause
    expect(await claim(local, 'main')).toEqual({ outcome: 'claimed' });
    expect((await ledger.getJob(local))!.pausedBy).toBeUndefined();
    await pauses.resume({ name: 'p.routed', actor: 'test' });
    const second = await ledger.holdToForward(10);
    expect(second.jobs.map((j) => j.id)).toEqual([routed]);
    await second.delivered();
    // granted now: its 'active' event shows the attempt running
    expect(await claim(routed, 'fetcher')).toEqual({ outcome: 'claimed' });
    await ledger.applyEvents([{ jobId: routed, seq: 2, type: 'active', attempt: 1, at: new Date().toISOString(), state: 'active' }]);
    expect(await ledger.getJob(routed, { executions: true })).toMatchObject({ state: 'active', attempts: 1, executions: [{ attempt: 1, ranOn: 'fetcher', outcome: 'running' }] });
  });
});

// Routed jobs end to end with both apps as real processes (issue 5 "done when"; FAULTS.md rows 3,
// 4, 21 and 40 at npm-test size): load, progress seen on main, a main killed mid-forward, answers
// lost on the hop, and main down while the fetcher's callbacks are due.
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { parseSecrets } from '../../packages/jobgate/src/protocol/index.ts';
import { createFetcherClient } from '../../packages/jobgate/src/client/index.ts';
import { TEST_SHARED_SECRET } from '../support/apps.ts';
import { call, completedRuns, databasePerTest, effects, enqueue, handlerStarts, percentile, startPair, states } from '../support/gateway.ts';
import { startFaultProxy } from '../support/fault-proxy.ts';
import { waitFor } from '../support/wait.ts';
import { FETCHER_JOBS } from '../support/fetcher-jobs.ts';

// A database of its own for each test, and the apps the test starts on it.
const t = databasePerTest();


async function executionsPerJob(ids: string[]): Promise<number[]> {
  const { rows } = await t.db.pool.query('SELECT count(*)::int AS n FROM public.main_attempts WHERE job_id = ANY($1::uuid[]) GROUP BY job_id', [ids]);
  return rows.map((r) => r.n);
}

/** `count` enqueues over `connections` concurrent clients; the latency of each 202, in ms. */
async function enqueueUnderLoad(url: string, name: string, payload: unknown, count: number, connections: number) {
  const ids: string[] = [];
  const latencies: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (next < count) {
        next++;
        const started = performance.now();
        const r = await call(url, 'POST', `/api/jobs/${name}`, { payload });
        latencies.push(performance.now() - started);
        expect(r.status).toBe(202);
        ids.push(r.json.id);
      }
    }),
  );
  return { ids, latencies };
}

/** Jobs per second from the first enqueue to the last finish, and the p95 of enqueue → finish. */
async function throughput(ids: string[]) {
  const { rows } = await t.db.pool.query(
    `SELECT extract(epoch FROM max(finished_at) - min(created_at))::float8 AS span,
            percentile_disc(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at))::float8 AS p95
       FROM public.main_jobs WHERE id = ANY($1::uuid[])`,
    [ids],
  );
  return { perSecond: ids.length / rows[0].span, endToEndP95Ms: rows[0].p95 * 1000 };
}

describe('load (FAULTS.md row 40 at npm-test size)', () => {
  it('1,000 demo.heavy jobs from 50 connections all complete once on the fetcher; local jobs for comparison', async () => {
    t.pair = await startPair(t.db);
    const routed = await enqueueUnderLoad(t.pair.main.url, 'demo.heavy', { sleepMs: 50 }, 1_000, 50);
    await t.allCompleted(routed.ids, 120_000);
    const runs = await completedRuns(t.db, routed.ids);
    for (const id of routed.ids) expect(runs.get(id)).toEqual([{ ranOn: 'fetcher' }]);
    expect(new Set(await executionsPerJob(routed.ids))).toEqual(new Set([1]));
    const routedRate = await throughput(routed.ids);

    const local = await enqueueUnderLoad(t.pair.main.url, 'demo.light', { sleepMs: 50 }, 1_000, 50);
    await t.allCompleted(local.ids, 120_000);
    const localRate = await throughput(local.ids);
    const client = createFetcherClient({ baseUrl: t.pair.fetcher!.url, keys: parseSecrets(TEST_SHARED_SECRET) });
    const peak = (await client.status()).memory.peakRssMb;
    await client.close();
    console.log(
      `row 40: 1,000 routed demo.heavy (50 ms) from 50 connections: enqueue p50 ${percentile(routed.latencies, 50).toFixed(1)} ms, p95 ${percentile(routed.latencies, 95).toFixed(1)} ms; ` +
        `end-to-end p95 ${routedRate.endToEndP95Ms.toFixed(0)} ms; ${routedRate.perSecond.toFixed(0)} jobs/s routed vs ${localRate.perSecond.toFixed(0)} jobs/s local ` +
        `(ratio ${(routedRate.perSecond / localRate.perSecond).toFixed(2)}); every job one completed execution on the fetcher; fetcher peak RSS ${peak} MB`,
    );
  }, 240_000);

  it("shows the fetcher's progress on main while the job runs, and its final state", async () => {
    t.pair = await startPair(t.db, { fetcherEnv: { LOG_LEVEL: 'debug' } });
    // 3 s between changes: long enough that a loaded machine's relay still shows each one before the next
    const ids = await Promise.all([1, 2, 3].map(() => enqueue(t.pair!.main, 'demo.heavy', { sleepMs: 12_000, progressSteps: 4 })));
    const seen = new Map<string, number>(); // `${id}:${progress|completed}` → first time main showed it
    const done = new Set<string>();
    await waitFor('all three completed on main', async () => {
      await Promise.all(
        ids.map(async (id) => {
          const j = (await call(t.pair!.main.url, 'GET', `/api/jobs/${id}`)).json;
          const now = Date.now();
          if (!seen.has(`${id}:${j.progress}`)) seen.set(`${id}:${j.progress}`, now);
          if (j.state === 'completed') {
            if (!seen.has(`${id}:completed`)) seen.set(`${id}:completed`, now);
            done.add(id);
          }
        }),
      );
      return done.size === ids.length;
    }, { timeoutMs: 150_000, intervalMs: 50 });
    // when the fetcher made each change, from its own log
    const changes = t.pair.fetcher!.logs.flatMap((l) => {
      if (!ids.includes(l.jobId)) return [];
      if (l.msg === 'job progress' && l.progress < 100) return [{ key: `${l.jobId}:${l.progress}`, at: Date.parse(l.time) }];
      if (l.msg === 'job completed') return [{ key: `${l.jobId}:completed`, at: Date.parse(l.time) }];
      return [];
    });
    expect(changes.length).toBe(ids.length * 4); // 25, 50, 75 and completed, per job
    // every step was shown on main (none skipped), and each progress step while its job still ran
    expect(changes.filter((c) => !seen.has(c.key)).map((c) => c.key)).toEqual([]);
    const finishedAt = new Map(changes.filter((c) => c.key.endsWith(':completed')).map((c) => [c.key.split(':')[0]!, c.at]));
    const lateProgress = changes.filter((c) => !c.key.endsWith(':completed') && seen.get(c.key)! > finishedAt.get(c.key.split(':')[0]!)!);
    expect(lateProgress.map((c) => c.key)).toEqual([]);
    const lags = changes.map((c) => seen.get(c.key)! - c.at);
    console.log(`progress on main: ${changes.length} changes seen on main ${Math.round(percentile(lags, 50))} ms (p50), ${Math.round(Math.max(...lags))} ms (max) after the fetcher made them`);
  });
});

describe('crashes and lost answers on the hop', () => {
  it('every 202 for a routed job survives SIGKILL of main right after it answered (row 1 across the apps)', async () => {
    t.pair = await startPair(t.db);
    const accepted: string[] = [];
    for (let cycle = 0; cycle < 4; cycle++) {
      if (cycle > 0) await t.pair.startMain();
      const requests = Array.from({ length: 10 }, () =>
        call(t.pair!.main.url, 'POST', '/api/jobs/test.remote', { payload: {} }).then((r) => void (r.status === 202 && accepted.push(r.json.id)), () => undefined),
      );
      await Promise.race(requests);
      await sleep(Math.floor(Math.random() * 50));
      t.pair.main.kill('SIGKILL');
      await Promise.all(requests);
      await t.pair.main.exited;
    }
    const restartAt = Date.now();
    await t.pair.startMain();
    await t.allCompleted(accepted, 90_000);
    const runs = await completedRuns(t.db, accepted);
    for (const id of accepted) expect(runs.get(id)).toEqual([{ ranOn: 'fetcher' }]);
    expect(await effects(t.db, accepted)).toBe(accepted.length);
    expect(accepted.length).toBeGreaterThan(0);
    console.log(`row 1 (routed): 4 kills, ${accepted.length} accepted, lost 0/${accepted.length}, all done on the fetcher ${((Date.now() - restartAt) / 1000).toFixed(1)} s after the last restart`);
  }, 180_000);

  it('main killed before its transaction commits: no 202, no half-written routed job, nothing reaches the fetcher (row 2 across the apps)', async () => {
    const pgUrl = new URL(t.db.url);
    const pgProxy = await startFaultProxy({ host: pgUrl.hostname, port: Number(pgUrl.port || 5432) });
    try {
      const viaProxy = new URL(t.db.url);
      viaProxy.port = String(pgProxy.port);
      t.pair = await startPair(t.db, { mainEnv: { DATABASE_URL: viaProxy.toString() } });
      pgProxy.setMode({ kind: 'delay', ms: 1_500 });
      const label = `row2-${Date.now()}`;
      const answer = call(t.pair.main.url, 'POST', '/api/jobs/test.remote', { payload: { label } }).then((r) => r.status, (err: Error) => `error: ${err.message}`);
      await sleep(800);
      t.pair.main.kill('SIGKILL');
      await t.pair.main.exited;
      expect(await answer).toMatch(/^error/);
      await sleep(3_000); // let any delayed bytes land (they must not)
      const ledger = await t.db.pool.query(`SELECT id FROM public.main_jobs WHERE payload->>'label' = $1`, [label]);
      // a routed job is its ledger row alone (the forwarder's outbox): nothing of it in any queue
      const queued = await t.db.pool.query(`SELECT id FROM pgboss_main.job WHERE data->'payload'->>'label' = $1`, [label]);
      const fetcherSide = await t.db.pool.query(`SELECT id FROM ${FETCHER_JOBS} WHERE payload->>'label' = $1`, [label]);
      expect(queued.rowCount).toBe(0);
      expect(fetcherSide.rowCount).toBe(0);
      console.log(`row 2 (routed): client saw an error, never 202; ledger rows ${ledger.rowCount}, queue rows ${queued.rowCount}, fetcher rows ${fetcherSide.rowCount}`);
    } finally {
      await t.pair?.stop();
      t.pair = null;
      await pgProxy.close();
    }
  });

  it('main killed mid-forward: the retried forward is a duplicate at the fetcher, one run per job (row 3)', async () => {
    t.pair = await startPair(t.db, { proxyToFetcher: true, proxyToMain: true });
    t.pair.toFetcher!.setMode({ kind: 'delay', ms: 2_000 });
    // The fetcher cannot claim yet, so main still has the jobs as 'forwarding' when it comes back
    // (a job the fetcher has claimed is known to be there and is not sent again).
    await t.pair.toMain!.refuse();
    const ids = await Promise.all(Array.from({ length: 5 }, () => enqueue(t.pair!.main, 'test.remote', { sleepMs: 100 })));
    await t.pair.fetcher!.waitForLog('jobs accepted', (l) => l.msg === 'jobs accepted', 20_000);
    t.pair.main.kill('SIGKILL'); // the answer is still on its way back
    await t.pair.main.exited;
    t.pair.toFetcher!.setMode({ kind: 'pass' });
    await t.pair.startMain();
    // the jobs of the killed main's delivery go out again once its lease lapses (a heartbeat, 10 s here)
    await waitFor('a duplicate forward', () => t.pair!.fetcher!.logs.some((l) => l.msg === 'jobs accepted' && l.duplicates > 0), { timeoutMs: 40_000, intervalMs: 250 });
    await t.pair.toMain!.resume();
    await t.allCompleted(ids);
    const runs = await completedRuns(t.db, ids);
    for (const id of ids) expect(runs.get(id)).toEqual([{ ranOn: 'fetcher' }]);
    const { rows } = await t.db.pool.query(`SELECT count(*)::int AS n FROM ${FETCHER_JOBS} WHERE id = ANY($1::uuid[])`, [ids]);
    expect(rows[0].n).toBe(5);
    expect(await handlerStarts(t.db, ids)).toBe(5);
    expect(await effects(t.db, ids)).toBe(5);
    const duplicates = t.pair.fetcher!.logs.filter((l) => l.msg === 'jobs accepted').reduce((n, l) => n + l.duplicates, 0);
    console.log(`row 3: main killed mid-forward; fetcher jobs per id 1; ${duplicates} duplicate forwards answered duplicate:true; effects/job 1`);
  });

  it('the first answer of every forward is lost: main retries, the fetcher dedups, effects = 1 (row 4)', async () => {
    t.pair = await startPair(t.db, { proxyToFetcher: true, mainEnv: { FETCHER_FORWARD_BATCH_SIZE: '10' } });
    t.pair.toFetcher!.setMode({ kind: 'drop-response-of', match: 'POST /v1/jobs ', every: 2 });
    const ids = await Promise.all(Array.from({ length: 30 }, () => enqueue(t.pair!.main, 'test.remote', {})));
    await t.allCompleted(ids);
    const runs = await completedRuns(t.db, ids);
    for (const id of ids) expect(runs.get(id)).toEqual([{ ranOn: 'fetcher' }]);
    expect(await handlerStarts(t.db, ids)).toBe(30);
    expect(await effects(t.db, ids)).toBe(30);
    const { requests, dropped } = t.pair.toFetcher!.matched;
    expect(dropped).toBeGreaterThan(0);
    console.log(`row 4: ${requests} forwards for 30 jobs, ${dropped} answers lost; executions/effects 30/30; forwards per job ${(requests / 30 * 10).toFixed(1)}/10 batch`);
  });

  it("main down while the fetcher's callbacks are due: delivered after restart, none applied twice (row 21)", async () => {
    // the fetcher retries undelivered events at most 2 s apart (production: 30 s), so the outage below sees several retries
    t.pair = await startPair(t.db, { fetcherEnv: { JOBGATE_WORKER_CONCURRENCY: '20', FETCHER_EVENTS_RETRY_MAX_MS: '2000' } });
    const ids = await Promise.all(Array.from({ length: 20 }, () => enqueue(t.pair!.main, 'test.remote', { sleepMs: 4_000 })));
    await waitFor('all 20 running', async () => (await states(t.db, ids)).active === 20, { timeoutMs: 20_000 });
    await t.pair.main.stop();
    await waitFor('the fetcher finished all 20', async () => {
      const { rows } = await t.db.pool.query(`SELECT count(*)::int AS n FROM ${FETCHER_JOBS} WHERE id = ANY($1::uuid[]) AND state = 'completed'`, [ids]);
      return rows[0].n === 20;
    }, { timeoutMs: 30_000 });
    const { rows: waiting } = await t.db.pool.query('SELECT count(*)::int AS n FROM jobgate_fetcher.job_events');
    expect(waiting[0].n).toBeGreaterThan(0);
    expect((await states(t.db, ids)).active).toBe(20); // main has not heard yet
    await sleep(4_000); // main stays down a while longer (the matrix says 2 min; the mechanism is the same)
    const restartAt = Date.now();
    await t.pair.startMain();
    await t.allCompleted(ids);
    const lag = (Date.now() - restartAt) / 1000;
    // every event applied, none skipped: the fetcher's outbox keeps none of them (an event leaves it
    // once main has applied it; its ack may trail main's answer a moment), and main ends each job in
    // the state the fetcher ended it in
    await waitFor('the outbox drained of them', async () => (await t.db.pool.query('SELECT 1 FROM jobgate_fetcher.job_events WHERE job_id = ANY($1::uuid[])', [ids])).rowCount === 0, { timeoutMs: 10_000 });
    const { rows } = await t.db.pool.query(
      `SELECT i.id, m.state AS main, fetcher_jobs.state AS fetcher FROM unnest($1::uuid[]) AS i(id)
        LEFT JOIN jobgate.jobs m ON m.id = i.id LEFT JOIN ${FETCHER_JOBS} ON fetcher_jobs.id = i.id
        WHERE m.state IS NULL OR m.state IS DISTINCT FROM fetcher_jobs.state`,
      [ids],
    );
    expect(rows).toEqual([]);
    expect(new Set(await executionsPerJob(ids))).toEqual(new Set([1]));
    console.log(`row 21: ${waiting[0].n} events waited in the fetcher's outbox while main was down; main consistent ${lag.toFixed(1)} s after restart; duplicate callbacks applied 0`);
  });
});

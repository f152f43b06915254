// The emergency override across both apps (issue 5 item 5 and 6; FAULTS.md row 35): fetcher jobs
// not yet delivered run on main while it is on, jobs the fetcher may already hold are never run
// twice, every change is audited, an expiry switches it off by itself, and the admin API is guarded.
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { admin, call, completedRuns, databasePerTest, effects, enqueue, handlerStarts, startPair, states } from '../support/gateway.ts';
import { waitFor } from '../support/wait.ts';
import { FETCHER_JOBS } from '../support/fetcher-jobs.ts';

// A database of its own for each test, and the apps the test starts on it.
const t = databasePerTest();


describe('emergency override during a fetcher outage (FAULTS.md row 35)', () => {
  it('runs pending jobs on main one at a time, never re-runs them on the fetcher, and routes back once off', async () => {
    // a short wake deadline: batches whose answer was lost are retried (re-sent) soon
    t.pair = await startPair(t.db, { proxyToFetcher: true, proxyToMain: true, mainEnv: { FETCHER_FORWARD_BATCH_SIZE: '5', FETCHER_WAKE_TIMEOUT_MS: '1000' } });
    const { toFetcher, toMain } = t.pair;
    // 1. Ten jobs reach the fetcher, but every answer is lost and the fetcher cannot reach main to
    //    claim them; then the fetcher dies. Main cannot know whether it holds them.
    toFetcher!.setMode({ kind: 'drop-response' });
    await toMain!.refuse();
    const inDoubt = await Promise.all(Array.from({ length: 10 }, () => enqueue(t.pair!.main, 'test.remote', { sleepMs: 50 })));
    await waitFor('the fetcher holds all ten', async () => {
      const { rows } = await t.db.pool.query(`SELECT count(*)::int AS n FROM ${FETCHER_JOBS} WHERE id = ANY($1::uuid[])`, [inDoubt]);
      return rows[0].n === 10;
    }, { timeoutMs: 30_000, intervalMs: 250 });
    t.pair.fetcher!.kill('SIGKILL');
    await t.pair.fetcher!.exited;
    toFetcher!.setMode({ kind: 'pass' });
    // 2. Forty more while it is down.
    const pending: string[] = [];
    for (let i = 0; i < 40; i++) pending.push(await enqueue(t.pair.main, 'test.remote', { sleepMs: 50 }));
    const all = [...inDoubt, ...pending];
    expect((await states(t.db, all)).completed).toBeUndefined();

    // 3. Override on: all fifty run on main.
    const on = await admin(t.pair.main, 'PUT', '/override', { enabled: true, reason: 'fetcher down (test)' });
    expect(on.status).toBe(200);
    expect(on.json).toMatchObject({ enabled: true, reason: 'fetcher down (test)', by: expect.stringContaining('admin'), expiresAt: null });
    const onAt = Date.now();
    await t.allCompleted(all);
    const drainSeconds = (Date.now() - onAt) / 1000;
    const runs = await completedRuns(t.db, all);
    for (const id of all) expect(runs.get(id)).toEqual([{ ranOn: 'main' }]);
    const job = (await call(t.pair.main.url, 'GET', `/api/jobs/${inDoubt[0]}`)).json;
    expect(job).toMatchObject({ route: 'main', routeReason: 'override', state: 'completed' });

    // Heavy jobs on main run one at a time (JOBGATE_ON_MAIN_CONCURRENCY defaults to 1).
    const { rows: spans } = await t.db.pool.query(
      `SELECT started_at, finished_at FROM public.main_attempts WHERE job_id = ANY($1::uuid[]) AND ran_on = 'main' ORDER BY started_at`,
      [all],
    );
    const overlaps = spans.filter((s, i) => i > 0 && s.started_at < spans[i - 1].finished_at).length;
    expect(overlaps).toBe(0);

    // 4. The fetcher comes back with the ten it accepted: it must not run them (main owns them now).
    await t.pair.startFetcher();
    await toMain!.resume();
    await waitFor('the fetcher gave the ten up', async () => {
      const { rows } = await t.db.pool.query(`SELECT count(*)::int AS n FROM ${FETCHER_JOBS} WHERE id = ANY($1::uuid[]) AND state = 'cancelled'`, [inDoubt]);
      return rows[0].n === 10;
    }, { timeoutMs: 90_000, intervalMs: 500 });
    expect(await handlerStarts(t.db, all)).toBe(50);
    expect(await effects(t.db, all)).toBe(50);

    // 5. Override off: new jobs go to the fetcher again.
    const off = await admin(t.pair.main, 'PUT', '/override', { enabled: false, reason: 'fetcher back (test)' });
    expect(off.json).toMatchObject({ enabled: false });
    const fresh: string[] = [];
    for (let i = 0; i < 5; i++) fresh.push(await enqueue(t.pair.main, 'test.remote', {}));
    await t.allCompleted(fresh);
    for (const id of fresh) expect((await completedRuns(t.db, [id])).get(id)).toEqual([{ ranOn: 'fetcher' }]);

    const audit = (await admin(t.pair.main, 'GET', '/override')).json.audit;
    expect(audit.map((a: any) => [a.action, a.reason, a.oldValue.enabled, a.newValue.enabled])).toEqual([
      ['off', 'fetcher back (test)', true, false],
      ['on', 'fetcher down (test)', false, true],
    ]);
    expect(audit[1].actor).toContain('admin');
    console.log(`row 35: 50 pending jobs (10 whose forward answer was lost) drained on main in ${drainSeconds.toFixed(1)} s, one at a time; effects/job 1; the fetcher ran none of the 10 it held; new jobs back on the fetcher`);
  });
});

describe('override lifecycle', () => {
  it('switches itself off at its expiry, audited as expired; fetcher jobs then go to the fetcher', async () => {
    t.pair = await startPair(t.db);
    const on = await admin(t.pair.main, 'PUT', '/override', { enabled: true, reason: 'short window', expiresInMinutes: 0.02 });
    expect(on.json.expiresAt).toEqual(expect.any(String));
    const routedOnMain = (await call(t.pair.main.url, 'POST', '/api/jobs/demo.heavy', { payload: {} })).json;
    expect(routedOnMain.route).toBe('main');
    const expired = await waitFor('override off', async () => {
      const r = await admin(t.pair!.main, 'GET', '/fetcher_service');
      return r.json.override.enabled === false && r.json.override;
    }, { timeoutMs: 10_000, intervalMs: 100 });
    expect(expired.by).toBe('system');
    const [latest] = (await admin(t.pair.main, 'GET', '/override')).json.audit;
    expect(latest).toMatchObject({ action: 'expired', actor: 'system', oldValue: { enabled: true, reason: 'short window' }, newValue: { enabled: false } });
    const after = (await call(t.pair.main.url, 'POST', '/api/jobs/demo.heavy', { payload: {} })).json;
    expect(after.route).toBe('fetcher');
    await t.allCompleted([routedOnMain.id, after.id]);
    expect((await completedRuns(t.db, [routedOnMain.id])).get(routedOnMain.id)).toEqual([{ ranOn: 'main' }]);
    expect((await completedRuns(t.db, [after.id])).get(after.id)).toEqual([{ ranOn: 'fetcher' }]);
  });

  it('FETCHER_EMERGENCY_OVERRIDE=true forces it on at boot (audited); runOnMain runs one job on main', async () => {
    t.pair = await startPair(t.db, { mainEnv: { FETCHER_EMERGENCY_OVERRIDE: 'true' } });
    const state = (await admin(t.pair.main, 'GET', '/override')).json;
    expect(state.override).toMatchObject({ enabled: true, by: 'environment (FETCHER_EMERGENCY_OVERRIDE)' });
    expect(state.audit[0]).toMatchObject({ action: 'on', actor: 'environment (FETCHER_EMERGENCY_OVERRIDE)' });
    await admin(t.pair.main, 'PUT', '/override', { enabled: false, reason: 'done' });

    const run = await admin(t.pair.main, 'POST', '/jobs/demo.heavy/run', { payload: { sleepMs: 100, progressSteps: 2 }, runOnMain: true });
    expect(run.status).toBe(202);
    expect(run.json).toMatchObject({ name: 'demo.heavy', route: 'main', routeReason: 'run-on-main' });
    const plain = await admin(t.pair.main, 'POST', '/jobs/demo.heavy/run', { payload: {} });
    expect(plain.json).toMatchObject({ route: 'fetcher', routeReason: 'definition' });
    await t.allCompleted([run.json.id, plain.json.id]);
    expect((await completedRuns(t.db, [run.json.id])).get(run.json.id)).toEqual([{ ranOn: 'main' }]);
    expect((await completedRuns(t.db, [plain.json.id])).get(plain.json.id)).toEqual([{ ranOn: 'fetcher' }]);
  });
});

describe('admin API', () => {
  it('shows the fetcher awake with its memory, then down once it stops; shows the outbox', async () => {
    t.pair = await startPair(t.db);
    const up = (await admin(t.pair.main, 'GET', '/fetcher_service')).json;
    expect(up.fetcher).toMatchObject({ state: 'awake', checkedAt: expect.any(String), latencyMs: expect.any(Number), status: { memory: { rssMb: expect.any(Number), limitMb: expect.any(Number) }, intake: 'open' } });
    expect(up.override).toMatchObject({ enabled: false });
    expect(up.outbox).toEqual({ pending: 0, oldestAgeSeconds: 0, refused: 0, refusedByFetcher: [] });
    await t.pair.fetcher!.stop();
    const stoppedAt = Date.now();
    const down = await waitFor('fetcher shown down', async () => {
      const r = (await admin(t.pair!.main, 'GET', '/fetcher_service')).json;
      return r.fetcher.state === 'down' && r;
    }, { timeoutMs: 10_000, intervalMs: 250 });
    await enqueue(t.pair.main, 'demo.heavy', {});
    await sleep(1_100);
    const waiting = (await admin(t.pair.main, 'GET', '/fetcher_service')).json;
    expect(waiting.outbox.pending).toBe(1);
    expect(waiting.outbox.oldestAgeSeconds).toBeGreaterThanOrEqual(1);
    console.log(`admin: fetcher shown down ${((Date.now() - stoppedAt) / 1000).toFixed(1)} s after it stopped (${down.fetcher.error})`);
  });

  it('refuses missing or wrong credentials, cross-site changes and bad bodies, and changes nothing', async () => {
    t.pair = await startPair(t.db);
    const url = t.pair.main.url;
    const none = await call(url, 'PUT', '/admin/api/override', { enabled: true, reason: 'x' }, { 'content-type': 'application/json' });
    expect(none.status).toBe(401);
    expect(none.headers.get('content-type')).toContain('application/problem+json');
    expect(none.headers.get('www-authenticate')).toContain('Basic');
    // an API token without the admin scope is known, and not enough
    const apiToken = await call(url, 'PUT', '/admin/api/override', { enabled: true, reason: 'x' });
    expect(apiToken.status).toBe(403);
    expect(apiToken.json.code).toBe('JG_FORBIDDEN');
    const wrong = await call(url, 'GET', '/admin/api/fetcher_service', undefined, { authorization: `Basic ${Buffer.from('admin:nope').toString('base64')}` });
    expect(wrong.status).toBe(401);
    const good = { authorization: `Basic ${Buffer.from('admin:test-admin-password').toString('base64')}`, 'content-type': 'application/json' };
    const crossSite = await call(url, 'PUT', '/admin/api/override', { enabled: true, reason: 'x' }, { ...good, 'sec-fetch-site': 'cross-site' });
    expect(crossSite.status).toBe(403);
    const foreignOrigin = await call(url, 'PUT', '/admin/api/override', { enabled: true, reason: 'x' }, { ...good, origin: 'http://evil.test' });
    expect(foreignOrigin.status).toBe(403);
    for (const origin of ['null', 'not a url']) {
      expect((await call(url, 'POST', '/admin/api/jobs/demo.heavy/run', { payload: {} }, { ...good, origin })).status).toBe(403);
    }
    const noReason = await admin(t.pair.main, 'PUT', '/override', { enabled: true, reason: '' });
    expect(noReason.status).toBe(422);
    expect(noReason.json.errors).toEqual([expect.objectContaining({ path: 'reason' })]);
    const badExpiry = await admin(t.pair.main, 'PUT', '/override', { enabled: true, reason: 'x', expiresInMinutes: -5 });
    expect(badExpiry.json.errors).toEqual([expect.objectContaining({ path: 'expiresInMinutes' })]);
    const unknownJob = await admin(t.pair.main, 'POST', '/jobs/nope/run', { payload: {} });
    expect(unknownJob.status).toBe(404);
    const badPayload = await admin(t.pair.main, 'POST', '/jobs/demo.heavy/run', { payload: { sleepMs: 'long' }, runOnMain: true });
    expect(badPayload.status).toBe(422);
    expect(badPayload.json.errors[0].path).toBe('payload.sleepMs');
    const state = (await admin(t.pair.main, 'GET', '/override')).json;
    expect(state.override.enabled).toBe(false);
    expect(state.audit).toEqual([]);
  });
});

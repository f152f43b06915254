// runsOnFetcher jobs end to end: enqueued on main, forwarded through the outbox, run on the
// fetcher, and seen on main through the job events (issue 5, first slice).
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { freePort, startFetcher, startMain, TEST_SHARED_SECRET, type AppProcess } from '../support/apps.ts';
import { apiHeaders } from '../support/gateway.ts';
import { waitFor } from '../support/wait.ts';

let db: TestDatabase;
const apps: AppProcess[] = [];
beforeAll(async () => {
  db = await createTestDatabase();
});
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.stop()));
});
afterAll(async () => {
  await db?.drop();
});

async function pair(options: { startFetcher?: boolean; fetcherSecret?: string; mainEnv?: Record<string, string>; noEvents?: boolean } = {}) {
  const [mainPort, fetcherPort] = [await freePort(), await freePort()];
  const common = { DATABASE_URL: db.url, JOBGATE_DEMO_JOBS: 'true', FETCHER_SHARED_SECRET: TEST_SHARED_SECRET };
  const startF = async () => {
    const f = await startFetcher({
      ...common,
      PORT: String(fetcherPort),
      ...(options.noEvents ? {} : { MAIN_SERVICE_URL: `http://127.0.0.1:${mainPort}` }),
      ...(options.fetcherSecret ? { FETCHER_SHARED_SECRET: options.fetcherSecret } : {}),
    });
    apps.push(f);
    return f;
  };
  const fetcher = options.startFetcher === false ? null : await startF();
  const main = await startMain({ ...common, PORT: String(mainPort), FETCHER_SERVICE_URL: `http://127.0.0.1:${fetcherPort}`, FETCHER_WAKE_TIMEOUT_MS: '60000', ...options.mainEnv });
  apps.push(main);
  return { main, fetcher, startF };
}

async function enqueue(main: AppProcess, payload: unknown) {
  const res = await fetch(`${main.url}/api/jobs/demo.heavy`, { method: 'POST', headers: apiHeaders, body: JSON.stringify({ payload }) });
  expect(res.status).toBe(202);
  return ((await res.json()) as { id: string }).id;
}
const job = async (main: AppProcess, id: string) => (await (await fetch(`${main.url}/api/jobs/${id}`, { headers: apiHeaders })).json()) as any;

describe('routing to the fetcher', () => {
  it('runs demo.heavy on the fetcher; main shows its progress, one completed execution, ranOn fetcher', async () => {
    const { main } = await pair();
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push(await enqueue(main, { sleepMs: 200, progressSteps: 2 }));
    await waitFor('all completed on main', async () => (await Promise.all(ids.map((id) => job(main, id)))).every((j) => j.state === 'completed'), { timeoutMs: 30_000, intervalMs: 250 });
    for (const id of ids) {
      const j = await job(main, id);
      expect(j).toMatchObject({ route: 'fetcher', state: 'completed', progress: 100 });
      expect(j.executions).toEqual([expect.objectContaining({ attempt: 1, ranOn: 'fetcher', outcome: 'completed', peakRssMb: expect.any(Number) })]);
    }
  });

  it('keeps jobs while the fetcher is down and delivers them once it is up', async () => {
    const { main, startF } = await pair({ startFetcher: false });
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push(await enqueue(main, {}));
    await new Promise((r) => setTimeout(r, 3_000));
    expect((await Promise.all(ids.map((id) => job(main, id)))).every((j) => ['queued', 'forwarding'].includes(j.state))).toBe(true);
    await startF();
    await waitFor('all completed', async () => (await Promise.all(ids.map((id) => job(main, id)))).every((j) => j.state === 'completed'), { timeoutMs: 60_000, intervalMs: 250 });
    const wakes = main.logs.filter((l) => l.msg === 'fetcher awake').length;
    console.log(`routing: 10 jobs waited for a down fetcher, all completed after it came up; wake-ups logged ${wakes}`);
  });
});

describe('a fetcher that refuses the request itself', () => {
  it('keeps the jobs (no failure for a 401): a half-done secret rotation loses nothing', async () => {
    const { main } = await pair({ fetcherSecret: 'whsec_' + Buffer.alloc(32, 12).toString('base64') });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(await enqueue(main, {}));
    await main.waitForLog('refusal logged', (l) => l.msg === 'fetcher refused the request itself; the batch stays in the outbox');
    await new Promise((r) => setTimeout(r, 1_000));
    const states = (await Promise.all(ids.map((id) => job(main, id)))).map((j) => j.state);
    expect(states.every((s) => s === 'forwarding' || s === 'queued')).toBe(true);
  });
});

describe('keep-awake', () => {
  it('pings the fetcher while a routed job is unfinished, and stops when none is', async () => {
    const { main, fetcher } = await pair({ mainEnv: { FETCHER_KEEP_AWAKE_INTERVAL_MS: '300' } });
    const pings = () => fetcher!.logs.filter((l) => l.msg === 'request' && l.path === '/v1/status').length;
    const id = await enqueue(main, { sleepMs: 2_500 });
    await waitFor('completed', async () => (await job(main, id)).state === 'completed', { timeoutMs: 20_000, intervalMs: 200 });
    const during = pings();
    await new Promise((r) => setTimeout(r, 500)); // one interval for the loop to see nothing pending
    const settled = pings();
    await new Promise((r) => setTimeout(r, 1_500));
    const after = pings() - settled;
    console.log(`keep-awake: ${during} pings during a 2.5 s job at a 300 ms interval; ${after} in the 1.5 s after it finished`);
    expect(during).toBeGreaterThanOrEqual(4);
    expect(after).toBe(0);
  });
});

describe('reconciler', () => {
  it('repairs jobs whose events never arrive by asking the fetcher', async () => {
    // a fetcher with no way back to main: every event is lost
    const { main } = await pair({ noEvents: true, mainEnv: { FETCHER_RECONCILE_AFTER_SECONDS: '1' } });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await enqueue(main, { sleepMs: 200, failAttempts: i === 0 ? 1 : 0 }));
    await waitFor('all completed on main', async () => (await Promise.all(ids.map((id) => job(main, id)))).every((j) => j.state === 'completed'), { timeoutMs: 30_000, intervalMs: 250 });
    const first = await job(main, ids[0]!);
    expect(first.executions.map((e: any) => [e.attempt, e.ranOn, e.outcome])).toEqual([[1, 'fetcher', 'failed'], [2, 'fetcher', 'completed']]);
    expect(first.error).toBeUndefined();
    const reconciled = main.logs.filter((l) => l.msg === 'job reconciled with the fetcher').length;
    console.log(`reconciler: 5 jobs with every event lost completed on main through ${reconciled} reconciliations`);
  });
});

// kill -9 and SIGTERM of a real main process (FAULTS.md rows 1, 2, 8, 12).
import { request as httpRequest } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { startMain, type AppProcess } from '../support/apps.ts';
import { startFaultProxy } from '../support/fault-proxy.ts';
import { apiHeaders } from '../support/gateway.ts';
import { waitFor } from '../support/wait.ts';

let db: TestDatabase;
const started: AppProcess[] = [];

async function main(env: Record<string, string> = {}): Promise<AppProcess> {
  const app = await startMain({ DATABASE_URL: db.url, ...env });
  started.push(app);
  return app;
}

beforeAll(async () => {
  db = await createTestDatabase();
});
// Each test owns the processes it starts: none may pick up another test's jobs.
afterEach(async () => {
  await Promise.all(started.splice(0).map((a) => a.stop()));
});
afterAll(async () => {
  await db?.drop();
});

async function enqueue(base: string, name: string, payload: unknown, extra: Record<string, unknown> = {}) {
  const response = await fetch(`${base}/api/jobs/${name}`, { method: 'POST', headers: apiHeaders, body: JSON.stringify({ payload, ...extra }) });
  return { status: response.status, json: (await response.json()) as any };
}
async function ledgerJob(id: string) {
  const { rows } = await db.pool.query('SELECT state FROM public.main_jobs WHERE id = $1', [id]);
  return rows[0] as { state: string } | undefined;
}
async function executions(id: string) {
  const { rows } = await db.pool.query('SELECT attempt, outcome, error FROM public.main_attempts WHERE job_id = $1 ORDER BY attempt', [id]);
  return rows as Array<{ attempt: number; outcome: string; error: any }>;
}
async function effects(id: string) {
  const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM public.test_effects WHERE job_id = $1', [id]);
  return rows[0].n as number;
}
const waitState = (id: string, state: string, timeoutMs = 40_000) =>
  waitFor(`job ${id} ${state}`, async () => (await ledgerJob(id))?.state === state, { timeoutMs, intervalMs: 200 });

describe('kill -9', () => {
  it('a job cut short by SIGKILL completes after restart: one lost and one completed attempt', async () => {
    const first = await main();
    const { json } = await enqueue(first.url, 'test.record', { sleepMs: 3_000 });
    await waitFor('handler started', async () => (await db.pool.query(`SELECT 1 FROM public.test_events WHERE job_id = $1 AND event = 'start'`, [json.id])).rowCount);
    first.kill('SIGKILL');
    await first.exited;
    const killedAt = Date.now();
    await main();
    await waitState(json.id, 'completed');
    const recoveredSeconds = (Date.now() - killedAt) / 1000;
    const runs = await executions(json.id);
    expect(runs.map((r) => [r.attempt, r.outcome])).toEqual([[1, 'lost'], [2, 'completed']]);
    expect(runs[0]!.error.code).toBe('JG_JOB_LOST');
    expect(await effects(json.id)).toBe(1);
    console.log(`kill -9 mid-job: completed ${recoveredSeconds.toFixed(1)} s after the kill (heartbeat 10 s + 3 s job); executions 2, effects 1`);
  });

  it('every 202 survives SIGKILL of main right after it answered (FAULTS.md row 1, bounded sample)', async () => {
    const accepted: string[] = [];
    let kills = 0;
    let maxSecondsToDone = 0;
    for (let cycle = 0; cycle < 4; cycle++) {
      const app = await main();
      const killAfterMs = Math.floor(Math.random() * 50);
      const requests = Array.from({ length: 10 }, () =>
        enqueue(app.url, 'test.record', {}).then((r) => {
          if (r.status === 202) accepted.push(r.json.id);
          return r;
        }, () => null),
      );
      // kill 0-50 ms after the first 202
      await Promise.race(requests);
      await new Promise((r) => setTimeout(r, killAfterMs));
      app.kill('SIGKILL');
      kills++;
      await Promise.all(requests);
      await app.exited;
    }
    const started = Date.now();
    await main();
    for (const id of accepted) {
      await waitState(id, 'completed', 60_000);
      maxSecondsToDone = Math.max(maxSecondsToDone, (Date.now() - started) / 1000);
    }
    const lost = (await Promise.all(accepted.map(ledgerJob))).filter((j) => !j).length;
    console.log(`row 1: ${kills} kills, ${accepted.length} accepted, lost ${lost}/${accepted.length}, all done ${maxSecondsToDone.toFixed(1)} s after restart`);
    expect(accepted.length).toBeGreaterThan(0);
    expect(lost).toBe(0);
  });

  it('main killed before its transaction commits: no 202 and no half-written job (FAULTS.md row 2)', async () => {
    const pgUrl = new URL(db.url);
    const proxy = await startFaultProxy({ host: pgUrl.hostname, port: Number(pgUrl.port || 5432) });
    try {
      const viaProxy = new URL(db.url);
      viaProxy.port = String(proxy.port);
      const app = await main({ DATABASE_URL: viaProxy.toString() });
      proxy.setMode({ kind: 'delay', ms: 1_500 });
      const label = `row2-${Date.now()}`;
      const answer = enqueue(app.url, 'test.record', { label }).then((r) => r.status, (err: Error) => `error: ${err.message}`);
      await new Promise((r) => setTimeout(r, 800));
      app.kill('SIGKILL');
      await app.exited;
      const status = await answer;
      expect(status).toMatch(/^error/);
      await new Promise((r) => setTimeout(r, 3_000)); // let any delayed bytes land (they must not)
      const ledger = await db.pool.query(`SELECT id FROM public.main_jobs WHERE payload->>'label' = $1`, [label]);
      const queue = await db.pool.query(`SELECT id FROM pgboss_main.job WHERE data->'payload'->>'label' = $1`, [label]);
      console.log(`row 2: client saw "${status}"; ledger rows ${ledger.rowCount}, queue rows ${queue.rowCount} (202-without-row = 0)`);
      expect(ledger.rowCount).toBe(queue.rowCount);
    } finally {
      await proxy.close();
    }
  });
});

/**
 * Opens a POST whose body is sent only when `finish` is called: an in-flight request. `reached`
 * settles once the server has read its headers (its 100 Continue), so the request is the server's,
 * not one still waiting in the listen backlog (which a closing server resets, as any would).
 */
function slowPost(base: string, path: string, body: string) {
  const url = new URL(path, base);
  let resolveDone!: (v: { status: number; body: string } | { error: string }) => void;
  const done = new Promise<{ status: number; body: string } | { error: string }>((r) => (resolveDone = r));
  let resolveReached!: () => void;
  const reached = new Promise<void>((r) => (resolveReached = r));
  const req = httpRequest({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { ...apiHeaders, 'content-length': Buffer.byteLength(body), expect: '100-continue' } }, (res) => {
    let text = '';
    res.on('data', (c) => (text += c));
    res.on('end', () => resolveDone({ status: res.statusCode!, body: text }));
  });
  req.on('continue', () => {
    req.write(body.slice(0, 5));
    resolveReached();
  });
  req.on('error', (err) => {
    resolveDone({ error: err.message });
    resolveReached();
  });
  req.flushHeaders();
  return { finish: () => req.end(body.slice(5)), done, reached };
}

describe('SIGTERM', () => {
  it('drains HTTP and running jobs, takes no new job, and exits 0 within 25 s (FAULTS.md rows 8 and 12)', async () => {
    const app = await main();
    const running = await enqueue(app.url, 'test.record', { sleepMs: 2_000, label: 'running-at-sigterm' });
    await waitState(running.json.id, 'active');
    const inflight = Array.from({ length: 20 }, (_, i) => slowPost(app.url, '/api/jobs/test.record', JSON.stringify({ payload: { label: `inflight-${i}` }, delaySeconds: 1 })));
    await Promise.all(inflight.map((r) => r.reached));
    const signalledAt = Date.now();
    app.kill('SIGTERM');
    await app.waitForLog('shutting down', (l) => l.msg === 'shutting down');
    // New connections are refused while the old ones drain.
    const fresh = await fetch(`${app.url}/healthz`).then((r) => `status ${r.status}`, () => 'refused');
    expect(fresh).toBe('refused');
    for (const r of inflight) r.finish();
    const answers = await Promise.all(inflight.map((r) => r.done));
    const { code } = await app.exited;
    const shutdownSeconds = (Date.now() - signalledAt) / 1000;
    const statuses = answers.map((a) => ('status' in a ? a.status : a.error));
    console.log(`rows 8/12: exit ${code} after ${shutdownSeconds.toFixed(2)} s; in-flight answers ${JSON.stringify([...new Set(statuses)])}`);
    expect(code).toBe(0);
    expect(shutdownSeconds).toBeLessThan(25);
    expect(statuses.every((s) => s === 202)).toBe(true);
    // the running job finished inside the grace period
    expect(await executions(running.json.id)).toMatchObject([{ attempt: 1, outcome: 'completed' }]);
    // the accepted in-flight jobs exist, and none started on the stopping process
    const ids = answers.map((a) => JSON.parse((a as { body: string }).body).id as string);
    const { rows: startedAfter } = await db.pool.query(`SELECT count(*)::int AS n FROM public.test_events WHERE job_id = ANY($1) AND pid = $2`, [ids, app.pid]);
    expect(startedAfter[0].n).toBe(0);
    // and they run once a process is back
    await main();
    for (const id of ids) await waitState(id, 'completed');
  });

  it('aborts a job that outlives the grace period; the attempt is retried later (FAULTS.md row 9, main side)', async () => {
    const app = await main({ JOBGATE_SHUTDOWN_TIMEOUT_MS: '1000' });
    const { json } = await enqueue(app.url, 'test.record', { sleepMs: 4_000, label: 'too-long' });
    await waitState(json.id, 'active');
    const signalledAt = Date.now();
    app.kill('SIGTERM');
    const { code } = await app.exited;
    const seconds = (Date.now() - signalledAt) / 1000;
    expect(code).toBe(0);
    expect(seconds).toBeLessThan(10);
    const [attempt] = await executions(json.id);
    expect(attempt).toMatchObject({ attempt: 1, outcome: 'failed', error: { code: 'JG_JOB_ABORTED' } });
    expect((await ledgerJob(json.id))?.state).toBe('queued');
    const { rows: aborted } = await db.pool.query(`SELECT count(*)::int AS n FROM public.test_events WHERE job_id = $1 AND event = 'aborted'`, [json.id]);
    expect(aborted[0].n).toBe(1);
    console.log(`row 9 (main): exit ${code} ${seconds.toFixed(2)} s after SIGTERM with a 1 s grace; attempt 1 aborted, job queued for retry`);
    await main();
    await waitState(json.id, 'completed');
    expect(await effects(json.id)).toBe(1);
  });
});

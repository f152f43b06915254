// The fetcher under faults: killed after the effect, killed before its insert commits, SIGTERM with
// short and long jobs, the production start command, key rotation, bad input (FAULTS.md rows 6-9,
// 11, 27, 28, 30).
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseSecrets, signedHeaders } from '../../packages/jobgate/src/protocol/index.ts';
import { createFetcherClient, type FetcherClient } from '../../packages/jobgate/src/client/index.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { FAST_ENV, startFetcher, TEST_JOBS_MODULE, TEST_SHARED_SECRET, type AppProcess } from '../support/apps.ts';
import { startFaultProxy } from '../support/fault-proxy.ts';
import { waitFor } from '../support/wait.ts';
import { FETCHER_JOBS } from '../support/fetcher-jobs.ts';

const keys = parseSecrets(TEST_SHARED_SECRET);
let db: TestDatabase;
const apps: AppProcess[] = [];
const clients: FetcherClient[] = [];

async function fetcher(env: Record<string, string> = {}) {
  const app = await startFetcher({ DATABASE_URL: db.url, ...env });
  apps.push(app);
  return app;
}
function clientFor(app: AppProcess, options: { keys?: typeof keys; retries?: number } = {}) {
  const c = createFetcherClient({ baseUrl: app.url, keys: options.keys ?? keys, retries: options.retries ?? 0 });
  clients.push(c);
  return c;
}
const count = async (sql: string, params: unknown[]) => (await db.pool.query(sql, params)).rows[0].n as number;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(apps.splice(0).map((a) => a.stop()));
});
afterAll(async () => {
  await db?.drop();
});

describe('crashes', () => {
  it('killed after the effect, before complete: the re-run finds the effect done (row 6)', async () => {
    const first = await fetcher();
    const id = randomUUID();
    await clientFor(first).submit([{ id, name: 'test.effect-then-die', payload: {} }]);
    await first.exited;
    const second = await fetcher();
    const client = clientFor(second);
    await waitFor('completed', async () => (await client.getJob(id)).state === 'completed', { timeoutMs: 40_000, intervalMs: 250 });
    const executions = await count(`SELECT count(*)::int AS n FROM public.test_events WHERE job_id = $1 AND event = 'start'`, [id]);
    const effects = await count('SELECT count(*)::int AS n FROM public.test_effects WHERE job_id = $1', [id]);
    console.log(`row 6: executions ${executions}, effects ${effects}`);
    expect([executions, effects]).toEqual([2, 1]);
    expect((await client.getJob(id)).executions?.map((e) => e.outcome)).toEqual(['lost', 'completed']);
  });

  it('killed between receiving a submission and committing it: the resubmission makes one job (row 7)', async () => {
    const pgUrl = new URL(db.url);
    const proxy = await startFaultProxy({ host: pgUrl.hostname, port: Number(pgUrl.port || 5432) });
    try {
      const viaProxy = new URL(db.url);
      viaProxy.port = String(proxy.port);
      const first = await fetcher({ DATABASE_URL: viaProxy.toString() });
      proxy.setMode({ kind: 'delay', ms: 1_500 });
      const id = randomUUID();
      const submitted = clientFor(first).submit([{ id, name: 'test.remote', payload: {} }]).then(() => 'accepted', (err: { code?: string }) => err.code);
      await new Promise((r) => setTimeout(r, 700));
      first.kill('SIGKILL');
      await first.exited;
      const outcome = await submitted;
      const second = await fetcher();
      const again = await clientFor(second).submit([{ id, name: 'test.remote', payload: {} }]);
      const jobs = await count(`SELECT count(*)::int AS n FROM ${FETCHER_JOBS} WHERE id = $1`, [id]);
      const queued = await count(`SELECT count(*)::int AS n FROM pgboss_fetcher.job WHERE id = $1`, [id]);
      console.log(`row 7: first submission ${outcome}; resubmission duplicate=${again.accepted[0]!.duplicate}; fetcher jobs for the id ${jobs}, queue rows ${queued}`);
      expect(outcome).not.toBe('accepted');
      expect([jobs, queued]).toEqual([1, 1]);
    } finally {
      await proxy.close();
    }
  });
});

describe('SIGTERM', () => {
  it('lets a short job finish and exits 0 (row 8)', async () => {
    const app = await fetcher();
    const client = clientFor(app);
    const id = randomUUID();
    await client.submit([{ id, name: 'test.remote', payload: { sleepMs: 1_500 } }]);
    await waitFor('active', async () => (await client.getJob(id)).state === 'active');
    const t0 = Date.now();
    app.kill('SIGTERM');
    const { code } = await app.exited;
    const seconds = (Date.now() - t0) / 1000;
    const state = (await db.pool.query(`SELECT state FROM ${FETCHER_JOBS} WHERE id = $1`, [id])).rows[0].state;
    console.log(`row 8 (fetcher): exit ${code} after ${seconds.toFixed(2)} s; job ${state}`);
    expect([code, state]).toEqual([0, 'completed']);
    expect(seconds).toBeLessThan(25);
  });

  it('aborts a job longer than the grace period, exits in time, and the job completes after restart (row 9)', async () => {
    const app = await fetcher({ JOBGATE_SHUTDOWN_TIMEOUT_MS: '1000' });
    const id = randomUUID();
    await clientFor(app).submit([{ id, name: 'test.record-remote', payload: { sleepMs: 4_000 } }]);
    await waitFor('started', async () => (await count(`SELECT count(*)::int AS n FROM public.test_events WHERE job_id = $1 AND event = 'start'`, [id])) === 1);
    const t0 = Date.now();
    app.kill('SIGTERM');
    const { code } = await app.exited;
    const seconds = (Date.now() - t0) / 1000;
    const aborted = await count(`SELECT count(*)::int AS n FROM public.test_events WHERE job_id = $1 AND event = 'aborted'`, [id]);
    expect([code, aborted]).toEqual([0, 1]);
    expect(seconds).toBeLessThan(10);
    const client = clientFor(await fetcher());
    await waitFor('completed after restart', async () => (await client.getJob(id)).state === 'completed', { timeoutMs: 30_000, intervalMs: 250 });
    const effects = await count('SELECT count(*)::int AS n FROM public.test_effects WHERE job_id = $1', [id]);
    console.log(`row 9 (fetcher): exit ${code} ${seconds.toFixed(2)} s after SIGTERM with a 1 s grace; aborted 1; effects total ${effects}`);
    expect(effects).toBe(1);
  });

  it('a handler that ignores its signal cannot hold the process past the deadline; the job is redone once (row 10)', async () => {
    const app = await fetcher({ JOBGATE_SHUTDOWN_TIMEOUT_MS: '1000' });
    const id = randomUUID();
    await clientFor(app).submit([{ id, name: 'test.stubborn', payload: { sleepMs: 8_000 } }]);
    await waitFor('started', async () => (await count(`SELECT count(*)::int AS n FROM public.test_events WHERE job_id = $1 AND event = 'start'`, [id])) === 1);
    const t0 = Date.now();
    app.kill('SIGTERM');
    // Render would SIGKILL at 30 s; the process must be gone well before.
    const killer = setTimeout(() => app.kill('SIGKILL'), 30_000);
    const { code, signal } = await app.exited;
    clearTimeout(killer);
    const seconds = (Date.now() - t0) / 1000;
    const client = clientFor(await fetcher());
    const recoveredAt = Date.now();
    await waitFor('completed after restart', async () => (await client.getJob(id)).state === 'completed', { timeoutMs: 40_000, intervalMs: 250 });
    const effects = await count('SELECT count(*)::int AS n FROM public.test_effects WHERE job_id = $1', [id]);
    console.log(`row 10: stubborn handler; exit ${code ?? signal} ${seconds.toFixed(1)} s after SIGTERM (no SIGKILL needed); completed ${((Date.now() - recoveredAt) / 1000).toFixed(1)} s after restart; effects ${effects}`);
    expect(signal).toBeNull();
    expect(seconds).toBeLessThan(25);
    expect(effects).toBe(1);
  });

  it('the production start command gets the signal itself: nothing is orphaned (row 11)', async () => {
    const blueprint = await readFile(join(import.meta.dirname, '../../render.yaml'), 'utf8');
    const command = /name: jobgate-fetcher[\s\S]*?startCommand: (.+)/.exec(blueprint)![1]!.trim();
    const child = spawn('sh', ['-c', command], {
      cwd: join(import.meta.dirname, '../..'),
      env: { PATH: `${join(import.meta.dirname, '../../node_modules/.bin')}:${process.env.PATH}`, HOME: process.env.HOME, DATABASE_URL: db.url, FETCHER_SHARED_SECRET: TEST_SHARED_SECRET, PORT: '0', HOST: '127.0.0.1', JOBGATE_JOB_MODULES: TEST_JOBS_MODULE, ...FAST_ENV },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout!.on('data', (c) => (out += c));
    await waitFor('listening', () => out.includes('"msg":"listening"'), { timeoutMs: 30_000 });
    const nodePid = Number(/"pid":(\d+)/.exec(out)![1]);
    child.kill('SIGTERM');
    await new Promise((r) => child.on('exit', r));
    await waitFor('node gone', async () => {
      try {
        process.kill(nodePid, 0);
        return false;
      } catch {
        return true;
      }
    }, { timeoutMs: 25_000 });
    console.log(`row 11: "${command}" — shell pid ${child.pid}, node pid ${nodePid}; shutdown logged ${out.includes('shutdown complete')}; orphaned processes 0`);
    expect(out).toContain('"msg":"shutdown complete"');
  });
});

describe('slow fetcher (row 19)', () => {
  it('abandons each attempt at the client timeout, retries, and a later delivery still makes one job', async () => {
    const app = await fetcher();
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: app.port });
    try {
      proxy.setMode({ kind: 'delay', ms: 3_000 });
      const slow = createFetcherClient({ baseUrl: proxy.url(), keys, retries: 2, timeouts: { headersMs: 1_000 } });
      clients.push(slow);
      const id = randomUUID();
      const t0 = Date.now();
      const outcome = await slow.submit([{ id, name: 'test.remote', payload: {} }]).then(() => 'accepted', (err: { code?: string }) => err.code);
      const seconds = (Date.now() - t0) / 1000;
      let peakSockets = proxy.connections;
      // whether a delayed request landed or died with its socket, a later delivery makes no second job
      await new Promise((r) => setTimeout(r, 3_500));
      peakSockets = Math.max(peakSockets, proxy.connections);
      proxy.setMode({ kind: 'pass' });
      const again = await clientFor(app).submit([{ id, name: 'test.remote', payload: {} }]);
      const jobs = await count(`SELECT count(*)::int AS n FROM ${FETCHER_JOBS} WHERE id = $1`, [id]);
      console.log(`row 19: 3 attempts abandoned at the 1 s headers timeout in ${seconds.toFixed(1)} s (${outcome}); later delivery duplicate=${again.accepted[0]!.duplicate}; jobs for the id ${jobs}; proxy sockets ≤ ${peakSockets}`);
      expect(outcome).toBe('JG_FETCHER_TIMEOUT');
      expect(seconds).toBeLessThan(25);
      expect(jobs).toBe(1);
      expect(peakSockets).toBeLessThanOrEqual(3);
    } finally {
      await proxy.close();
    }
  });
});

describe('key rotation while streaming (row 27)', () => {
  it('rotates with zero 401s; the old key is refused afterwards', async () => {
    const fresh = 'whsec_' + Buffer.alloc(32, 11).toString('base64');
    let app = await fetcher();
    let sender = clientFor(app);
    let unauthorized = 0;
    let delivered = 0;
    let streaming = true;
    const stream = (async () => {
      while (streaming) {
        try {
          await sender.submit([{ id: randomUUID(), name: 'test.remote', payload: {} }]);
          delivered++;
        } catch (err) {
          if ((err as { status?: number }).status === 401) unauthorized++;
          // a restart in progress: try again, as the forwarder would
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const restartWith = async (secret: string) => {
      const next = await fetcher({ FETCHER_SHARED_SECRET: secret });
      const old = app;
      app = next;
      return old;
    };
    await new Promise((r) => setTimeout(r, 500));
    // 1. receivers accept new and old
    let old = await restartWith(`${fresh} ${TEST_SHARED_SECRET}`);
    sender = clientFor(app);
    await old.stop();
    await new Promise((r) => setTimeout(r, 500));
    // 2. senders sign with the new key
    sender = clientFor(app, { keys: parseSecrets(`${fresh} ${TEST_SHARED_SECRET}`) });
    await new Promise((r) => setTimeout(r, 500));
    // 3. receivers drop the old key
    old = await restartWith(fresh);
    sender = clientFor(app, { keys: parseSecrets(fresh) });
    await old.stop();
    await new Promise((r) => setTimeout(r, 500));
    streaming = false;
    await stream;
    const stale = await clientFor(app, { keys }).submit([{ id: randomUUID(), name: 'test.remote', payload: {} }]).then(() => 'accepted', (err: { status?: number }) => err.status);
    console.log(`row 27: ${delivered} forwards delivered across the rotation, ${unauthorized} × 401; old key afterwards → ${stale}`);
    expect(unauthorized).toBe(0);
    expect(delivered).toBeGreaterThan(10);
    expect(stale).toBe(401);
  });
});

describe('bad input (rows 28-30)', () => {
  it('answers problem+json naming the field, for signed but malformed bodies and wrong methods or paths', async () => {
    const app = await fetcher();
    const post = async (body: string) => {
      const res = await fetch(`${app.url}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json', ...signedHeaders(keys, `fwd_${randomUUID()}`, body) }, body });
      return { status: res.status, type: res.headers.get('content-type'), json: (await res.json()) as any };
    };
    const truncated = await post('{"jobs": [');
    expect(truncated).toMatchObject({ status: 400, json: { errors: [{ path: '(body)' }] } });
    const extra = await post(JSON.stringify({ jobs: [{ id: randomUUID(), name: 'test.remote', payload: {}, colour: 'red' }] }));
    expect(extra.status).toBe(422);
    expect(extra.json.errors[0].path).toBe('jobs.0');
    const missing = await post(JSON.stringify({ jobs: [{ id: randomUUID(), payload: {} }] }));
    expect(missing.json.errors[0].path).toBe('jobs.0.name');
    const plain = await fetch(`${app.url}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'text/plain', ...signedHeaders(keys, `fwd_${randomUUID()}`, 'x') }, body: 'x' });
    expect(plain.status).toBe(415);
    // row 29: a body over the 8 MB intake limit is refused with 413 before its signature is even checked
    const huge = JSON.stringify({ jobs: [{ id: randomUUID(), name: 'test.remote', payload: { blob: 'x'.repeat(9 * 2 ** 20) } }] });
    const tooBig = await fetch(`${app.url}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: huge });
    expect([tooBig.status, tooBig.headers.get('content-type')?.includes('problem+json')]).toEqual([413, true]);
    for (const [method, path, status] of [['PUT', '/v1/jobs', 405], ['DELETE', '/v1/status', 405], ['GET', '/nope', 404]] as const) {
      const res = await fetch(`${app.url}${path}`, { method });
      expect(res.status).toBe(status);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
    }
  });
});

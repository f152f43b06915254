// The main app's HTTP surface, against a real main process and a real PostgreSQL.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { startMain, TEST_API_TOKEN, type AppProcess } from '../support/apps.ts';
import { waitFor } from '../support/wait.ts';

let db: TestDatabase;
let main: AppProcess;

beforeAll(async () => {
  db = await createTestDatabase();
  // two API tokens (newest first, as in a rotation) and the admin's password, which opens /api/* too
  main = await startMain({ DATABASE_URL: db.url, JOBGATE_DEMO_JOBS: 'true', API_TOKENS: `${TEST_API_TOKEN} ${OLDER_TOKEN}`, ADMIN_API_TOKENS: ADMIN_TOKEN, ADMIN_PASSWORD: 'main-api-admin-password' });
});
afterAll(async () => {
  await main?.stop();
  await db?.drop();
});

const OLDER_TOKEN = 'an-older-api-token-still-accepted';
/** ADMIN_API_TOKENS: opens /admin/api/* to a script as well as /api/*. */
const ADMIN_TOKEN = 'main-api-admin-scope-token-0123456789';
const bearer = { authorization: `Bearer ${TEST_API_TOKEN}` };

async function api(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(`${main.url}${path}`, {
    method,
    headers: body === undefined ? { ...bearer, ...headers } : { 'content-type': 'application/json', ...bearer, ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, type: response.headers.get('content-type') ?? '', headers: response.headers, json, text };
}

const getJob = async (id: string) => (await api('GET', `/api/jobs/${id}`)).json;
const waitForState = (id: string, state: string, timeoutMs = 20_000) =>
  waitFor(`job ${id} ${state}`, async () => ((await getJob(id)).state === state ? getJob(id) : null), { timeoutMs });

describe('enqueue and read back', () => {
  it('runs demo.light to completion with one execution', async () => {
    const res = await api('POST', '/api/jobs/demo.light', { payload: { sleepMs: 200, progressSteps: 2 } });
    expect(res.status).toBe(202);
    expect(res.json).toMatchObject({ name: 'demo.light', route: 'main', state: 'queued' });
    expect(res.headers.get('location')).toBe(`/api/jobs/${res.json.id}`);
    const job = await waitForState(res.json.id, 'completed');
    expect(job).toMatchObject({ id: res.json.id, payload: { sleepMs: 200, progressSteps: 2 }, progress: 100, progressMessage: 'step 2 of 2', attempts: 1 });
    expect(job.executions).toHaveLength(1);
    expect(job.executions[0]).toMatchObject({ attempt: 1, ranOn: 'main', outcome: 'completed' });
    expect(job.executions[0].peakRssMb).toBeGreaterThan(10);
    expect(Date.parse(job.executions[0].finishedAt)).toBeGreaterThanOrEqual(Date.parse(job.executions[0].startedAt) + 190);
  });

  it('carries the request id into the job logs', async () => {
    const res = await api('POST', '/api/jobs/demo.light', { payload: {} }, { 'x-request-id': 'req-trace-1' });
    expect(res.headers.get('x-request-id')).toBe('req-trace-1');
    const line = await main.waitForLog('job completed', (l) => l.msg === 'job completed' && l.jobId === res.json.id);
    expect(line).toMatchObject({ requestId: 'req-trace-1', jobName: 'demo.light', attempt: 1 });
  });

  it('retries a failing job and records every attempt', async () => {
    const res = await api('POST', '/api/jobs/demo.light', { payload: { failAttempts: 1 } });
    const job = await waitForState(res.json.id, 'completed');
    expect(job.executions.map((e: any) => [e.attempt, e.outcome])).toEqual([[1, 'failed'], [2, 'completed']]);
    expect(job.executions[0].error).toMatchObject({ code: 'JG_JOB_FAILED', message: 'demo failure on attempt 1 of 1' });
  });

  it('fails a job for good once its retries are used up', async () => {
    const res = await api('POST', '/api/jobs/demo.light', { payload: { failAttempts: 9 } });
    const job = await waitForState(res.json.id, 'failed', 30_000);
    expect(job.executions.map((e: any) => e.outcome)).toEqual(['failed', 'failed', 'failed']);
    expect(job.error).toMatchObject({ code: 'JG_JOB_FAILED' });
  });

  it('keeps a runsOnFetcher job queued for the fetcher and never runs it on main', async () => {
    const res = await api('POST', '/api/jobs/test.remote', { payload: {} });
    expect(res.status).toBe(202);
    expect(res.json).toMatchObject({ route: 'fetcher', state: 'queued' });
    // Let a main-route job run after it, so the workers demonstrably had their chance.
    const after = await api('POST', '/api/jobs/test.record', { payload: {} });
    await waitForState(after.json.id, 'completed');
    expect((await getJob(res.json.id)).state).toBe('queued');
    const { rows: ran } = await db.pool.query('SELECT 1 FROM public.test_events WHERE job_id = $1', [res.json.id]);
    expect(ran).toHaveLength(0);
    // the ledger row is the outbox: it holds what goes to the fetcher (the request's id and trace); no queue has the job
    const { rows: outbox } = await db.pool.query(`SELECT name, payload, state, request_id, traceparent FROM jobgate.jobs WHERE id = $1`, [res.json.id]);
    expect(outbox).toEqual([{ name: 'test.remote', payload: { sleepMs: 0, failAttempts: 0 }, state: 'queued', request_id: res.headers.get('x-request-id'), traceparent: expect.stringMatching(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/) }]);
    const { rows: queued } = await db.pool.query(`SELECT name FROM pgboss_main.job WHERE id = $1`, [res.json.id]);
    expect(queued).toEqual([]);
  });
});

describe('a handler error holding a NUL', () => {
  it('is stored cleaned and the attempt still ends', async () => {
    const r = await api('POST', '/api/jobs/test.record', { payload: { failAttempts: 9, failMessage: 'bad{NUL}byte' } });
    expect(r.status).toBe(202);
    const job = await waitForState(r.json.id, 'failed');
    expect(job.executions).toHaveLength(3);
    for (const e of job.executions) expect(e).toMatchObject({ outcome: 'failed', error: { message: 'bad\uFFFDbyte' } });
  });
});

describe('listing', () => {
  it('filters by state, name and route and pages with a cursor', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await api('POST', '/api/jobs/test.remote', { payload: { label: `page-${i}` } })).json.id);
    const first = await api('GET', '/api/jobs?name=test.remote&route=fetcher&state=queued&limit=2');
    expect(first.status).toBe(200);
    expect(first.json.jobs).toHaveLength(2);
    expect(first.json.jobs.map((j: any) => j.id)).toEqual([ids[4], ids[3]]);
    const second = await api('GET', `/api/jobs?name=test.remote&limit=2&cursor=${first.json.nextCursor}`);
    expect(second.json.jobs.map((j: any) => j.id)).toEqual([ids[2], ids[1]]);
    const all = await api('GET', '/api/jobs?route=main&limit=500');
    expect(all.json.jobs.every((j: any) => j.route === 'main')).toBe(true);
  });

  it('rejects a bad filter naming the field', async () => {
    const res = await api('GET', '/api/jobs?state=sleeping&limit=0');
    expect(res.status).toBe(422);
    expect(res.json.errors.map((e: any) => e.path).sort()).toEqual(['limit', 'state']);
    const cursor = await api('GET', '/api/jobs?cursor=bm9wZQ');
    expect(cursor.status).toBe(422);
    expect(cursor.json.errors[0].path).toBe('cursor');
  });
});

describe('bad input answers problem+json naming the field (FAULTS.md rows 28-30)', () => {
  const cases: Array<[string, string, string, unknown, Record<string, string>, number, string | null]> = [
    ['wrong type', 'POST', '/api/jobs/demo.light', { payload: { sleepMs: 'soon' } }, {}, 422, 'payload.sleepMs'],
    ['extra key', 'POST', '/api/jobs/demo.light', { payload: { sleepMs: 1, colour: 'red' } }, {}, 422, 'payload'],
    ['extra top-level key', 'POST', '/api/jobs/demo.light', { payload: {}, when: 'now' }, {}, 422, '(root)'],
    ['bad priority', 'POST', '/api/jobs/demo.light', { payload: {}, priority: 1.5 }, {}, 422, 'priority'],
    ['missing field', 'POST', '/api/jobs/notifications.send', { payload: { to: 'a@b.c' } }, {}, 422, 'payload.subject'],
    ['truncated JSON', 'POST', '/api/jobs/demo.light', '{"payload": {"sleepMs": 1', {}, 400, '(body)'],
    ['unknown job', 'POST', '/api/jobs/no.such.job', { payload: {} }, {}, 404, null],
    ['text/plain', 'POST', '/api/jobs/demo.light', 'sleepMs=1', { 'content-type': 'text/plain' }, 415, null],
    ['wrong method', 'PUT', '/api/jobs/demo.light', { payload: {} }, {}, 405, null],
    ['unknown path', 'GET', '/nope', undefined, {}, 404, null],
    ['bad id', 'GET', '/api/jobs/not-a-uuid', undefined, {}, 422, 'id'],
    ['unknown id', 'GET', '/api/jobs/0b7e3c1e-5a43-4a0e-9b8e-2d2f6c1d9a10', undefined, {}, 404, null],
    // inputs that answered 500 (FAULTS.md row 49): a NUL PostgreSQL cannot store, a year it has not, a prototype key
    ['NUL in a payload string', 'POST', '/api/jobs/notifications.send', { payload: { to: 'u\u0000', subject: 'x' } }, {}, 422, 'payload.to'],
    ['NUL in a payload key', 'POST', '/api/jobs/demo.light', { payload: { ['a\u0000b']: 1 } }, {}, 422, 'payload.a\\u0000b'],
    ['NUL in a filter', 'GET', '/api/jobs?name=a%00b', undefined, {}, 422, 'query.name'],
    ['a lone surrogate in a payload string', 'POST', '/api/jobs/notifications.send', '{"payload": {"to": "\\ud800", "subject": "x"}}', {}, 422, 'payload.to'],
    ['JSON nested 1,000 deep', 'POST', '/api/jobs/demo.light', `{"payload": {"x": ${'['.repeat(1_000)}${']'.repeat(1_000)}}}`, {}, 422, null],
    ['cursor of year 0000', 'GET', `/api/jobs?cursor=${Buffer.from('0000-01-01 00:00:00+00|4f6bef6d-d3d8-4e5c-b2ab-a34697c15910').toString('base64url')}`, undefined, {}, 422, 'cursor'],
    ['a prototype key as an asset', 'GET', '/admin/assets/constructor', undefined, {}, 404, null],
    ['__proto__ as an asset', 'GET', '/admin/assets/__proto__', undefined, {}, 404, null],
  ];
  it.each(cases)('%s', async (_label, method, path, body, headers, status, field) => {
    const res = await api(method, path, body, headers);
    expect(res.status).toBe(status);
    expect(res.type).toContain('application/problem+json');
    expect(res.json).toMatchObject({ status, title: expect.any(String), requestId: expect.any(String), instance: expect.stringContaining(res.json.requestId) });
    if (field) expect(res.json.errors.map((e: any) => e.path)).toContain(field);
    expect(res.text).not.toMatch(/at .*\.ts:\d+|node_modules/);
  });

  it('answers 413 to a body over 1 MiB, before parsing it, and keeps RSS flat', async () => {
    const before = await fetch(`${main.url}/healthz`);
    expect(before.status).toBe(200);
    const big = JSON.stringify({ payload: { blob: 'x'.repeat(5 * 2 ** 20) } });
    const res = await api('POST', '/api/jobs/demo.light', big);
    expect(res.status).toBe(413);
    expect(res.json).toMatchObject({ status: 413, code: 'JG_BODY_TOO_LARGE' });
  });

  it('sends Allow with 405', async () => {
    const res = await api('DELETE', '/api/jobs');
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET');
  });
});

describe('the admin API from a script', () => {
  it('takes a token of ADMIN_API_TOKENS with no cookie and no CSRF token; an API_TOKENS token gets 403; a dashboard session still needs its CSRF token', async () => {
    const asScript = { authorization: `Bearer ${ADMIN_TOKEN}` };
    try {
      const paused = await api('POST', '/admin/api/jobs/demo.heavy/pause', { reason: 'scripted maintenance' }, asScript);
      expect(paused.status).toBe(200);
      expect(paused.json).toMatchObject({ name: 'demo.heavy', reason: 'scripted maintenance', by: expect.stringMatching(/^ADMIN_API_TOKENS #1 \(/) });
      const listed = await api('GET', '/admin/api/jobs?limit=5', undefined, asScript);
      expect(listed.status).toBe(200);
      expect(listed.json.jobs.length).toBeGreaterThan(0);
      expect((await api('GET', '/admin/api/pauses', undefined, asScript)).json.pauses.map((p: any) => p.name)).toEqual(['demo.heavy']);

      // an ordinary API token: 403 and problem+json, reads and changes alike; the pause stays
      for (const [method, path, body] of [['POST', '/admin/api/jobs/demo.heavy/resume', {}], ['GET', '/admin/api/jobs', undefined]] as const) {
        const refused = await api(method, path, body);
        expect(refused.status).toBe(403);
        expect(refused.type).toContain('application/problem+json');
        expect(refused.json).toMatchObject({ status: 403, code: 'JG_FORBIDDEN' });
      }

      // the dashboard's cookie session: a change without its CSRF token is refused
      const login = await fetch(`${main.url}/admin/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: main.url }, body: new URLSearchParams({ password: 'main-api-admin-password' }) });
      const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
      const noCsrf = await api('POST', '/admin/api/jobs/demo.heavy/resume', {}, { authorization: '', cookie });
      expect([noCsrf.status, noCsrf.json.code]).toEqual([403, 'JG_FORBIDDEN']);
      expect((await api('GET', '/admin/api/pauses', undefined, asScript)).json.pauses.map((p: any) => p.name)).toEqual(['demo.heavy']);
      // GET /admin/api/session gives the session its token, as the pages do
      const session = await api('GET', '/admin/api/session', undefined, { authorization: '', cookie });
      expect(session.json).toMatchObject({ via: 'session', csrfToken: expect.any(String) });
      const resumed = await api('POST', '/admin/api/jobs/demo.heavy/resume', {}, { authorization: '', cookie, 'x-csrf-token': session.json.csrfToken });
      expect([resumed.status, resumed.json.resumed]).toEqual([200, true]);
    } finally {
      await api('POST', '/admin/api/jobs/demo.heavy/resume', {}, asScript);
    }
  });
});

describe('the jobs API needs a credential (FAULTS.md row 41)', () => {
  it('answers 401 without one, reading and enqueuing nothing; a token (either of a rotation) or the admin password opens it', async () => {
    const before = (await db.pool.query('SELECT count(*)::int AS n FROM public.main_jobs')).rows[0].n;
    const anonymous = [
      await api('GET', '/api/jobs', undefined, { authorization: '' }),
      await api('POST', '/api/jobs/maintenance.cleanup', { payload: { olderThanDays: 0 } }, { authorization: '' }),
      await api('GET', `/api/jobs/${randomUUID()}`, undefined, { authorization: '' }),
      await api('POST', '/api/jobs/demo.light', { payload: {} }, { authorization: 'Bearer not-a-token-of-this-app' }),
      await api('POST', '/api/jobs/demo.light', { payload: {} }, { authorization: `Basic ${Buffer.from('admin:wrong-password').toString('base64')}` }),
    ];
    expect(anonymous.map((r) => r.status)).toEqual([401, 401, 401, 401, 401]);
    for (const r of anonymous) {
      expect(r.type).toContain('application/problem+json');
      expect(r.text).not.toMatch(/jobs|payload/);
    }
    expect(anonymous[0]!.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect((await db.pool.query('SELECT count(*)::int AS n FROM public.main_jobs')).rows[0].n).toBe(before);
    expect((await api('POST', '/api/jobs/demo.light', { payload: {} })).status).toBe(202);
    expect((await api('POST', '/api/jobs/demo.light', { payload: {} }, { authorization: `Bearer ${OLDER_TOKEN}` })).status).toBe(202);
    expect((await api('GET', '/api/jobs?limit=1', undefined, { authorization: `Basic ${Buffer.from('admin:main-api-admin-password').toString('base64')}` })).status).toBe(200);
  });

  // last in this file: it spends this address's budget of wrong credentials
  it('counts wrong tokens per address: beyond 5 a minute, 429; a right token still works', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) statuses.push((await api('GET', '/api/jobs', undefined, { authorization: `Bearer wrong-token-${i}` })).status);
    expect(statuses.slice(-2)).toEqual([429, 429]);
    expect(statuses.filter((s) => s === 401).length).toBeGreaterThanOrEqual(3);
    expect((await api('GET', '/api/jobs?limit=1')).status).toBe(200);
    const { rows } = await db.pool.query(`SELECT sum(cardinality(failures))::int AS n FROM jobgate.auth_throttle WHERE address LIKE '%127.0.0.1'`);
    expect(rows[0].n).toBe(5); // the budget, spent: a 429 is not counted again
  });
});

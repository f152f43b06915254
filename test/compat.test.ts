// Main newer than its fetcher (issue 9's traceparent on the forward): a fetcher that refuses an
// option it does not know yet must not make main fail the jobs, nor hold them. A stand-in for the
// older fetcher answers 422 "Unrecognized key" at jobs.N.options, as its strict schema did, and
// takes the jobs sent without it.
import { createServer } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { startMain, TEST_JOBS_MODULE, TEST_SHARED_SECRET, type AppProcess } from './support/apps.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { admin, enqueue, startPair, states } from './support/gateway.ts';
import { waitFor } from './support/wait.ts';

let db: TestDatabase;
let main: AppProcess;
let posts = 0;
const olderFetcher = createServer((req, res) => {
  let body = '';
  req.on('data', (d) => (body += d));
  req.on('end', () => {
    if (req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
      return;
    }
    posts++;
    const { jobs } = JSON.parse(body) as { jobs: Array<{ id: string; options?: Record<string, unknown> }> };
    const refused = jobs.flatMap((j, i) => (j.options && 'traceparent' in j.options ? [{ path: `jobs.${i}.options`, message: 'Unrecognized key: "traceparent"' }] : []));
    if (refused.length > 0) {
      res.writeHead(422, { 'content-type': 'application/problem+json' }).end(JSON.stringify({ type: 'about:blank', title: 'Validation failed', status: 422, code: 'JG_REQUEST_INVALID', errors: refused }));
      return;
    }
    res.writeHead(202, { 'content-type': 'application/json' }).end(JSON.stringify({ accepted: jobs.map((j) => ({ id: j.id, duplicate: false })) }));
  });
});

beforeAll(async () => {
  db = await createTestDatabase();
  await new Promise<void>((r) => olderFetcher.listen(0, '127.0.0.1', r));
  const { port } = olderFetcher.address() as { port: number };
  main = await startMain({ DATABASE_URL: db.url, FETCHER_SERVICE_URL: `http://127.0.0.1:${port}`, FETCHER_SHARED_SECRET: TEST_SHARED_SECRET });
});
afterAll(async () => {
  await main?.stop();
  olderFetcher.close();
  await db?.drop();
});

describe('a fetcher older than main', () => {
  it('sends the jobs again without the options it does not know, instead of failing or holding them', async () => {
    const id = await enqueue(main, 'test.remote', {});
    const state = async () => (await db.pool.query(`SELECT state FROM jobgate.jobs WHERE id = $1`, [id])).rows[0].state as string;
    await waitFor('the job forwarded, or (the defect) failed', async () => ['forwarded', 'failed'].includes(await state()), { timeoutMs: 30_000 });
    expect(await state()).toBe('forwarded');
    expect(posts).toBe(2);
    expect(main.logs.filter((l) => l.msg.startsWith('the fetcher is older than main')).map((l) => l.options)).toEqual([['traceparent']]);
  });
});

describe('a fetcher deployed behind main (row 48)', () => {
  it('keeps the jobs it refuses as unknown waiting, with the reason on show, and delivers them once it knows them; the others flow', async () => {
    const older = join(import.meta.dirname, 'fixtures/older-fetcher-jobs.ts');
    // a database of its own: the main above forwards to its stand-in from the other
    const db = await createTestDatabase();
    const pair = await startPair(db, { fetcherEnv: { JOBGATE_JOB_MODULES: older } });
    try {
      const waiting = await Promise.all([1, 2, 3].map(() => enqueue(pair.main, 'test.new-remote', {})));
      const flowing = await Promise.all([1, 2].map(() => enqueue(pair.main, 'test.remote', {})));
      await waitFor('the known jobs completed', async () => (await states(db, flowing)).completed === 2, { timeoutMs: 20_000, intervalMs: 200 });
      const status = await waitFor('the refusal on show', async () => {
        const s = (await admin(pair.main, 'GET', '/fetcher_service')).json;
        return s.outbox.refused === 3 && s;
      }, { timeoutMs: 20_000, intervalMs: 200 });
      expect(status.outbox.refusedByFetcher).toEqual([{ name: 'test.new-remote', jobs: 3, since: expect.any(String), reason: expect.stringMatching(/^fetcher refuses: no job named "test.new-remote" runs on the fetcher/) }]);
      const job = (await admin(pair.main, 'GET', `/jobs/${waiting[0]}`)).json;
      expect(job).toMatchObject({ state: 'forwarding', error: { code: 'JG_FETCHER_REFUSES' } });
      const page = await (await fetch(`${pair.main.url}/admin/fetcher_service`, { headers: { authorization: `Basic ${Buffer.from('admin:test-admin-password').toString('base64')}` } })).text();
      expect(page).toMatch(/3 × test\.new-remote<\/strong>: fetcher refuses: no job named/);
      // a while later: still waiting, none failed
      await new Promise((r) => setTimeout(r, 1_500));
      expect((await states(db, waiting)).failed).toBeUndefined();

      // the fetcher is deployed with the new job: they go through, once each
      await pair.fetcher!.stop();
      await pair.startFetcher({ JOBGATE_JOB_MODULES: TEST_JOBS_MODULE });
      await waitFor('the waiting jobs completed', async () => (await states(db, waiting)).completed === 3, { timeoutMs: 90_000, intervalMs: 250 });
      expect((await admin(pair.main, 'GET', `/jobs/${waiting[0]}`)).json.error).toBeUndefined();
      expect((await admin(pair.main, 'GET', '/fetcher_service')).json.outbox).toMatchObject({ refused: 0, refusedByFetcher: [] });
      const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM jobgate.executions WHERE job_id = ANY($1::uuid[]) AND outcome = 'completed'`, [waiting]);
      expect(rows[0].n).toBe(3);
    } finally {
      await pair.stop();
      await db.drop();
    }
  });
});

describe('a resend after a lost answer that the fetcher answers 409', () => {
  it('asks the fetcher for the job and, finding it there, counts it forwarded instead of failing it', async () => {
    // a stand-in fetcher that took the job on the first delivery (whose answer was lost) and now
    // answers the resend 409 (it holds the id), as a fetcher whose payload check is stricter than main's would
    const held = new Map<string, string>();
    let reads = 0;
    const fetcher = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        if (req.url === '/healthz') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
        if (req.method === 'GET' && req.url?.startsWith('/v1/jobs/')) {
          reads++;
          const id = req.url.slice('/v1/jobs/'.length);
          const name = held.get(id);
          if (!name) return void res.writeHead(404, { 'content-type': 'application/problem+json' }).end('{"status":404,"title":"Not found"}');
          return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id, name, state: 'queued', progress: 0, attempts: 0 }));
        }
        const { jobs } = JSON.parse(body) as { jobs: Array<{ id: string; name: string }> };
        for (const j of jobs) held.set(j.id, j.name);
        res.writeHead(409, { 'content-type': 'application/problem+json' }).end(JSON.stringify({ status: 409, title: 'Job id reused', code: 'JG_ID_CONFLICT', errors: jobs.map((j, i) => ({ path: `jobs.${i}.id`, message: `job ${j.id} exists with another payload` })) }));
      });
    });
    await new Promise<void>((r) => fetcher.listen(0, '127.0.0.1', r));
    const db = await createTestDatabase();
    const main = await startMain({ DATABASE_URL: db.url, FETCHER_SERVICE_URL: `http://127.0.0.1:${(fetcher.address() as { port: number }).port}`, FETCHER_SHARED_SECRET: TEST_SHARED_SECRET });
    try {
      const id = await enqueue(main, 'test.remote', {});
      const state = async () => (await db.pool.query(`SELECT state FROM jobgate.jobs WHERE id = $1`, [id])).rows[0].state as string;
      await waitFor('the job settled', async () => ['forwarded', 'failed'].includes(await state()), { timeoutMs: 20_000 });
      expect(await state()).toBe('forwarded');
      expect(reads).toBe(1);
      expect(main.logs.some((l) => l.msg.startsWith('the fetcher already had the job'))).toBe(true);
    } finally {
      await main.stop();
      fetcher.close();
      await db.drop();
    }
  });
});

// Main newer than its fetcher (issue 9's traceparent on the forward): a fetcher that refuses an
// option it does not know yet must not make main fail the jobs, nor hold them. A stand-in for the
// older fetcher answers 422 "Unrecognized key" at jobs.N.options, as its strict schema did, and
// takes the jobs sent without it.
import { createServer } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { startMain, TEST_JOBS_MODULE, TEST_SHARED_SECRET, type AppProcess } from '../support/apps.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { admin, enqueue, startPair, states } from '../support/gateway.ts';
import { waitFor } from '../support/wait.ts';

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
    // only forwards count: main's keep-awake may ask for the status while the job waits
    if (req.method !== 'POST' || req.url !== '/v1/jobs') {
      res.writeHead(404, { 'content-type': 'application/problem+json' }).end('{"title":"Not found","status":404}');
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
    const state = async () => (await db.pool.query(`SELECT state FROM public.main_jobs WHERE id = $1`, [id])).rows[0].state as string;
    await waitFor('the job forwarded, or (the defect) failed', async () => ['forwarded', 'failed'].includes(await state()), { timeoutMs: 30_000 });
    expect(await state()).toBe('forwarded');
    expect(posts).toBe(2);
    expect(main.logs.filter((l) => l.msg.startsWith('the fetcher is older than main')).map((l) => l.options)).toEqual([['traceparent']]);
  });
});

describe('a fetcher deployed behind main (row 48)', () => {
  it('keeps the jobs it refuses as unknown waiting, with the reason on show, and delivers them once it knows them; the others flow', async () => {
    const older = join(import.meta.dirname, '../fixtures/older-fetcher-jobs.ts');
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
      const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM public.main_attempts WHERE job_id = ANY($1::uuid[]) AND outcome = 'completed'`, [waiting]);
      expect(rows[0].n).toBe(3);
    } finally {
      await pair.stop();
      await db.drop();
    }
  });
});

/** A stand-in fetcher on port 0: `onSubmit` answers POST /v1/jobs, `onRead` GET /v1/jobs/:id. */
async function standIn(handlers: { onSubmit(jobs: Array<{ id: string; name: string; payload: unknown }>): [number, unknown]; onRead?(id: string): [number, unknown] }) {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const answer = (status: number, json: unknown) => void res.writeHead(status, { 'content-type': status >= 400 ? 'application/problem+json' : 'application/json' }).end(JSON.stringify(json));
      if (req.url === '/healthz') return answer(200, { status: 'ok' });
      if (req.method === 'GET' && req.url?.startsWith('/v1/jobs/')) return answer(...(handlers.onRead?.(req.url.slice('/v1/jobs/'.length)) ?? [404, { status: 404 }]));
      if (req.method !== 'POST' || req.url !== '/v1/jobs') return answer(404, { status: 404, title: 'Not found' });
      return answer(...handlers.onSubmit((JSON.parse(body) as { jobs: Array<{ id: string; name: string; payload: unknown }> }).jobs));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, close: () => server.close() };
}

describe('a fetcher that takes smaller requests than main sends (413)', () => {
  it('gets the batch halved until each part fits; a job too large alone fails naming the limit, the others are delivered', async () => {
    const sizes: number[] = [];
    const fetcher = await standIn({
      onSubmit(jobs) {
        sizes.push(jobs.length);
        // this one takes at most 2 jobs a request, and never the job labelled "huge"
        if (jobs.length > 2 || jobs.some((j) => (j.payload as { label?: string }).label === 'huge')) return [413, { status: 413, title: 'Payload too large' }];
        return [202, { accepted: jobs.map((j) => ({ id: j.id, duplicate: false })) }];
      },
    });
    const db = await createTestDatabase();
    // a web main takes the jobs, then a worker sends them as one batch
    const web = await startMain({ DATABASE_URL: db.url, FETCHER_SERVICE_URL: fetcher.url, FETCHER_SHARED_SECRET: TEST_SHARED_SECRET, JOBGATE_ROLE: 'web' });
    try {
      const ids = await Promise.all([1, 2, 3, 4, 5].map((i) => enqueue(web, 'test.remote', { label: i === 3 ? 'huge' : `job-${i}` })));
      const worker = await startMain({ DATABASE_URL: db.url, FETCHER_SERVICE_URL: fetcher.url, FETCHER_SHARED_SECRET: TEST_SHARED_SECRET, JOBGATE_ROLE: 'worker', PORT: '0', FETCHER_FORWARD_IN_FLIGHT: '1' });
      try {
        await waitFor('all settled', async () => {
          const s = await states(db, ids);
          return (s.forwarded ?? 0) + (s.failed ?? 0) === 5;
        }, { timeoutMs: 20_000 });
        expect(await states(db, ids)).toEqual({ forwarded: 4, failed: 1 });
        const { rows } = await db.pool.query(`SELECT error FROM public.main_jobs WHERE id = $1`, [ids[2]]);
        expect(rows[0].error).toMatchObject({ code: 'JG_BODY_TOO_LARGE', message: expect.stringMatching(/too large for the fetcher: it takes at most \d+ bytes/) });
        expect(sizes[0]).toBe(5);
      } finally {
        await worker.stop();
      }
    } finally {
      await web.stop();
      fetcher.close();
      await db.drop();
    }
  });
});

describe('a resend after a lost answer that the fetcher answers 409', () => {
  it('asks the fetcher for the job: while it cannot say, the job waits; once it shows the job, it counts as forwarded, not failed', async () => {
    // a stand-in fetcher that holds the job (its first answer was lost) and answers the resend
    // 409; its first read fails (503: busy), the next shows the job
    const held = new Map<string, string>();
    let reads = 0;
    const fetcher = await standIn({
      onSubmit(jobs) {
        for (const j of jobs) held.set(j.id, j.name);
        return [409, { status: 409, title: 'Job id reused', code: 'JG_ID_CONFLICT', errors: jobs.map((j, i) => ({ path: `jobs.${i}.id`, message: `job ${j.id} exists with another payload` })) }];
      },
      onRead(id) {
        reads++;
        if (reads === 1) return [503, { status: 503, title: 'Service unavailable' }];
        return held.has(id) ? [200, { id, name: held.get(id), state: 'queued', progress: 0, attempts: 0 }] : [404, { status: 404 }];
      },
    });
    const db = await createTestDatabase();
    const main = await startMain({ DATABASE_URL: db.url, FETCHER_SERVICE_URL: fetcher.url, FETCHER_SHARED_SECRET: TEST_SHARED_SECRET });
    try {
      const id = await enqueue(main, 'test.remote', {});
      const state = async () => (await db.pool.query(`SELECT state FROM public.main_jobs WHERE id = $1`, [id])).rows[0].state as string;
      await waitFor('the job settled', async () => ['forwarded', 'failed'].includes(await state()), { timeoutMs: 20_000 });
      expect(await state()).toBe('forwarded');
      expect(reads).toBeGreaterThanOrEqual(2);
      // (its line is written after the state it reports: read from main's output, it may come a moment later)
      await main.waitForLog('main says the fetcher already had the job', (l) => l.msg.startsWith('the fetcher already had the job'), 10_000);
    } finally {
      await main.stop();
      fetcher.close();
      await db.drop();
    }
  });
});

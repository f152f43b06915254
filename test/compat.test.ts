// Main newer than its fetcher (issue 9's traceparent on the forward): a fetcher that refuses an
// option it does not know yet must not make main fail the jobs, nor hold them. A stand-in for the
// older fetcher answers 422 "Unrecognized key" at jobs.N.options, as its strict schema did, and
// takes the jobs sent without it.
import { createServer } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMain, TEST_SHARED_SECRET, type AppProcess } from './support/apps.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { enqueue } from './support/gateway.ts';
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

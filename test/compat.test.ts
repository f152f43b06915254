// Main newer than its fetcher (issue 9's traceparent on the forward): a fetcher that refuses an
// option it does not know yet must not make main fail the jobs. A stand-in for the older fetcher
// answers 422 naming `jobs.N.options.traceparent`, as its strict schema did.
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
  req.resume();
  req.on('end', () => {
    if (req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
      return;
    }
    posts++;
    res.writeHead(422, { 'content-type': 'application/problem+json' }).end(
      JSON.stringify({ type: 'about:blank', title: 'Validation failed', status: 422, code: 'JG_REQUEST_INVALID', errors: [{ path: 'jobs.0.options', message: 'Unrecognized key: "traceparent"' }] }),
    );
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
  it('keeps the jobs when it refuses only their options, instead of failing them', async () => {
    const id = await enqueue(main, 'test.remote', {});
    const state = async () => (await db.pool.query(`SELECT state FROM jobgate.jobs WHERE id = $1`, [id])).rows[0].state as string;
    // refused and tried again, or (the defect) failed for good
    await waitFor('a second delivery attempt, or a failed job', async () => posts >= 2 || (await state()) === 'failed', { timeoutMs: 30_000 });
    expect(await state()).toMatch(/^(queued|forwarding)$/);
    expect(main.logs.some((l) => l.msg === 'fetcher refused the request itself; the batch stays in the outbox')).toBe(true);
    expect(main.logs.some((l) => l.msg === 'fetcher refused the job; marked failed')).toBe(false);
  });
});

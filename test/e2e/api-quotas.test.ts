// One API token cannot fill the disk: each token has its own request rate (a token bucket per
// process), and a job enqueued over /api/* has a ceiling on its delay and on its payload's size.
// What one token did enqueue, the admin cancels or deletes by filter in one call: set-based in the
// ledger and in pg-boss, one summary log line, none per job.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, TEST_BOSS_SCHEMA, TEST_SCHEMA, type TestDatabase } from '../support/database.ts';
import { startMain, type AppProcess, type LogLine } from '../support/apps.ts';
import { ADMIN_PASSWORD, call } from '../support/gateway.ts';
import { waitFor } from '../support/wait.ts';

const TOKEN_A = 'quota-token-a-0123456789abcdef';
const TOKEN_B = 'quota-token-b-0123456789abcdef';
const RATE = 2;
const BURST = 5;
const MAX_DELAY = 3_600;
const MAX_PAYLOAD = 1_024;
const CHILDREN = 20_000;

const bearer = (token: string) => ({ 'content-type': 'application/json', authorization: `Bearer ${token}` });
const adminHeaders = { authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`, 'content-type': 'application/json' };

let db: TestDatabase;
let main: AppProcess;

beforeAll(async () => {
  db = await createTestDatabase();
  main = await startMain({
    DATABASE_URL: db.url,
    ADMIN_PASSWORD,
    API_TOKENS: `${TOKEN_A} ${TOKEN_B}`,
    API_RATE_PER_SECOND: String(RATE),
    API_RATE_BURST: String(BURST),
    API_MAX_DELAY_SECONDS: String(MAX_DELAY),
    API_MAX_PAYLOAD_BYTES: String(MAX_PAYLOAD),
  });
});
afterAll(async () => {
  await main?.stop();
  await db?.drop();
});

/** One token's budget back to full (a test does not inherit the one before's spending). */
const refilled = () => new Promise((resolve) => setTimeout(resolve, (BURST / RATE) * 1000 + 100));

describe('per-token quotas on /api/*', () => {
  it('a token over its rate gets 429 with Retry-After; another token is unaffected', async () => {
    const burst = await Promise.all(Array.from({ length: BURST * 4 }, () => call(main.url, 'GET', '/api/jobs?limit=1', undefined, bearer(TOKEN_A))));
    const limited = burst.filter((r) => r.status === 429);
    const passed = burst.filter((r) => r.status === 200);
    expect(passed.length).toBeGreaterThanOrEqual(1);
    expect(limited.length).toBeGreaterThanOrEqual(BURST);
    expect(passed.length + limited.length).toBe(burst.length);
    const retryAfter = Number(limited[0]!.headers.get('retry-after'));
    expect(Number.isInteger(retryAfter) && retryAfter >= 1).toBe(true);
    expect(limited[0]!.headers.get('content-type')).toMatch(/application\/problem\+json/);
    expect(limited[0]!.json).toMatchObject({ status: 429, code: 'JG_TOO_MANY_REQUESTS' });

    // the other token has a bucket of its own
    expect((await call(main.url, 'GET', '/api/jobs?limit=1', undefined, bearer(TOKEN_B))).status).toBe(200);
    // and the first gets in again once it has waited
    await waitFor('token A let in again', async () => (await call(main.url, 'GET', '/api/jobs?limit=1', undefined, bearer(TOKEN_A))).status === 200, { timeoutMs: 20_000, intervalMs: 600 });
  });

  it('refuses a delaySeconds above the ceiling, naming delaySeconds', async () => {
    await refilled();
    const over = await call(main.url, 'POST', '/api/jobs/test.record', { payload: {}, delaySeconds: MAX_DELAY + 1 }, bearer(TOKEN_B));
    expect(over.status).toBe(422);
    expect(over.json.errors).toEqual([expect.objectContaining({ path: 'delaySeconds' })]);
    expect(over.json.errors[0].message).toContain(String(MAX_DELAY));
    expect((await call(main.url, 'POST', '/api/jobs/test.record', { payload: {}, delaySeconds: MAX_DELAY }, bearer(TOKEN_B))).status).toBe(202);
  });

  it('refuses a payload above the ceiling, naming payload', async () => {
    await refilled();
    const over = await call(main.url, 'POST', '/api/jobs/test.record', { payload: { label: 'x'.repeat(MAX_PAYLOAD) } }, bearer(TOKEN_B));
    expect(over.status).toBe(422);
    expect(over.json.errors).toEqual([expect.objectContaining({ path: 'payload' })]);
    expect(over.json.errors[0].message).toContain(String(MAX_PAYLOAD));
    // just under it is fine
    const under = await call(main.url, 'POST', '/api/jobs/test.record', { payload: { label: 'x'.repeat(MAX_PAYLOAD - 100) }, delaySeconds: MAX_DELAY }, bearer(TOKEN_B));
    expect(under.status).toBe(202);
  });
});

describe('the admin cancels and deletes by filter', () => {
  const bulk = (body: unknown) => call(main.url, 'POST', '/admin/api/jobs/bulk', body, adminHeaders);
  const count = async (sql: string, values: unknown[] = []) => (await db.pool.query(sql, values)).rows[0].n as number;
  const after = (from: number) => main.logs.slice(from);
  /** Lines about a job (but those of `except`): a bulk action must log none. */
  const perJob = (lines: LogLine[], except: string[] = []) => lines.filter((l) => (l.jobName === 'test.record' || l.jobId) && !except.includes(l.jobId));

  it(`cancels ${CHILDREN.toLocaleString('en')} delayed jobs in one call, in the ledger and in pg-boss, with one log line`, async () => {
    await refilled();
    // the children are written by a real handler in one statement per table, as a fan-out writes them
    const fanout = await call(main.url, 'POST', '/api/jobs/test.fanout', { payload: { children: CHILDREN, child: 'test.record', batch: false, delaySeconds: MAX_DELAY } }, bearer(TOKEN_B));
    expect(fanout.status).toBe(202);
    await waitFor(`${CHILDREN} delayed children`, async () => (await count(`SELECT count(*)::int AS n FROM ${TEST_SCHEMA}.jobs WHERE parent_id = $1 AND state = 'queued'`, [fanout.json.id])) === CHILDREN, { timeoutMs: 120_000, intervalMs: 500 });
    await main.waitForLog('the fan-out completed', (l) => l.jobId === fanout.json.id && l.msg === 'job completed');
    expect(await count(`SELECT count(*)::int AS n FROM ${TEST_BOSS_SCHEMA}.job j JOIN ${TEST_SCHEMA}.jobs l ON l.id = j.id WHERE l.parent_id = $1 AND j.state = 'created'`, [fanout.json.id])).toBe(CHILDREN);
    const from = main.logs.length;

    const started = Date.now();
    const cancelled = await bulk({ action: 'cancel', filter: { name: 'test.record', createdBefore: new Date(Date.now() + 1_000).toISOString() } });
    const tookMs = Date.now() - started;
    expect(cancelled.status, JSON.stringify(cancelled.json)).toBe(200);
    // (the two jobs of the tests before are waiting too)
    expect(cancelled.json).toMatchObject({ action: 'cancel', done: CHILDREN + 2, truncated: false });
    console.log(`bulk cancel: ${cancelled.json.done} jobs in one call in ${tookMs} ms`);
    expect(await count(`SELECT count(*)::int AS n FROM public.main_jobs WHERE name = 'test.record' AND state <> 'cancelled'`)).toBe(0);
    // pg-boss has no copy left to hand out
    expect(await count(`SELECT count(*)::int AS n FROM ${TEST_BOSS_SCHEMA}.job WHERE name = 'test.record' AND state < 'completed'`)).toBe(0);

    // Were any copy left, pg-boss would hand it out once due: make every one due now, then run a
    // job of the same queue; it is fetched after all older ones, so once it completed any left
    // over would have reached a worker (and logged a line each).
    await db.pool.query(`UPDATE ${TEST_BOSS_SCHEMA}.job SET start_after = now() WHERE name = 'test.record'`);
    const sentinel = await call(main.url, 'POST', '/api/jobs/test.record', { payload: { label: 'sentinel' } }, bearer(TOKEN_B));
    expect(sentinel.status).toBe(202);
    await waitFor('the sentinel job completed', async () => (await count(`SELECT count(*)::int AS n FROM public.main_jobs WHERE id = $1 AND state = 'completed'`, [sentinel.json.id])) === 1, { timeoutMs: 30_000, intervalMs: 200 });
    expect(await count(`SELECT count(*)::int AS n FROM public.test_events WHERE job_name = 'test.record' AND job_id <> $1`, [sentinel.json.id])).toBe(0);

    const lines = after(from);
    const summary = lines.filter((l) => l.msg === 'bulk action from the admin');
    expect(summary).toHaveLength(1);
    expect(summary[0]).toMatchObject({ action: 'cancel', done: CHILDREN + 2 });
    expect(perJob(lines, [sentinel.json.id])).toEqual([]);
  }, 240_000);

  it('deletes finished jobs by filter, from the ledger and pg-boss, with one log line', async () => {
    const from = main.logs.length;
    const deleted = await bulk({ action: 'delete', filter: { name: 'test.record', state: 'cancelled' } });
    expect(deleted.status, JSON.stringify(deleted.json)).toBe(200);
    expect(deleted.json).toMatchObject({ action: 'delete', done: CHILDREN + 2, truncated: false });
    expect(await count(`SELECT count(*)::int AS n FROM public.main_jobs WHERE name = 'test.record' AND state = 'cancelled'`)).toBe(0);
    // no queue entry is left of a ledger's job it deleted (a job recorded by its pg-boss row went with that row)
    expect(await count(`SELECT count(*)::int AS n FROM ${TEST_BOSS_SCHEMA}.job j WHERE name = 'test.record' AND NOT j.data ? 'record' AND NOT EXISTS (SELECT 1 FROM ${TEST_SCHEMA}.jobs l WHERE l.id = j.id)`)).toBe(0);
    const lines = after(from);
    expect(lines.filter((l) => l.msg === 'bulk action from the admin')).toHaveLength(1);
    expect(perJob(lines)).toEqual([]);
  });

  it('refuses a bad filter naming the field, an empty one unless `all: true`, and a delete of unfinished jobs', async () => {
    const badDate = await bulk({ action: 'cancel', filter: { createdBefore: 'yesterday' } });
    expect(badDate.status).toBe(422);
    expect(badDate.json.errors).toEqual([expect.objectContaining({ path: 'filter.createdBefore' })]);

    const empty = await bulk({ action: 'delete', filter: {} });
    expect(empty.status).toBe(422);
    expect(empty.json.errors).toEqual([expect.objectContaining({ path: 'filter' })]);

    const live = await bulk({ action: 'delete', filter: { state: 'queued' } });
    expect(live.status).toBe(422);
    expect(live.json.errors).toEqual([expect.objectContaining({ path: 'filter.state' })]);

    const everything = await bulk({ action: 'delete', filter: {}, all: true });
    expect(everything.status, JSON.stringify(everything.json)).toBe(200);
    expect(everything.json).toMatchObject({ action: 'delete', truncated: false });
    expect(await count(`SELECT count(*)::int AS n FROM public.main_jobs WHERE state IN ('completed', 'failed', 'cancelled')`)).toBe(0);
  });
});

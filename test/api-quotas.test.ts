// One API token cannot fill the disk: each token has its own request rate (a token bucket per
// process), and a job enqueued over /api/* has a ceiling on its delay and on its payload's size.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { startMain, type AppProcess } from './support/apps.ts';
import { ADMIN_PASSWORD, call } from './support/gateway.ts';
import { waitFor } from './support/wait.ts';

const TOKEN_A = 'quota-token-a-0123456789abcdef';
const TOKEN_B = 'quota-token-b-0123456789abcdef';
const RATE = 2;
const BURST = 5;
const MAX_DELAY = 3_600;
const MAX_PAYLOAD = 1_024;

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

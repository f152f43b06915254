// Every client error is a 4xx: what a client writes into a query, a path or a body is parsed into
// what PostgreSQL and the libraries accept before it reaches them. Against a real main process on a
// real PostgreSQL.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_API_TOKEN, startMain, type AppProcess } from './support/apps.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { ADMIN_PASSWORD } from './support/gateway.ts';

let db: TestDatabase;
let main: AppProcess;

beforeAll(async () => {
  db = await createTestDatabase();
  main = await startMain({ DATABASE_URL: db.url, JOBGATE_DEMO_JOBS: 'true', ADMIN_PASSWORD });
});
afterAll(async () => {
  await main?.stop();
  await db?.drop();
});

const API = { authorization: `Bearer ${TEST_API_TOKEN}` };
const ADMIN = { authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}` };
const LIST_ROUTES = [
  { path: '/api/jobs', headers: API },
  { path: '/admin/api/jobs', headers: ADMIN },
  { path: '/admin/jobs', headers: ADMIN },
];

describe('the jobs list cursor', () => {
  // the finding: an offset JavaScript's Date takes (up to ±23:59) but PostgreSQL does not (±15:59:59)
  const cursor = Buffer.from('2026-12-04 13:34:52+23:59|00000000-0000-4000-8000-000000000000').toString('base64url');

  it.each(LIST_ROUTES)('with an offset PostgreSQL refuses is a 422 naming cursor on $path', async ({ path, headers }) => {
    const res = await fetch(`${main.url}${path}?cursor=${cursor}`, { headers });
    const text = await res.text();
    expect(res.status, text.slice(0, 300)).toBe(422);
    expect(text).toContain('cursor');
  });

  it.each(LIST_ROUTES)('within PostgreSQL range pages on $path', async ({ path, headers }) => {
    for (const offset of ['+15:59', '-15:59:59', '+05:30', '-00']) {
      const at = Buffer.from(`2026-12-04 13:34:52.123456${offset}|00000000-0000-4000-8000-000000000000`).toString('base64url');
      const res = await fetch(`${main.url}${path}?cursor=${at}`, { headers });
      expect(res.status, `${offset}: ${(await res.text()).slice(0, 300)}`).toBe(200);
    }
  });
});

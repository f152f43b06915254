// The admin jobs list on a big ledger (issue 6): 1,000,000 jobs, every filter the dashboard offers,
// each answered from an index (EXPLAIN ANALYZE: no sequential scan, no full index walk) in well
// under 300 ms.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listJobsQuery, type ListFilter } from '@jobgate/queue';
import { createTestDatabase, TEST_SCHEMA, type TestDatabase } from './support/database.ts';

const ROWS = 1_000_000;
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
  const started = Date.now();
  // Mostly finished jobs, newest first by created_at; a few rare ones for the selective filters.
  await db.pool.query(`
    INSERT INTO ${TEST_SCHEMA}.jobs (id, name, route, state, payload, priority, max_attempts, run_at, created_at, finished_at)
    SELECT gen_random_uuid(),
           CASE WHEN i % 100000 = 7 THEN 'rare.job' ELSE (ARRAY['demo.heavy', 'demo.light', 'movies.fetch', 'notifications.send'])[1 + i % 4] END,
           CASE WHEN i % 2 = 0 THEN 'fetcher' ELSE 'main' END,
           CASE WHEN i % 50000 = 3 THEN 'cancelled' ELSE (ARRAY['completed', 'completed', 'completed', 'failed', 'queued', 'active'])[1 + i % 6] END,
           jsonb_build_object('barcode', (100000000000 + i)::text, 'sleepMs', i % 1000),
           0, 3, now(), now() - i * interval '1 second', CASE WHEN i % 6 < 4 THEN now() END
      FROM generate_series(1, ${ROWS}) i`);
  await db.pool.query(`ANALYZE ${TEST_SCHEMA}.jobs`);
  console.log(`jobs list: ${ROWS.toLocaleString('en')} jobs inserted and analyzed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}, 180_000);
afterAll(async () => {
  await db?.drop();
});

async function plan(filter: ListFilter): Promise<{ ms: number; nodes: string[]; rows: number }> {
  const { text, values } = listJobsQuery(TEST_SCHEMA, filter);
  const { rows } = await db.pool.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${text}`, values);
  const root = rows[0]['QUERY PLAN'][0];
  const nodes: string[] = [];
  const walk = (n: any) => {
    nodes.push(`${n['Node Type']}${n['Index Name'] ? ` ${n['Index Name']}` : ''}`);
    for (const c of n.Plans ?? []) walk(c);
  };
  walk(root.Plan);
  return { ms: root['Execution Time'], nodes, rows: root.Plan['Actual Rows'] };
}

describe(`jobs list with ${ROWS.toLocaleString('en')} jobs`, () => {
  it('answers every dashboard filter from an index in under 300 ms', async () => {
    const page2 = (await db.pool.query(`SELECT created_at::text AS at, id FROM ${TEST_SCHEMA}.jobs ORDER BY created_at DESC, id DESC OFFSET 5000 LIMIT 1`)).rows[0];
    const cases: Array<[string, ListFilter, RegExp]> = [
      ['newest', { limit: 50 }, /jobs_by_created/],
      ['state=failed', { state: 'failed', limit: 50 }, /jobs_/],
      ['state=cancelled (rare)', { state: 'cancelled', limit: 50 }, /jobs_by_state/],
      ['name=rare.job (rare)', { name: 'rare.job', limit: 50 }, /jobs_by_name/],
      ['route=fetcher', { route: 'fetcher', limit: 50 }, /jobs_by_/],
      ['payload barcode=100000500000', { payload: [{ barcode: '100000500000' }, { barcode: 100000500000 }], limit: 50 }, /jobs_payload/],
      // a combination that matches nothing: read from a state or name index, not a walk of every job
      ['state=failed, name=demo.heavy (none)', { state: 'failed', name: 'demo.heavy', limit: 50 }, /jobs_(by_state|by_name|failed_recent)/],
      ['page after 5,000 rows', { limit: 50, cursor: { createdAt: page2.at, id: page2.id } }, /jobs_by_created/],
    ];
    const lines: string[] = [];
    for (const [label, filter, index] of cases) {
      const first = await plan(filter); // warm the cache once, as a dashboard in use would have it
      const { ms, nodes, rows } = await plan(filter);
      lines.push(`${label}: ${ms.toFixed(1)} ms (cold ${first.ms.toFixed(1)}), ${rows} rows, ${nodes.join(' > ')}`);
      expect(nodes.some((n) => n.startsWith('Seq Scan')), label).toBe(false);
      expect(nodes.some((n) => index.test(n)), `${label}: ${nodes.join(' > ')}`).toBe(true);
      expect(ms, label).toBeLessThan(300);
    }
    console.log(`jobs list at ${ROWS.toLocaleString('en')} jobs:\n  ${lines.join('\n  ')}`);
  });
});

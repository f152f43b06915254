// The admin jobs list on a big ledger: 1,000,000 jobs, half of them routed (rows of the ledger),
// half run on main (records: pg-boss's rows, store/queue-records.ts), every filter the dashboard
// offers, each answered from an index (EXPLAIN ANALYZE: no sequential scan but of pg-boss's table of
// queues). Its speed (< 300 ms at 1 M) is measured by `npm run bench` (backlog scale), not asserted here.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listJobsQuery, liveCountsSql, type ListFilter } from '../../packages/jobgate/src/store/index.ts';
import { createTestDatabase, TEST_BOSS_SCHEMA, TEST_SCHEMA, type TestDatabase } from '../support/database.ts';
import { cursorDeep, fillLedger, listCases } from '../fixtures/big-ledger.ts';

const ROWS = 1_000_000;
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
  const started = Date.now();
  await fillLedger(db.pool, TEST_SCHEMA, 1, ROWS, TEST_BOSS_SCHEMA);
  console.log(`jobs list: ${ROWS.toLocaleString('en')} jobs inserted and analyzed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}, 180_000);
afterAll(async () => {
  await db?.drop();
});

async function plan(filter: ListFilter | string): Promise<{ ms: number; nodes: string[]; rows: number }> {
  const { text, values } = typeof filter === 'string' ? { text: filter, values: [] } : listJobsQuery(TEST_SCHEMA, filter, TEST_BOSS_SCHEMA);
  const { rows } = await db.pool.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${text}`, values);
  const root = rows[0]['QUERY PLAN'][0];
  const nodes: string[] = [];
  const walk = (n: any) => {
    nodes.push(`${n['Node Type']}${n['Index Name'] ? ` ${n['Index Name']}` : n['Relation Name'] ? ` ${n['Relation Name']}` : ''}`);
    for (const c of n.Plans ?? []) walk(c);
  };
  walk(root.Plan);
  return { ms: root['Execution Time'], nodes, rows: root.Plan['Actual Rows'] };
}

describe(`jobs list with ${ROWS.toLocaleString('en')} jobs`, () => {
  it('answers every dashboard filter from an index, never a sequential scan', async () => {
    const cases = listCases(await cursorDeep(db.pool, TEST_SCHEMA));
    const lines: string[] = [];
    const plans: Array<[string, string[], RegExp]> = [];
    for (const [label, filter, index] of cases) {
      const first = await plan(filter); // warm the cache once, as a dashboard in use would have it
      const { ms, nodes, rows } = await plan(filter);
      lines.push(`${label}: ${ms.toFixed(1)} ms (cold ${first.ms.toFixed(1)}), ${rows} rows, ${nodes.join(' > ')}`);
      plans.push([label, nodes, index]);
    }
    console.log(`jobs list at ${ROWS.toLocaleString('en')} jobs:\n  ${lines.join('\n  ')}`);
    for (const [label, nodes, index] of plans) {
      // (pg-boss's queue table, a row per queue, is read whole)
      expect(nodes.filter((n) => n.startsWith('Seq Scan') && n !== 'Seq Scan queue'), label).toEqual([]);
      expect(nodes.some((n) => index.test(n)), `${label}: ${nodes.join(' > ')}`).toBe(true);
    }
  });

  it("counts the overview's waiting and running jobs from indexes alone: no job's row is read", async () => {
    // as autovacuum leaves tables at rest: an index-only scan reads a page marked all-visible from the index
    await db.pool.query(`VACUUM ANALYZE ${TEST_SCHEMA}.jobs, ${TEST_BOSS_SCHEMA}.job`);
    const { ledger, records } = liveCountsSql(TEST_SCHEMA, TEST_BOSS_SCHEMA);
    const lines: string[] = [];
    for (const [label, sql] of [['ledger', ledger], ['records', records!]] as const) {
      await plan(sql);
      const { ms, nodes } = await plan(sql);
      lines.push(`${label}: ${ms.toFixed(1)} ms, ${nodes.join(' > ')}`);
      const scans = nodes.filter((n) => n.includes('Scan') && !n.startsWith('Subquery Scan'));
      expect(scans.length, `${label}: ${nodes.join(' > ')}`).toBeGreaterThan(0);
      expect(scans.every((n) => n.startsWith('Index Only Scan')), `${label}: ${nodes.join(' > ')}`).toBe(true);
    }
    console.log(`overview live counts at ${ROWS.toLocaleString('en')} jobs:\n  ${lines.join('\n  ')}`);
  });
});

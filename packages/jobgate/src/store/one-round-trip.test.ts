// insertedRow reads back the row pg-boss's own insert writes, in the shapes pg-boss writes it.
import { describe, expect, it } from 'vitest';
// (pg-boss's SQL builders: the statements its send() runs, with and without its NOTIFY)
import { insertJobs } from 'pg-boss/dist/plans.js';
import { insertedRow } from './one-round-trip.ts';

const columns = 'j.id, j.state';

describe('insertedRow', () => {
  it('wraps a plain insert, its RETURNING id widened to the row', () => {
    const sql = insertedRow(insertJobs('pgboss', { table: 'jq', name: 'q', returnId: true, notify: false }), columns);
    expect(sql).toMatch(/^WITH j AS \(\s*INSERT INTO pgboss\.jq/);
    expect(sql).toMatch(/ON CONFLICT DO NOTHING\s+RETURNING \*\s*\) SELECT j\.id, j\.state FROM j$/);
    expect(sql).not.toMatch(/RETURNING id/);
  });

  it('reads the row from the insert a notifying queue wraps, keeping its NOTIFY', () => {
    const sql = insertedRow(insertJobs('pgboss', { table: 'jq', name: 'q', returnId: true, notify: true }), columns);
    expect(sql).toMatch(/RETURNING \*\)/);
    expect(sql).toContain('pg_notify(');
    expect(sql).toMatch(/SELECT j\.id, j\.state FROM ins j WHERE \(SELECT count\(\*\) FROM notified\) >= 0/);
    expect(sql).not.toMatch(/SELECT id FROM ins/);
  });

  it('refuses an insert that does not answer the id', () => {
    expect(() => insertedRow(insertJobs('pgboss', { table: 'jq', name: 'q', returnId: false, notify: false }), columns)).toThrow(/RETURNING id/);
  });
});

import { describe, expect, it } from 'vitest';
import { assertSchemaName, encodeCursor, parseCursor } from '../internal.ts';

describe('cursor', () => {
  it('round-trips and refuses what it did not give out', () => {
    const cursor = encodeCursor('2026-11-23 06:14:23.950123+00', '4f6bef6d-d3d8-4e5c-b2ab-a34697c15910');
    expect(parseCursor(cursor)).toEqual({ createdAt: '2026-11-23 06:14:23.950123+00', id: '4f6bef6d-d3d8-4e5c-b2ab-a34697c15910' });
    expect(parseCursor('bm9wZQ')).toBeNull();
    expect(parseCursor(Buffer.from('2026-11-23|not-a-uuid').toString('base64url'))).toBeNull();
    expect(parseCursor(Buffer.from('yesterday|4f6bef6d-d3d8-4e5c-b2ab-a34697c15910').toString('base64url'))).toBeNull();
    // shapes Date.parse accepts but PostgreSQL would not (they would be a 500 there)
    for (const at of ['foo 1', '2026-02-30 10:00:00+00', '2026-11-23', '2026-11-23 25:00:00+00', '0000-01-01 00:00:00+00', '0000-06-15 10:00:00Z']) {
      expect(parseCursor(Buffer.from(`${at}|4f6bef6d-d3d8-4e5c-b2ab-a34697c15910`).toString('base64url')), at).toBeNull();
    }
    expect(parseCursor(Buffer.from('2026-11-23 06:14:23+00|------------------------------------').toString('base64url'))).toBeNull();
    expect(parseCursor(encodeCursor('2026-11-23 23:30:00-05', '4f6bef6d-d3d8-4e5c-b2ab-a34697c15910'))).not.toBeNull();
  });
});

describe('schema names', () => {
  it('let through only plain identifiers', () => {
    expect(assertSchemaName('pgboss_main')).toBe('pgboss_main');
    for (const bad of ['Main', 'a;drop', '1abc', 'a-b', '', 'x'.repeat(64)]) expect(() => assertSchemaName(bad)).toThrow(/schema name/);
  });
});

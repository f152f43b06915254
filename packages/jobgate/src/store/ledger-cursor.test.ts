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

  it('hands the query the same instant in UTC, within what PostgreSQL reads', () => {
    const id = '4f6bef6d-d3d8-4e5c-b2ab-a34697c15910';
    const at = (text: string) => parseCursor(encodeCursor(text, id))?.createdAt ?? null;
    expect(at('2026-11-23 23:30:00.000001-05')).toBe('2026-11-24 04:30:00.000001+00');
    expect(at('2026-11-24 10:00:00+05:30')).toBe('2026-11-24 04:30:00+00');
    expect(at('2026-12-04 13:34:52+15:59:59')).toBe('2026-12-03 21:34:53+00');
    expect(at('2026-12-04T13:34:52Z')).toBe('2026-12-04 13:34:52+00');
    expect(at('0001-01-01 15:00:00+15')).toBe('0001-01-01 00:00:00+00');
    expect(at('0099-03-01 00:00:00+00')).toBe('0099-03-01 00:00:00+00');
    // PostgreSQL refuses an offset beyond ±15:59:59 (22009); a cursor it gave out never has one
    for (const offset of ['+16', '-16:00', '+23:59', '-23:59', '+15:60', '+05:00:60', '+99']) expect(at(`2026-12-04 13:34:52${offset}`), offset).toBeNull();
    // out of 0001..9999 once in UTC, a leap second, 24:00, 02-29 of a common year
    for (const text of ['0001-01-01 00:00:00+01', '9999-12-31 23:00:00-02', '2026-12-31 23:59:60+00', '2026-12-31 24:00:00+00', '2026-02-29 00:00:00+00']) expect(at(text), text).toBeNull();
    expect(at('2028-02-29 00:00:00+00')).toBe('2028-02-29 00:00:00+00');
  });
});

describe('schema names', () => {
  it('let through only plain identifiers', () => {
    expect(assertSchemaName('pgboss_main')).toBe('pgboss_main');
    for (const bad of ['Main', 'a;drop', '1abc', 'a-b', '', 'x'.repeat(64)]) expect(() => assertSchemaName(bad)).toThrow(/schema name/);
  });
});

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../support/index.ts';
import type { StoredSchedule } from '../store/index.ts';
import { LATE_LIMIT_MS, startScheduler, type Occurrences } from './scheduler.ts';

// The clock is vitest's fake one (Date and timers), so "on time" is exact here; the real thing
// across processes and PostgreSQL is test/e2e/schedule-timing.test.ts.
const T0 = Date.parse('2026-01-01T00:00:00.000Z');

/** `every:<ms>`: an occurrence on each multiple of ms, strictly after `after`. */
const occurrences: Occurrences = (s, after, count) => {
  const step = Number(/^every:(\d+)$/.exec(s.schedule)?.[1]);
  if (!step) throw new Error(`cannot read ${s.schedule}`);
  return Array.from({ length: count }, (_, i) => (Math.floor(after / step) + 1 + i) * step);
};

const row = (id: string, schedule: string, changedAt: number, fields: Partial<StoredSchedule> = {}): StoredSchedule => ({
  id, name: 'job', schedule, timeZone: 'UTC', payload: {}, enabled: true, source: 'runtime', createdBy: 't', updatedBy: 't',
  createdAt: new Date(changedAt).toISOString(), updatedAt: new Date(changedAt).toISOString(), ...fields,
});

function harness(rows: StoredSchedule[], options: { skewMs?: number; rereadMs?: number; fire?: (s: StoredSchedule, dueAt: Date) => Promise<void> } = {}) {
  const fired: Array<{ id: string; dueAt: number; at: number }> = [];
  const scheduler = startScheduler({
    read: async () => rows,
    databaseNow: async () => Date.now() + (options.skewMs ?? 0),
    occurrences,
    fire: async (s, dueAt) => {
      await options.fire?.(s, dueAt);
      fired.push({ id: s.id, dueAt: dueAt.getTime(), at: Date.now() + (options.skewMs ?? 0) });
    },
    rereadMs: options.rereadMs ?? 30_000,
    logger: createLogger({ level: 'silent', name: 'test' }),
  });
  return { fired, scheduler, rows };
}

describe('startScheduler', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: T0 + 1_000 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('fires each occurrence at its time, by the database clock', async () => {
    const { fired, scheduler } = harness([row('a', 'every:10000', T0)], { skewMs: 2_500 });
    await vi.advanceTimersByTimeAsync(35_000);
    await scheduler.stop();
    // database time runs 2.5 s ahead: the occurrence at 10 s fires at 7.5 s local, 10 s database
    expect(fired).toEqual([10_000, 20_000, 30_000].map((ms) => ({ id: 'a', dueAt: T0 + ms, at: T0 + ms })));
  });

  it('never fires before its time when reading the database clock is slow', async () => {
    // the request waits 300 ms to reach the database, which answers at once: a midpoint would put
    // the database clock 150 ms ahead of what it is, and fire early
    const fired: Array<{ dueAt: number; at: number }> = [];
    const scheduler = startScheduler({
      read: async () => [row('a', 'every:1000', T0)],
      databaseNow: async () => {
        await new Promise((r) => setTimeout(r, 300));
        return Date.now();
      },
      occurrences,
      fire: async (_s, dueAt) => void fired.push({ dueAt: dueAt.getTime(), at: Date.now() }),
      rereadMs: 2_000,
      logger: createLogger({ level: 'silent', name: 'test' }),
    });
    await vi.advanceTimersByTimeAsync(10_000);
    await scheduler.stop();
    expect(fired.length).toBeGreaterThanOrEqual(8);
    for (const f of fired) expect(f.at).toBeGreaterThanOrEqual(f.dueAt);
  });

  it('owes nothing from before a schedule was made or changed, and fires a change made through changed() on time', async () => {
    const rows = [row('a', 'every:10000', T0 + 500)];
    const { fired, scheduler } = harness(rows, { rereadMs: 60_000 });
    await vi.advanceTimersByTimeAsync(4_000);
    // at 5 s: a new schedule every 2 s, then a changed one (every 3 s from now)
    rows.push(row('b', 'every:2000', T0 + 5_000));
    scheduler.changed();
    await vi.advanceTimersByTimeAsync(2_000);
    rows[0] = row('a', 'every:3000', T0 + 7_000);
    scheduler.changed();
    await vi.advanceTimersByTimeAsync(6_000);
    await scheduler.stop();
    expect(fired.map((f) => [f.id, f.dueAt - T0, f.at - f.dueAt])).toEqual([
      ['b', 6_000, 0], ['b', 8_000, 0], ['a', 9_000, 0], ['b', 10_000, 0], ['a', 12_000, 0], ['b', 12_000, 0],
    ]);
  });

  it('after downtime fires the latest occurrence missed once, if under the late limit', async () => {
    vi.setSystemTime(T0 + 45_000);
    // every 10 s since long ago: 10, 20, 30, 40 s passed with no main; the latest, 40 s, fires now
    const { fired, scheduler } = harness([row('a', 'every:10000', T0 - 3_600_000), row('b', 'every:3600000', T0 - 7_200_000)]);
    await vi.advanceTimersByTimeAsync(6_000);
    await scheduler.stop();
    // b's last occurrence (T0) is 45 s late: under the limit, fired; a: 40 s, then 50 s on time
    expect(fired.map((f) => [f.id, f.dueAt - T0, f.at - T0])).toEqual([['a', 40_000, 45_000], ['b', 0, 45_000], ['a', 50_000, 50_000]]);
    expect(LATE_LIMIT_MS).toBe(60_000);
  });

  it('skips what is past the late limit', async () => {
    vi.setSystemTime(T0 + 61_000);
    const { fired, scheduler } = harness([row('a', 'every:3600000', T0 - 7_200_000)]);
    await vi.advanceTimersByTimeAsync(1_000);
    await scheduler.stop();
    expect(fired).toEqual([]);
  });

  it('fires each occurrence once after being held up, and tries a failed firing again 1 s later', async () => {
    let calls = 0;
    const { fired, scheduler } = harness([row('a', 'every:1000', T0)], {
      fire: async () => {
        calls++;
        // the first firing (1 s, due as it starts) takes 3.5 s; the next attempt fails
        if (calls === 1) await new Promise((r) => setTimeout(r, 3_500));
        if (calls === 2) throw new Error('connection refused');
      },
    });
    await vi.advanceTimersByTimeAsync(5_500);
    await scheduler.stop();
    // 1 s done at 4.5 s, when 2, 3 and 4 s were due: 2 s fails, is tried again 1 s later, and then
    // 2, 3, 4 and 5 s fire in order; then 6 s on time (to 10 ms: an immediate next round is a 1 ms timer)
    expect(fired.map((f) => [f.dueAt - T0, Math.round((f.at - T0) / 10) * 10])).toEqual([[1_000, 4_500], [2_000, 5_500], [3_000, 5_500], [4_000, 5_500], [5_000, 5_500], [6_000, 6_000]]);
    expect(calls).toBe(7);
  });

  it('stops firing a schedule disabled or deleted, and one it cannot read fires nothing while the others go on', async () => {
    const rows = [row('a', 'every:2000', T0), row('b', 'every:2000', T0), row('c', 'not cron', T0), row('d', 'every:2000', T0)];
    const { fired, scheduler } = harness(rows);
    await vi.advanceTimersByTimeAsync(1_500);
    rows[0] = { ...rows[0]!, enabled: false, updatedAt: new Date(T0 + 2_500).toISOString() };
    rows.splice(1, 1);
    scheduler.changed();
    await vi.advanceTimersByTimeAsync(3_000);
    await scheduler.stop();
    expect(fired.map((f) => [f.id, f.dueAt - T0])).toEqual([['a', 2_000], ['b', 2_000], ['d', 2_000], ['d', 4_000]]);
  });
});

// The overview's rollup, counted in memory and written once a second (store/rollup.ts): every job
// main finishes, by any path, counts once into its minute, name and side; two processes write rows
// of their own that the overview sums; counts a failed write could not store are written by the next.
import { randomUUID } from 'node:crypto';
import type { Pool } from 'pg';
import { describe, expect, it } from 'vitest';
import { createMainLedger, createOverviewStore, createRollup, waitBucket } from '../../packages/jobgate/src/store/index.ts';
import { mainLedgerPerFile, TEST_SCHEMA } from '../support/database.ts';

const t = mainLedgerPerFile();

async function queued(name: string, route: 'main' | 'fetcher' = 'main', count = 1): Promise<string[]> {
  const ids = Array.from({ length: count }, () => randomUUID());
  for (const id of ids) await t.ledger.insertJob({ id, name, route, payload: {}, priority: 0, uniqueKey: null, maxAttempts: 1, delaySeconds: 0 });
  return ids;
}

async function started(name: string, count = 1): Promise<string[]> {
  const ids = await queued(name, 'main', count);
  for (const id of ids) expect(await t.ledger.claimAttempt({ id, attempt: 1, ranOn: 'main', concurrency: null, perSecond: null, claimSeconds: 30 })).toEqual({ outcome: 'claimed' });
  return ids;
}

/** What the rollup holds for `name`, summed over minutes and shards, per side. */
async function counted(name: string): Promise<Record<string, { completed: number; failed: number; waits: number; rows: number }>> {
  const { rows } = await t.db.pool.query(
    `SELECT side, sum(completed)::int AS completed, sum(failed)::int AS failed, sum((SELECT sum(w) FROM unnest(waits) AS w))::int AS waits, count(*)::int AS rows
       FROM ${TEST_SCHEMA}.job_minutes WHERE name = $1 GROUP BY side`,
    [name],
  );
  return Object.fromEntries(rows.map((r) => [r.side, { completed: r.completed, failed: r.failed, waits: r.waits, rows: r.rows }]));
}

const event = (jobId: string, seq: number, type: 'active' | 'completed' | 'failed', extra: Record<string, unknown> = {}) => ({ jobId, seq, type, attempt: 1, at: new Date().toISOString(), ...extra }) as never;

describe('the overview rollup', () => {
  it('puts a wait in the first bucket whose bound it is within, and a longer one in the last', () => {
    expect(waitBucket(0)).toBe(0);
    expect(waitBucket(10)).toBe(0);
    expect(waitBucket(11)).toBe(1);
    expect(waitBucket(3_600_000)).toBe(14);
    expect(waitBucket(3_600_001)).toBe(15);
  });

  it('counts each job main finishes once, by every path that finishes one, and writes nothing until it flushes', async () => {
    const name = 'rollup.paths';
    const [one] = await started(name);
    await t.ledger.finishAttempt({ id: one!, attempt: 1, outcome: 'completed', state: 'completed', error: null, peakRssMb: 1 });
    // attempts that end together are written in one statement
    const many = await started(name, 4);
    await Promise.all(many.map((id, i) => t.ledger.finishAttempt({ id, attempt: 1, outcome: i === 0 ? 'failed' : 'completed', state: i === 0 ? 'failed' : 'completed', error: i === 0 ? { code: 'JG_HANDLER_FAILED', message: 'no' } as never : null, peakRssMb: 1 })));
    // an attempt that fails with a retry to come is not a finished job
    const [retried] = await started(name);
    await t.ledger.finishAttempt({ id: retried!, attempt: 1, outcome: 'failed', state: 'queued', error: null, peakRssMb: 1 });
    // lost by the queue, failed by main (undelivered routed jobs), and a finished job failed again: none twice
    const [lost] = await started(name);
    expect(await t.ledger.failUnsettled(lost!, 'expired')).toBe(true);
    expect(await t.ledger.failUnsettled(lost!, 'expired')).toBe(false);
    const undelivered = await queued(name, 'fetcher', 2);
    await t.ledger.failJobs(undelivered, { code: 'JG_FETCHER_REFUSES', message: 'no' } as never);
    // the fetcher's events: a completion sent twice (a resent batch) counts once; progress counts never
    const [routed, routedFailed] = await queued(name, 'fetcher', 2);
    await t.ledger.applyEvents([event(routed!, 1, 'active'), event(routed!, 2, 'completed'), event(routedFailed!, 1, 'failed', { state: 'failed', error: { code: 'JG_HANDLER_FAILED', message: 'no' } })]);
    expect(await t.ledger.applyEvents([event(routed!, 2, 'completed')])).toEqual({ applied: 0, ignored: 1 });
    // the reconciler's repair of a routed job whose events were lost
    const [quiet] = await queued(name, 'fetcher');
    expect(await t.ledger.reconcileFromFetcher({ id: quiet!, attempts: 0, eventsApplied: 0 }, { state: 'completed', progress: 100, attempts: 1 })).toBe(true);
    expect(await t.ledger.reconcileFromFetcher({ id: quiet!, attempts: 0, eventsApplied: 0 }, { state: 'completed', progress: 100, attempts: 1 })).toBe(false);

    expect(await counted(name)).toEqual({});
    await t.ledger.rollup.flush();
    expect(await counted(name)).toEqual({
      main: { completed: 4, failed: 2, waits: 6, rows: 1 },
      fetcher: { completed: 2, failed: 3, waits: 5, rows: 1 },
    });
    // the overview reads them
    const series = await createOverviewStore(t.db.pool, TEST_SCHEMA).series('hour');
    expect(series.filter((s) => s.name === name).map((s) => [s.side, s.completed, s.failed])).toEqual([['fetcher', 2, 3], ['main', 4, 2]]);
  });

  it("sums the wait histograms of every process's rows into the overview's percentiles, per name and side", async () => {
    const name = 'rollup.waits';
    const histogram = (at: Record<number, number>) => Array.from({ length: 16 }, (_, i) => at[i] ?? 0);
    // two processes' rows in this minute on main (6 waits within 10 ms, 4 within 100 ms), one on the fetcher (longer than an hour)
    await t.db.pool.query(
      `INSERT INTO ${TEST_SCHEMA}.job_minutes (minute, name, side, shard, completed, waits)
       VALUES (date_trunc('minute', clock_timestamp()), $1, 'main', 1, 6, $2), (date_trunc('minute', clock_timestamp()), $1, 'main', 2, 4, $3),
              (date_trunc('minute', clock_timestamp()), $1, 'fetcher', 1, 1, $4)`,
      [name, histogram({ 0: 6 }), histogram({ 3: 4 }), histogram({ 15: 1 })],
    );
    const series = (await createOverviewStore(t.db.pool, TEST_SCHEMA).series('day')).filter((s) => s.name === name);
    expect(series.map((s) => [s.side, s.completed, s.waitP50Ms, s.waitP95Ms])).toEqual([
      ['fetcher', 1, null, null],
      ['main', 10, 10, 100],
    ]);
  });

  it('adds to its own rows at each flush; another process writes rows of its own, and the overview sums them', async () => {
    const name = 'rollup.shards';
    const other = createMainLedger(t.db.pool, TEST_SCHEMA);
    try {
      for (const by of [t.ledger, other, t.ledger]) {
        const [id] = await queued(name);
        await by.claimAttempt({ id: id!, attempt: 1, ranOn: 'main', concurrency: null, perSecond: null, claimSeconds: 30 });
        await by.finishAttempt({ id: id!, attempt: 1, outcome: 'completed', state: 'completed', error: null, peakRssMb: 1 });
        await by.rollup.flush();
      }
      // two rows in the minute (unless the minute turned between the flushes)
      const c = (await counted(name)).main!;
      expect(c.completed).toBe(3);
      expect(c.rows).toBeGreaterThanOrEqual(2);
      expect(c.rows).toBeLessThanOrEqual(3);
    } finally {
      await other.rollup.close();
    }
  });

  it('keeps what a failed write could not store, and the next flush writes it', async () => {
    let down = true;
    const flaky = { query: (...args: Parameters<Pool['query']>) => (down ? Promise.reject(new Error('connection terminated')) : (t.db.pool.query as (...a: unknown[]) => unknown)(...args)) } as unknown as Pool;
    const rollup = createRollup(flaky, TEST_SCHEMA, { intervalMs: 60_000 });
    const at = new Date();
    rollup.count([{ name: 'rollup.flaky', route: 'main', state: 'completed', run_at: at, started_at: at, finished_at: at }]);
    await expect(rollup.flush()).rejects.toThrow('connection terminated');
    rollup.count([{ name: 'rollup.flaky', route: 'main', state: 'failed', run_at: at, started_at: at, finished_at: at }]);
    down = false;
    await rollup.close();
    expect(await counted('rollup.flaky')).toEqual({ main: { completed: 1, failed: 1, waits: 2, rows: 1 } });
  });
});

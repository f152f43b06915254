// What the overview page reads: the per-minute rollup (migration 021, counted by rollup.ts) for the charts and
// the queue-wait percentiles, and the live jobs by name and side. Each read is bounded by the
// rollup's size (minutes × names × sides) or by the jobs not yet finished, never by the ledger's.
import type { Pool } from 'pg';
import { assertSchemaName } from './schema-name.ts';
import { recordPlans } from './queue-records.ts';
import { inStates, iso, LIVE_STATES, WAITING_STATES } from './ledger.ts';

export type OverviewWindow = 'hour' | 'day';

/** Bins per window: an hour in minutes, a day in quarter hours. */
export const WINDOWS: Record<OverviewWindow, { bins: number; binMinutes: number }> = {
  hour: { bins: 60, binMinutes: 1 },
  day: { bins: 96, binMinutes: 15 },
};

/** The wait buckets' upper bounds in ms, as wait_bucket_bounds() has them (the 16th: anything longer). */
export const WAIT_BOUNDS_MS = [10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 900000, 3600000] as const;

export interface NameSeries {
  name: string;
  side: 'main' | 'fetcher';
  /** Oldest bin first; each bin's start. */
  bins: Array<{ at: string; completed: number; failed: number }>;
  completed: number;
  failed: number;
  /** Queue wait (due to first start) of the jobs that finished in the window, from the histogram: each an upper bound, ms (null: longer than an hour, or none). */
  waitP50Ms: number | null;
  waitP95Ms: number | null;
}

export interface LiveCounts {
  name: string;
  side: 'main' | 'fetcher';
  queued: number;
  running: number;
}

const WAITING = new Set<string>(WAITING_STATES);

/** The wait histogram's buckets, 1-based as its arrays are: the bounds and one for anything longer. */
const WAIT_BUCKETS = Array.from({ length: WAIT_BOUNDS_MS.length + 1 }, (_, i) => i + 1);

/** The bucket bound under which `p` of the counted waits fall (null when none, or past the last bound). */
export function percentileOfBuckets(counts: readonly number[], p: number): number | null {
  const total = counts.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i]!;
    if (seen >= p * total) return WAIT_BOUNDS_MS[i] ?? null;
  }
  return null;
}

/**
 * The statements of the live counts: the ledger's live jobs per name, side and state
 * (jobs_live_by_name), and, given main's pg-boss schema, the records' per name (queue-records.ts).
 */
export function liveCountsSql(schema: string, bossSchema?: string): { ledger: string; records: string | null } {
  return {
    ledger: `SELECT name, route AS side, state, count(*)::int AS n FROM ${assertSchemaName(schema)}.jobs WHERE state IN ${inStates(LIVE_STATES)} GROUP BY name, route, state`,
    records: bossSchema ? recordPlans(bossSchema, schema).liveByName : null,
  };
}

/**
 * `bossSchema`: main's pg-boss schema, where the jobs recorded by their pg-boss row wait and run
 * (queue-records.ts): live() counts them with the ledger's.
 */
export function createOverviewStore(pool: Pool, schema: string, bossSchema?: string) {
  const liveSql = liveCountsSql(schema, bossSchema);
  const s = assertSchemaName(schema);
  return {
    /** Completed and failed per bin, and the wait histogram, per job name and side, over the window. */
    async series(window: OverviewWindow): Promise<NameSeries[]> {
      const { bins, binMinutes } = WINDOWS[window];
      // the window's first bin: the current bin's start, bins - 1 bins back (by the database's clock)
      const since = `date_bin($2 * interval '1 minute', date_trunc('minute', clock_timestamp()), timestamptz '2000-01-01') - ($1 - 1) * $2 * interval '1 minute'`;
      const [start, perBin, waits] = await Promise.all([
        pool.query(`SELECT ${since} AS since`, [bins, binMinutes]),
        pool.query(
          `SELECT name, side, date_bin($2 * interval '1 minute', minute, timestamptz '2000-01-01') AS at, sum(completed)::int AS completed, sum(failed)::int AS failed
             FROM ${s}.job_minutes WHERE minute >= ${since} GROUP BY 1, 2, 3`,
          [bins, binMinutes],
        ),
        // each bucket summed as a column of its own (unnesting the arrays made 16 rows of each minute's row to group)
        pool.query(
          `SELECT name, side, ${WAIT_BUCKETS.map((i) => `sum(waits[${i}])::int AS w${i}`).join(', ')}
             FROM ${s}.job_minutes WHERE minute >= ${since} GROUP BY 1, 2`,
          [bins, binMinutes],
        ),
      ]);
      const from = Date.parse(iso(start.rows[0].since)!);
      const byKey = new Map<string, { bins: Map<number, { completed: number; failed: number }>; waits: number[]; name: string; side: 'main' | 'fetcher' }>();
      const entry = (name: string, side: 'main' | 'fetcher') => {
        const key = `${side}\u0000${name}`;
        let e = byKey.get(key);
        if (!e) byKey.set(key, (e = { name, side, bins: new Map(), waits: new Array(16).fill(0) }));
        return e;
      };
      for (const r of perBin.rows) entry(r.name, r.side).bins.set(Date.parse(iso(r.at)!), { completed: r.completed, failed: r.failed });
      for (const r of waits.rows) entry(r.name, r.side).waits = WAIT_BUCKETS.map((i) => r[`w${i}`] ?? 0);
      return [...byKey.values()]
        .map((e) => {
          const filled = Array.from({ length: bins }, (_, k) => {
            const at = from + k * binMinutes * 60_000;
            return { at: new Date(at).toISOString(), ...(e.bins.get(at) ?? { completed: 0, failed: 0 }) };
          });
          return {
            name: e.name,
            side: e.side,
            bins: filled,
            completed: filled.reduce((a, b) => a + b.completed, 0),
            failed: filled.reduce((a, b) => a + b.failed, 0),
            waitP50Ms: percentileOfBuckets(e.waits, 0.5),
            waitP95Ms: percentileOfBuckets(e.waits, 0.95),
          };
        })
        .sort((a, b) => a.name.localeCompare(b.name) || a.side.localeCompare(b.side));
    },
    /**
     * Jobs not finished, by name and the side that runs them: waiting (wherever) and running. The
     * ledger's and the records' (a disjoint set of jobs) are counted at once, on two connections,
     * each from an index alone (jobs_live_by_name; pg-boss's live rows less the ledger jobs' own).
     */
    async live(): Promise<LiveCounts[]> {
      const [ledger, fromRecords] = await Promise.all([
        pool.query<{ name: string; side: 'main' | 'fetcher'; state: string; n: number }>(liveSql.ledger),
        liveSql.records ? pool.query<LiveCounts>(liveSql.records) : null,
      ]);
      const counts = new Map<string, LiveCounts>();
      const of = (name: string, side: 'main' | 'fetcher') => {
        const key = `${side}\u0000${name}`;
        let c = counts.get(key);
        if (!c) counts.set(key, (c = { name, side, queued: 0, running: 0 }));
        return c;
      };
      for (const r of ledger.rows) of(r.name, r.side)[WAITING.has(r.state) ? 'queued' : 'running'] += r.n;
      for (const r of fromRecords?.rows ?? []) {
        const c = of(r.name, r.side);
        c.queued += r.queued;
        c.running += r.running;
      }
      return [...counts.values()].sort((a, b) => a.name.localeCompare(b.name) || a.side.localeCompare(b.side));
    },
  };
}

export type OverviewStore = ReturnType<typeof createOverviewStore>;

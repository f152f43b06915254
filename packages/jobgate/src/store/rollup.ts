// The overview's per-minute rollup (job_minutes, migrations 021 and 025), counted in memory: the
// statements that finish main's jobs answer with what they finished, the process counts them per
// minute, job name and side, and writes its counts once a second, one upsert per minute, name and
// side, into rows keyed by its own shard (no other process writes them, so flushes never wait on
// one another). A job costs a fraction of a row write instead of one. The price: the charts lag by
// up to a second, and a process killed with -9 takes its last second of counts with it (its jobs
// are finished and shown as such; only the charts miss them). A flush whose commit is not
// acknowledged (the connection drops as it commits) is written again: counted twice, as rarely.
// The previous release's processes (a rolling deploy, a rollback) do not count what they finish.
import { randomInt } from 'node:crypto';
import type { Pool } from 'pg';
import type { Logger } from '../support/index.ts';
import { assertSchemaName } from './schema-name.ts';
import { WAIT_BOUNDS_MS } from './overview.ts';
import type { Route } from './ledger.ts';

/** A job a statement finished, as it answers (snake_case columns, or their JSON from apply_job_events_finishing). */
export interface FinishedRow {
  name: string;
  route: Route;
  state: string;
  run_at: Date | string;
  started_at: Date | string | null;
  finished_at: Date | string | null;
}

interface Cell {
  minute: string;
  name: string;
  side: Route;
  completed: number;
  failed: number;
  waits: number[];
}

const time = (v: Date | string) => (v instanceof Date ? v.getTime() : Date.parse(v));

/** The wait bucket (0–15) of a wait of `ms`: the first bound it is within, or the open-ended last. */
export function waitBucket(ms: number): number {
  const i = WAIT_BOUNDS_MS.findIndex((bound) => ms <= bound);
  return i === -1 ? WAIT_BOUNDS_MS.length : i;
}

export function createRollup(pool: Pool, schema: string, options: { intervalMs?: number; logger?: Logger } = {}) {
  const s = assertSchemaName(schema);
  // this process's rows (021's shards from a backend's pid are below 2^42; these above)
  const shard = 2 ** 42 + randomInt(0, 2 ** 47);
  let pending = new Map<string, Cell>();
  let flushing: Promise<void> = Promise.resolve();
  let failures = 0;
  let closed = false;

  /** Adds `cell`'s counts to its minute, name and side in `into` (count keys them the same way). */
  const add = (into: Map<string, Cell>, cell: Cell) => {
    const key = `${cell.minute}\u0000${cell.side}\u0000${cell.name}`;
    const had = into.get(key);
    if (!had) return void into.set(key, cell);
    had.completed += cell.completed;
    had.failed += cell.failed;
    cell.waits.forEach((n, i) => (had.waits[i]! += n));
  };

  /** The minute last counted, as its key and its ISO text (a burst of jobs finishes within one). */
  let minuteMs = NaN;
  let minuteIso = '';

  /** Counts the jobs among `rows` that completed or failed (a statement answers only the jobs it moved there). */
  function count(rows: readonly FinishedRow[]): void {
    for (const r of rows) {
      if ((r.state !== 'completed' && r.state !== 'failed') || !r.finished_at) continue;
      const finished = time(r.finished_at);
      if (finished - (finished % 60_000) !== minuteMs) {
        minuteMs = finished - (finished % 60_000);
        minuteIso = new Date(minuteMs).toISOString();
      }
      const key = `${minuteIso}\u0000${r.route}\u0000${r.name}`;
      let cell = pending.get(key);
      if (!cell) pending.set(key, (cell = { minute: minuteIso, name: r.name, side: r.route, completed: 0, failed: 0, waits: new Array<number>(WAIT_BOUNDS_MS.length + 1).fill(0) }));
      if (r.state === 'completed') cell.completed++;
      else cell.failed++;
      cell.waits[waitBucket(Math.max(0, time(r.started_at ?? r.finished_at) - time(r.run_at)))]! += 1;
    }
    // a job finished after close (an event a stopping main still took): written at once, not dropped
    if (closed && rows.length > 0) void flush().catch(() => {});
  }

  async function write(cells: Cell[]): Promise<void> {
    await pool.query(
      `INSERT INTO ${s}.job_minutes AS m (minute, name, side, shard, completed, failed, waits)
       SELECT x.minute, x.name, x.side, $2, x.completed, x.failed, x.waits
         FROM jsonb_to_recordset($1::jsonb) AS x(minute timestamptz, name text, side text, completed integer, failed integer, waits integer[])
       ON CONFLICT (minute, name, side, shard) DO UPDATE
         SET completed = m.completed + excluded.completed, failed = m.failed + excluded.failed,
             waits = ARRAY(SELECT a + b FROM unnest(m.waits, excluded.waits) AS w(a, b))`,
      [JSON.stringify(cells), shard],
    );
  }

  /** Writes what was counted since the last flush; counts it could not write wait for the next one. */
  function flush(): Promise<void> {
    // after the one before, whatever became of it
    flushing = flushing.catch(() => {}).then(async () => {
      if (pending.size === 0) return;
      const taken = pending;
      pending = new Map();
      try {
        await write([...taken.values()]);
        failures = 0;
      } catch (err) {
        for (const cell of taken.values()) add(pending, cell);
        // once, then every minute of failures: the database is down, and every other loop says so too
        if (failures++ % 60 === 0) options.logger?.warn({ err, minutes: pending.size }, 'could not write the overview rollup; kept to write again');
        throw err;
      }
    });
    return flushing;
  }

  const timer = setInterval(() => void flush().catch(() => {}), options.intervalMs ?? 1000);
  timer.unref();

  return {
    count,
    flush,
    /** Stops the timer and writes what is left (once; errors are the caller's to log). */
    async close(): Promise<void> {
      closed = true;
      clearInterval(timer);
      await flush();
    },
  };
}

export type Rollup = ReturnType<typeof createRollup>;

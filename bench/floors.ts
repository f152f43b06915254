// Design floors: raw pg-boss plus only the SQL a storage design would add, with no jobgate code
// around it, so designs are compared by what PostgreSQL and pg-boss make them cost (../shared/
// DESIGN.md §1b). Every pipeline here is timed the same way: from the first enqueue (16 in
// flight, one job per call, as performLater is called) to the last job settled in the queue.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import type { PgBoss } from '../packages/jobgate/src/store/index.ts';
import { recordBossWrite, runTogether } from '../packages/jobgate/src/store/index.ts';

/** What jobgate's queue for a job with default options looks like (define/queue-policy.ts queueOptions). */
export const RAW_QUEUE = { retryLimit: 2, retryDelay: 1, retryBackoff: true, expireInSeconds: 330, heartbeatSeconds: 30, notify: true } as const;
/** One job per fetch, four at a time, fetched back to back while there are jobs: as jobgate's workers fetch. */
export const RAW_WORK = { batchSize: 1, burstWhenReadyExceeds: 1, localConcurrency: 4, pollingIntervalSeconds: 0.5, notifyPollingIntervalSeconds: 0.5 } as const;

/** Calls `send` `count` times, 16 in flight. */
export async function sixteenInFlight(count: number, send: (n: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < count) await send(next++);
  }));
}

/** Waits until `queue` in `schema` holds no job that has not ended. */
export async function queueSettled(pool: pg.Pool, schema: string, queue: string, timeoutMs = 600_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await pool.query(`SELECT count(*)::int AS n FROM ${schema}.job WHERE name = $1 AND state < 'completed'`, [queue]);
    if (rows[0].n === 0) return;
    if (Date.now() > deadline) throw new Error(`${schema}.${queue}: ${rows[0].n} jobs still open after ${timeoutMs / 1000} s`);
    await sleep(50);
  }
}

/** jobgate's per-job facts a design would carry with pg-boss's row (route reason, trace, request id). */
const META = { r: 'definition', t: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', q: 'req-0123456789abcdef' };

/**
 * Local floors, each a pipeline of `count` no-op jobs: `raw` (pg-boss alone), `record` (pg-boss's
 * row is the job's record: jobgate's facts ride in its data, and a per-minute rollup counted in
 * memory is flushed once a second), `side row` (a narrow, immutable row per job written with
 * pg-boss's in one round trip, its history read from pg-boss's row).
 */
export function localFloors(deps: { pool: pg.Pool; raw: PgBoss; schema: string }) {
  const { pool, raw, schema } = deps;
  async function pipeline(queue: string, count: number, send: (n: number) => Promise<unknown>, onDone: () => void = () => {}): Promise<void> {
    await raw.createQueue(queue, RAW_QUEUE);
    await raw.work(queue, RAW_WORK, async () => onDone());
    await sixteenInFlight(count, send);
    await queueSettled(pool, schema, queue);
    await raw.offWork(queue, { wait: true });
  }
  return {
    raw: (count: number) => pipeline('floor.raw', count, (n) => raw.send('floor.raw', { n })),

    async record(count: number): Promise<void> {
      let completed = 0;
      const flush = async () => {
        if (completed === 0) return;
        const n = completed;
        completed = 0;
        await pool.query(
          `INSERT INTO jobgate.job_minutes (minute, name, side, shard, completed) VALUES (date_trunc('minute', now()), 'floor.record', 'main', 0, $1)
           ON CONFLICT (minute, name, side, shard) DO UPDATE SET completed = jobgate.job_minutes.completed + excluded.completed`,
          [n],
        );
      };
      const flusher = setInterval(() => void flush().catch(() => {}), 1_000);
      try {
        await pipeline('floor.record', count, (n) => raw.send('floor.record', { payload: { n }, meta: META }), () => completed++);
      } finally {
        clearInterval(flusher);
        await flush();
      }
    },

    async sideRow(count: number): Promise<void> {
      await pool.query(`
        CREATE TABLE IF NOT EXISTS bench_floor.side_jobs (
          id uuid PRIMARY KEY, name text NOT NULL, created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
          route_reason text NOT NULL, traceparent text, request_id text, parent_id uuid, batch_id uuid);
        CREATE INDEX IF NOT EXISTS side_jobs_created ON bench_floor.side_jobs (created_at DESC, id DESC);
        CREATE INDEX IF NOT EXISTS side_jobs_name ON bench_floor.side_jobs (name, created_at DESC, id DESC)`);
      await pipeline('floor.side', count, async (n) => {
        const id = randomUUID();
        const queued = await recordBossWrite((db) => raw.send('floor.side', { n }, { id, db }), id);
        await runTogether(pool, [queued, `INSERT INTO bench_floor.side_jobs (id, name, route_reason, traceparent, request_id) VALUES ('${id}', 'floor.side', 'definition', '${META.t}', '${META.q}')`]);
      });
    },
  };
}

/**
 * The routed floor: main's record of each job (a narrow row: written at enqueue, at delivery, when
 * an attempt is granted and at the end; state and times unindexed so those updates can be HOT) and
 * the fetcher's pg-boss row, with the hops as a design would batch them: forwards of up to 500
 * (pg-boss `insert` on the fetcher), claims granted for every job a fetcher worker has taken
 * since the last grant (one UPDATE), and ends reported from the fetcher's settled pg-boss rows
 * (one UPDATE at main, the reported rows deleted from the fetcher's queue). No HTTP and no
 * replay records: their cost is per request, not per job.
 */
export async function routedFloor(deps: { pool: pg.Pool; raw: PgBoss; schema: string }, count: number): Promise<void> {
  const { pool, raw, schema } = deps;
  const queue = 'floor.routed';
  await pool.query(`
    CREATE TABLE IF NOT EXISTS bench_floor.routed (
      id uuid PRIMARY KEY, name text NOT NULL, created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
      payload jsonb NOT NULL, delivered boolean NOT NULL DEFAULT false, state text NOT NULL DEFAULT 'queued',
      attempts integer NOT NULL DEFAULT 0, started_at timestamptz, finished_at timestamptz, ran_on text)
      WITH (fillfactor = 80);
    CREATE INDEX IF NOT EXISTS routed_created ON bench_floor.routed (created_at DESC, id DESC);
    CREATE INDEX IF NOT EXISTS routed_name ON bench_floor.routed (name, created_at DESC, id DESC);
    CREATE INDEX IF NOT EXISTS routed_outbox ON bench_floor.routed (created_at) WHERE NOT delivered`);
  await raw.createQueue(queue, RAW_QUEUE);
  let stopping = false;
  const loops: Array<Promise<void>> = [];
  const loop = (every: number, step: () => Promise<number>) =>
    loops.push((async () => {
      while (!stopping) if ((await step()) === 0) await sleep(every);
    })());

  // main's forwarder: up to 500 undelivered jobs, queued on the fetcher, marked delivered
  loop(20, async () => {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      const { rows } = await client.query(`SELECT id, payload FROM bench_floor.routed WHERE NOT delivered ORDER BY created_at LIMIT 500 FOR UPDATE SKIP LOCKED`);
      if (rows.length) {
        await raw.insert(queue, rows.map((r) => ({ id: r.id, data: { payload: r.payload, meta: META } })));
        await client.query(`UPDATE bench_floor.routed SET delivered = true WHERE id = ANY($1::uuid[])`, [rows.map((r) => r.id)]);
      }
      await client.query('COMMIT');
      return rows.length;
    } finally {
      client.release();
    }
  });

  // claims: the jobs fetcher workers took since the last grant, granted at main in one statement
  let waiting: Array<{ id: string; granted: () => void }> = [];
  loop(2, async () => {
    const batch = waiting;
    waiting = [];
    if (batch.length) {
      await pool.query(`UPDATE bench_floor.routed SET state = 'active', attempts = 1, started_at = clock_timestamp(), ran_on = 'fetcher' WHERE id = ANY($1::uuid[])`, [batch.map((w) => w.id)]);
      for (const w of batch) w.granted();
    }
    return batch.length;
  });
  await raw.work(queue, RAW_WORK, async ([job]) => {
    await new Promise<void>((granted) => waiting.push({ id: job!.id, granted }));
  });

  // the fetcher's reporter: settled rows of its queue are the outbox; reported, they go
  let ended = 0;
  loop(20, async () => {
    const { rows } = await pool.query(`SELECT id, state::text AS state, completed_on FROM ${schema}.job WHERE name = $1 AND state IN ('completed', 'failed') LIMIT 500`, [queue]);
    if (rows.length) {
      await pool.query(
        `UPDATE bench_floor.routed r SET state = e.state, finished_at = e.at FROM jsonb_to_recordset($1::jsonb) AS e(id uuid, state text, at timestamptz) WHERE r.id = e.id`,
        [JSON.stringify(rows.map((r) => ({ id: r.id, state: r.state, at: r.completed_on })))],
      );
      await pool.query(`DELETE FROM ${schema}.job WHERE name = $1 AND id = ANY($2::uuid[])`, [queue, rows.map((r) => r.id)]);
      ended += rows.length;
    }
    return rows.length;
  });

  try {
    await sixteenInFlight(count, (n) => pool.query(`INSERT INTO bench_floor.routed (id, name, payload) VALUES ($1, $2, $3)`, [randomUUID(), queue, { n }]));
    const deadline = Date.now() + 600_000;
    while (ended < count) {
      if (Date.now() > deadline) throw new Error(`routed floor: ${ended} of ${count} ended in 10 minutes`);
      await sleep(20);
    }
  } finally {
    stopping = true;
    await raw.offWork(queue, { wait: true });
    await Promise.allSettled(loops);
  }
}

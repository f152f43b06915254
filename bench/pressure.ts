// The pressure section (`npm run bench -- --only pressure`): jobs offered at a fixed rate, the
// same for raw pg-boss and for jobgate (half of jobgate's own measured peak for that path), through
// three kinds of trouble a busy database meets, each followed by recovery:
//   xid:     a session idle in a transaction, holding an XID (vacuum cannot remove what dies meanwhile)
//   readers: four REPEATABLE READ readers scanning the hot tables, each in one long snapshot
//   kills:   the apps' connections killed with pg_terminate_backend twice a second
// Per phase: the share of the offered jobs completed within it, pickup p50/p99 (enqueue to start),
// the dead tuples of the hot tables, and the seconds after the phase until throughput and queue
// depth are back to where they were before it. At the end every accepted job has completed once.
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';

export interface PressurePath {
  /** e.g. 'jobgate, run on main' */
  label: string;
  /** Enqueues one job tagged with `run`; resolves once it is accepted (throws if it was not). */
  enqueue(run: string, n: number): Promise<void>;
  /** Among the jobs of `run`: completed, and not yet completed (accepted ones only). */
  progress(observer: pg.Pool, run: string): Promise<{ completed: number; open: number }>;
  /** Pickup delays (ms, enqueue to start) of `run`'s jobs enqueued between `from` and `to`. */
  pickups(observer: pg.Pool, run: string, from: Date, to: Date): Promise<number[]>;
  /** The schemas whose tables' dead tuples are reported (the hottest first). */
  schemas: string[];
  /** Which connections are the apps' (killed in the kills phase): a LIKE pattern on application_name. */
  appConnections: string[];
}

export interface PhaseResult {
  phase: Phase;
  offered: number;
  completed: number;
  /** completed / offered within the phase */
  share: number;
  pickupP50Ms: number;
  pickupP99Ms: number;
  /** Seconds after the phase until a second's completions ≥ 90 % of the rate and the queue is back to its depth before (null: not within the ceiling). */
  recoverySeconds: number | null;
  deadTuples: Array<[table: string, dead: number]>;
  /** kills: the connections terminated, by application_name (what the apps had open, and so reopened, at each kill) */
  killed?: Record<string, number>;
}

export type Phase = 'xid' | 'readers' | 'kills';
export const PHASES: readonly Phase[] = ['xid', 'readers', 'kills'];

const percentile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};

/**
 * Offers jobs at `perSecond` (ticks every 20 ms) until stopped. A job that is refused (its
 * connection was killed) is offered again 50 ms later: it is the app's caller retrying. Answers
 * how many were accepted.
 */
function offer(path: PressurePath, run: string, perSecond: number) {
  let accepted = 0;
  let n = 0;
  let stopped = false;
  const inFlight = new Set<Promise<void>>();
  const started = performance.now();
  const one = async (k: number) => {
    for (;;) {
      try {
        await path.enqueue(run, k);
        accepted++;
        return;
      } catch {
        if (stopped) return;
        await sleep(50);
      }
    }
  };
  const loop = (async () => {
    while (!stopped) {
      const due = Math.floor(((performance.now() - started) / 1000) * perSecond);
      while (n < due) {
        const p = one(n++);
        inFlight.add(p);
        void p.finally(() => inFlight.delete(p));
      }
      await sleep(20);
    }
  })();
  return {
    get offered() {
      return n;
    },
    get accepted() {
      return accepted;
    },
    async stop(): Promise<void> {
      stopped = true;
      await loop;
      await Promise.all(inFlight);
    },
  };
}

/** Runs `phase`'s trouble until `signal` aborts; the kills phase answers the connections it killed, by application_name. */
async function trouble(phase: Phase, url: string, path: PressurePath, hotTables: string[], signal: AbortSignal): Promise<Record<string, number> | undefined> {
  const client = () => {
    const c = new pg.Client({ connectionString: url, application_name: 'bench-pressure' });
    c.on('error', () => {});
    return c;
  };
  const until = new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
  if (phase === 'xid') {
    const c = client();
    await c.connect();
    await c.query('BEGIN');
    await c.query('SELECT pg_current_xact_id()');
    await until;
    await c.query('ROLLBACK').catch(() => {});
    await c.end();
  } else if (phase === 'readers') {
    await Promise.all(
      Array.from({ length: 4 }, async (_, i) => {
        const c = client();
        await c.connect();
        await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
        while (!signal.aborted) {
          for (const table of hotTables) await c.query(`SELECT count(*) FROM ${table}`);
          await sleep(100 * (i + 1), undefined, { signal }).catch(() => {});
        }
        await c.query('COMMIT').catch(() => {});
        await c.end();
      }),
    );
  } else {
    const c = client();
    await c.connect();
    const patterns = path.appConnections;
    const killed: Record<string, number> = {};
    while (!signal.aborted) {
      const { rows } = await c.query(
        `SELECT application_name AS app, count(*) FILTER (WHERE pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name LIKE ANY($1::text[]) GROUP BY 1`,
        [patterns],
      );
      for (const r of rows) killed[r.app] = (killed[r.app] ?? 0) + r.n;
      await sleep(500, undefined, { signal }).catch(() => {});
    }
    await c.end();
    return killed;
  }
  return undefined;
}

/** The path's tables with the most dead tuples now (the statistics PostgreSQL keeps, a second or so behind). */
async function deadTuples(observer: pg.Pool, schemas: string[]): Promise<Array<[string, number]>> {
  const { rows } = await observer.query(
    `SELECT schemaname || '.' || relname AS t, n_dead_tup::int AS dead FROM pg_stat_user_tables
      WHERE schemaname = ANY($1::text[]) AND n_dead_tup > 0 ORDER BY n_dead_tup DESC LIMIT 4`,
    [schemas],
  );
  return rows.map((r) => [r.t as string, r.dead as number]);
}

async function hotTables(observer: pg.Pool, schemas: string[]): Promise<string[]> {
  const { rows } = await observer.query(
    `SELECT schemaname || '.' || relname AS t FROM pg_stat_user_tables
      WHERE schemaname = ANY($1::text[]) ORDER BY n_tup_ins + n_tup_upd + n_tup_del DESC LIMIT 3`,
    [schemas],
  );
  return rows.map((r) => r.t as string);
}

/**
 * One path through the three phases at `perSecond`, `phaseSeconds` each, a calm `warmSeconds`
 * first and after each phase until it recovers (at most `recoveryCeilingSeconds`). Ends by waiting
 * for every accepted job and checking that each completed.
 */
export async function pressureRun(options: {
  url: string;
  observer: pg.Pool;
  path: PressurePath;
  perSecond: number;
  phaseSeconds: Record<Phase, number>;
  warmSeconds: number;
  recoveryCeilingSeconds: number;
}): Promise<{ phases: PhaseResult[]; accepted: number; completed: number }> {
  const { observer, path, perSecond } = options;
  const run = `p${Date.now().toString(36)}`;
  const offering = offer(path, run, perSecond);
  const results: PhaseResult[] = [];
  try {
    await sleep(options.warmSeconds * 1000);
    const hot = await hotTables(observer, path.schemas);
    for (const phase of PHASES) {
      const before = await path.progress(observer, run);
      const depthBefore = before.open;
      const offeredBefore = offering.offered;
      const from = new Date();
      const stop = new AbortController();
      const troubling = trouble(phase, options.url, path, hot, stop.signal);
      await sleep(options.phaseSeconds[phase] * 1000);
      stop.abort();
      const killed = await troubling;
      const to = new Date();
      const after = await path.progress(observer, run).catch(async () => {
        await sleep(500);
        return path.progress(observer, run);
      });
      const offered = offering.offered - offeredBefore;
      const completed = after.completed - before.completed;
      const dead = await deadTuples(observer, path.schemas);
      // recovery: each second, the completions of that second and the queue's depth
      let recoverySeconds: number | null = null;
      let last = after.completed;
      const t0 = performance.now();
      while ((performance.now() - t0) / 1000 < options.recoveryCeilingSeconds) {
        await sleep(1000);
        const now = await path.progress(observer, run);
        const perSecondNow = (now.completed - last) / 1;
        last = now.completed;
        if (perSecondNow >= 0.9 * perSecond && now.open <= depthBefore + perSecond) {
          recoverySeconds = Math.round((performance.now() - t0) / 100) / 10;
          break;
        }
      }
      const pickups = await path.pickups(observer, run, from, to);
      results.push({
        phase,
        offered,
        completed,
        share: offered > 0 ? completed / offered : NaN,
        pickupP50Ms: percentile(pickups, 50),
        pickupP99Ms: percentile(pickups, 99),
        recoverySeconds,
        deadTuples: dead,
        ...(killed ? { killed } : {}),
      });
    }
  } finally {
    await offering.stop();
  }
  // every accepted job completes (none lost): wait for the queue to drain
  const deadline = Date.now() + 180_000;
  let final = await path.progress(observer, run);
  while (final.open > 0 && Date.now() < deadline) {
    await sleep(500);
    final = await path.progress(observer, run);
  }
  return { phases: results, accepted: offering.accepted, completed: final.completed };
}

/** Jobs a second a path completes when offered more than it can take: `count` jobs, 16 in flight, from the first enqueue to the last completed. */
export async function peakRate(observer: pg.Pool, path: PressurePath, count: number): Promise<number> {
  const run = `peak${Date.now().toString(36)}`;
  const started = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < count) await path.enqueue(run, next++);
  }));
  const deadline = Date.now() + 600_000;
  for (;;) {
    const { completed } = await path.progress(observer, run);
    if (completed >= count || Date.now() > deadline) return completed / ((performance.now() - started) / 1000);
    await sleep(100);
  }
}

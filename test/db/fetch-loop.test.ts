// The fetcher's queue worker (run/fetch-loop.ts): one loop per queue fetches up to its free slots
// in one statement and starts those jobs together, so their claims at main go in one request; it
// keeps pg-boss's worker guarantees (at most `concurrency` at once, heartbeats, a fetch given up
// aborts the job's signal, a permanent failure goes to the dead letters, stop() settles what ran).
import { randomUUID } from 'node:crypto';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { JobResult, JobWithMetadata } from 'pg-boss';
import { createLogger } from '../../packages/jobgate/src/support/index.ts';
import { createBoss, createFetcherLedger, ensureQueue, type PgBoss } from '../../packages/jobgate/src/store/index.ts';
import { createCatalogue, createFetcherRuntime, defineJob, remoteClaimsAt, type FetcherRuntime } from '../../packages/jobgate/src/internal.ts';
import { fetchLoop } from '../../packages/jobgate/src/run/fetch-loop.ts';
import { SystemQueue } from '../../packages/jobgate/src/define/catalogue.ts';
import { createTestDatabase, TEST_BOSS_SCHEMA, TEST_SCHEMA, type TestDatabase } from '../support/database.ts';
import { waitFor } from '../support/wait.ts';

const logger = createLogger({ level: 'error', name: 'test' });
const timings = { pollIntervalSeconds: 0.5, superviseIntervalSeconds: 1, cronIntervalSeconds: 1, heartbeatSeconds: 10 };
let db: TestDatabase;
let boss: PgBoss;
const errors: unknown[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  boss = createBoss({ connectionString: db.url, schema: TEST_BOSS_SCHEMA, poolSize: 4, timings, logger });
  await boss.start();
  await ensureQueue(boss, SystemQueue.deadLetter);
});
afterAll(async () => {
  await boss?.stop({ graceful: false });
  await db?.drop();
});

/** A queue of its own per test, holding `count` jobs. */
async function queueWith(count: number, options: object = {}): Promise<string> {
  const name = `loop.${randomUUID().slice(0, 8)}`;
  await ensureQueue(boss, name, { notify: true, heartbeatSeconds: 10, deadLetter: SystemQueue.deadLetter, ...options });
  if (count > 0) await boss.insert(name, Array.from({ length: count }, (_, n) => ({ data: { n } })));
  return name;
}

/** Longer than any test here: an idle loop fetches again only when woken (a slot freed after a full fetch, wake(), resume()). */
const NO_POLL = 120;

const states = async (name: string) =>
  Object.fromEntries((await db.pool.query(`SELECT state::text, count(*)::int AS n FROM ${TEST_BOSS_SCHEMA}.job WHERE name = $1 GROUP BY 1`, [name])).rows.map((r) => [r.state, r.n]));

describe('a fetch loop', () => {
  it('starts the jobs of one fetch in one turn of the event loop, never more than its concurrency at once, and completes them all', async () => {
    const name = await queueWith(10);
    // the turn of the event loop each job started in
    let turn = 0;
    let turning = true;
    void (async () => {
      while (turning) {
        await nextTurn();
        turn++;
      }
    })();
    const startedIn: number[] = [];
    let running = 0;
    let widest = 0;
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const loop = fetchLoop({ boss, name, concurrency: 4, pollSeconds: NO_POLL, onError: (e) => errors.push(e) }, async (job): Promise<JobResult> => {
      startedIn.push(turn);
      widest = Math.max(widest, ++running);
      // the first four are held until all four run
      if (startedIn.length <= 4) await held;
      running--;
      return { id: job.id, status: 'completed' };
    });
    try {
      await waitFor('four jobs running', () => running === 4);
      expect(new Set(startedIn.slice(0, 4)).size).toBe(1);
      release();
      await waitFor('all ten completed', async () => (await states(name)).completed === 10, { timeoutMs: 20_000 });
      expect(widest).toBe(4);
    } finally {
      turning = false;
      release();
      await loop.stop();
    }
  });

  it("gives a slot to the next job once a handler has ended, while the attempt's end is still being written; the ended job keeps its fetch until settled", async () => {
    const name = await queueWith(2);
    const started: string[] = [];
    let releaseWrite!: () => void;
    const writing = new Promise<void>((r) => (releaseWrite = r));
    const loop = fetchLoop({ boss, name, concurrency: 1, pollSeconds: NO_POLL, onError: (e) => errors.push(e) }, async (job, handlerEnded) => {
      started.push(job.id);
      handlerEnded();
      // the first job's end is written slowly (main's outbox write): the second job runs meanwhile
      if (started.length === 1) await writing;
      return { id: job.id, status: 'completed' };
    });
    try {
      await waitFor('both jobs started', () => started.length === 2, { timeoutMs: 20_000 });
      // the first is still active in pg-boss (its end not written, so not settled); the second completes
      await waitFor('the second completed', async () => (await states(name)).completed === 1, { timeoutMs: 20_000 });
      expect(await states(name)).toEqual({ active: 1, completed: 1 });
      releaseWrite();
      await waitFor('both completed', async () => (await states(name)).completed === 2, { timeoutMs: 20_000 });
    } finally {
      releaseWrite();
      await loop.stop();
    }
  });

  it('runs a gated queue (pg-boss groupConcurrency) back to back: the next job is fetched once the last is settled, not at the next poll', async () => {
    const name = await queueWith(0);
    await boss.insert(name, Array.from({ length: 3 }, (_, n) => ({ data: { n }, group: { id: 'one' } })));
    let ran = 0;
    const loop = fetchLoop({ boss, name, concurrency: 1, groupConcurrency: 1, pollSeconds: NO_POLL, onError: (e) => errors.push(e) }, async (job, handlerEnded) => {
      ran++;
      handlerEnded();
      return { id: job.id, status: 'completed' };
    });
    try {
      await waitFor('all three completed', async () => (await states(name)).completed === 3, { timeoutMs: 20_000 });
      expect(ran).toBe(3);
    } finally {
      await loop.stop();
    }
  });

  it('fails a job for good (to the dead letters) when its result says deadletter, with retries left, and keeps its retry limit', async () => {
    const name = await queueWith(0, { retryLimit: 3 });
    const marker = randomUUID();
    await boss.insert(name, [{ data: { marker } }]);
    const loop = fetchLoop({ boss, name, concurrency: 2, pollSeconds: 0.5, onError: (e) => errors.push(e) }, async (job) => ({ id: job.id, status: 'deadletter', output: { code: 'X', message: 'permanent' } }));
    try {
      await waitFor('failed for good', async () => (await states(name)).failed === 1, { timeoutMs: 20_000 });
      const { rows } = await db.pool.query(`SELECT retry_count, retry_limit, output FROM ${TEST_BOSS_SCHEMA}.job WHERE name = $1`, [name]);
      expect(rows[0]).toMatchObject({ retry_count: 0, retry_limit: 3, output: { message: 'permanent' } });
      await waitFor('in the dead letters', async () => (await db.pool.query(`SELECT 1 FROM ${TEST_BOSS_SCHEMA}.job WHERE name = $1 AND data->>'marker' = $2`, [SystemQueue.deadLetter, marker])).rowCount! > 0, { timeoutMs: 20_000 });
    } finally {
      await loop.stop();
    }
  });

  it("aborts a running job's signal once pg-boss no longer holds its fetch (here: cancelled)", async () => {
    const name = await queueWith(1);
    let aborted: unknown = null;
    let started: JobWithMetadata<unknown> | null = null;
    const loop = fetchLoop({ boss, name, concurrency: 1, pollSeconds: 0.5, onError: (e) => errors.push(e) }, async (job) => {
      started = job;
      await new Promise<void>((resolve) => job.signal.addEventListener('abort', () => resolve(), { once: true }));
      aborted = job.signal.reason;
      return { id: job.id, status: 'failed', output: { message: 'aborted' } };
    });
    try {
      const job = await waitFor('the job runs', () => started);
      await boss.cancel(name, job.id);
      // the heartbeat (every 5 s at heartbeatSeconds 10) finds it no longer active
      await waitFor('its signal aborted', () => aborted, { timeoutMs: 20_000 });
      expect(String((aborted as Error).message)).toContain('no longer active');
      expect(await states(name)).toEqual({ cancelled: 1 });
    } finally {
      await loop.stop();
    }
  });

  it("aborts a running job's signal when it outlives its expiry", async () => {
    const name = await queueWith(0);
    await boss.insert(name, [{ data: { n: 1 }, expireInSeconds: 1 }]);
    let aborted: unknown = null;
    const loop = fetchLoop({ boss, name, concurrency: 1, pollSeconds: 0.5, onError: (e) => errors.push(e) }, async (job) => {
      await new Promise<void>((resolve) => job.signal.addEventListener('abort', () => resolve(), { once: true }));
      aborted = job.signal.reason;
      return { id: job.id, status: 'failed', output: { message: 'expired' } };
    });
    try {
      await waitFor('its signal aborted', () => aborted, { timeoutMs: 20_000 });
      expect(String((aborted as Error).message)).toContain('exceeded 1s');
    } finally {
      await loop.stop();
    }
  });

  it('fetches the jobs that came while its slots were full once one frees, however many wake-ups came at once', async () => {
    const name = await queueWith(1);
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let ran = 0;
    const loop = fetchLoop({ boss, name, concurrency: 1, pollSeconds: NO_POLL, onError: (e) => errors.push(e) }, async (job) => {
      if (ran++ === 0) await held;
      return { id: job.id, status: 'completed' };
    });
    try {
      await waitFor('the first job runs', () => ran === 1);
      await boss.insert(name, [{ data: { n: 2 } }, { data: { n: 3 } }]);
      // two arrivals in one turn (two intakes, or an intake and the shared poll), its only slot busy
      loop.wake();
      loop.wake();
      await sleep(200);
      release();
      await waitFor('all three completed', async () => (await states(name)).completed === 3, { timeoutMs: 20_000 });
    } finally {
      release();
      await loop.stop();
    }
  });

  it('fetches nothing while paused; stop() waits for what runs and settles it', async () => {
    const name = await queueWith(0);
    let ran = 0;
    const loop = fetchLoop({ boss, name, concurrency: 2, pollSeconds: NO_POLL, onError: (e) => errors.push(e) }, async (job) => {
      await sleep(300);
      ran++;
      return { id: job.id, status: 'completed' };
    });
    // (its first fetch, of the empty queue, is over by then)
    await sleep(1_000);
    loop.pause();
    await boss.insert(name, [{ data: { n: 1 } }]);
    loop.wake();
    await sleep(1_500);
    expect(ran).toBe(0);
    loop.resume();
    await waitFor('it runs once resumed', async () => (await states(name)).active === 1, { timeoutMs: 20_000 });
    await loop.stop();
    expect(ran).toBe(1);
    expect(await states(name)).toEqual({ completed: 1 });
  });
});

// On the fetcher, every attempt is claimed at main first: the jobs of one fetch ask in one request.
const claimed = defineJob({ name: 'loop.claimed', runsOnFetcher: true, payload: z.strictObject({ n: z.number() }), run: async () => {} });

describe("the fetcher's runtime", () => {
  let jobs: FetcherRuntime;
  const requests: number[] = [];
  const queueErrors: unknown[] = [];
  afterAll(() => jobs?.stop(1_000));

  it('claims the jobs of one fetch at main in one request', async () => {
    const mainClient = {
      claim: async () => {
        requests.push(1);
        return { outcome: 'claimed' as const };
      },
      claimMany: async (claims: unknown[]) => {
        requests.push(claims.length);
        return claims.map(() => ({ outcome: 'claimed' as const }));
      },
    };
    const ledger = createFetcherLedger(db.pool, TEST_SCHEMA, { bossSchema: TEST_BOSS_SCHEMA });
    boss.on('error', (err) => queueErrors.push(err));
    // no poll within the test: the intake's wake-up is what starts them
    jobs = createFetcherRuntime({ pool: db.pool, boss, ledger, catalogue: createCatalogue([claimed]), logger, timings: { ...timings, pollIntervalSeconds: NO_POLL }, workerConcurrency: 4, remoteClaims: remoteClaimsAt(mainClient as never, logger) });
    await jobs.prepare();
    await jobs.start();
    // four forwarded at once, as main's delivery hands them over: one fetch, one claim request
    await jobs.accept(Array.from({ length: 4 }, (_, n) => ({ id: randomUUID(), name: claimed.name, payload: { n } })));
    await waitFor('four claimed', () => requests.reduce((a, b) => a + b, 0) === 4, { timeoutMs: 20_000 });
    expect(requests).toEqual([4]);
    await waitFor('all four completed', async () => (await states(claimed.name)).completed === 4, { timeoutMs: 20_000 });
    expect(queueErrors).toEqual([]);
  });
});

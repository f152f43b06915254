// PostgreSQL stops and restarts under a running main app; the pool runs dry (FAULTS.md rows 13, 14, 16).
// Uses a throwaway embedded PostgreSQL of its own, since the test stops it.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../packages/jobgate/src/support/index.ts';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../scripts/embedded-postgres.ts';
import { mainJobsViews } from '../support/main-jobs.ts';
import { randomUUID } from 'node:crypto';
import { parseSecrets } from '../../packages/jobgate/src/protocol/index.ts';
import { createFetcherClient } from '../../packages/jobgate/src/client/index.ts';
import { freePort, startFetcher, startMain, TEST_SHARED_SECRET, type AppProcess } from '../support/apps.ts';
import { apiHeaders } from '../support/gateway.ts';
import { waitFor } from '../support/wait.ts';
import { FETCHER_JOBS } from '../support/fetcher-jobs.ts';

const logger = createLogger({ level: 'warn', name: 'test-pg' });
let dataDir: string;
/** A free port chosen once: the cluster comes back on it after each stop, where the apps' DATABASE_URL points. */
let port: number;
let cluster: EmbeddedPostgres;
let url: string;
let pool: pg.Pool;
const apps: AppProcess[] = [];

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'jobgate-pg-faults-'));
  port = await freePort();
  cluster = await startEmbeddedPostgres({ dataDir, port, logger });
  await cluster.ensureDatabase('faults');
  url = cluster.url('faults');
  pool = new pg.Pool({ connectionString: url, max: 3 });
  pool.on('error', () => {});
  await pool.query(`CREATE TABLE public.test_events (seq bigserial PRIMARY KEY, job_id uuid NOT NULL, job_name text NOT NULL, attempt integer NOT NULL,
    event text NOT NULL, pid integer NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp(), detail jsonb)`);
  await pool.query(`CREATE TABLE public.test_effects (job_id uuid PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())`);
});
afterAll(async () => {
  await Promise.all(apps.map((a) => a.stop()));
  await pool?.end().catch(() => {});
  await cluster?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

/** `sent` and `at`: when the request left and when its answer came (Date.now()). */
interface Answer { status: number; id?: string; retryAfter?: string | null; type?: string | null; sent: number; at: number; ms: number }

async function enqueue(base: string, payload: unknown): Promise<Answer> {
  const t0 = performance.now();
  const sent = Date.now();
  try {
    const response = await fetch(`${base}/api/jobs/test.record`, { method: 'POST', headers: apiHeaders, body: JSON.stringify({ payload }) });
    const body = (await response.json()) as { id?: string };
    return { status: response.status, id: body.id, retryAfter: response.headers.get('retry-after'), type: response.headers.get('content-type'), sent, at: Date.now(), ms: performance.now() - t0 };
  } catch {
    return { status: 0, sent, at: Date.now(), ms: performance.now() - t0 };
  }
}

/** The views of every job main knows (main-jobs.ts), made in this cluster once main made its schemas. */
let views: Promise<unknown> | undefined;
const mainJobs = async () => {
  await (views ??= pool.query(mainJobsViews()));
  return 'public.main_jobs';
};
const jobState = async (id: string) => (await pool.query(`SELECT state FROM ${await mainJobs()} WHERE id = $1`, [id])).rows[0]?.state as string | undefined;

describe('PostgreSQL outage', () => {
  it('answers 503 with Retry-After while PostgreSQL is down, loses no 202, and resumes running jobs (rows 13, 14)', async () => {
    const main = await startMain({ DATABASE_URL: url });
    apps.push(main);
    const active: string[] = [];
    for (let i = 0; i < 4; i++) active.push((await enqueue(main.url, { sleepMs: 2_500, label: `active-${i}` })).id!);
    await waitFor('4 jobs active (the worker concurrency)', async () => (await Promise.all(active.map(jobState))).every((s) => s === 'active'));

    const answers: Answer[] = [];
    let loading = true;
    const load = (async () => {
      for (let n = 0; loading; n++) {
        void enqueue(main.url, { label: `load-${n}` }).then((a) => answers.push(a));
        await new Promise((r) => setTimeout(r, 20)); // 50 requests a second
      }
    })();
    await new Promise((r) => setTimeout(r, 1_000));
    await cluster.stop();
    const stoppedAt = Date.now();
    await new Promise((r) => setTimeout(r, 5_000));
    // (PostgreSQL takes connections before its start resolves: what was answered after this may be a 202)
    const restartingAt = Date.now();
    cluster = await startEmbeddedPostgres({ dataDir, port, logger });
    const restartedAt = Date.now();
    await new Promise((r) => setTimeout(r, 3_000));
    loading = false;
    await load;
    await new Promise((r) => setTimeout(r, 1_000));

    // sent once PostgreSQL was down and answered before it was started again (one sent earlier may still get its 202)
    const during = answers.filter((a) => a.sent > stoppedAt && a.at < restartingAt);
    const unavailable = answers.filter((a) => a.status === 503);
    const accepted = answers.filter((a) => a.status === 202);
    const other = answers.filter((a) => a.status !== 202 && a.status !== 503);
    const firstAfter = accepted.find((a) => a.at > restartedAt);
    expect(during.length).toBeGreaterThan(20);
    expect(during.every((a) => a.status === 503)).toBe(true);
    expect(unavailable.every((a) => a.retryAfter === '1' && a.type?.startsWith('application/problem+json'))).toBe(true);
    expect(other).toEqual([]);
    expect(firstAfter).toBeDefined();

    // Every 202 is in the ledger and runs; the jobs that were running when PostgreSQL stopped complete.
    for (const a of accepted) await waitFor(`job ${a.id} completed`, async () => (await jobState(a.id!)) === 'completed', { timeoutMs: 60_000 });
    for (const id of active) await waitFor(`active job ${id} completed`, async () => (await jobState(id)) === 'completed', { timeoutMs: 60_000 });
    expect(main.child.exitCode).toBeNull();
    const { rows } = await pool.query(`SELECT count(*)::int AS n FROM public.test_effects WHERE job_id = ANY($1)`, [active]);
    expect(rows[0].n).toBe(4);
    console.log(`rows 13/14: ${answers.length} requests, ${accepted.length} accepted (all in the ledger and completed), ${unavailable.length} answered 503 + Retry-After, 0 other; first 202 ${(firstAfter!.at - restartedAt)} ms after PostgreSQL was back; 4/4 running jobs completed; process restarts 0`);
  });
});

describe('pool exhaustion', () => {
  it('queues enqueues behind a 2-connection pool, answers within a bound, keeps every 202 (row 16)', async () => {
    const main = await startMain({ DATABASE_URL: url, DATABASE_POOL_MAX: '2' });
    apps.push(main);
    const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => enqueue(main.url, { label: `pool-${i}` })));
    const accepted = answers.filter((a) => a.status === 202);
    const unavailable = answers.filter((a) => a.status === 503);
    const latencies = answers.map((a) => a.ms).sort((x, y) => x - y);
    const p99 = latencies[Math.floor(latencies.length * 0.99) - 1]!;
    console.log(`row 16: 200 concurrent enqueues on a pool of 2: ${accepted.length} × 202, ${unavailable.length} × 503; p99 ${p99.toFixed(0)} ms, max ${latencies.at(-1)!.toFixed(0)} ms`);
    expect(accepted.length + unavailable.length).toBe(200);
    // bounded, not fast: none waits forever for a connection (the figure above is the measurement)
    expect(latencies.at(-1)!).toBeLessThan(60_000);
    const ids = accepted.map((a) => a.id!);
    const { rows } = await pool.query(`SELECT count(*)::int AS n FROM ${await mainJobs()} WHERE id = ANY($1)`, [ids]);
    expect(rows[0].n).toBe(accepted.length);
    expect(main.child.exitCode).toBeNull();
  });
});

describe('PostgreSQL restart under the fetcher (row 14)', () => {
  it('keeps the process up and completes the jobs that were running', async () => {
    const fetcher = await startFetcher({ DATABASE_URL: url });
    apps.push(fetcher);
    const client = createFetcherClient({ baseUrl: fetcher.url, keys: parseSecrets(TEST_SHARED_SECRET) });
    try {
      const ids = Array.from({ length: 4 }, () => randomUUID());
      await client.submit(ids.map((id) => ({ id, name: 'test.record-remote', payload: { sleepMs: 2_500 } })));
      const state = async (id: string) => (await pool.query(`SELECT state FROM ${FETCHER_JOBS} WHERE id = $1`, [id])).rows[0]?.state;
      await waitFor('4 active', async () => (await Promise.all(ids.map(state))).every((s) => s === 'active'));
      await cluster.stop();
      await new Promise((r) => setTimeout(r, 4_000));
      cluster = await startEmbeddedPostgres({ dataDir, port, logger });
      const back = Date.now();
      for (const id of ids) await waitFor(`${id} completed`, async () => (await state(id)) === 'completed', { timeoutMs: 60_000 });
      const { rows } = await pool.query('SELECT count(*)::int AS n FROM public.test_effects WHERE job_id = ANY($1)', [ids]);
      console.log(`row 14 (fetcher): 4/4 running jobs completed ${((Date.now() - back) / 1000).toFixed(1)} s after PostgreSQL came back; effects ${rows[0].n}; process restarts 0`);
      expect(rows[0].n).toBe(4);
      expect(fetcher.child.exitCode).toBeNull();
    } finally {
      await client.close();
    }
  });
});

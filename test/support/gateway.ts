// Both apps as real processes on one test database, with optional fault proxies on each hop:
// main → toFetcher → fetcher (forwards, wake-ups, status) and fetcher → toMain → main (events, claims).
// Ports are fixed up front, so either app can be killed and restarted at the same URL.
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { parseSecrets } from '../../packages/jobgate/src/protocol/index.ts';
import { createFetcherClient, type FetcherClient } from '../../packages/jobgate/src/client/index.ts';
import { jobStatesSql } from '../../packages/jobgate/src/store/index.ts';
import { mainAttemptsSql } from './main-jobs.ts';
import { createTestDatabase, type TestDatabase } from './database.ts';
import { waitFor } from './wait.ts';
import { freePort, startFetcher, startMain, TEST_API_TOKEN, TEST_SHARED_SECRET, type AppProcess, type SpawnExtras } from './apps.ts';
import { startFaultProxy, type FaultProxy } from './fault-proxy.ts';

export const ADMIN_PASSWORD = 'test-admin-password';
const SKEW_CLOCK = join(import.meta.dirname, 'skew-clock.ts');

export interface PairOptions {
  mainEnv?: Record<string, string>;
  fetcherEnv?: Record<string, string>;
  /** Put a fault proxy on main → fetcher. */
  proxyToFetcher?: boolean;
  /** Put a fault proxy on fetcher → main. */
  proxyToMain?: boolean;
  /** Start the fetcher now (default) or leave it down. */
  startFetcher?: boolean;
  /** How each app is run (default: this checkout's built apps; see previous-release.ts). */
  mainExtras?: SpawnExtras;
  fetcherExtras?: SpawnExtras;
}

export interface Pair {
  main: AppProcess;
  fetcher: AppProcess | null;
  toFetcher: FaultProxy | null;
  toMain: FaultProxy | null;
  startMain(env?: Record<string, string>, extras?: SpawnExtras): Promise<AppProcess>;
  /** `skewSeconds` runs the fetcher with its clock that far ahead (FAULTS.md row 22); `extras`: how (default: as the pair's options say). */
  startFetcher(env?: Record<string, string>, skewSeconds?: number, extras?: SpawnExtras): Promise<AppProcess>;
  stop(): Promise<void>;
}

export async function startPair(db: TestDatabase, options: PairOptions = {}): Promise<Pair> {
  const [mainPort, fetcherPort] = [await freePort(), await freePort()];
  const toFetcher = options.proxyToFetcher ? await startFaultProxy({ host: '127.0.0.1', port: fetcherPort }) : null;
  const toMain = options.proxyToMain ? await startFaultProxy({ host: '127.0.0.1', port: mainPort }) : null;
  const common = { DATABASE_URL: db.url, JOBGATE_DEMO_JOBS: 'true', FETCHER_SHARED_SECRET: TEST_SHARED_SECRET };
  const all: AppProcess[] = [];
  const pair: Pair = {
    main: null as unknown as AppProcess,
    fetcher: null,
    toFetcher,
    toMain,
    async startMain(env = {}, extras = options.mainExtras) {
      pair.main = await startMain({
        ...common,
        PORT: String(mainPort),
        FETCHER_SERVICE_URL: toFetcher ? toFetcher.url() : `http://127.0.0.1:${fetcherPort}`,
        FETCHER_WAKE_TIMEOUT_MS: '60000',
        ADMIN_PASSWORD,
        JOBGATE_OVERRIDE_CHECK_MS: '250',
        ...options.mainEnv,
        ...env,
      }, extras);
      all.push(pair.main);
      return pair.main;
    },
    async startFetcher(env = {}, skewSeconds = 0, extras = options.fetcherExtras) {
      pair.fetcher = await startFetcher(
        {
          ...common,
          PORT: String(fetcherPort),
          MAIN_SERVICE_URL: toMain ? toMain.url() : `http://127.0.0.1:${mainPort}`,
          ...options.fetcherEnv,
          ...env,
        },
        skewSeconds ? { nodeArgs: ['--import', SKEW_CLOCK], env: { JOBGATE_TEST_CLOCK_SKEW_SECONDS: String(skewSeconds) } } : extras,
      );
      all.push(pair.fetcher);
      return pair.fetcher;
    },
    async stop() {
      await Promise.all(all.map((a) => a.stop()));
      await toFetcher?.close();
      await toMain?.close();
    },
  };
  // Both at once: each knows the other's URL already, and neither calls the other before a job exists.
  const started = await Promise.allSettled([options.startFetcher !== false ? pair.startFetcher() : null, pair.startMain()]);
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) {
    await pair.stop();
    throw failed.reason;
  }
  return pair;
}

export const adminHeaders = { authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`, 'content-type': 'application/json' };

/** What a client of the jobs API sends: JSON and the test's API token. */
export const apiHeaders = { 'content-type': 'application/json', authorization: `Bearer ${TEST_API_TOKEN}` };

export async function call(base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = apiHeaders) {
  const response = await fetch(`${base}${path}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  const text = await response.text();
  return { status: response.status, json: (text ? JSON.parse(text) : null) as any, headers: response.headers };
}

export async function enqueue(main: AppProcess, name: string, payload: unknown): Promise<string> {
  const r = await call(main.url, 'POST', `/api/jobs/${name}`, { payload });
  if (r.status !== 202) throw new Error(`enqueue ${name} answered ${r.status}: ${JSON.stringify(r.json)}`);
  return r.json.id as string;
}

export const admin = (main: AppProcess, method: string, path: string, body?: unknown) => call(main.url, method, `/admin/api${path}`, body, adminHeaders);

/** Per job: completed executions and where they ran, from main's ledger. */
export async function completedRuns(db: TestDatabase, ids: string[]): Promise<Map<string, Array<{ ranOn: string }>>> {
  const { rows } = await db.pool.query(
    // (as a query, not the view: a database a previous release made has no view)
    `SELECT job_id, ran_on FROM (${mainAttemptsSql()}) a WHERE job_id = ANY($1::uuid[]) AND outcome = 'completed'`,
    [ids],
  );
  const runs = new Map<string, Array<{ ranOn: string }>>(ids.map((id) => [id, []]));
  for (const r of rows) runs.get(r.job_id)!.push({ ranOn: r.ran_on });
  return runs;
}

export async function states(db: TestDatabase, ids: string[]): Promise<Record<string, number>> {
  const { rows } = await db.pool.query(`SELECT state, count(*)::int AS n FROM (${jobStatesSql('jobgate', 'pgboss_main', '$1::uuid[]')}) s GROUP BY state`, [ids]);
  return Object.fromEntries(rows.map((r) => [r.state, r.n]));
}

/** Effects per job (test.remote and test.record insert one row per job id, at most). */
export async function effects(db: TestDatabase, ids: string[]): Promise<number> {
  const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM public.test_effects WHERE job_id = ANY($1::uuid[])`, [ids]);
  return rows[0].n;
}

/** Handler runs per job (every start, on either side), from the fixtures' test_events. */
export async function handlerStarts(db: TestDatabase, ids: string[]): Promise<number> {
  const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM public.test_events WHERE job_id = ANY($1::uuid[]) AND event = 'start'`, [ids]);
  return rows[0].n;
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** One database and one pair of apps for the whole file: started before its first test, stopped after its last. */
export function pairPerFile(options: PairOptions = {}) {
  const f = { db: undefined as unknown as TestDatabase, pair: undefined as unknown as Pair };
  beforeAll(async () => {
    f.db = await createTestDatabase();
    f.pair = await startPair(f.db, options);
  });
  afterAll(async () => {
    await f.pair?.stop();
    await f.db?.drop();
  });
  return f;
}

/** One database and one fetcher, with a signed client to it, for the whole file. */
export function fetcherPerFile(client: { retries?: number } = {}) {
  const f = { db: undefined as unknown as TestDatabase, fetcher: undefined as unknown as AppProcess, client: undefined as unknown as FetcherClient };
  beforeAll(async () => {
    f.db = await createTestDatabase();
    f.fetcher = await startFetcher({ DATABASE_URL: f.db.url });
    f.client = createFetcherClient({ baseUrl: f.fetcher.url, keys: parseSecrets(TEST_SHARED_SECRET), ...client });
  });
  afterAll(async () => {
    await f.client?.close();
    await f.fetcher?.stop();
    await f.db?.drop();
  });
  return f;
}

/**
 * Each test of the file gets a database of its own and at most one pair of apps on it (set
 * `t.pair`); both are gone after the test, so no test picks up another's jobs.
 */
export function databasePerTest() {
  const t = {
    db: undefined as unknown as TestDatabase,
    pair: null as Pair | null,
    /** Waits until every job of `ids` is completed in main's ledger. */
    allCompleted: (ids: string[], timeoutMs = 60_000) =>
      waitFor(`${ids.length} jobs completed`, async () => (await states(t.db, ids)).completed === ids.length, { timeoutMs, intervalMs: 250 }),
  };
  beforeEach(async () => {
    t.db = await createTestDatabase();
  });
  afterEach(async () => {
    await t.pair?.stop();
    t.pair = null;
    await t.db?.drop();
  });
  return t;
}

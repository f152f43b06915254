// movies.fetch: the demo provider on a real fetcher (memory flat in the number of pages), the TMDB
// provider in-process against msw standing in for the real API, and its `movies` table, which the
// reference apps own (apps/tables/movies.sql) and jobgate's migrations do not create.
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { http, HttpResponse } from 'msw';
import { setupServer } from 'msw/node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../packages/jobgate/src/support/index.ts';
import { parseSecrets } from '../../packages/jobgate/src/protocol/index.ts';
import { createFetcherClient } from '../../packages/jobgate/src/client/index.ts';
import { fetchMoviesJob, noFanOut, type JobContext } from '../../packages/jobgate/src/internal.ts';
import { applyAppSchema, migrate } from '../../packages/jobgate/src/store/index.ts';
import { createTestDatabase, TEST_SCHEMA, type TestDatabase } from '../support/database.ts';
import { startFetcher, startMain, TEST_SHARED_SECRET, type AppProcess } from '../support/apps.ts';
import { waitFor } from '../support/wait.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

describe('movies.fetch with the demo provider, on a real fetcher', () => {
  let fetcher: AppProcess;
  afterAll(async () => {
    await fetcher?.stop();
  });

  it('stores 50,000 movies with peak RSS within 50 MB of a 1,000-movie run', async () => {
    fetcher = await startFetcher({ DATABASE_URL: db.url });
    const client = createFetcherClient({ baseUrl: fetcher.url, keys: parseSecrets(TEST_SHARED_SECRET) });
    try {
      const run = async (maxMovies: number) => {
        const id = randomUUID();
        await client.submit([{ id, name: 'movies.fetch', payload: { provider: 'demo', batchSize: 500, maxMovies } }]);
        await waitFor(`${maxMovies} movies`, async () => (await client.getJob(id)).state === 'completed', { timeoutMs: 60_000, intervalMs: 250 });
        const job = await client.getJob(id);
        return { peak: job.executions![0]!.peakRssMb!, ms: Date.parse(job.executions![0]!.finishedAt!) - Date.parse(job.executions![0]!.startedAt), progress: job.progress };
      };
      const small = await run(1_000);
      const large = await run(50_000);
      const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM jobgate_fetcher.movies WHERE provider = 'demo'`);
      console.log(`movies.fetch demo: 1,000 movies peak ${small.peak} MB in ${small.ms} ms; 50,000 movies peak ${large.peak} MB in ${large.ms} ms (delta ${large.peak - small.peak} MB)`);
      expect(rows[0].n).toBe(50_000);
      expect(large.progress).toBe(100);
      expect(large.peak - small.peak).toBeLessThan(50);
    } finally {
      await client.close();
    }
  });
});

describe('movies.fetch with the TMDB provider (msw)', () => {
  const server = setupServer();
  beforeAll(() => server.listen({ onUnhandledFrame: 'error' }));
  afterEach(() => server.resetHandlers());
  afterAll(() => server.close());

  const job = () => fetchMoviesJob({ pool: db.pool, schema: TEST_SCHEMA, tmdbApiToken: 'tmdb-test-token' });
  function ctx(signal = new AbortController().signal) {
    const progress: number[] = [];
    const context: JobContext = {
      job: { id: randomUUID(), name: 'movies.fetch', attempt: 1, maxAttempts: 4, ranOn: 'fetcher' },
      logger: createLogger({ level: 'silent', name: 'test' }),
      signal,
      ...noFanOut('movies.fetch enqueues no children'),
      progress: async (pct) => void progress.push(Math.round(pct)),
      memory: { rssMb: () => 0, peakRssMb: () => 0 },
    };
    return { context, progress };
  }
  const page = (n: number, total: number, size = 20) =>
    HttpResponse.json({ page: n, total_pages: total, results: Array.from({ length: size }, (_, i) => ({ id: n * 1000 + i, title: `Movie ${n}-${i}`, release_date: '2020-01-01', popularity: i })) });

  it('pages through TMDB with the token and upserts every page', async () => {
    const seen: Array<{ page: string | null; auth: string | null }> = [];
    server.use(http.get('https://api.themoviedb.org/3/discover/movie', ({ request }) => {
      const url = new URL(request.url);
      seen.push({ page: url.searchParams.get('page'), auth: request.headers.get('authorization') });
      return page(Number(url.searchParams.get('page')), 3);
    }));
    const { context, progress } = ctx();
    const result = await job().run({ provider: 'tmdb', batchSize: 25, maxMovies: 1_000 }, context);
    expect(result).toEqual({ stored: 60 });
    expect(seen.map((s) => s.page)).toEqual(['1', '2', '3']);
    expect(seen.every((s) => s.auth === 'Bearer tmdb-test-token')).toBe(true);
    expect(progress.length).toBeGreaterThan(1);
    const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM ${TEST_SCHEMA}.movies WHERE provider = 'tmdb'`);
    expect(rows[0].n).toBe(60);
  });

  it('waits out a 429 with Retry-After and carries on', async () => {
    let calls = 0;
    server.use(http.get('https://api.themoviedb.org/3/discover/movie', () => (++calls === 1 ? new HttpResponse(null, { status: 429, headers: { 'retry-after': '1' } }) : page(1, 1))));
    const started = Date.now();
    const result = await job().run({ provider: 'tmdb', batchSize: 20, maxMovies: 20 }, ctx().context);
    expect(result).toEqual({ stored: 20 });
    expect(calls).toBe(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
  });

  it('retries a 5xx a few times, then fails the attempt (the job retries later)', async () => {
    let calls = 0;
    server.use(http.get('https://api.themoviedb.org/3/discover/movie', () => {
      calls++;
      return new HttpResponse('upstream down', { status: 503 });
    }));
    await expect(job().run({ provider: 'tmdb', batchSize: 20, maxMovies: 20 }, ctx().context)).rejects.toThrow('TMDB answered 503');
    expect(calls).toBe(5);
  });

  it('fails at once, without retries, on a refused token', async () => {
    let calls = 0;
    server.use(http.get('https://api.themoviedb.org/3/discover/movie', () => {
      calls++;
      return HttpResponse.json({ status_message: 'Invalid API key' }, { status: 401 });
    }));
    await expect(job().run({ provider: 'tmdb', batchSize: 20, maxMovies: 20 }, ctx().context)).rejects.toMatchObject({ code: 'JG_PERMANENT_FAILURE' });
    expect(calls).toBe(1);
  });

  it('stops when ctx.signal aborts mid-paging', async () => {
    const controller = new AbortController();
    let calls = 0;
    server.use(http.get('https://api.themoviedb.org/3/discover/movie', ({ request }) => {
      if (++calls === 2) controller.abort(new Error('shutdown'));
      return page(Number(new URL(request.url).searchParams.get('page')), 100);
    }));
    await expect(job().run({ provider: 'tmdb', batchSize: 20, maxMovies: 2_000 }, ctx(controller.signal).context)).rejects.toThrow();
    expect(calls).toBeLessThanOrEqual(3);
  });
});

describe('the movies table belongs to the reference apps, not to the library', () => {
  const APP_TABLES = join(import.meta.dirname, '../../apps/tables/movies.sql');
  let fresh: TestDatabase;
  const apps: AppProcess[] = [];
  beforeAll(async () => {
    fresh = await createTestDatabase({ empty: true });
  });
  afterAll(async () => {
    await Promise.all(apps.map((a) => a.stop()));
    await fresh?.drop();
  });
  const tableOf = async (schema: string) => (await fresh.pool.query<{ t: string | null }>(`SELECT to_regclass($1)::text AS t`, [`${schema}.movies`])).rows[0]!.t;
  const columnsOf = async (schema: string) =>
    (await fresh.pool.query<{ c: string }>(`SELECT column_name AS c FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'movies' ORDER BY ordinal_position`, [schema])).rows.map((r) => r.c);

  it('a fresh database migrated by the library alone has no movies table, and records 002 as applied all the same', async () => {
    expect(await tableOf('jobgate')).toBeNull();
    const applied = await migrate(fresh.pool, 'jobgate');
    expect(applied).toContain(2);
    expect(await tableOf('jobgate')).toBeNull();
    const { rows } = await fresh.pool.query(`SELECT version, name FROM jobgate.schema_migrations WHERE version <= 3 ORDER BY version`);
    expect(rows).toEqual([{ version: 1, name: '001_job_ledger.sql' }, { version: 2, name: '002_movies.sql' }, { version: 3, name: '003_status_indexes.sql' }]);
    // nothing in jobgate's schema is the reference apps'
    const tables = (await fresh.pool.query<{ t: string }>(`SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'jobgate'`)).rows.map((r) => r.t);
    expect(tables).toContain('jobs');
    expect(tables).not.toContain('movies');
  });

  it('the reference main and fetcher create it at boot, each in its own schema, and movies.fetch stores into it', async () => {
    const fetcher = await startFetcher({ DATABASE_URL: fresh.url });
    apps.push(fetcher);
    const main = await startMain({ DATABASE_URL: fresh.url });
    apps.push(main);
    const expected = ['provider', 'external_id', 'title', 'released_on', 'popularity', 'fetched_at'];
    expect(await columnsOf('jobgate')).toEqual(expected);
    expect(await columnsOf('jobgate_fetcher')).toEqual(expected);
    const client = createFetcherClient({ baseUrl: fetcher.url, keys: parseSecrets(TEST_SHARED_SECRET) });
    try {
      const id = randomUUID();
      await client.submit([{ id, name: 'movies.fetch', payload: { provider: 'demo', batchSize: 10, maxMovies: 25 } }]);
      await waitFor('25 movies', async () => (await client.getJob(id)).state === 'completed', { timeoutMs: 60_000, intervalMs: 250 });
    } finally {
      await client.close();
    }
    expect((await fresh.pool.query(`SELECT count(*)::int AS n FROM jobgate_fetcher.movies`)).rows[0].n).toBe(25);
  });

  it("leaves an existing deployment's movies table as it is: its rows and anything added to it", async () => {
    // a deployment from before 0.1.0: 002 created movies in jobgate's schema, and it holds data
    await migrate(fresh.pool, 'earlier');
    await fresh.pool.query(`CREATE TABLE earlier.movies (provider text NOT NULL, external_id text NOT NULL, title text NOT NULL, released_on date,
      popularity double precision, fetched_at timestamptz NOT NULL DEFAULT clock_timestamp(), PRIMARY KEY (provider, external_id))`);
    await fresh.pool.query(`ALTER TABLE earlier.movies ADD COLUMN rating int`);
    await fresh.pool.query(`INSERT INTO earlier.movies (provider, external_id, title, rating) VALUES ('tmdb', '603', 'The Matrix', 5)`);
    // the upgrade: the library's migrations (nothing left to apply), then the reference app's boot, twice
    expect(await migrate(fresh.pool, 'earlier')).toEqual([]);
    await applyAppSchema(fresh.pool, 'earlier', APP_TABLES);
    await applyAppSchema(fresh.pool, 'earlier', APP_TABLES);
    expect(await columnsOf('earlier')).toEqual(['provider', 'external_id', 'title', 'released_on', 'popularity', 'fetched_at', 'rating']);
    expect((await fresh.pool.query(`SELECT provider, external_id, title, rating FROM earlier.movies`)).rows).toEqual([{ provider: 'tmdb', external_id: '603', title: 'The Matrix', rating: 5 }]);
  });
});

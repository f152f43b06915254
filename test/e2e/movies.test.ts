// movies.fetch: the demo provider on a real fetcher (memory flat in the number of pages), and the
// TMDB provider in-process against msw standing in for the real API.
import { randomUUID } from 'node:crypto';
import { http, HttpResponse } from 'msw';
import { setupServer } from 'msw/node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../packages/jobgate/src/support/index.ts';
import { parseSecrets } from '../../packages/jobgate/src/protocol/index.ts';
import { createFetcherClient } from '../../packages/jobgate/src/client/index.ts';
import { fetchMoviesJob, noFanOut, type JobContext } from '../../packages/jobgate/src/internal.ts';
import { createTestDatabase, TEST_SCHEMA, type TestDatabase } from '../support/database.ts';
import { startFetcher, TEST_SHARED_SECRET, type AppProcess } from '../support/apps.ts';
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
  }, 30_000);

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

import { setTimeout as sleep } from 'node:timers/promises';
import pRetry, { AbortError } from 'p-retry';
import { z } from 'zod';
import type { Pool } from 'pg';
import { PermanentJobError } from '../support/index.ts';
import { assertSchemaName } from '../store/index.ts';
import { defineJob } from '../define/define-job.ts';

export interface Movie {
  externalId: string;
  title: string;
  releasedOn: string | null;
  popularity: number | null;
}

const TMDB_PAGE_SIZE = 20;
const TMDB_MAX_PAGE = 500; // the API refuses pages past 500

/** The demo provider: deterministic movies made up locally, a page at a time. */
function demoPage(offset: number, size: number): Movie[] {
  return Array.from({ length: size }, (_, i) => {
    const n = offset + i + 1;
    return { externalId: `demo-${n}`, title: `Demo Movie ${n}`, releasedOn: `${1950 + (n % 75)}-01-01`, popularity: (n * 7919) % 1000 };
  });
}

const TmdbPage = z.object({
  page: z.number(),
  total_pages: z.number(),
  results: z.array(z.object({ id: z.number(), title: z.string(), release_date: z.string().optional(), popularity: z.number().optional() })),
});

/** A TMDB answer worth trying again: throttled (429) or a server error. */
class TmdbRetryable extends Error {
  readonly retryAfterMs: number | undefined;
  constructor(message: string, retryAfterMs?: number) {
    super(message);
    this.name = 'TmdbRetryable';
    this.retryAfterMs = retryAfterMs;
  }
}

const MAX_TMDB_WAIT_MS = 30_000;

async function tmdbPageOnce(page: number, token: string, signal: AbortSignal): Promise<{ movies: Movie[]; totalPages: number }> {
  const response = await fetch(`https://api.themoviedb.org/3/discover/movie?sort_by=popularity.desc&page=${page}`, {
    headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
    signal,
  });
  if (response.status === 401 || response.status === 403) throw new AbortError(new PermanentJobError(`TMDB refused the token (${response.status})`));
  if (response.status === 429 || response.status >= 500) {
    const retryAfter = Number(response.headers.get('retry-after'));
    throw new TmdbRetryable(`TMDB answered ${response.status}`, Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : undefined);
  }
  if (!response.ok) throw new AbortError(new PermanentJobError(`TMDB answered ${response.status}`));
  const body = TmdbPage.parse(await response.json());
  return {
    totalPages: Math.min(body.total_pages, TMDB_MAX_PAGE),
    movies: body.results.map((m) => ({ externalId: String(m.id), title: m.title, releasedOn: m.release_date || null, popularity: m.popularity ?? null })),
  };
}

/** One page, retried on 429 and 5xx (honouring Retry-After, up to 30 s) before the job's own retry takes over. */
function tmdbPage(page: number, token: string, signal: AbortSignal, onRetry: (err: Error) => void) {
  return pRetry(() => tmdbPageOnce(page, token, signal), {
    retries: 4,
    minTimeout: 500,
    maxTimeout: 8_000,
    signal,
    shouldRetry: ({ error }) => error instanceof TmdbRetryable || (error instanceof TypeError && !signal.aborted),
    onFailedAttempt: async ({ error }) => {
      onRetry(error);
      const wait = (error as TmdbRetryable).retryAfterMs;
      if (wait) await sleep(Math.min(wait, MAX_TMDB_WAIT_MS), undefined, { signal });
    },
  });
}

/**
 * Pages through a movie provider and upserts in batches of `batchSize`, so memory stays bounded by
 * one batch whatever the total.
 */
export function fetchMoviesJob(deps: { pool: Pool; schema: string; tmdbApiToken?: string }) {
  const upsert = `
    INSERT INTO ${assertSchemaName(deps.schema)}.movies (provider, external_id, title, released_on, popularity)
    SELECT $1, * FROM unnest($2::text[], $3::text[], $4::date[], $5::float8[])
    ON CONFLICT (provider, external_id) DO UPDATE
      SET title = excluded.title, released_on = excluded.released_on, popularity = excluded.popularity, fetched_at = clock_timestamp()`;
  return defineJob({
    name: 'movies.fetch',
    payload: z.strictObject({
      provider: z.enum(['demo', 'tmdb']),
      batchSize: z.number().int().min(1).max(500),
      maxMovies: z.number().int().min(1).max(10_000_000).default(1_000),
    }),
    runsOnFetcher: true,
    retry: { limit: 3, delaySeconds: 60, backoff: true },
    timeoutSeconds: 900,
    unique: true,
    concurrency: 2,
    rateLimit: { perSecond: 2 },
    async run({ provider, batchSize, maxMovies }, ctx) {
      if (provider === 'tmdb' && !deps.tmdbApiToken) throw new PermanentJobError('TMDB_API_TOKEN is not set');
      let stored = 0;
      let buffer: Movie[] = [];
      const flush = async () => {
        if (buffer.length === 0) return;
        await deps.pool.query(upsert, [provider, buffer.map((m) => m.externalId), buffer.map((m) => m.title), buffer.map((m) => m.releasedOn), buffer.map((m) => m.popularity)]);
        stored += buffer.length;
        buffer = [];
        await ctx.progress((stored / maxMovies) * 100, `${stored} of ${maxMovies} movies`);
      };
      let page = 1;
      let totalPages = Infinity;
      while (stored + buffer.length < maxMovies && page <= totalPages) {
        ctx.signal.throwIfAborted();
        const want = maxMovies - stored - buffer.length;
        let movies: Movie[];
        if (provider === 'demo') {
          movies = demoPage(stored + buffer.length, Math.min(batchSize, want));
        } else {
          const result = await tmdbPage(page, deps.tmdbApiToken!, ctx.signal, (err) => ctx.logger.warn({ err, page }, 'TMDB page failed; retrying'));
          totalPages = result.totalPages;
          movies = result.movies.slice(0, want);
          if (movies.length < TMDB_PAGE_SIZE && movies.length < want) totalPages = page;
        }
        page++;
        buffer.push(...movies);
        if (buffer.length >= batchSize || stored + buffer.length >= maxMovies) await flush();
        if (movies.length === 0) break;
      }
      await flush();
      ctx.logger.info({ provider, stored, peakRssMb: ctx.memory.peakRssMb() }, 'movies fetched');
      return { stored };
    },
  });
}

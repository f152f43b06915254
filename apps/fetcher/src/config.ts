import type pg from 'pg';
import { z } from 'zod';
import type { FetcherServiceOptions } from 'jobgate';
import { loadConfig, parseSecrets, serviceEnvShape, referenceJobs, commonOptionsFromEnv, timingsOf, type Logger } from 'jobgate/internal';

export { ConfigError } from 'jobgate/internal';

/** The reference apps' own tables (movies.fetch's `movies`), applied in JOBGATE_SCHEMA at boot. From src/ and dist/ alike. */
export const APP_TABLES = new URL('../../tables/movies.sql', import.meta.url);

/** Every environment variable the fetcher reads; `main.ts` passes `process.env` in. */
export const FetcherEnv = z.object({
  ...serviceEnvShape({ port: 3001, schema: 'jobgate_fetcher', bossSchema: 'pgboss_fetcher' }),
  FETCHER_SHARED_SECRET: z.string().superRefine((value, ctx) => {
    try {
      parseSecrets(value);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
    }
  }),
  MAIN_SERVICE_URL: z.url({ protocol: /^https?$/ }).optional(),
  /** Refuse main's requests without the header signature (on once every main runs a version that sends it). */
  JOBGATE_REQUIRE_HEADER_SIGNATURE: z.stringbool().default(false),
  /** Job events main did not take are sent again with backoff, at most this far apart. */
  FETCHER_EVENTS_RETRY_MAX_MS: z.coerce.number().int().min(100).max(600_000).default(30_000),
  /** How often the fetcher prunes its finished jobs older than JOBGATE_RETENTION_DAYS. */
  FETCHER_PRUNE_INTERVAL_MS: z.coerce.number().int().min(100).max(86_400_000).default(3_600_000),
  FETCHER_MEMORY_LIMIT_MB: z.coerce.number().int().min(64).max(1_048_576).optional(),
  /** Share of the limit above which no new job starts. */
  FETCHER_MEMORY_SOFT_RATIO: z.coerce.number().gt(0).lt(1).default(0.8),
  /** Share of the limit above which the fetcher drains and exits for a clean restart. */
  FETCHER_MEMORY_HARD_RATIO: z.coerce.number().gt(0).lt(1).default(0.95),
}).refine((c) => c.FETCHER_MEMORY_SOFT_RATIO < c.FETCHER_MEMORY_HARD_RATIO, { path: ['FETCHER_MEMORY_SOFT_RATIO'], message: 'must be below FETCHER_MEMORY_HARD_RATIO' });

export type FetcherConfig = Readonly<z.output<typeof FetcherEnv>>;

export function loadFetcherConfig(env: Record<string, string | undefined>): FetcherConfig {
  // without MAIN_SERVICE_URL no event reaches main and no attempt is claimed there
  return loadConfig(FetcherEnv, env, { requiredInProduction: ['MAIN_SERVICE_URL'] });
}

/** The environment as createFetcher's options. `pool`: the reference app's own, shared with its jobs (movies.fetch). */
export function fetcherOptions(config: FetcherConfig, deps: { logger: Logger; pool: pg.Pool; onMemoryHardLimit: () => void }): FetcherServiceOptions {
  return {
    ...commonOptionsFromEnv(config),
    pool: deps.pool,
    jobs: referenceJobs(config, deps.pool),
    main: { ...(config.MAIN_SERVICE_URL ? { url: config.MAIN_SERVICE_URL } : {}), secret: config.FETCHER_SHARED_SECRET, eventsRetryMaxMs: config.FETCHER_EVENTS_RETRY_MAX_MS, requireHeaderSignature: config.JOBGATE_REQUIRE_HEADER_SIGNATURE },
    memory: { ...(config.FETCHER_MEMORY_LIMIT_MB ? { limitMb: config.FETCHER_MEMORY_LIMIT_MB } : {}), softRatio: config.FETCHER_MEMORY_SOFT_RATIO, hardRatio: config.FETCHER_MEMORY_HARD_RATIO },
    onMemoryHardLimit: deps.onMemoryHardLimit,
    pruneIntervalMs: config.FETCHER_PRUNE_INTERVAL_MS,
    logger: deps.logger,
  };
}

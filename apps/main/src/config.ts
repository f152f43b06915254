import { z } from 'zod';
import type pg from 'pg';
import type { MainOptions } from 'jobgate';
import { cleanupJob, commonOptionsFromEnv, loadConfig, parseSecrets, referenceJobs, serviceEnvShape, serviceOptionsOf, type Logger, type ServiceOptions } from 'jobgate/internal';

export { ConfigError } from 'jobgate/internal';

/**
 * The reference apps' own tables (movies.fetch's `movies`), applied in JOBGATE_SCHEMA at boot and
 * by `jobgate migrate`: jobgate's migrations create only jobgate's tables. From src/ and dist/ alike.
 */
export const APP_TABLES = new URL('../../tables/movies.sql', import.meta.url);

/** Every environment variable the main app reads; `main.ts` passes `process.env` in. */
export const MainEnv = z
  .object({
    ...serviceEnvShape({ port: 3000, schema: 'jobgate', bossSchema: 'pgboss_main' }),
    /**
     * all: one process does everything. web: HTTP and enqueueing, no handlers. worker: handlers,
     * the forwarder, keep-awake, cron, the reconciler and the override loop; HTTP only /healthz.
     */
    JOBGATE_ROLE: z.enum(['all', 'web', 'worker']).default('all'),
    /** Run only these jobs' handlers (comma-separated names; `jobgate work --queues`); empty: all. */
    JOBGATE_QUEUES: z
      .string()
      .default('')
      .transform((s) => s.split(',').map((q) => q.trim()).filter(Boolean)),
    /** Where runsOnFetcher jobs go; unset, they wait in the outbox. */
    FETCHER_SERVICE_URL: z.url({ protocol: /^https?$/ }).optional(),
    FETCHER_SHARED_SECRET: z
      .string()
      .superRefine((value, ctx) => {
        try {
          parseSecrets(value);
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: (err as Error).message });
        }
      })
      .optional(),
    /** While routed jobs are unfinished, ping the fetcher this often so it does not fall asleep. */
    FETCHER_KEEP_AWAKE_INTERVAL_MS: z.coerce.number().int().min(100).max(3_600_000).default(300_000),
    /** A routed job the fetcher has said nothing about for this long is asked about (lost events). */
    FETCHER_RECONCILE_AFTER_SECONDS: z.coerce.number().int().min(1).max(86_400).default(300),
    /**
     * Bearer tokens for /api/* (space-separated, newest first; any is accepted, so they rotate like
     * FETCHER_SHARED_SECRET). Unset, only the admin's credentials open /api/*.
     */
    API_TOKENS: z
      .string()
      .transform((s) => s.split(/\s+/).filter(Boolean))
      .pipe(z.array(z.string().min(16, 'each token at least 16 characters').max(500)).min(1))
      .optional(),
    /**
     * Bearer tokens (space-separated) that open the admin API (/admin/api/*) as well as /api/*, for
     * scripts: no cookie, no CSRF token. Each its own request quota on /api/*, as API_TOKENS have.
     */
    ADMIN_API_TOKENS: z
      .string()
      .transform((s) => s.split(/\s+/).filter(Boolean))
      .pipe(z.array(z.string().min(16, 'each token at least 16 characters').max(500)).min(1))
      .optional(),
    /**
     * Each API token's requests a second to /api/* in each main process, and how many it may make
     * at once after being idle; over it, 429 with Retry-After (the admin's credentials on /api/*
     * share one bucket of the same size).
     */
    API_RATE_PER_SECOND: z.coerce.number().positive().max(1_000_000).default(50),
    API_RATE_BURST: z.coerce.number().int().min(1).max(1_000_000).default(100),
    /** The longest delaySeconds and the largest payload (bytes of its JSON) POST /api/jobs/:name takes. */
    API_MAX_DELAY_SECONDS: z.coerce.number().int().min(0).max(31_536_000).default(2_592_000),
    API_MAX_PAYLOAD_BYTES: z.coerce.number().int().min(2).max(1_048_576).default(262_144),
    /** The admin pages and /admin/api/* (user `admin`); unset, they answer 503. */
    ADMIN_PASSWORD: z.string().min(8, 'at least 8 characters').max(200).optional(),
    /** Forces the emergency override on at boot (audited as set by the environment). */
    FETCHER_EMERGENCY_OVERRIDE: z.stringbool().default(false),
    /** Fetcher jobs that run on main at once under the override (they are the heavy ones). */
    JOBGATE_ON_MAIN_CONCURRENCY: z.coerce.number().int().min(1).max(32).default(1),
    /** How often main re-reads the override, expires it when due, and takes over undelivered jobs. */
    JOBGATE_OVERRIDE_CHECK_MS: z.coerce.number().int().min(100).max(60_000).default(2_000),
    /** Jobs per POST /v1/jobs, and such requests in flight at once. */
    FETCHER_FORWARD_BATCH_SIZE: z.coerce.number().int().min(1).max(500).default(500),
    FETCHER_FORWARD_IN_FLIGHT: z.coerce.number().int().min(1).max(16).default(2),
    /** How long the forwarder waits for a sleeping fetcher to wake. */
    FETCHER_WAKE_TIMEOUT_MS: z.coerce.number().int().min(1_000).max(600_000).default(90_000),
    /**
     * How long a request to the fetcher waits for its answer's headers before it counts as failed
     * (then the forwarder wakes the fetcher); wake-up probes wait up to FETCHER_WAKE_TIMEOUT_MS instead.
     */
    FETCHER_HEADERS_TIMEOUT_MS: z.coerce.number().int().min(500).max(300_000).default(10_000),
    /** A batch the fetcher did not take is retried with backoff, at most this far apart. */
    FETCHER_FORWARD_RETRY_MAX_SECONDS: z.coerce.number().int().min(1).max(3_600).default(60),
    /** Refuse the fetcher's requests without the header signature (on once every fetcher runs a version that sends it). */
    JOBGATE_REQUIRE_HEADER_SIGNATURE: z.stringbool().default(false),
  })
  .refine((c) => !c.FETCHER_SERVICE_URL || c.FETCHER_SHARED_SECRET, { path: ['FETCHER_SHARED_SECRET'], message: 'required when FETCHER_SERVICE_URL is set' });

export type MainConfig = Readonly<z.output<typeof MainEnv>>;

export function loadMainConfig(env: Record<string, string | undefined>): MainConfig {
  // a worker serves no admin pages
  const required = env.JOBGATE_ROLE === 'worker' ? ['FETCHER_SERVICE_URL', 'FETCHER_SHARED_SECRET'] : ['FETCHER_SERVICE_URL', 'FETCHER_SHARED_SECRET', 'ADMIN_PASSWORD', 'API_TOKENS'];
  return loadConfig(MainEnv, env, { requiredInProduction: required });
}

/**
 * The environment as createMain's options. `pool`: the reference app's own, shared with its jobs
 * (movies.fetch writes through it).
 */
export function mainOptions(config: MainConfig, deps: { logger: Logger; pool: pg.Pool }): MainOptions {
  return {
    ...commonOptionsFromEnv(config),
    pool: deps.pool,
    jobs: referenceJobs(config, deps.pool),
    ...(config.FETCHER_SERVICE_URL && config.FETCHER_SHARED_SECRET
      ? {
          fetcher: {
            url: config.FETCHER_SERVICE_URL,
            secret: config.FETCHER_SHARED_SECRET,
            wakeTimeoutMs: config.FETCHER_WAKE_TIMEOUT_MS,
            headersTimeoutMs: config.FETCHER_HEADERS_TIMEOUT_MS,
            keepAwakeIntervalMs: config.FETCHER_KEEP_AWAKE_INTERVAL_MS,
            reconcileAfterSeconds: config.FETCHER_RECONCILE_AFTER_SECONDS,
            forwardBatchSize: config.FETCHER_FORWARD_BATCH_SIZE,
            forwardInFlight: config.FETCHER_FORWARD_IN_FLIGHT,
            forwardRetryMaxSeconds: config.FETCHER_FORWARD_RETRY_MAX_SECONDS,
            requireHeaderSignature: config.JOBGATE_REQUIRE_HEADER_SIGNATURE,
          },
        }
      : {}),
    ...(config.ADMIN_PASSWORD ? { admin: { password: config.ADMIN_PASSWORD } } : {}),
    ...(config.API_TOKENS || config.ADMIN_API_TOKENS ? { apiTokens: [...(config.API_TOKENS ?? []), ...(config.ADMIN_API_TOKENS ?? []).map((token, i) => ({ token, scope: 'admin' as const, name: `ADMIN_API_TOKENS #${i + 1}` }))] } : {}),
    apiQuota: { perSecond: config.API_RATE_PER_SECOND, burst: config.API_RATE_BURST, maxDelaySeconds: config.API_MAX_DELAY_SECONDS, maxPayloadBytes: config.API_MAX_PAYLOAD_BYTES },
    logger: deps.logger,
    onMainConcurrency: config.JOBGATE_ON_MAIN_CONCURRENCY,
    overrideCheckMs: config.JOBGATE_OVERRIDE_CHECK_MS,
    ...(config.FETCHER_EMERGENCY_OVERRIDE ? { emergencyOverride: { reason: 'FETCHER_EMERGENCY_OVERRIDE=true at boot', actor: 'environment (FETCHER_EMERGENCY_OVERRIDE)' } } : {}),
  };
}

/** The job service as the CLI starts it: main's side, with main's jobs, on the CLI's own small pool, leaving the schema as it is. */
export function cliServiceOptions(config: MainConfig, deps: { logger: Logger; pool: pg.Pool }): ServiceOptions {
  const options = mainOptions(config, deps);
  const checked = { ...commonOptionsFromEnv(config), poolMax: 2, queuePoolMax: 2 };
  return {
    ...serviceOptionsOf({ side: 'main', runsHere: (def) => !def.runsOnFetcher }, checked, { databaseUrl: config.DATABASE_URL, pool: deps.pool, jobs: options.jobs ?? [] }, deps.logger, ({ ledger }) => [cleanupJob(ledger, { minDays: config.JOBGATE_RETENTION_DAYS })]),
    migrate: false,
  };
}

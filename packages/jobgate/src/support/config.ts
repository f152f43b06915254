import { z } from 'zod';
import type { MetricsHandlerOptions } from './metrics-handler.ts';

export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/**
 * Parses the environment once; throws one error naming every bad variable. An empty variable
 * counts as unset. With NODE_ENV=production, `requiredInProduction` must be set too (development
 * fills them in: `npm start` generates secrets and knows the local URLs).
 */
export function loadConfig<S extends z.ZodType>(schema: S, env: Record<string, string | undefined>, options: { requiredInProduction?: string[] } = {}): Readonly<z.output<S>> {
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = schema.safeParse(present);
  const problems = parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  if (present.NODE_ENV === 'production') {
    for (const key of options.requiredInProduction ?? []) {
      if (present[key] === undefined && !problems.some((p) => p.startsWith(`${key}:`))) problems.push(`${key}: required when NODE_ENV=production`);
    }
  }
  if (!parsed.success || problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(parsed.data) as Readonly<z.output<S>>;
}

/** TRUST_PROXY as express takes it: a hop count, true/false, or addresses and names (`loopback`). */
export function trustProxySetting(value: string): number | boolean | string {
  if (/^\d+$/.test(value)) return Number(value);
  if (value === 'true' || value === 'false') return value === 'true';
  return value;
}

/** For an app's entry point: the config, or one message naming every bad variable and exit 1. */
export function loadConfigOrExit<T>(app: string, load: () => T): T {
  try {
    return load();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`jobgate ${app}: ${err.message}\n`);
    process.exit(1);
  }
}

/** The only identifiers ever interpolated into SQL: schema names (store/schema-name.ts checks them again at the SQL). */
export const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
export const SchemaName = z.string().regex(SCHEMA_NAME, 'lowercase letters, digits and underscores');
const seconds = (min: number, fallback: number) => z.coerce.number().min(min).default(fallback);

/** The variables both apps read: HTTP, database, queue timings, jobs. Defaults differ per app. */
export function serviceEnvShape(defaults: { port: number; schema: string; bossSchema: string }) {
  return {
    DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL'),
    /** production: the variables each app needs in production must be set (no generated defaults). */
    NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
    /** Which proxies to believe for the client's address (X-Forwarded-For): `1` behind Render's. */
    TRUST_PROXY: z.string().min(1).default('loopback'),
    PORT: z.coerce.number().int().min(0).max(65_535).default(defaults.port),
    HOST: z.string().min(1).default('0.0.0.0'),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    JOBGATE_DEMO_JOBS: z.stringbool().default(false),
    JOBGATE_SCHEMA: SchemaName.default(defaults.schema),
    JOBGATE_BOSS_SCHEMA: SchemaName.default(defaults.bossSchema),
    DATABASE_POOL_MAX: z.coerce.number().int().min(2).max(100).default(5),
    JOBGATE_QUEUE_POOL_MAX: z.coerce.number().int().min(2).max(100).default(5),
    JOBGATE_WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(100).default(4),
    JOBGATE_POLL_INTERVAL_SECONDS: seconds(0.5, 2),
    JOBGATE_SUPERVISE_INTERVAL_SECONDS: seconds(1, 30),
    JOBGATE_CRON_INTERVAL_SECONDS: seconds(1, 30),
    JOBGATE_HEARTBEAT_SECONDS: seconds(10, 30),
    /**
     * How long a runner's claim on an attempt lasts unless refreshed (every quarter of it): after a
     * crash, the retry waits for it to lapse. Unset: twice JOBGATE_HEARTBEAT_SECONDS.
     */
    JOBGATE_CLAIM_SECONDS: z.coerce.number().int().min(10).max(3_600).optional(),
    /** A client that has not sent its whole request by then gets 408 (a slow-body defence). */
    HTTP_REQUEST_TIMEOUT_MS: z.coerce.number().int().min(1_000).max(600_000).default(30_000),
    /**
     * On SIGTERM, running jobs get this long before ctx.signal aborts; a handler then has 5 s more
     * and the last events 3 s: the process is gone within 25 s (Render kills at 30 s).
     */
    JOBGATE_SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(0).max(15_000).default(15_000),
    JOBGATE_JOB_MODULES: z
      .string()
      .default('')
      .transform((s) => s.split(',').map((p) => p.trim()).filter(Boolean)),
    TMDB_API_TOKEN: z.string().min(1).optional(),
    /** maintenance.cleanup never prunes finished jobs younger than this, whatever its payload says. */
    JOBGATE_RETENTION_DAYS: z.coerce.number().int().min(1).max(3650).default(14),
    /** Hosts notifications.send may reach although they resolve to private addresses (comma- or space-separated). */
    NOTIFY_ALLOWED_HOSTS: z
      .string()
      .default('')
      .transform((s) => s.split(/[\s,]+/).map((h) => h.trim().toLowerCase()).filter(Boolean)),
    /** GET /metrics wants `Authorization: Bearer <token>`; unset, /metrics is open in development and off in production. */
    METRICS_TOKEN: z.string().min(16, 'at least 16 characters').max(500).optional(),
    /** Read only to catch a heap flag that would override per-thread limits. */
    NODE_OPTIONS: z.string().optional(),
  };
}

export type ServiceConfig = z.output<z.ZodObject<ReturnType<typeof serviceEnvShape>>>;

/** The queue timings from the environment (QueueTimings). */
export function timingsOf(config: ServiceConfig): { pollIntervalSeconds: number; superviseIntervalSeconds: number; cronIntervalSeconds: number; heartbeatSeconds: number; claimSeconds?: number } {
  return {
    pollIntervalSeconds: config.JOBGATE_POLL_INTERVAL_SECONDS,
    superviseIntervalSeconds: config.JOBGATE_SUPERVISE_INTERVAL_SECONDS,
    cronIntervalSeconds: config.JOBGATE_CRON_INTERVAL_SECONDS,
    heartbeatSeconds: config.JOBGATE_HEARTBEAT_SECONDS,
    ...(config.JOBGATE_CLAIM_SECONDS ? { claimSeconds: config.JOBGATE_CLAIM_SECONDS } : {}),
  };
}

/** METRICS_TOKEN as the metrics handler's options; unset, /metrics is open in development and not served (null) in production. */
export function metricsOptionsFromEnv(config: Pick<ServiceConfig, 'METRICS_TOKEN' | 'NODE_ENV'>): MetricsHandlerOptions | null {
  if (config.METRICS_TOKEN) return { token: config.METRICS_TOKEN };
  return config.NODE_ENV === 'production' ? null : { open: true };
}

/** Checks a factory's options once, at the door, with messages that name the option (ConfigError). */
export function parseOptions<S extends z.ZodType>(schema: S, options: unknown, what: string): z.output<S> {
  const parsed = schema.safeParse(options);
  if (!parsed.success) throw new ConfigError(parsed.error.issues.map((i) => `${what}.${i.path.join('.') || '(options)'}: ${i.message}`));
  return parsed.data;
}

/** The options both factories take (CommonOptions), as both reference apps read them from the environment. */
export function commonOptionsFromEnv(config: ServiceConfig) {
  return {
    databaseUrl: config.DATABASE_URL,
    schema: config.JOBGATE_SCHEMA,
    bossSchema: config.JOBGATE_BOSS_SCHEMA,
    poolMax: config.DATABASE_POOL_MAX,
    queuePoolMax: config.JOBGATE_QUEUE_POOL_MAX,
    jobModules: config.JOBGATE_JOB_MODULES,
    workerConcurrency: config.JOBGATE_WORKER_CONCURRENCY,
    shutdownTimeoutMs: config.JOBGATE_SHUTDOWN_TIMEOUT_MS,
    retentionDays: config.JOBGATE_RETENTION_DAYS,
    timings: timingsOf(config),
    ...(config.NODE_OPTIONS !== undefined ? { nodeOptions: config.NODE_OPTIONS } : {}),
  };
}

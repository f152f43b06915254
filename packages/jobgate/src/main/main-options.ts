// main's options: what createMain takes (the public types) and the schema that checks them once
// at the door, with their defaults.
import { z } from 'zod';
import { parseOptions } from '../support/index.ts';
import { commonOptionsShape, type CommonOptions } from '../run/service-options.ts';
import type { AuthorizeAdmin } from './admin/auth.ts';
import { ApiTokens, type ApiToken } from './admin/api-tokens.ts';
import type { ApiQuotaOptions } from './api-quota.ts';

/** How main reaches the fetcher, and how hard it tries. */
export interface FetcherOptions {
  /** The fetcher's base URL, e.g. `https://fetcher.example.com`. */
  url: string;
  /** The shared secret (`whsec_<base64>`), or several separated by spaces, newest first (rotation). */
  secret: string;
  /** How long a sleeping fetcher gets to wake up (default 90 000). */
  wakeTimeoutMs?: number;
  /** How long a request waits for the answer's headers (default 10 000). */
  headersTimeoutMs?: number;
  /** While routed jobs are unfinished, ping the fetcher this often so it does not fall asleep (default 300 000). */
  keepAwakeIntervalMs?: number;
  /** A routed job the fetcher has said nothing about for this long is asked about (default 300). */
  reconcileAfterSeconds?: number;
  /** Jobs per forward request (default 500, at most 500) and such requests in flight (default 2). */
  forwardBatchSize?: number;
  forwardInFlight?: number;
  /** A forward the fetcher did not take is retried with backoff, at most this far apart (default 60). */
  forwardRetryMaxSeconds?: number;
  /**
   * Refuse the fetcher's requests that carry no header signature (default false: a fetcher of a
   * version before it is served in a lane of its own). Switch on once every fetcher is upgraded.
   */
  requireHeaderSignature?: boolean;
}

/** Who may use the admin: jobgate's own password (user `admin`), or the host app's own check. */
export type AdminOptions = { password: string } | { authorize: AuthorizeAdmin };

export interface MainOptions extends CommonOptions {
  /** Where `runsOnFetcher` jobs go. Without it they wait in the outbox. */
  fetcher?: FetcherOptions;
  /** The admin pages and /admin/api/*; without it they answer 503. */
  admin?: AdminOptions;
  /**
   * Bearer tokens for /api/* (any of them is accepted, so they rotate); each at least 16 characters.
   * One given as `{ token, scope: 'admin', name }` opens /admin/api/* as well, with no CSRF token.
   */
  apiTokens?: readonly ApiToken[];
  /**
   * Limits on /api/*: each API token's request rate in each process (and the admin's own, on
   * /api/*), over it 429 with Retry-After; and what one POST /api/jobs/:name may ask for.
   * Defaults: 50 requests a second, bursts of 100, delays up to 30 days, payloads up to 256 KiB.
   */
  apiQuota?: ApiQuotaOptions;
  /** Fetcher jobs that run on main at once under the emergency override (default 1: they are the heavy ones). */
  onMainConcurrency?: number;
  /** How often main re-reads the override, expires it, and takes over undelivered jobs (default 2000). */
  overrideCheckMs?: number;
  /** Switch the emergency override on at start, audited as set by the configuration (or by the `actor` given). */
  emergencyOverride?: boolean | { reason: string; actor: string };
  /** The cleanup job never prunes finished jobs younger than this (default 14). */
  retentionDays?: number;
}

const ms = (min: number, max: number) => z.number().int().min(min).max(max);
const Options = z.object({
  ...commonOptionsShape({ schema: 'jobgate', bossSchema: 'pgboss_main' }),
  fetcher: z
    .strictObject({
      url: z.url({ protocol: /^https?$/ }),
      secret: z.string().min(1),
      wakeTimeoutMs: ms(1_000, 600_000).default(90_000),
      headersTimeoutMs: ms(500, 300_000).default(10_000),
      keepAwakeIntervalMs: ms(100, 3_600_000).default(300_000),
      reconcileAfterSeconds: z.number().int().min(1).max(86_400).default(300),
      forwardBatchSize: z.number().int().min(1).max(500).default(500),
      forwardInFlight: z.number().int().min(1).max(16).default(2),
      forwardRetryMaxSeconds: z.number().int().min(1).max(3_600).default(60),
      requireHeaderSignature: z.boolean().default(false),
    })
    .optional(),
  admin: z.union([z.strictObject({ password: z.string().min(8, 'at least 8 characters').max(200) }), z.strictObject({ authorize: z.custom<AuthorizeAdmin>((f) => typeof f === 'function', 'must be a function') })]).optional(),
  apiTokens: ApiTokens.optional(),
  apiQuota: z
    .strictObject({
      perSecond: z.number().positive().max(1_000_000).optional(),
      burst: z.number().int().min(1).max(1_000_000).optional(),
      // (the API's own bound on delaySeconds is a year)
      maxDelaySeconds: z.number().int().min(0).max(31_536_000).optional(),
      maxPayloadBytes: z.number().int().min(2).max(2 ** 20).optional(),
    })
    .default({}),
  onMainConcurrency: z.number().int().min(1).max(32).default(1),
  overrideCheckMs: ms(100, 60_000).default(2_000),
  emergencyOverride: z.union([z.boolean(), z.strictObject({ reason: z.string().min(1).max(500), actor: z.string().min(1).max(200) })]).default(false),
  retentionDays: z.number().int().min(1).max(3650).default(14),
});

export interface MainStartOptions {
  /** Run only these jobs' handlers (and none of main's loops: cron, forwarder, override, reconciler, keep-awake). */
  queues?: string[];
}


/** createMain's options as checked, defaults filled in. */
export type CheckedMainOptions = z.output<typeof Options>;

/** Checks createMain's options (a ConfigError naming every failing option) and fills in the defaults. */
export function parseMainOptions(options: MainOptions): CheckedMainOptions {
  return parseOptions(Options, options, 'createMain');
}

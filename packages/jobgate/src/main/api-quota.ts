// Per-credential quotas on /api/*: a request rate with a burst for each API token (a token bucket,
// in this process's memory: no database write per request), and ceilings on what one enqueue may
// ask for (how far ahead it runs, how large its payload is). Without them one leaked or buggy
// token fills the database: a year's delay keeps every job out of reach of the retention cleanup.
import type { NextFunction, Request, Response } from 'express';
import { ErrorCode, JobgateError } from '../support/index.ts';

/** createMain's `apiQuota`: every field optional, see API_QUOTA_DEFAULTS. */
export interface ApiQuotaOptions {
  /** Requests a second each API token may make to /api/*, in each main process (default 50). */
  perSecond?: number;
  /** Requests a token may make at once after being idle (default 100). */
  burst?: number;
  /** The largest `delaySeconds` POST /api/jobs/:name takes (default 2,592,000: 30 days). */
  maxDelaySeconds?: number;
  /** The largest payload POST /api/jobs/:name takes, in bytes of its JSON (default 262,144: 256 KiB). */
  maxPayloadBytes?: number;
}

export const API_QUOTA_DEFAULTS = {
  perSecond: 50,
  burst: 100,
  maxDelaySeconds: 30 * 86_400,
  maxPayloadBytes: 256 * 1024,
} as const satisfies Required<ApiQuotaOptions>;

/** Buckets kept at most; beyond it, full ones (a full bucket is the same as none) are dropped. */
const MAX_BUCKETS = 10_000;

/**
 * Token buckets by key: each holds up to `burst` requests and refills at `perSecond`. `take`
 * spends one and answers 0, or answers how many seconds (at least 1) until one is there.
 * @example
 * const buckets = createTokenBuckets({ perSecond: 50, burst: 100 });
 * const wait = buckets.take('token#0'); // 0: go ahead
 */
export function createTokenBuckets(options: { perSecond: number; burst: number; now?: () => number }) {
  const { perSecond, burst } = options;
  const now = options.now ?? (() => performance.now());
  const buckets = new Map<string, { tokens: number; at: number }>();
  const level = (b: { tokens: number; at: number }, t: number) => Math.min(burst, b.tokens + ((t - b.at) / 1000) * perSecond);

  function forgetFull(t: number): void {
    for (const [key, b] of buckets) if (level(b, t) >= burst) buckets.delete(key);
  }

  return {
    take(key: string): number {
      const t = now();
      let b = buckets.get(key);
      if (!b) {
        if (buckets.size >= MAX_BUCKETS) forgetFull(t);
        b = { tokens: burst, at: t };
        buckets.set(key, b);
      }
      b.tokens = level(b, t);
      b.at = t;
      if (b.tokens >= 1) {
        b.tokens -= 1;
        return 0;
      }
      return Math.max(1, Math.ceil((1 - b.tokens) / perSecond));
    },
    get size() {
      return buckets.size;
    },
  };
}

/** Whose bucket a request spends: each API token its own, the admin one, each host-app user one. */
function bucketOf(req: Request): string {
  const who = req.admin;
  if (!who) return `ip:${req.ip}`;
  if (who.via === 'token') return `token#${who.token ?? 0}`;
  if (who.via === 'host') return `host:${who.actor}`;
  return 'admin';
}

/** The quotas of main's /api/*: `limit` after the credential check, `checkEnqueue` on an enqueue's body. */
export function createApiQuota(options: ApiQuotaOptions = {}) {
  const o: Required<ApiQuotaOptions> = {
    perSecond: options.perSecond ?? API_QUOTA_DEFAULTS.perSecond,
    burst: options.burst ?? API_QUOTA_DEFAULTS.burst,
    maxDelaySeconds: options.maxDelaySeconds ?? API_QUOTA_DEFAULTS.maxDelaySeconds,
    maxPayloadBytes: options.maxPayloadBytes ?? API_QUOTA_DEFAULTS.maxPayloadBytes,
  };
  const buckets = createTokenBuckets({ perSecond: o.perSecond, burst: o.burst });
  return {
    options: o,
    /** Middleware after the credential check and before the body is read: over the rate, 429 with Retry-After. */
    limit(req: Request, res: Response, next: NextFunction): void {
      const wait = buckets.take(bucketOf(req));
      if (wait === 0) return next();
      res.setHeader('Retry-After', String(wait));
      next(new JobgateError(ErrorCode.tooManyRequests, `This credential made more than ${o.perSecond} requests a second (burst ${o.burst}); retry after ${wait} s.`));
    },
    /** An enqueue within the ceilings, or 422 naming `delaySeconds` or `payload`. */
    checkEnqueue(body: { payload: unknown; delaySeconds?: number | undefined }): void {
      if (body.delaySeconds !== undefined && body.delaySeconds > o.maxDelaySeconds) {
        throw new JobgateError(ErrorCode.requestInvalid, 'The delay is longer than this API allows.', { errors: [{ path: 'delaySeconds', message: `at most ${o.maxDelaySeconds} seconds` }] });
      }
      const bytes = Buffer.byteLength(JSON.stringify(body.payload) ?? '');
      if (bytes > o.maxPayloadBytes) {
        throw new JobgateError(ErrorCode.payloadInvalid, 'The payload is larger than this API allows.', { errors: [{ path: 'payload', message: `at most ${o.maxPayloadBytes} bytes as JSON (this one: ${bytes})` }] });
      }
    },
  };
}

export type ApiQuota = ReturnType<typeof createApiQuota>;

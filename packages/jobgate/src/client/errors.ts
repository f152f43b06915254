/** Stable codes callers branch on (undici's habit: one class, one code per failure kind). */
export const FetcherErrorCode = {
  /** Could not reach the fetcher: refused, reset, DNS, or a 502/503/504 from the platform's proxy. */
  unavailable: 'JG_FETCHER_UNAVAILABLE',
  /** Reached, but it did not answer in time (connect, headers or body timeout). */
  timeout: 'JG_FETCHER_TIMEOUT',
  /** It answered 429: too many requests. */
  throttled: 'JG_FETCHER_THROTTLED',
  /** It refused the request (4xx other than 408/429): retrying will not help. */
  rejected: 'JG_FETCHER_REJECTED',
  /** It failed (500) or answered something this client cannot read. */
  failed: 'JG_FETCHER_FAILED',
  /** wake() gave up at its deadline. */
  wakeTimeout: 'JG_FETCHER_WAKE_TIMEOUT',
} as const;
export type FetcherErrorCode = (typeof FetcherErrorCode)[keyof typeof FetcherErrorCode];

export class FetcherClientError extends Error {
  readonly code: FetcherErrorCode;
  readonly status: number | undefined;
  readonly retryAfterMs: number | undefined;
  /** The fields the other side named in its problem+json (`errors`), if any. */
  readonly fieldErrors: Array<{ path: string; message: string }>;
  /**
   * The other app's own code for the problem (its problem+json `code`, e.g. JG_DATABASE_UNAVAILABLE):
   * present when the app itself answered, absent for a platform's or a proxy's answer.
   */
  readonly problemCode: string | undefined;
  constructor(code: FetcherErrorCode, message: string, options: ErrorOptions & { status?: number; retryAfterMs?: number; fieldErrors?: Array<{ path: string; message: string }>; problemCode?: string } = {}) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.status = options.status;
    this.retryAfterMs = options.retryAfterMs;
    this.fieldErrors = options.fieldErrors ?? [];
    this.problemCode = options.problemCode;
  }
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED']);
const TIMEOUT_CODES = new Set(['ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/** Which app the client talks to: its messages name it (the fetcher's client for main says "main unreachable"). */
export type PeerName = 'fetcher' | 'main';

/** Maps an undici or network error to ours. */
export function fromNetworkError(err: unknown, peer: PeerName = 'fetcher'): FetcherClientError {
  if (err instanceof FetcherClientError) return err;
  const code = (err as { code?: string; cause?: { code?: string } })?.code ?? (err as { cause?: { code?: string } })?.cause?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (code && TIMEOUT_CODES.has(code)) return new FetcherClientError(FetcherErrorCode.timeout, `${peer} timed out: ${message}`, { cause: err });
  if (code && NETWORK_CODES.has(code)) return new FetcherClientError(FetcherErrorCode.unavailable, `${peer} unreachable: ${message}`, { cause: err });
  return new FetcherClientError(FetcherErrorCode.failed, `${peer} request failed: ${message}`, { cause: err });
}

/** Maps an HTTP status the other app (or the platform in front of it) answered with. */
export function fromStatus(status: number, detail: string, retryAfterMs?: number, fieldErrors?: Array<{ path: string; message: string }>, peer: PeerName = 'fetcher', problemCode?: string): FetcherClientError {
  const own = problemCode ? { problemCode } : {};
  if (status === 502 || status === 503 || status === 504) return new FetcherClientError(FetcherErrorCode.unavailable, `${peer} answered ${status}: ${detail}`, { status, retryAfterMs, ...own });
  if (status === 429) return new FetcherClientError(FetcherErrorCode.throttled, `${peer} answered 429: ${detail}`, { status, retryAfterMs, ...own });
  if (status === 408) return new FetcherClientError(FetcherErrorCode.timeout, `${peer} answered 408: ${detail}`, { status });
  if (status >= 400 && status < 500) return new FetcherClientError(FetcherErrorCode.rejected, `${peer} refused the request (${status}): ${detail}`, { status, fieldErrors });
  return new FetcherClientError(FetcherErrorCode.failed, `${peer} answered ${status}: ${detail}`, { status });
}

/**
 * Logs that the other app cannot be reached the way an operator wants it: one line at warn naming
 * it (no stack: the reason is the whole story), at most once per `everyMs` however many loops hit
 * it, and one line when it answers again. Any other failure is logged with its error, every time.
 */
export function unreachableLog(logger: { warn(o: object, msg: string): void; info(o: object, msg: string): void }, peer: PeerName, everyMs = 60_000) {
  let since: number | null = null;
  let loggedAt = 0;
  return {
    failed(err: unknown, what: string): void {
      if (!isRetryable(err)) {
        logger.warn({ err, peer }, `${what} failed`);
        return;
      }
      since ??= Date.now();
      if (Date.now() - loggedAt < everyMs) return;
      loggedAt = Date.now();
      logger.warn({ peer, error: (err as Error).message, downForSeconds: Math.round((Date.now() - since) / 1000) }, `${peer} unreachable; retrying`);
    },
    ok(): void {
      if (since === null) return;
      logger.info({ peer, downForSeconds: Math.round((Date.now() - since) / 1000) }, `${peer} reachable again`);
      since = null;
      loggedAt = 0;
    },
  };
}

/**
 * Whether trying the same request again can help: network failures, timeouts, 408, 429 and the
 * platform's 502/503/504 can; a 4xx (our request is wrong) or a 500 (the fetcher's own bug) cannot.
 */
export function isRetryable(err: unknown): boolean {
  if (!(err instanceof FetcherClientError)) return false;
  return err.code === FetcherErrorCode.unavailable || err.code === FetcherErrorCode.timeout || err.code === FetcherErrorCode.throttled;
}

/**
 * The other app itself answered that it cannot take the request now (its database away, stopping,
 * its intake paused, busy, or throttling us), and so is awake: there is nothing to wake, and its
 * Retry-After says when to come back. A platform's or proxy's 502/503/504 (an app asleep or
 * booting) carries no code of ours, and is not this.
 */
export function answeredNotNow(err: unknown): err is FetcherClientError {
  return isRetryable(err) && (err as FetcherClientError).problemCode?.startsWith('JG_') === true;
}

/** `Retry-After` as seconds or an HTTP date, in ms from now; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const date = Date.parse(v);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

export type UnreachableLog = ReturnType<typeof unreachableLog>;

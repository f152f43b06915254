import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import pRetry from 'p-retry';
import { Pool } from 'undici';
import { z } from 'zod';
import { ClaimAnswer, FetcherJob, FetcherStatus, Purpose, ResendResult, SubmitResult, signedHeaders, type JobEvent, type SigningKey, type SubmitJob } from '../protocol/index.ts';
import { FetcherClientError, FetcherErrorCode, fromNetworkError, fromStatus, isRetryable, parseRetryAfter } from './errors.ts';

export interface PeerOptions {
  /** e.g. https://jobgate-fetcher.onrender.com */
  baseUrl: string;
  /** Signing keys, newest first (see parseSecrets). */
  keys: SigningKey[];
  timeouts?: Partial<Timeouts>;
  /** Retries after the first try, for retryable failures (see isRetryable). */
  retries?: number;
  /** Connections kept to the fetcher. */
  connections?: number;
}

export interface Timeouts {
  connectMs: number;
  /** Until the response headers arrive. */
  headersMs: number;
  /** Between two chunks of the response body. */
  bodyMs: number;
  /** Each /healthz probe of wake(): a sleeping Render service holds the first request while it boots. */
  wakeProbeMs: number;
}

const HealthSchema = z.object({ status: z.string() });

const DEFAULT_TIMEOUTS: Timeouts = { connectMs: 5_000, headersMs: 10_000, bodyMs: 10_000, wakeProbeMs: 60_000 };
/** A Retry-After longer than this is not waited out inside one call. */
const MAX_RETRY_AFTER_MS = 30_000;

export interface WakeResult {
  state: 'awake';
  waitedMs: number;
  /** How many /healthz probes it took. */
  probes: number;
}

/** How a request is signed: a purpose (a new id each time), or a webhook-id chosen by the caller. */
type Signing = Purpose | { id: string };
/** A new webhook-id for `purpose`, naming `resource` when the route is about one (`get_<jobId>_<nonce>`). */
const messageId = (purpose: Purpose, resource?: string) => `${purpose}_${resource ? `${resource}_` : ''}${randomUUID()}`;

/**
 * Signed requests to the other app over an undici Pool, with explicit timeouts (undici's own
 * default is 300 s) and retries with jittered backoff that honour Retry-After.
 */
function createPeer(options: PeerOptions) {
  const timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
  const origin = new URL(options.baseUrl).origin;
  const pool = new Pool(origin, {
    connections: options.connections ?? 10,
    connect: { timeout: timeouts.connectMs },
    headersTimeout: timeouts.headersMs,
    bodyTimeout: timeouts.bodyMs,
    keepAliveTimeout: 4_000,
  });
  const retries = options.retries ?? 3;

  /** One HTTP exchange, no retries; parses the JSON answer with `schema`. */
  async function once<T>(method: 'GET' | 'POST', path: string, signing: Signing | null, body: string | undefined, schema: z.ZodType<T>, callTimeouts: Partial<Timeouts> = {}, extraHeaders: Record<string, string> = {}): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json', ...extraHeaders };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (signing) Object.assign(headers, signedHeaders(options.keys, typeof signing === 'string' ? messageId(signing) : signing.id, body ?? ''));
    let response;
    try {
      response = await pool.request({
        method,
        path,
        headers,
        body,
        headersTimeout: callTimeouts.headersMs ?? timeouts.headersMs,
        bodyTimeout: callTimeouts.bodyMs ?? timeouts.bodyMs,
      });
    } catch (err) {
      throw fromNetworkError(err);
    }
    let text: string;
    try {
      text = await response.body.text();
    } catch (err) {
      throw fromNetworkError(err);
    }
    if (response.statusCode >= 400) {
      let detail = text.slice(0, 300);
      let fieldErrors: Array<{ path: string; message: string }> | undefined;
      try {
        const problem = JSON.parse(text) as { title?: string; detail?: string; errors?: Array<{ path: string; message: string }> };
        detail = problem.detail ?? problem.title ?? detail;
        if (Array.isArray(problem.errors)) fieldErrors = problem.errors.filter((e) => typeof e?.path === 'string').slice(0, 50);
      } catch {
        /* not problem+json: keep the text */
      }
      throw fromStatus(response.statusCode, detail, parseRetryAfter(response.headers['retry-after']), fieldErrors);
    }
    try {
      return schema.parse(JSON.parse(text));
    } catch (err) {
      throw new FetcherClientError(FetcherErrorCode.failed, `fetcher answered ${method} ${path} with a body this client cannot read`, { cause: err, status: response.statusCode });
    }
  }

  /** `once`, retried with jittered backoff while the failure is retryable. */
  function call<T>(method: 'GET' | 'POST', path: string, signing: Signing | null, body: string | undefined, schema: z.ZodType<T>): Promise<T> {
    // one message, one id, however often it is retried (Standard Webhooks): a retry after a lost
    // answer gets the answer the first delivery got, not a second effect
    const fixed: Signing | null = typeof signing === 'string' ? { id: messageId(signing) } : signing;
    return pRetry(() => once(method, path, fixed, body, schema), {
      retries,
      minTimeout: 200,
      maxTimeout: 5_000,
      randomize: true,
      shouldRetry: ({ error }) => isRetryable(error),
      onFailedAttempt: async ({ error }) => {
        const wait = (error as FetcherClientError).retryAfterMs;
        if (wait && isRetryable(error)) await sleep(Math.min(wait, MAX_RETRY_AFTER_MS));
      },
    });
  }

  // Closing cuts requests in flight (a wake probe may wait a minute): shutdown must not wait on them.
  return { once, call, timeouts, close: () => pool.destroy() };
}

export type FetcherClientOptions = PeerOptions & {
  /** Told when a wake-up begins (not when a caller joins one in flight), with its deadline. */
  onWakeStart?: (since: Date, deadlineMs: number) => void;
  /** Told of every wake-up's end: awake, or timeout (for metrics). */
  onWake?: (outcome: 'awake' | 'timeout', ms: number) => void;
};

/**
 * The one client every caller uses to talk to the fetcher: submit, status, getJob, and a
 * single-flight wake-up.
 * @example
 * const fetcher = createFetcherClient({ baseUrl: config.FETCHER_SERVICE_URL, keys: parseSecrets(secret) });
 * const { accepted } = await fetcher.submit([{ id, name: 'movies.fetch', payload }]);
 */
export function createFetcherClient(options: FetcherClientOptions) {
  const { once, call, timeouts, close } = createPeer(options);
  let waking: Promise<WakeResult> | null = null;

  /** Polls /healthz until it answers 200 or the deadline passes; one wake-up however many callers. */
  function wake(wakeOptions: { deadlineMs?: number; signal?: AbortSignal } = {}): Promise<WakeResult> {
    const wakeStarted = Date.now();
    if (!waking) options.onWakeStart?.(new Date(wakeStarted), wakeOptions.deadlineMs ?? 90_000);
    waking ??= (async () => {
      const started = Date.now();
      const deadline = started + (wakeOptions.deadlineMs ?? 90_000);
      let probes = 0;
      let lastError: unknown;
      while (Date.now() < deadline && !wakeOptions.signal?.aborted) {
        probes++;
        const remaining = deadline - Date.now();
        try {
          await once('GET', '/healthz', null, undefined, HealthSchema, { headersMs: Math.min(timeouts.wakeProbeMs, remaining), bodyMs: Math.min(timeouts.wakeProbeMs, remaining) });
          return { state: 'awake' as const, waitedMs: Date.now() - started, probes };
        } catch (err) {
          lastError = err;
          // Refused or 502/503 from a proxy: the instance is still booting. Try again shortly.
          await sleep(Math.max(0, Math.min(1_000, deadline - Date.now())), undefined, { signal: wakeOptions.signal }).catch(() => {});
        }
      }
      throw new FetcherClientError(FetcherErrorCode.wakeTimeout, `fetcher did not wake within ${wakeOptions.deadlineMs ?? 90_000} ms`, { cause: lastError });
    })()
      .then(
        (woke) => (options.onWake?.('awake', woke.waitedMs), woke),
        (err: unknown) => {
          options.onWake?.('timeout', Date.now() - wakeStarted);
          throw err;
        },
      )
      .finally(() => {
        waking = null;
      });
    return waking;
  }

  return {
    /** Submits up to 500 jobs; idempotent on job id (a repeat answers `duplicate: true`). */
    submit: (jobs: SubmitJob[]) => call('POST', '/v1/jobs', Purpose.submitJobs, JSON.stringify({ jobs }), SubmitResult),
    status: () => call('GET', '/v1/status', Purpose.readStatus, undefined, FetcherStatus),
    /** One status request, no retries, answered within `timeoutMs` or failed (for status pages). */
    probeStatus: (timeoutMs: number) => once('GET', '/v1/status', Purpose.readStatus, undefined, FetcherStatus, { headersMs: timeoutMs, bodyMs: timeoutMs }),
    /** Asks the fetcher to send again the job events main refused before (they were set aside). */
    resendEvents: () => call('POST', '/v1/events/resend', Purpose.resendEvents, undefined, ResendResult),
    /** The signature names the job (`get_<id>_…`), so it cannot be replayed to read another. */
    getJob: (id: string) => call('GET', `/v1/jobs/${encodeURIComponent(id)}`, { id: messageId(Purpose.readJob, id) }, undefined, FetcherJob),
    /** Unsigned and cheap: is the fetcher up right now? No retries. */
    health: () => once('GET', '/healthz', null, undefined, HealthSchema),
    wake,
    close,
  };
}

/** What the fetcher uses to talk to main: job events back. */
export function createMainClient(options: PeerOptions) {
  const { once, call, close } = createPeer(options);
  return {
    /** Delivers events (≤ 500), signed; main applies them idempotently, in per-job order. */
    sendEvents: (events: JobEvent[]) =>
      call('POST', '/internal/v1/job-events', Purpose.jobEvents, JSON.stringify({ events }), EventsReceipt),
    /** Claims an attempt of a job in main's ledger before the fetcher runs it (no retries: the caller loops). */
    claim: (jobId: string, attempt: number, claimSeconds: number, traceparent?: string) =>
      // the job's trace rides in the W3C header, so main logs the claim under it
      once('POST', '/internal/v1/claims', Purpose.claimJob, JSON.stringify({ jobId, attempt, claimSeconds }), ClaimAnswer, {}, traceparent ? { traceparent } : {}),
    close,
  };
}

export type MainClient = ReturnType<typeof createMainClient>;
const EventsReceipt = z.object({ applied: z.number(), ignored: z.number() });

export type FetcherClient = ReturnType<typeof createFetcherClient>;

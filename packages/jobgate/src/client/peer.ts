// A signed HTTP peer: what main's client for the fetcher and the fetcher's client for main share.
import { setTimeout as sleep } from 'node:timers/promises';
import pRetry from 'p-retry';
import { Pool } from 'undici';
import { z } from 'zod';
import { routePath, signedHeaders, type PathParams, type Purpose, type RouteAnswer, type RouteBody, type SignedRoute, type SigningKey } from '../protocol/index.ts';
import { FetcherClientError, FetcherErrorCode, fromNetworkError, fromStatus, isRetryable, parseRetryAfter, type PeerName } from './errors.ts';
import { uuidv7 } from '../support/ids.ts';

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
  /** Which app this is a client of, as errors name it (default fetcher). */
  peer?: PeerName;
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

export const HealthSchema = z.object({ status: z.string() });

const DEFAULT_TIMEOUTS: Timeouts = { connectMs: 5_000, headersMs: 10_000, bodyMs: 10_000, wakeProbeMs: 60_000 };
/** A Retry-After longer than this is not waited out inside one call. */
const MAX_RETRY_AFTER_MS = 30_000;

export interface WakeResult {
  state: 'awake';
  waitedMs: number;
  /** How many /healthz probes it took. */
  probes: number;
}

/** A new webhook-id for `purpose`, naming `resource` when the route is about one (`get_<jobId>_<nonce>`). */
export const messageId = (purpose: Purpose, resource?: string) => `${purpose}_${resource ? `${resource}_` : ''}${uuidv7()}`;

/** What a call of a signed route sends: its body (typed by the route's request schema) and path parameters. */
export type RouteInput<R extends SignedRoute> = (R['request'] extends z.ZodType ? { body: RouteBody<R> } : { body?: undefined }) &
  ([PathParams<R['path']>] extends [never] ? { params?: undefined } : { params: Record<PathParams<R['path']>, string> });

export interface CallOptions {
  timeouts?: Partial<Timeouts>;
  /** Sent besides the signature headers (a job's traceparent). */
  headers?: Record<string, string>;
}

/**
 * Signed requests to the other app over an undici Pool, with explicit timeouts (undici's own
 * default is 300 s) and retries with jittered backoff that honour Retry-After.
 */
export function createPeer(options: PeerOptions) {
  const timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
  const peer = options.peer ?? 'fetcher';
  // the other side may be mounted under a path (main's router at https://app.example.com/jobgate)
  const base = new URL(options.baseUrl);
  const prefix = base.pathname.replace(/\/+$/, '');
  const pool = new Pool(base.origin, {
    connections: options.connections ?? 10,
    connect: { timeout: timeouts.connectMs },
    headersTimeout: timeouts.headersMs,
    bodyTimeout: timeouts.bodyMs,
    keepAliveTimeout: 4_000,
  });
  const retries = options.retries ?? 3;

  /** One HTTP exchange, no retries, signed as `webhookId` (null: unsigned); parses the JSON answer with `schema`. */
  async function exchange<T>(method: 'GET' | 'POST', path: string, webhookId: string | null, body: string | undefined, schema: z.ZodType<T>, callTimeouts: Partial<Timeouts> = {}, extraHeaders: Record<string, string> = {}): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json', ...extraHeaders };
    if (body !== undefined) headers['content-type'] = 'application/json';
    // the header signature covers the path as this side names it (below the other side's mount prefix)
    if (webhookId !== null) Object.assign(headers, signedHeaders(options.keys, webhookId, body ?? '', Date.now(), { method, path }));
    let response;
    try {
      response = await pool.request({
        method,
        path: `${prefix}${path}`,
        headers,
        body,
        headersTimeout: callTimeouts.headersMs ?? timeouts.headersMs,
        bodyTimeout: callTimeouts.bodyMs ?? timeouts.bodyMs,
      });
    } catch (err) {
      throw fromNetworkError(err, peer);
    }
    let text: string;
    try {
      text = await response.body.text();
    } catch (err) {
      throw fromNetworkError(err, peer);
    }
    if (response.statusCode >= 400) {
      let detail = text.slice(0, 300);
      let fieldErrors: Array<{ path: string; message: string }> | undefined;
      let problemCode: string | undefined;
      try {
        const problem = JSON.parse(text) as { title?: string; detail?: string; code?: unknown; errors?: Array<{ path: string; message: string }> };
        detail = problem.detail ?? problem.title ?? detail;
        if (typeof problem.code === 'string') problemCode = problem.code.slice(0, 64);
        if (Array.isArray(problem.errors)) fieldErrors = problem.errors.filter((e) => typeof e?.path === 'string').slice(0, 50);
      } catch {
        /* not problem+json: keep the text */
      }
      throw fromStatus(response.statusCode, detail, parseRetryAfter(response.headers['retry-after']), fieldErrors, peer, problemCode);
    }
    try {
      return schema.parse(JSON.parse(text));
    } catch (err) {
      throw new FetcherClientError(FetcherErrorCode.failed, `${base.origin} answered ${method} ${prefix}${path} with a body this client cannot read`, { cause: err, status: response.statusCode });
    }
  }

  /** A signed route's request as the entry says: its path (parameters filled in), its body, and a new webhook-id for its purpose. */
  function message<R extends SignedRoute>(route: R, input: RouteInput<R>) {
    const params = (input.params ?? {}) as Record<string, string>;
    return {
      path: routePath(route, params),
      id: messageId(route.purpose, route.resource ? params[route.resource] : undefined),
      body: route.request ? JSON.stringify(input.body) : undefined,
    };
  }

  /** One call of a signed route (an entry of SignedRoutes), no retries; the answer is checked against the entry's schema. */
  function once<R extends SignedRoute>(route: R, input: RouteInput<R>, callOptions: CallOptions = {}): Promise<RouteAnswer<R>> {
    const m = message(route, input);
    return exchange(route.method, m.path, m.id, m.body, route.answer as z.ZodType<RouteAnswer<R>>, callOptions.timeouts, callOptions.headers);
  }

  /** `once`, retried with jittered backoff while the failure is retryable. */
  function call<R extends SignedRoute>(route: R, input: RouteInput<R>, callOptions: CallOptions = {}): Promise<RouteAnswer<R>> {
    // one message, one id, however often it is retried (Standard Webhooks): a retry after a lost
    // answer gets the answer the first delivery got, not a second effect
    const m = message(route, input);
    return pRetry(() => exchange(route.method, m.path, m.id, m.body, route.answer as z.ZodType<RouteAnswer<R>>, callOptions.timeouts, callOptions.headers), {
      retries,
      minTimeout: 200,
      maxTimeout: 5_000,
      randomize: true,
      shouldRetry: ({ error }) => isRetryable(error),
      // a Retry-After is waited out before the retry it asks for, never after the last attempt (a
      // caller without retries, as the forwarder, gets the failure at once and backs off itself)
      onFailedAttempt: async ({ error, retriesLeft }) => {
        const wait = (error as FetcherClientError).retryAfterMs;
        if (wait && retriesLeft > 0 && isRetryable(error)) await sleep(Math.min(wait, MAX_RETRY_AFTER_MS));
      },
    });
  }

  /** GET /healthz, unsigned (the one request between the apps that is not in SignedRoutes). */
  const health = (callTimeouts: Partial<Timeouts> = {}) => exchange('GET', '/healthz', null, undefined, HealthSchema, callTimeouts);

  // Closing cuts requests in flight (a wake probe may wait a minute): shutdown must not wait on them.
  return { once, call, health, timeouts, close: () => pool.destroy() };
}


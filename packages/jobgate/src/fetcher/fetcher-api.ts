// What createFetcher returns: the Fetcher object a service mounts, starts and stops.
import type { RequestHandler, Router } from 'express';
import type { JobgateError, MetricsHandlerOptions, Registry } from '../support/index.ts';
import type { MemorySnapshot } from './memory-guard.ts';

export interface Fetcher {
  /** The signed /v1/* API main forwards to, and /healthz (main's wake-up probe): mount it where main's `fetcher.url` points, before any body parser. */
  router: Router;
  /** Runs the handlers, the job events to main and the pruner. */
  start(): Promise<void>;
  /** True once stop() began (a health check should answer 503 then). */
  readonly draining: boolean;
  /** The memory guard's view: rss, heap, peak and the budget. */
  memory(): MemorySnapshot;
  metrics: Registry;
  /**
   * GET /metrics for your app to mount: Prometheus text of `metrics`, 401 without the scraper's
   * bearer token (`{ token }`), or open to anyone who reaches it (`{ open: true }`). One is required.
   * @example
   * app.get('/metrics', fetcher.metricsHandler({ token: process.env.METRICS_TOKEN! }));
   */
  metricsHandler(options: MetricsHandlerOptions): RequestHandler;
  /**
   * Stops taking jobs (submissions get 503), lets running ones finish (their signal aborts at
   * shutdownTimeoutMs; at once with `abort`), sends the last job events, closes jobgate's own pools.
   * `before`: what must end before the pools close (your HTTP server's close).
   */
  stop(options?: { before?: Promise<unknown>; abort?: JobgateError }): Promise<void>;
}

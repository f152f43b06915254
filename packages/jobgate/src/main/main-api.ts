// What createMain returns: the Main object an app enqueues with, reads jobs from and stops, and the
// types of its methods' arguments.
import type { RequestHandler, Router } from 'express';
import type { MetricsHandlerOptions, Registry } from '../support/index.ts';
import type { BatchView, JobRecord, JobState, OverrideState, Pause, Queryable, Route } from '../store/index.ts';
import type { JobDefinition } from '../define/define-job.ts';
import type { EnqueueOptions, EnqueueResult } from '../enqueue/perform-later.ts';
import type { BatchOptions } from '../enqueue/batch.ts';
import type { Schedule } from '../schedule/schedules.ts';
import type { MainRouters } from './router.ts';
import type { MainStartOptions } from './main-options.ts';

/** What `listJobs` filters by. */
export interface JobListFilter {
  state?: JobState;
  name?: string;
  route?: Route;
  limit?: number;
  cursor?: string;
}

/** performManyLater's options: those of performLater that apply to every job alike. */
export type ManyOptions = Pick<EnqueueOptions, 'db' | 'priority' | 'delaySeconds' | 'runOnMain' | 'batch' | 'requestId' | 'traceparent'>;

/** A batch being put together (Main.batch). */
export interface Batch {
  readonly id: string;
  add<Input>(job: JobDefinition<unknown, Input> | string, payload: NoInfer<Input>, options?: Pick<EnqueueOptions, 'priority' | 'delaySeconds' | 'runOnMain'>): Batch;
  /** Writes the batch and its jobs in one transaction (with `db`: yours); the jobs' ids in the order added (`skipped`: as performManyLater's). */
  enqueue(options?: { db?: Queryable }): Promise<{ id: string; jobIds: string[]; skipped: string[] }>;
}

export interface Main {
  /** /api/*, /admin/* and /internal/v1/* in one router: mount it under a prefix of your choice, before any body parser (the fetcher's calls are signed over their raw bodies). */
  router: Router;
  /** The same, apart: put `admin` behind your own middleware, and never `internal` (the fetcher signs its requests). */
  routers: Omit<MainRouters, 'all'>;
  /** Runs main's handlers, the forwarder, cron, the override loop, the reconciler and keep-awake. A web-only process skips it. */
  start(options?: MainStartOptions): Promise<void>;
  /**
   * Validates the payload and commits the job before resolving: with `db` (a pg client inside
   * your transaction, or anything with `query(text, values)`) it commits or rolls back with your work.
   */
  performLater<Input>(job: JobDefinition<unknown, Input> | string, payload: NoInfer<Input>, options?: EnqueueOptions): Promise<EnqueueResult>;
  /**
   * Many jobs of one kind in one transaction (with `db`: yours), their ledger rows in one statement
   * and their queue entries in one per queue. Resolves with their ids, in order; `skipped`: those
   * not written because a `unique` job's live twin exists.
   */
  performManyLater<Input>(job: JobDefinition<unknown, Input> | string, payloads: readonly NoInfer<Input>[], options?: ManyOptions): Promise<{ ids: string[]; skipped: string[] }>;
  /**
   * A batch: add jobs to it, then `enqueue()` writes them and the batch in one transaction. Its
   * callbacks are enqueued once, when the last of its jobs ends.
   * @example
   * const { id } = await jobgate.batch({ onFinish: importDone, properties: { importId } }).add(importRow, { row: 1 }).add(importRow, { row: 2 }).enqueue();
   */
  batch(options?: BatchOptions): Batch;
  /** A batch with its jobs counted by state and its callbacks (as GET /api/batches/:id answers), or null. */
  getBatch(id: string): Promise<BatchView | null>;
  /** The job with its executions (as GET /api/jobs/:id answers), or null. */
  getJob(id: string): Promise<JobRecord | null>;
  /** Newest first, `limit` (1–500, default 50) at a time; pass `cursor` (a page's `nextCursor`) for the next page. */
  listJobs(filter?: JobListFilter): Promise<{ jobs: JobRecord[]; nextCursor: string | null }>;
  /**
   * Pausing a job (its name, or `*` for every job) on both sides: while paused no new attempt of it
   * starts on main or the fetcher (a running one finishes), its jobs keep queueing, and nothing is
   * failed or retried. Every change is audited with `actor`.
   */
  pauses: {
    list(): Promise<Pause[]>;
    pause(name: string, change: { reason: string; actor: string; expiresInMinutes?: number }): Promise<Pause>;
    resume(name: string, change: { actor: string; reason?: string }): Promise<Pause | null>;
  };
  /**
   * Schedules stored in PostgreSQL, beside the code's `cron` (which may only be enabled or
   * disabled here). Each fires at every occurrence (within a second or two), once however many mains
   * run; every change is audited with `actor`.
   * @example
   * await jobgate.schedules.create({ name: 'reports.daily', schedule: '0 6 * * *', timeZone: 'Europe/Berlin', payload: {} }, 'ops@example.com');
   */
  schedules: {
    list(): Promise<Schedule[]>;
    create(input: { name: string; schedule: string; timeZone?: string; payload?: Record<string, unknown>; enabled?: boolean }, actor: string): Promise<Schedule>;
    update(id: string, patch: { schedule?: string; timeZone?: string; payload?: Record<string, unknown>; enabled?: boolean }, actor: string): Promise<Schedule>;
    remove(id: string, actor: string): Promise<void>;
    runNow(id: string, actor: string): Promise<EnqueueResult>;
  };
  /** The emergency override: fetcher jobs run on main while it is on. */
  override: {
    get(): Promise<OverrideState>;
    set(change: { enabled: boolean; reason: string; expiresInMinutes?: number; actor: string }): Promise<OverrideState>;
  };
  /** Prometheus metrics of this service. */
  metrics: Registry;
  /**
   * GET /metrics for your app to mount: Prometheus text of `metrics`, 401 without the scraper's
   * bearer token (`{ token }`), or open to anyone who reaches it (`{ open: true }`). One is required.
   * @example
   * app.get('/metrics', jobgate.metricsHandler({ token: process.env.METRICS_TOKEN! }));
   */
  metricsHandler(options: MetricsHandlerOptions): RequestHandler;
  /**
   * Stops taking jobs, lets running ones finish (their signal aborts at shutdownTimeoutMs), stops
   * the loops, and closes jobgate's own pools. `before`: what must end before the pools close
   * (your HTTP server's close, so requests in flight still reach the database).
   */
  stop(options?: { before?: Promise<unknown> }): Promise<void>;
}

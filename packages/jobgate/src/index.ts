// jobgate's public API: define jobs, create main (in your web app) and the fetcher (a service of
// its own). Everything else is internal.
export { defineJob, isJobDefinition } from './define/define-job.ts';
export type { CronSchedule, JobContext, JobDefinition, JobDefinitionInput, RetryPolicy } from './define/define-job.ts';
export { createMain } from './main/create-main.ts';
export type { AdminOptions, FetcherOptions, MainOptions, MainStartOptions } from './main/main-options.ts';
export type { Batch, JobListFilter, Main, ManyOptions } from './main/main-api.ts';
export type { BatchOptions, BatchCallbackInput, BatchSummary } from './enqueue/batch.ts';
export type { ChildBatch, ChildOptions, FanOut } from './run/children.ts';
export type { Schedule } from './schedule/schedules.ts';
export type { MainRouters } from './main/router.ts';
export type { CommonOptions } from './run/service-options.ts';
export type { MemorySnapshot } from './fetcher/memory-guard.ts';
export type { AuthorizeAdmin } from './main/admin/auth.ts';
export type { ApiToken, ApiTokenScope } from './main/admin/api-tokens.ts';
export type { MetricsHandlerOptions } from './support/metrics-handler.ts';
export type { ApiQuotaOptions } from './main/api-quota.ts';
export { createFetcher } from './fetcher/create-fetcher.ts';
export type { FetcherServiceOptions } from './fetcher/fetcher-options.ts';
export type { Fetcher } from './fetcher/fetcher-api.ts';
export type { EnqueueOptions, EnqueueResult } from './enqueue/perform-later.ts';
export { fromKysely } from './enqueue/adapters.ts';
export type { BatchCounts, BatchView, ErrorInfo, Execution, JobRecord, JobState, OverrideState, Pause, Queryable, Route, RouteReason, ScheduleRun } from './store/index.ts';
export { ConfigError, ErrorCode, JobgateError, PermanentJobError } from './support/index.ts';
export type { Logger } from './support/index.ts';
/** Two jobs to try jobgate with (`demo.light` on main, `demo.heavy` on the fetcher); opt in by listing them. */
export { demoBatchDone, demoFanout, demoHeavy, demoLight } from './shipped/demo.ts';

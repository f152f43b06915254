// Everything the reference apps, their CLI and the tests reach into. Not the public API (that is
// index.ts): no stability promise.
export * from './support/index.ts';
export * from './protocol/index.ts';
export * from './client/index.ts';
export * from './store/index.ts';
export * from './define/define-job.ts';
export * from './define/catalogue.ts';
export * from './define/stable-json.ts';
export * from './run/job-runtime.ts';
export * from './run/service.ts';
export * from './run/metrics.ts';
export { isolatedChildPids } from './run/isolation/run-isolated.ts';
export * from './shipped/index.ts';

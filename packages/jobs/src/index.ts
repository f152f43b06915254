export * from './define-job.ts';
export * from './catalogue.ts';
export * from './job-runtime.ts';
export * from './stable-json.ts';
export * from './shipped/index.ts';
export * from './service.ts';
export { isolatedChildPids } from './isolation/run-isolated.ts';
export * from './metrics.ts';

import type { Pool } from 'pg';
import type { Ledger } from '../store/index.ts';
import type { JobDefinition } from '../define/define-job.ts';
import { demoHeavy, demoLight } from './demo.ts';
import { cleanupJob } from './maintenance.ts';
import { fetchMoviesJob } from './movies.ts';
import { notificationJob } from './notifications.ts';

export { demoHeavy, demoLight, DemoPayload } from './demo.ts';
export { notificationJob, NotificationPayload } from './notifications.ts';
export { isPrivateAddress, publicFetch } from './public-fetch.ts';
export { cleanupJob } from './maintenance.ts';
export { fetchMoviesJob } from './movies.ts';

/** The jobs jobgate ships; the `demo.*` ones only when asked for. */
export function shippedJobs(deps: { pool: Pool; schema: string; ledger: Ledger; demoJobs: boolean; tmdbApiToken?: string; retentionDays: number; notifyAllowedHosts: readonly string[] }): JobDefinition[] {
  return [
    notificationJob({ allowedHosts: new Set(deps.notifyAllowedHosts.map((h) => h.toLowerCase())) }),
    cleanupJob(deps.ledger, { minDays: deps.retentionDays }),
    fetchMoviesJob(deps),
    ...(deps.demoJobs ? [demoLight, demoHeavy] : []),
  ];
}

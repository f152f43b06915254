import type { Pool } from 'pg';
import type { JobDefinition } from '../define/define-job.ts';
import type { ServiceConfig } from '../support/index.ts';
import { demoBatchDone, demoFanout, demoHeavy, demoLight } from './demo.ts';
import { fetchMoviesJob } from './movies.ts';
import { notificationJob } from './notifications.ts';

export { DEMO_LIMITS, demoBatchDone, demoFanout, demoHeavy, demoLight, DemoLightPayload, DemoPayload } from './demo.ts';
export { notificationJob, NotificationPayload } from './notifications.ts';
export { isPrivateAddress, publicFetch } from './public-fetch.ts';
export { fetchMoviesJob } from './movies.ts';

/** The reference apps' jobs; the `demo.*` ones only when asked for. */
export function shippedJobs(deps: { pool: Pool; schema: string; demoJobs: boolean; tmdbApiToken?: string; notifyAllowedHosts: readonly string[] }): JobDefinition[] {
  return [
    notificationJob({ allowedHosts: new Set(deps.notifyAllowedHosts.map((h) => h.toLowerCase())) }),
    fetchMoviesJob(deps),
    ...(deps.demoJobs ? [demoLight, demoHeavy, demoFanout, demoBatchDone] : []),
  ];
}

/** The reference apps' jobs, from their environment (both apps list the same ones). */
export function referenceJobs(config: Pick<ServiceConfig, 'JOBGATE_SCHEMA' | 'JOBGATE_DEMO_JOBS' | 'TMDB_API_TOKEN' | 'NOTIFY_ALLOWED_HOSTS'>, pool: Pool): JobDefinition[] {
  return shippedJobs({ pool, schema: config.JOBGATE_SCHEMA, demoJobs: config.JOBGATE_DEMO_JOBS, ...(config.TMDB_API_TOKEN ? { tmdbApiToken: config.TMDB_API_TOKEN } : {}), notifyAllowedHosts: config.NOTIFY_ALLOWED_HOSTS });
}

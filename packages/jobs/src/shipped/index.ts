import type { Pool } from 'pg';
import type { Ledger } from '@jobgate/queue';
import type { JobDefinition } from '../define-job.ts';
import { demoHeavy, demoLight } from './demo.ts';
import { cleanupJob } from './maintenance.ts';
import { fetchMoviesJob } from './movies.ts';
import { sendNotification } from './notifications.ts';

export { demoHeavy, demoLight, DemoPayload } from './demo.ts';
export { sendNotification } from './notifications.ts';
export { cleanupJob } from './maintenance.ts';
export { fetchMoviesJob } from './movies.ts';

/** The jobs jobgate ships; the `demo.*` ones only when asked for. */
export function shippedJobs(deps: { pool: Pool; schema: string; ledger: Ledger; demoJobs: boolean; tmdbApiToken?: string }): JobDefinition[] {
  return [
    sendNotification,
    cleanupJob(deps.ledger),
    fetchMoviesJob(deps),
    ...(deps.demoJobs ? [demoLight, demoHeavy] : []),
  ];
}

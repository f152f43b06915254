import { z } from 'zod';
import type { Ledger } from '@jobgate/queue';
import { defineJob } from '../define-job.ts';

/** Prunes finished jobs (and their executions) from the ledger; pg-boss prunes its own tables. */
export function cleanupJob(ledger: Ledger) {
  return defineJob({
    name: 'maintenance.cleanup',
    payload: z.strictObject({ olderThanDays: z.number().min(0).max(3650).default(14) }),
    cron: '0 2 * * *',
    unique: true,
    retry: { limit: 2, delaySeconds: 60, backoff: true },
    timeoutSeconds: 1_800,
    async run({ olderThanDays }, ctx) {
      const deleted = await ledger.deleteFinished(olderThanDays * 86_400);
      ctx.logger.info({ deleted, olderThanDays }, 'finished jobs pruned');
      return { deleted };
    },
  });
}

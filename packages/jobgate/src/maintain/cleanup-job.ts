import { z } from 'zod';
import type { Ledger } from '../store/index.ts';
import { defineJob } from '../define/define-job.ts';

/**
 * Prunes finished jobs (and their executions) from the ledger; pg-boss prunes its own tables.
 * Whatever the payload asks, nothing younger than `minDays` (JOBGATE_RETENTION_DAYS) goes: anyone
 * who can enqueue a job must not be able to erase the record of what failed.
 */
export function cleanupJob(ledger: Ledger, options: { minDays: number }) {
  return defineJob({
    name: 'maintenance.cleanup',
    payload: z.strictObject({ olderThanDays: z.number().min(0).max(3650).optional() }),
    cron: '0 2 * * *',
    unique: true,
    retry: { limit: 2, delaySeconds: 60, backoff: true },
    timeoutSeconds: 1_800,
    async run(payload, ctx) {
      const olderThanDays = Math.max(payload.olderThanDays ?? options.minDays, options.minDays);
      const deleted = await ledger.deleteFinished(olderThanDays * 86_400);
      // the overview's rollup keeps a week (it shows the last day); batches and firings go with their jobs
      const history = await ledger.pruneHistory({ rollupDays: 8, olderThanDays });
      ctx.logger.info({ deleted, olderThanDays, asked: payload.olderThanDays ?? null, minDays: options.minDays, pruned: history }, 'finished jobs pruned');
      return { deleted, olderThanDays };
    },
  });
}

import { startLoop, type Logger } from '../support/index.ts';
import type { Ledger } from '../store/index.ts';

/**
 * Prunes the fetcher's own finished jobs and their executions, as main's maintenance.cleanup does
 * for main's ledger, with the same retention (JOBGATE_RETENTION_DAYS): without it the fetcher's
 * ledger grows for ever. pg-boss prunes its own tables (a record's row: its queue's deleteAfterSeconds).
 */
export function startPruner(deps: { ledger: Ledger; logger: Logger; retentionDays: number; intervalMs: number }) {
  const logger = deps.logger.child({ component: 'pruner' });
  return startLoop(
    async () => {
      const deleted = await deps.ledger.deleteFinished(deps.retentionDays * 86_400);
      // and the rows of attempts of jobs recorded by their pg-boss row (store/fetcher-records.ts), which pg-boss deletes as old
      const { attempts } = await deps.ledger.pruneHistory({ rollupDays: deps.retentionDays, olderThanDays: deps.retentionDays });
      if (deleted + attempts > 0) logger.info({ deleted, attempts, olderThanDays: deps.retentionDays }, 'finished jobs pruned');
    },
    { intervalMs: deps.intervalMs, onError: (err) => logger.warn({ err }, 'pruning finished jobs failed; trying again later') },
  );
}

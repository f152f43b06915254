import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '@jobgate/runtime';
import type { Ledger } from '@jobgate/queue';

/**
 * Prunes the fetcher's own finished jobs and their executions, as main's maintenance.cleanup does
 * for main's ledger, with the same retention (JOBGATE_RETENTION_DAYS): without it the fetcher's
 * ledger grows for ever. pg-boss prunes its own tables.
 */
export function startPruner(deps: { ledger: Ledger; logger: Logger; retentionDays: number; intervalMs: number }) {
  const logger = deps.logger.child({ component: 'pruner' });
  const stopping = new AbortController();
  const loop = (async () => {
    while (!stopping.signal.aborted) {
      try {
        const deleted = await deps.ledger.deleteFinished(deps.retentionDays * 86_400);
        if (deleted > 0) logger.info({ deleted, olderThanDays: deps.retentionDays }, 'finished jobs pruned');
      } catch (err) {
        logger.warn({ err }, 'pruning finished jobs failed; trying again later');
      }
      await sleep(deps.intervalMs, undefined, { signal: stopping.signal }).catch(() => {});
    }
  })();
  return {
    async stop(): Promise<void> {
      stopping.abort();
      await loop;
    },
  };
}

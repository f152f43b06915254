// The maintain stage on either side: pg-boss gave a job up without our handler settling it (the
// last attempt expired or its runner died). Tell the ledger, so the job does not look active forever.
import type { PgBoss } from 'pg-boss';
import type { Logger } from '../support/index.ts';
import type { Ledger, RecordRuns } from '../store/index.ts';
import { SystemQueue } from '../define/catalogue.ts';
import type { QueuedData } from '../define/queue-policy.ts';

export async function watchDeadLetters(deps: { boss: PgBoss; ledger: Ledger; logger: Logger; workOptions: { pollingIntervalSeconds: number; notifyPollingIntervalSeconds: number }; records?: RecordRuns }): Promise<void> {
  const { boss, ledger, logger } = deps;
  const message = 'the queue gave up on the job (its last attempt expired or its runner died)';
  await boss.work<QueuedData>(SystemQueue.deadLetter, { batchSize: 1, includeMetadata: true, ...deps.workOptions }, async (jobs) => {
    for (const job of jobs) {
      const { sourceId, sourceName } = job as { sourceId?: string; sourceName?: string };
      const id = sourceId ?? job.id;
      // a job recorded by its pg-boss row (main's: store/record-runs.ts; the fetcher's: store/fetcher-records.ts), else the ledger's
      const gaveUp = deps.records && sourceName && (job.data as { record?: number } | null)?.record === 1 ? await deps.records.gaveUp(sourceName, id, message) : await ledger.failUnsettled(id, message);
      if (gaveUp) {
        logger.warn({ jobId: id }, 'job dead-lettered by the queue');
      }
    }
  });
}

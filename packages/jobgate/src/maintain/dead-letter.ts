// The maintain stage on either side: pg-boss gave a job up without our handler settling it (the
// last attempt expired or its runner died). Tell the ledger, so the job does not look active forever.
import type { PgBoss } from 'pg-boss';
import type { Logger } from '../support/index.ts';
import type { Ledger } from '../store/index.ts';
import { SystemQueue } from '../define/catalogue.ts';
import type { QueuedData } from '../define/queue-policy.ts';

export async function watchDeadLetters(deps: { boss: PgBoss; ledger: Ledger; logger: Logger; workOptions: { pollingIntervalSeconds: number; notifyPollingIntervalSeconds: number } }): Promise<void> {
  const { boss, ledger, logger } = deps;
  await boss.work<QueuedData>(SystemQueue.deadLetter, { batchSize: 1, includeMetadata: true, ...deps.workOptions }, async (jobs) => {
    for (const job of jobs) {
      const id = (job as { sourceId?: string }).sourceId ?? job.id;
      if (await ledger.failUnsettled(id, 'the queue gave up on the job (its last attempt expired or its runner died)')) {
        logger.warn({ jobId: id }, 'job dead-lettered by the queue');
      }
    }
  });
}

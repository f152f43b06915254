// A finished batch's callbacks (main): each finish's are enqueued once, in the transaction that
// clears its `dispatch_due` (set by the trigger in the same transaction as the last member's end),
// so neither several main processes nor a crash in between can enqueue them twice or lose them.
import type { Pool } from 'pg';
import { JobgateError, startLoop, type Logger } from '../support/index.ts';
import { callbacksFor, withTransaction, type BatchStore, type Queryable } from '../store/index.ts';
import type { EnqueueOptions, EnqueueResult } from './perform-later.ts';
import { callbackPayload } from './batch.ts';

/** Batches handled per transaction. */
const PER_TRANSACTION = 20;

export function startBatchCallbacks(deps: {
  pool: Pool;
  batches: BatchStore;
  performLater: (name: string, payload: unknown, options: EnqueueOptions & { db: Queryable }) => Promise<EnqueueResult>;
  intervalMs: number;
  logger: Logger;
}) {
  const { pool, batches } = deps;
  const logger = deps.logger.child({ component: 'batches' });

  /** Enqueues the callbacks of up to PER_TRANSACTION due batches; how many batches it took. */
  const dispatchSome = () =>
    withTransaction(pool, async (db) => {
      const due = await batches.takeDue(db, PER_TRANSACTION);
      for (const batch of due) {
        const counts = await batches.counts(db, batch.id);
        const runs = callbacksFor(counts);
        const dispatched: Array<{ on: (typeof batch.callbacks)[number]['on']; jobId: string }> = [];
        for (const callback of batch.callbacks) {
          if (!runs.has(callback.on)) continue;
          try {
            const { job } = await deps.performLater(callback.name, callbackPayload(callback, { id: batch.id, counts, properties: batch.properties }), { db });
            dispatched.push({ on: callback.on, jobId: job.id });
          } catch (err) {
            // refused before anything was written (its job is no longer defined, its payload no longer fits): the others still go
            if (!(err instanceof JobgateError)) throw err;
            logger.error({ err, batchId: batch.id, on: callback.on, jobName: callback.name }, 'a batch callback could not be enqueued; skipped');
          }
        }
        await batches.markDispatched(db, batch.id, dispatched, counts);
        logger.info({ batchId: batch.id, counts, callbacks: dispatched }, 'batch finished');
      }
      return due.length;
    });

  return startLoop(
    async (signal) => {
      while (!signal.aborted && (await dispatchSome()) === PER_TRANSACTION);
    },
    { intervalMs: deps.intervalMs, onError: (err) => logger.warn({ err }, 'could not enqueue batch callbacks; trying again') },
  );
}

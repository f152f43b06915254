// A finished batch's callbacks (main): each finish's are enqueued once, in the transaction that
// clears its `dispatch_due` (set by the trigger in the same transaction as the last member's end),
// so neither several main processes nor a crash in between can enqueue them twice or lose them.
import type { Pool } from 'pg';
import { ErrorCode, JobgateError, startLoop, type Logger } from '../support/index.ts';
import { callbacksFor, withTransaction, type BatchStore, type Queryable } from '../store/index.ts';
import type { EnqueueOptions, EnqueueResult } from './perform-later.ts';
import { callbackPayload } from './batch.ts';

/** A batch whose callbacks could not be enqueued here is left to other processes (or a later try) this long. */
const SKIP_MS = 30_000;
/** A callback no process could enqueue for this long after its batch finished is dropped (logged), so the others still go. */
const GIVE_UP_MS = 10 * 60_000;

export function startBatchCallbacks(deps: {
  pool: Pool;
  batches: BatchStore;
  performLater: (name: string, payload: unknown, options: EnqueueOptions & { db: Queryable }) => Promise<EnqueueResult>;
  intervalMs: number;
  logger: Logger;
}) {
  const { pool, batches } = deps;
  const logger = deps.logger.child({ component: 'batches' });
  /** Batches this process failed on, until when it leaves them alone (one bad batch must not hold up the rest). */
  const skipped = new Map<string, number>();

  /**
   * Enqueues the callbacks of one due batch, in its own transaction: 'done', or 'none' when none is
   * due. A callback this process cannot enqueue (its job is defined only in a newer deploy, its
   * payload no longer fits) rolls the transaction back, so the batch stays due for a process that
   * can: 'skipped' (and this process leaves it alone for SKIP_MS).
   */
  async function dispatchOne(): Promise<'done' | 'none' | 'skipped'> {
    const now = Date.now();
    for (const [id, until] of skipped) if (until <= now) skipped.delete(id);
    let taken: string | null = null;
    try {
      return await withTransaction(pool, async (db) => {
        const [batch] = await batches.takeDue(db, 1, [...skipped.keys()]);
        if (!batch) return 'none';
        taken = batch.id;
        const counts = await batches.counts(db, batch.id);
        const runs = callbacksFor(counts);
        const dispatched: Array<{ on: (typeof batch.callbacks)[number]['on']; jobId: string }> = [];
        for (const callback of batch.callbacks) {
          if (!runs.has(callback.on)) continue;
          try {
            const { job } = await deps.performLater(callback.name, callbackPayload(callback, { id: batch.id, counts, properties: batch.properties }), { db });
            dispatched.push({ on: callback.on, jobId: job.id });
          } catch (err) {
            // refused before anything was written: its job is not defined here, or its payload no
            // longer fits. A newer deploy may know better, so the batch waits for one a while;
            // after GIVE_UP_MS nobody does, and the others go without it.
            const refused = err instanceof JobgateError && (err.code === ErrorCode.unknownJob || err.code === ErrorCode.payloadInvalid);
            if (!refused || now - Date.parse(batch.finishedAt) < GIVE_UP_MS) throw err;
            logger.error({ err, batchId: batch.id, on: callback.on, jobName: callback.name }, 'a batch callback no process could enqueue for 10 minutes is dropped; the others go');
          }
        }
        await batches.markDispatched(db, batch.id, dispatched, counts);
        logger.info({ batchId: batch.id, counts, callbacks: dispatched }, 'batch finished');
        return 'done';
      });
    } catch (err) {
      // the database itself failing is the loop's to report; a batch of its own is set aside
      if (taken === null || !(err instanceof JobgateError) || err.code === ErrorCode.databaseUnavailable) throw err;
      skipped.set(taken, now + SKIP_MS);
      logger.error({ err, batchId: taken }, 'could not enqueue the callbacks of a finished batch; it stays due (for another process, or this one in 30 s)');
      return 'skipped';
    }
  }

  return startLoop(
    async (signal) => {
      while (!signal.aborted && (await dispatchOne()) !== 'none');
    },
    { intervalMs: deps.intervalMs, onError: (err) => logger.warn({ err }, 'could not enqueue batch callbacks; trying again') },
  );
}

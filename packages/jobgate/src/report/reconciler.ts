import { startLoop, type Logger } from '../support/index.ts';
import type { MainLedger } from '../store/index.ts';
import { FetcherErrorCode, type FetcherClient, type FetcherClientError } from '../client/index.ts';

/**
 * Asks the fetcher (SignedRoutes.readJob) about routed jobs that have been quiet for `quietSeconds`
 * and brings main's ledger in line with the answer, so a lost job event cannot leave a job stuck.
 * A job the fetcher does not know is left as it is and logged: the forwarder marked it forwarded
 * only after the fetcher said it took it.
 */
export function startReconciler(deps: { ledger: MainLedger; fetcher: FetcherClient; logger: Logger; intervalMs: number; quietSeconds: number }) {
  const logger = deps.logger.child({ component: 'reconciler' });

  async function pass(signal: AbortSignal): Promise<void> {
    for (const job of await deps.ledger.quietFetcherJobs(deps.quietSeconds, 100)) {
      const { id } = job;
      if (signal.aborted) return;
      try {
        const seen = await deps.fetcher.getJob(id);
        // applied only if main's ledger did not move meanwhile (a claim of a later attempt, an event)
        const changed = await deps.ledger.reconcileFromFetcher(job, seen);
        if (changed) logger.info({ jobId: id, state: seen.state }, 'job reconciled with the fetcher');
        else await deps.ledger.touchJob(id);
      } catch (err) {
        const e = err as FetcherClientError;
        if (e.code === FetcherErrorCode.rejected && e.status === 404) {
          logger.error({ jobId: id }, 'the fetcher does not know a job it accepted');
          await deps.ledger.touchJob(id);
        } else {
          // unreachable: the forwarder and keep-awake deal with that; try again next pass
          logger.warn({ err, jobId: id }, 'could not ask the fetcher about a quiet job');
          return;
        }
      }
    }
  }

  return startLoop((signal) => pass(signal), { intervalMs: deps.intervalMs, onError: (err) => logger.warn({ err }, 'reconciler pass failed') });
}

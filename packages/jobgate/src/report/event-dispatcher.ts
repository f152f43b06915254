import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../support/index.ts';
import { SignedRoutes, chunksByBytes, type JobEvent } from '../protocol/index.ts';
import { onFreshConnection, toWireEvent, type FetcherLedger, type StoredEvent } from '../store/index.ts';
import { FetcherErrorCode, unreachableLog, type FetcherClientError, type MainClient, type UnreachableLog } from '../client/index.ts';

/** Statuses by which main refuses the events themselves (not the request: a 401 is a secret rotation, a 404 an older main). */
const REFUSES_EVENTS = new Set([400, 413, 422]);

/**
 * Delivers the ledger's job events to main in batches, oldest first, until main has them: main may
 * be down or redeploying, so a failed batch is retried with backoff (up to `maxRetryDelayMs`, 30 s,
 * apart), forever. An event leaves the outbox only once main answered 2xx.
 */
export function startEventDispatcher(deps: { ledger: FetcherLedger; main: MainClient; logger: Logger; batchSize?: number; idleMs?: number; onSetAside?: () => void; maxRetryDelayMs?: number; unreachable?: UnreachableLog }) {
  const logger = deps.logger.child({ component: 'events' });
  const batchSize = deps.batchSize ?? 500;
  const idleMs = deps.idleMs ?? 250;
  const maxRetryDelayMs = deps.maxRetryDelayMs ?? 30_000;
  const stopping = new AbortController();
  const unreachable = deps.unreachable ?? unreachableLog(logger, 'main');
  let failures = 0;

  /**
   * Sends stored events, at most SignedRoutes.jobEvents.batchBytes bytes a request. A request main refuses
   * for its content (400/413/422) is split until the event it refuses is found: that one is set
   * aside (kept, counted, re-sendable), every other event goes on. Any other failure throws: the
   * whole batch is tried again later.
   */
  async function sendAll(stored: StoredEvent[]): Promise<{ setAside: Array<{ seq: number; reason: string }> }> {
    const wire = new Map(stored.map((e) => [toWireEvent(e), e]));
    const setAside: Array<{ seq: number; reason: string }> = [];
    async function sendOrSplit(events: JobEvent[]): Promise<void> {
      try {
        await deps.main.sendEvents(events);
      } catch (err) {
        const e = err as FetcherClientError;
        if (e.code !== FetcherErrorCode.rejected || !REFUSES_EVENTS.has(e.status ?? 0)) throw err;
        if (events.length === 1) {
          const refused = wire.get(events[0]!)!;
          setAside.push({ seq: refused.seq, reason: e.message });
          logger.error({ err, jobId: refused.jobId, jobSeq: refused.jobSeq, type: refused.type }, 'main refused a job event; it is set aside (kept; re-send it from the admin fetcher page), the others go on');
          deps.onSetAside?.();
          return;
        }
        const half = Math.ceil(events.length / 2);
        await sendOrSplit(events.slice(0, half));
        await sendOrSplit(events.slice(half));
      }
    }
    for (const chunk of chunksByBytes([...wire.keys()], SignedRoutes.jobEvents.batchBytes)) await sendOrSplit(chunk);
    return { setAside };
  }

  const loop = (async () => {
    while (!stopping.signal.aborted) {
      let sent: number | null = 0;
      try {
        // (main applies events by sequence: a batch sent again after a lost connection is not applied twice)
        sent = await onFreshConnection(() => deps.ledger.deliverEvents(batchSize, sendAll));
        // main answered only if something was sent
        if (sent) unreachable.ok();
        failures = 0;
        if (sent) logger.debug({ sent }, 'events delivered');
      } catch (err) {
        failures++;
        const delay = Math.min(maxRetryDelayMs, 250 * 2 ** Math.min(failures, 7)) * (0.5 + Math.random() / 2);
        // main away: one line a minute, not one per retry
        unreachable.failed(err, 'delivering job events to main');
        await sleep(delay, undefined, { signal: stopping.signal }).catch(() => {});
        continue;
      }
      // A full batch means more are waiting: go again at once.
      if (sent !== batchSize) await sleep(idleMs, undefined, { signal: stopping.signal }).catch(() => {});
    }
  })();

  return {
    /** Stops after one last delivery attempt (bounded by `graceMs`), so a clean shutdown leaves little behind. */
    async stop(graceMs = 3_000): Promise<void> {
      stopping.abort();
      // a delivery in flight may wait on its timeouts: bounded, like the last flush
      await Promise.race([loop, sleep(graceMs)]);
      await Promise.race([deps.ledger.deliverEvents(batchSize, sendAll).catch(() => null), sleep(graceMs)]);
    },
  };
}

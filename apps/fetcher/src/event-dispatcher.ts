import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '@jobgate/runtime';
import type { JobEvent } from '@jobgate/protocol';
import type { Ledger, StoredEvent } from '@jobgate/queue';
import type { MainClient } from '@jobgate/fetcher-client';

export function toWireEvent(e: StoredEvent): JobEvent {
  return { jobId: e.jobId, seq: e.jobSeq, type: e.type, attempt: e.attempt, at: e.at, ...(e.data as Partial<JobEvent>), ...(e.traceparent ? { traceparent: e.traceparent } : {}) };
}

/**
 * Delivers the ledger's job events to main in batches, oldest first, until main has them: main may
 * be down or redeploying, so a failed batch is retried with backoff (up to 30 s apart), forever.
 * An event leaves the outbox only once main answered 2xx.
 */
export function startEventDispatcher(deps: { ledger: Ledger; main: MainClient; logger: Logger; batchSize?: number; idleMs?: number }) {
  const logger = deps.logger.child({ component: 'events' });
  const batchSize = deps.batchSize ?? 500;
  const idleMs = deps.idleMs ?? 250;
  const stopping = new AbortController();
  let failures = 0;

  const loop = (async () => {
    while (!stopping.signal.aborted) {
      let sent: number | null = 0;
      try {
        sent = await deps.ledger.deliverEvents(batchSize, async (events) => {
          await deps.main.sendEvents(events.map(toWireEvent));
        });
        if (failures > 0) logger.info({ failures }, 'main reachable again; events flowing');
        failures = 0;
        if (sent) logger.debug({ sent }, 'events delivered');
      } catch (err) {
        failures++;
        const delay = Math.min(30_000, 250 * 2 ** Math.min(failures, 7)) * (0.5 + Math.random() / 2);
        // loudly on the first failure and then every tenth, not on every retry
        if (failures === 1 || failures % 10 === 0) logger.warn({ err, failures, retryInMs: Math.round(delay) }, 'could not deliver job events to main; retrying');
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
      await Promise.race([deps.ledger.deliverEvents(batchSize, async (events) => void (await deps.main.sendEvents(events.map(toWireEvent)))).catch(() => null), sleep(graceMs)]);
    },
  };
}

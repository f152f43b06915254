import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '@jobgate/runtime';
import type { Ledger } from '@jobgate/queue';
import type { FetcherClient } from '@jobgate/fetcher-client';

export type FetcherState = 'awake' | 'asleep' | 'down' | 'unknown';

export interface FetcherHealth {
  state: FetcherState;
  checkedAt: string | null;
  latencyMs: number | null;
}

/**
 * While any routed job is unfinished, pings the fetcher's /healthz every `intervalMs`: a free
 * Render instance sleeps after 15 minutes without inbound requests, even in the middle of a long
 * job. With nothing pending it stops, so the fetcher can sleep. Each ping also records the
 * fetcher's state for the admin pages.
 */
export function startKeepAwake(deps: { ledger: Ledger; fetcher: FetcherClient; logger: Logger; intervalMs: number }) {
  const logger = deps.logger.child({ component: 'keep-awake' });
  const stopping = new AbortController();
  const health: FetcherHealth = { state: 'unknown', checkedAt: null, latencyMs: null };

  async function ping(): Promise<void> {
    const started = performance.now();
    try {
      await deps.fetcher.health();
      health.state = 'awake';
      health.latencyMs = Math.round(performance.now() - started);
    } catch (err) {
      // refused or a proxy's 502/503: the platform has it asleep or it is down; either way not awake
      health.state = 'down';
      health.latencyMs = null;
      logger.warn({ err }, 'fetcher did not answer the keep-awake ping');
    }
    health.checkedAt = new Date().toISOString();
  }

  const loop = (async () => {
    while (!stopping.signal.aborted) {
      try {
        if (await deps.ledger.hasUnfinishedFetcherJobs()) await ping();
      } catch (err) {
        logger.warn({ err }, 'keep-awake check failed');
      }
      await sleep(deps.intervalMs, undefined, { signal: stopping.signal }).catch(() => {});
    }
  })();

  return {
    health: (): FetcherHealth => ({ ...health }),
    async stop(): Promise<void> {
      stopping.abort();
      await loop;
    },
  };
}

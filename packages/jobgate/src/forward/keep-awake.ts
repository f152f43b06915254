import { startLoop, type Logger } from '../support/index.ts';
import type { MainLedger } from '../store/index.ts';
import type { FetcherStatus } from '../protocol/index.ts';
import { FetcherErrorCode, type FetcherClient, type FetcherClientError } from '../client/index.ts';

/** What the last probe saw. Whether a wake-up is under way is a separate fact (`waking`). */
export type FetcherState = 'awake' | 'asleep' | 'down' | 'unknown';
export const FETCHER_STATES: readonly FetcherState[] = ['awake', 'asleep', 'down', 'unknown'];

export interface FetcherHealth {
  state: FetcherState;
  checkedAt: string | null;
  latencyMs: number | null;
  /** The fetcher's own status (SignedRoutes.readStatus), from the last check that reached it (at `seenAt`). */
  status?: FetcherStatus;
  seenAt?: string;
  /** Why the last check failed. */
  error?: string;
}

/**
 * What main knows of the fetcher: each check asks its status (signed, cheap) and classifies the
 * answer. Refused, reset or unreachable: down. A platform proxy's 502/503/504 or no answer in time:
 * asleep (a free Render instance holds or bounces requests while it boots). Any answer from the app:
 * awake. The state is only ever what a probe saw: a wake-up in flight does not hide a dead fetcher
 * (that is when the admin needs to see `down` and reach for the override); serviceStatus shows it
 * beside the state, from the wake store.
 */
export function createFetcherMonitor(deps: { fetcher: FetcherClient; logger: Logger; timeoutMs?: number }) {
  const health: FetcherHealth = { state: 'unknown', checkedAt: null, latencyMs: null };
  const now = (): FetcherHealth => ({ ...health });
  let checking: Promise<FetcherHealth> | null = null;
  /** The fetcher's RSS over the last hour, at most one sample per 5 s (for the dashboard's chart). */
  const samples: Array<{ at: string; rssMb: number; limitMb: number }> = [];

  async function probe(): Promise<FetcherHealth> {
    const started = performance.now();
    try {
      health.status = await deps.fetcher.probeStatus(deps.timeoutMs ?? 3_000);
      health.state = 'awake';
      const now = Date.now();
      health.seenAt = new Date(now).toISOString();
      if (!samples.length || now - Date.parse(samples.at(-1)!.at) >= 5_000) {
        samples.push({ at: new Date(now).toISOString(), rssMb: health.status.memory.rssMb, limitMb: health.status.memory.limitMb });
        while (samples.length && now - Date.parse(samples[0]!.at) > 3_600_000) samples.shift();
      }
      health.latencyMs = Math.round(performance.now() - started);
      delete health.error;
    } catch (err) {
      const e = err as FetcherClientError;
      health.error = e.message;
      health.latencyMs = null;
      if (e.code === FetcherErrorCode.timeout || (e.code === FetcherErrorCode.unavailable && e.status)) health.state = 'asleep';
      else if (e.code === FetcherErrorCode.unavailable) health.state = 'down';
      else {
        // it answered, but not with a status we can read (a 401 from a half-rotated secret, a 500)
        health.state = 'awake';
        health.latencyMs = Math.round(performance.now() - started);
      }
    }
    health.checkedAt = new Date().toISOString();
    return now();
  }

  return {
    health: now,
    history: () => [...samples],
    /** Checks now unless a check finished within `maxAgeMs`; concurrent callers share one check. */
    async check(maxAgeMs = 0): Promise<FetcherHealth> {
      if (health.checkedAt && Date.now() - Date.parse(health.checkedAt) < maxAgeMs) return now();
      checking ??= probe().finally(() => (checking = null));
      return checking;
    },
  };
}

export type FetcherMonitor = ReturnType<typeof createFetcherMonitor>;

/**
 * While any routed job is unfinished, checks the fetcher every `intervalMs`: a free Render instance
 * sleeps after 15 minutes without inbound requests, even in the middle of a long job. With nothing
 * pending it stops, so the fetcher can sleep.
 */
export function startKeepAwake(deps: { ledger: MainLedger; monitor: FetcherMonitor; logger: Logger; intervalMs: number }) {
  const logger = deps.logger.child({ component: 'keep-awake' });
  return startLoop(
    async () => {
      if (!(await deps.ledger.hasUnfinishedFetcherJobs())) return;
      const h = await deps.monitor.check();
      if (h.state !== 'awake') logger.warn({ state: h.state, error: h.error }, 'fetcher did not answer the keep-awake check');
    },
    { intervalMs: deps.intervalMs, onError: (err) => logger.warn({ err }, 'keep-awake check failed') },
  );
}

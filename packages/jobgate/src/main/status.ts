import type { MainLedger, OverrideState, WakeState } from '../store/index.ts';
import type { FetcherHealth, FetcherMonitor } from '../forward/keep-awake.ts';

/**
 * The state of the whole service at a glance, as the admin's fetcher page
 * (GET /admin/api/fetcher_service) and `jobgate status` show it: the fetcher (asked unless a
 * check is under `maxAgeMs` old) and whether main is waking it, the override, the outbox and the
 * per-queue counts on both sides.
 */
export async function serviceStatus(deps: { ledger: MainLedger; override: () => Promise<OverrideState>; wakes: () => Promise<WakeState>; monitor: FetcherMonitor | null; maxAgeMs?: number }) {
  const [fetcher, override, outbox, main] = await Promise.all([
    fetcherState(deps),
    deps.override(),
    deps.ledger.outboxStats().then(async (stats) => ({ ...stats, refusedByFetcher: stats.refused > 0 ? await deps.ledger.refusedByFetcher() : [] })),
    // main's row counts the jobs that run on main (a routed job is the fetcher's, whose own counts come from it);
    // one the override moved to main has its route changed, so it counts here
    deps.ledger.countsByName('main'),
  ]);
  return { fetcher, override, outbox, queues: { main, fetcher: fetcher.status?.queues ?? null } };
}

/** The fetcher as the probe saw it (asked unless a check is under `maxAgeMs` old), with a wake-up in flight (by any main process) beside it. */
export async function fetcherState(deps: { wakes: () => Promise<WakeState>; monitor: FetcherMonitor | null; maxAgeMs?: number }) {
  const unconfigured: FetcherHealth = { state: 'unknown', checkedAt: null, latencyMs: null, error: 'FETCHER_SERVICE_URL is not set' };
  const [health, wake] = await Promise.all([deps.monitor ? deps.monitor.check(deps.maxAgeMs ?? 0) : Promise.resolve(unconfigured), deps.wakes()]);
  return { ...health, ...wake };
}

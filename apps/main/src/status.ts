import type { Ledger, OverrideState } from '@jobgate/queue';
import type { FetcherHealth, FetcherMonitor } from './keep-awake.ts';

/**
 * The state of the whole service at a glance, as the admin's fetcher page
 * (GET /admin/api/fetcher_service) and `jobgate status` show it: the fetcher (asked unless a
 * check is under `maxAgeMs` old), the override, the outbox and the per-queue counts on both sides.
 */
export async function serviceStatus(deps: { ledger: Ledger; override: () => Promise<OverrideState>; monitor: FetcherMonitor | null; maxAgeMs?: number }) {
  const unconfigured: FetcherHealth = { state: 'unknown', checkedAt: null, latencyMs: null, error: 'FETCHER_SERVICE_URL is not set' };
  const [fetcher, override, outbox, main] = await Promise.all([
    deps.monitor ? deps.monitor.check(deps.maxAgeMs ?? 0) : Promise.resolve(unconfigured),
    deps.override(),
    deps.ledger.outboxStats(),
    deps.ledger.countsByName(),
  ]);
  return { fetcher, override, outbox, queues: { main, fetcher: fetcher.status?.queues ?? null } };
}

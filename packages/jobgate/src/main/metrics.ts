import { Counter, Gauge, Histogram, type Logger, type Registry } from '../support/index.ts';
import type { MainLedger, PgBoss, WakeStore } from '../store/index.ts';
import { fetcherMemoryGauge, orKeep, queueSizes } from '../run/metrics.ts';
import { FETCHER_STATES, type FetcherMonitor } from '../forward/keep-awake.ts';
import type { OverrideControl } from '../forward/override.ts';
import { SignedRoutes } from '../protocol/routes.ts';

/**
 * Main's own metrics beside the job runtime's: the outbox, forwards, wake-ups, what main last knew
 * of the fetcher (no scrape ever probes it: that would keep a free instance from sleeping), the
 * override and pg-boss's queue sizes. Gauges are read when scraped.
 */
export function createMainMetrics(registry: Registry, deps: { ledger: MainLedger; boss: PgBoss; override: () => OverrideControl; monitor: FetcherMonitor | null; wakes: WakeStore; logger: Logger }) {
  const registers = [registry];
  // one outbox query per scrape for both gauges
  let outbox: { at: number; stats: Promise<{ pending: number; oldestAgeSeconds: number; refused: number }> } | null = null;
  const outboxStats = () => {
    if (!outbox || performance.now() - outbox.at > 1_000) outbox = { at: performance.now(), stats: deps.ledger.outboxStats() };
    return outbox.stats;
  };
  new Gauge({
    name: 'jobgate_outbox_jobs',
    help: 'Fetcher jobs not yet delivered (queued or being forwarded)',
    registers,
    collect: orKeep(deps.logger, async function (this: Gauge) {
      this.set((await outboxStats()).pending);
    }),
  });
  new Gauge({
    name: 'jobgate_outbox_oldest_age_seconds',
    help: 'Age of the oldest undelivered fetcher job (0 when none)',
    registers,
    collect: orKeep(deps.logger, async function (this: Gauge) {
      this.set((await outboxStats()).oldestAgeSeconds);
    }),
  });
  new Gauge({
    name: 'jobgate_outbox_refused_jobs',
    help: 'Undelivered fetcher jobs the fetcher refuses for now (a job name or payload it does not know yet); they wait',
    registers,
    collect: orKeep(deps.logger, async function (this: Gauge) {
      this.set((await outboxStats()).refused);
    }),
  });
  new Gauge({
    name: 'jobgate_override_enabled',
    help: '1 while the emergency override runs fetcher jobs on main',
    registers,
    collect: orKeep(deps.logger, async function (this: Gauge) {
      this.set((await deps.override().enabled()) ? 1 : 0);
    }),
  });
  new Gauge({
    name: 'jobgate_fetcher_state',
    help: "The fetcher's state at main's last check (1 for the current state)",
    labelNames: ['state'] as const,
    registers,
    collect() {
      const state = deps.monitor?.health().state ?? 'unknown';
      for (const s of FETCHER_STATES) this.set({ state: s }, s === state ? 1 : 0);
    },
  });
  new Gauge({
    name: 'jobgate_fetcher_waking',
    help: '1 while a main process is waking the fetcher (beside jobgate_fetcher_state, which is what the last check saw)',
    registers,
    collect: orKeep(deps.logger, async function (this: Gauge) {
      this.set((await deps.wakes.current()).waking ? 1 : 0);
    }),
  });
  fetcherMemoryGauge(registry, "The fetcher's memory at main's last check: rss, heap used, peak rss, and its limit", () => deps.monitor?.health().status?.memory);
  queueSizes(registry, deps.boss, deps.logger);
  const forwards = new Counter({ name: 'jobgate_forward_requests_total', help: `${SignedRoutes.submitJobs.method} ${SignedRoutes.submitJobs.path} to the fetcher, by outcome (delivered, failed, refused)`, labelNames: ['outcome'] as const, registers });
  const forwardedJobs = new Counter({ name: 'jobgate_forwarded_jobs_total', help: 'Jobs in forward requests, by outcome', labelNames: ['outcome'] as const, registers });
  const wakeups = new Counter({ name: 'jobgate_fetcher_wakeups_total', help: 'Wake-ups of the fetcher, by outcome (awake, timeout)', labelNames: ['outcome'] as const, registers });
  const wakeSeconds = new Histogram({ name: 'jobgate_fetcher_wake_seconds', help: 'How long wake-ups took', buckets: [0.1, 1, 5, 15, 30, 60, 90, 180], registers });
  return {
    forwarded(outcome: 'delivered' | 'failed' | 'refused', jobs: number) {
      forwards.inc({ outcome });
      forwardedJobs.inc({ outcome }, jobs);
    },
    woke(outcome: 'awake' | 'timeout', ms: number) {
      wakeups.inc({ outcome });
      wakeSeconds.observe(ms / 1000);
    },
  };
}

export type MainMetrics = ReturnType<typeof createMainMetrics>;

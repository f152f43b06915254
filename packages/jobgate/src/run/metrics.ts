import { Counter, Gauge, Histogram, type Logger, type Registry } from '../support/index.ts';
import type { PgBoss, Route } from '../store/index.ts';

/** The job runtime's Prometheus metrics; `route` is the side that enqueued or ran the job. */
export function createJobMetrics(registry: Registry) {
  const labelNames = ['name', 'route'] as const;
  const enqueued = new Counter({ name: 'jobgate_jobs_enqueued_total', help: 'Jobs accepted by performLater (duplicates of a live unique job not counted), by where they will run', labelNames, registers: [registry] });
  const accepted = new Counter({ name: 'jobgate_jobs_accepted_total', help: 'Jobs main handed to this side (new ones; a repeated delivery is not counted)', labelNames: ['name'] as const, registers: [registry] });
  const completed = new Counter({ name: 'jobgate_jobs_completed_total', help: 'Jobs whose handler completed here', labelNames, registers: [registry] });
  const failed = new Counter({ name: 'jobgate_jobs_failed_total', help: 'Jobs failed for good here (last attempt, or a permanent error)', labelNames, registers: [registry] });
  const retried = new Counter({ name: 'jobgate_job_attempts_retried_total', help: 'Attempts that failed here and will be retried', labelNames, registers: [registry] });
  /** Seconds, from a no-op to an hour-long import. */
  const seconds = (name: string, help: string) =>
    new Histogram({ name, help, labelNames, buckets: [0.005, 0.025, 0.1, 0.5, 1, 5, 30, 120, 600, 3600], registers: [registry] });
  const duration = seconds('jobgate_job_duration_seconds', 'Handler time of each attempt run here');
  const wait = seconds('jobgate_job_queue_wait_seconds', 'From when an attempt was due to its handler start here');
  return {
    enqueued: (name: string, route: Route) => enqueued.inc({ name, route }),
    accepted: (name: string, count: number) => accepted.inc({ name }, count),
    started: (name: string, route: Route, waitedSeconds: number) => wait.observe({ name, route }, Math.max(0, waitedSeconds)),
    finished: (name: string, route: Route, outcome: 'completed' | 'failed' | 'retrying' | 'cancelled', seconds: number) => {
      duration.observe({ name, route }, seconds);
      if (outcome === 'completed') completed.inc({ name, route });
      else if (outcome === 'failed') failed.inc({ name, route });
      else if (outcome === 'retrying') retried.inc({ name, route });
    },
  };
}

export type JobMetrics = ReturnType<typeof createJobMetrics>;

/**
 * A gauge's collect that reads the database: if the read fails (the database is down), the gauge
 * keeps its last value and the scrape still answers, with every other metric in it.
 */
export function orKeep<G>(logger: Logger, collect: (this: G) => Promise<void>): (this: G) => Promise<void> {
  return async function (this: G) {
    try {
      await collect.call(this);
    } catch (err) {
      logger.warn({ err }, 'a metric could not be read; its last value is reported');
    }
  };
}

/**
 * jobgate_fetcher_memory_bytes{kind=rss|heap_used|peak_rss|limit}: the fetcher's own reading, or
 * main's as of its last check of the fetcher (nothing when it has none).
 */
export function fetcherMemoryGauge(registry: Registry, help: string, read: () => { rssMb: number; heapUsedMb: number; peakRssMb: number; limitMb: number } | undefined): void {
  const mb = 2 ** 20;
  new Gauge({
    name: 'jobgate_fetcher_memory_bytes',
    help,
    labelNames: ['kind'] as const,
    registers: [registry],
    collect() {
      const m = read();
      if (!m) return;
      this.set({ kind: 'rss' }, m.rssMb * mb);
      this.set({ kind: 'heap_used' }, m.heapUsedMb * mb);
      this.set({ kind: 'peak_rss' }, m.peakRssMb * mb);
      this.set({ kind: 'limit' }, m.limitMb * mb);
    },
  });
}

/** pg-boss's own per-queue counts (its cached queue stats), both apps. */
export function queueSizes(registry: Registry, boss: PgBoss, logger: Logger): void {
  new Gauge({
    name: 'jobgate_queue_jobs',
    help: "pg-boss queue sizes by state (queued = ready + deferred + blocked), from pg-boss's queue stats",
    labelNames: ['queue', 'state'] as const,
    registers: [registry],
    collect: orKeep(logger, async function (this: Gauge<'queue' | 'state'>) {
      const queues = await boss.getQueues();
      this.reset();
      for (const q of queues) {
        this.set({ queue: q.name, state: 'queued' }, q.queuedCount);
        this.set({ queue: q.name, state: 'ready' }, q.readyCount);
        this.set({ queue: q.name, state: 'deferred' }, q.deferredCount);
        this.set({ queue: q.name, state: 'active' }, q.activeCount);
      }
    }),
  });
}

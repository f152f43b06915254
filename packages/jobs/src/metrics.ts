import { Counter, Gauge, Histogram, type Registry } from '@jobgate/runtime';
import type { PgBoss, Route } from '@jobgate/queue';

/** The job runtime's Prometheus metrics; `route` is the side that enqueued or ran the job. */
export function createJobMetrics(registry: Registry) {
  const labelNames = ['name', 'route'] as const;
  const enqueued = new Counter({ name: 'jobgate_jobs_enqueued_total', help: 'Jobs accepted by performLater (duplicates of a live unique job not counted), by where they will run', labelNames, registers: [registry] });
  const accepted = new Counter({ name: 'jobgate_jobs_accepted_total', help: 'Jobs main handed to this side (new ones; a repeated delivery is not counted)', labelNames: ['name'] as const, registers: [registry] });
  const completed = new Counter({ name: 'jobgate_jobs_completed_total', help: 'Jobs whose handler completed here', labelNames, registers: [registry] });
  const failed = new Counter({ name: 'jobgate_jobs_failed_total', help: 'Jobs failed for good here (last attempt, or a permanent error)', labelNames, registers: [registry] });
  const retried = new Counter({ name: 'jobgate_job_attempts_retried_total', help: 'Attempts that failed here and will be retried', labelNames, registers: [registry] });
  const duration = new Histogram({
    name: 'jobgate_job_duration_seconds',
    help: 'Handler time of each attempt run here',
    labelNames,
    buckets: [0.005, 0.025, 0.1, 0.5, 1, 5, 30, 120, 600, 3600],
    registers: [registry],
  });
  const wait = new Histogram({
    name: 'jobgate_job_queue_wait_seconds',
    help: 'From when an attempt was due to its handler start here',
    labelNames,
    buckets: [0.005, 0.025, 0.1, 0.5, 1, 5, 30, 120, 600, 3600],
    registers: [registry],
  });
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

/** pg-boss's own per-queue counts (its cached queue stats), both apps. */
export function queueSizes(registry: Registry, boss: PgBoss): void {
  new Gauge({
    name: 'jobgate_queue_jobs',
    help: "pg-boss queue sizes by state (queued = ready + deferred + blocked), from pg-boss's queue stats",
    labelNames: ['queue', 'state'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const q of await boss.getQueues()) {
        this.set({ queue: q.name, state: 'queued' }, q.queuedCount);
        this.set({ queue: q.name, state: 'ready' }, q.readyCount);
        this.set({ queue: q.name, state: 'deferred' }, q.deferredCount);
        this.set({ queue: q.name, state: 'active' }, q.activeCount);
      }
    },
  });
}

// The schedule stage (main): each job's `cron` becomes a pg-boss schedule on one queue; a worker
// turns each firing into a performLater, so a firing is routed like any other job. Schedules no
// longer in the catalogue are removed. pg-boss fires a schedule once per slot however many
// processes run this.
import type { PgBoss } from 'pg-boss';
import { ErrorCode, JobgateError, traceFields, type Logger } from '../support/index.ts';
import type { QueueTimings } from '../store/index.ts';
import { SystemQueue, type Catalogue } from '../define/catalogue.ts';
import type { JobDefinition } from '../define/define-job.ts';
import type { EnqueueResult } from '../enqueue/perform-later.ts';

export async function startCron(deps: { boss: PgBoss; catalogue: Catalogue; timings: QueueTimings; logger: Logger; performLater: (def: JobDefinition, payload: unknown) => Promise<EnqueueResult> }): Promise<void> {
  const { boss, catalogue, timings, logger } = deps;
  const scheduled = new Set<string>();
  for (const def of catalogue.values()) {
    if (!def.cron) continue;
    await boss.schedule(SystemQueue.cron, def.cron.schedule, { name: def.name }, { key: def.name, tz: def.cron.timeZone ?? 'UTC' });
    scheduled.add(def.name);
  }
  for (const schedule of await boss.getSchedules(SystemQueue.cron)) {
    if (schedule.key && !scheduled.has(schedule.key)) await boss.unschedule(SystemQueue.cron, schedule.key);
  }
  // One firing per fetch: a failing firing must not make pg-boss re-send the others with it.
  await boss.work<{ name: string }>(SystemQueue.cron, { batchSize: 1, pollingIntervalSeconds: timings.pollIntervalSeconds, notifyPollingIntervalSeconds: timings.pollIntervalSeconds }, async (jobs) => {
    for (const job of jobs) {
      const def = catalogue.get(job.data.name);
      // Another process (a newer deploy) may know this job: fail, so the firing is retried there.
      if (!def) throw new JobgateError(ErrorCode.unknownJob, `cron fired for ${job.data.name}, which this process does not define`);
      if (!def.cron) continue; // unscheduled since it fired
      const { job: enqueued, duplicate } = await deps.performLater(def, def.cron.payload ?? {});
      logger.info({ jobId: enqueued.id, jobName: def.name, duplicate, ...traceFields(enqueued.traceparent) }, 'cron fired');
    }
  });
}

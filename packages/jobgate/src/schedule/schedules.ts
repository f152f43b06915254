// The schedule stage (main): schedules stored in PostgreSQL, the code's `cron` among them, each
// enabled one a pg-boss schedule keyed by its id on one queue. pg-boss fires a schedule once per
// slot however many processes run; a worker here turns each firing into a performLater, recorded
// with the firing in one transaction (so a firing handed out again enqueues nothing), and the job
// is routed like any other. Created, edited, disabled, deleted and run now from the admin, the API,
// the CLI and the library, without a restart.
import { randomUUID } from 'node:crypto';
import type { Pool } from 'pg';
import type { PgBoss } from 'pg-boss';
import { ErrorCode, JobgateError, findUnstorable, traceFields, type FieldError, type Logger } from '../support/index.ts';
import { withTransaction, type QueueTimings, type ScheduleFields, type ScheduleRun, type ScheduleStore, type StoredSchedule } from '../store/index.ts';
import { SystemQueue, type Catalogue } from '../define/catalogue.ts';
import type { JobDefinition } from '../define/define-job.ts';
import type { EnqueueOptions, EnqueueResult } from '../enqueue/perform-later.ts';
import { derivedId } from '../enqueue/batch.ts';
import { JobId } from '../protocol/wire.ts';

/** A schedule as the API shows it. */
export interface Schedule extends StoredSchedule {
  /** The next 5 firings (none while disabled). */
  nextRuns: string[];
  /** The last 5 firings, newest first, with their jobs' states now. */
  lastRuns: ScheduleRun[];
}

/** What pg-boss carries in a firing. `name` alone: a firing scheduled before schedules had ids (the job's own cron). */
interface Firing {
  scheduleId?: string;
  name: string;
}

/** The id of the code's schedule of `name`: the same in every process and deploy. */
const codeScheduleId = (name: string) => derivedId('00000000-0000-0000-0000-000000000000', `cron:${name}`);
const NEXT_RUNS = 5;

/**
 * What is wrong with a schedule's expression and time zone as pg-boss's schedule() would judge
 * them, as field errors (none: schedule() takes them). pg-boss judges both (a preview in the zone);
 * when it refuses, a preview of a plain cron in the same zone tells whether the zone was the
 * trouble. The expression must also have a firing left: a finished RRULE previews as nothing, and
 * schedule() refuses it (an AssertionError: a 500 once it got that far).
 */
export function recurrenceErrors(boss: Pick<PgBoss, 'previewSchedule'>, schedule: string, timeZone: string, now = new Date()): FieldError[] {
  try {
    if (boss.previewSchedule(schedule, { tz: timeZone, count: 1, from: now }).length === 0) return [{ path: 'schedule', message: 'has no firing left (an RRULE past its COUNT or UNTIL)' }];
    return [];
  } catch (err) {
    try {
      boss.previewSchedule('* * * * *', { tz: timeZone, count: 1, from: now });
    } catch {
      return [{ path: 'timeZone', message: `not an IANA time zone pg-boss can schedule in: ${JSON.stringify(timeZone)}` }];
    }
    return [{ path: 'schedule', message: `not a cron expression or RRULE pg-boss can run: ${(err as Error).message}` }];
  }
}

export function createSchedules(deps: {
  boss: PgBoss;
  pool: Pool;
  store: ScheduleStore;
  catalogue: Catalogue;
  timings: QueueTimings;
  logger: Logger;
  definition: (name: string) => JobDefinition;
  performLater: (def: JobDefinition, payload: unknown, options: EnqueueOptions) => Promise<EnqueueResult>;
}) {
  const { boss, store, logger } = deps;

  /** Checks what a schedule would run: the job, the expression and zone as pg-boss reads them, the payload. 422s name the field. */
  function check(name: string, fields: Pick<ScheduleFields, 'schedule' | 'timeZone' | 'payload'>): JobDefinition {
    const def = deps.definition(name);
    const errors = recurrenceErrors(boss, fields.schedule, fields.timeZone);
    const parsed = def.payload.safeParse(fields.payload);
    if (!parsed.success) errors.push(...parsed.error.issues.map((i) => ({ path: ['payload', ...i.path.map(String)].join('.'), message: i.message })));
    const unstorable = findUnstorable(fields.payload, ['payload']);
    if (unstorable) errors.push({ path: unstorable.path, message: unstorable.problem });
    if (errors.length > 0) throw new JobgateError(ErrorCode.requestInvalid, 'The schedule is invalid.', { errors });
    return def;
  }

  function nextRuns(s: StoredSchedule): string[] {
    if (!s.enabled) return [];
    try {
      return boss.previewSchedule(s.schedule, { tz: s.timeZone, count: NEXT_RUNS, from: new Date() }).map((d) => d.toISOString());
    } catch {
      return [];
    }
  }

  /** pg-boss's schedule made to match the row: scheduled while enabled, else removed. */
  async function apply(s: StoredSchedule): Promise<void> {
    if (s.enabled) await boss.schedule(SystemQueue.cron, s.schedule, { scheduleId: s.id, name: s.name } satisfies Firing, { key: s.id, tz: s.timeZone });
    else await boss.unschedule(SystemQueue.cron, s.id);
  }

  async function view(rows: StoredSchedule[]): Promise<Schedule[]> {
    const runs = await store.lastRuns(rows.map((r) => r.id));
    return rows.map((r) => ({ ...r, nextRuns: nextRuns(r), lastRuns: runs.get(r.id) ?? [] }));
  }

  /** A schedule id as given in a path or on the command line: a UUID, or a 422 naming `id`. */
  function checkedId(id: string): string {
    if (!JobId.safeParse(id).success) throw new JobgateError(ErrorCode.requestInvalid, 'The schedule id is invalid.', { errors: [{ path: 'id', message: 'a schedule id (a UUID)' }] });
    return id;
  }

  async function getOr404(id: string): Promise<StoredSchedule> {
    const found = await store.get(checkedId(id));
    if (!found) throw new JobgateError(ErrorCode.notFound, `No schedule has id ${id}.`);
    return found;
  }

  /**
   * Enqueues a firing's job in the transaction that records the firing (`by`: who ran it now; null
   * for pg-boss's firings). Null: this firing was recorded before (pg-boss handed it out again),
   * and nothing more is enqueued.
   */
  async function enqueueFiring(s: StoredSchedule, firing: string, by: string | null, options: Pick<EnqueueOptions, 'requestId' | 'traceparent'> = {}): Promise<EnqueueResult | null> {
    const def = deps.catalogue.get(s.name);
    // Another process (a newer deploy) may know this job: fail, so the firing is retried there.
    if (!def) throw new JobgateError(ErrorCode.unknownJob, `schedule ${s.id} fired for ${s.name}, which this process does not define`);
    return withTransaction(deps.pool, async (db) => {
      if (!(await store.recordFiring(db, s.id, firing, by !== null))) return null;
      const result = await deps.performLater(def, s.payload, { ...options, db });
      await store.setFiringJob(db, s.id, firing, result.job.id);
      // a run someone asked for is theirs in the audit log
      if (by !== null) await store.audit(db, by, 'schedule.run', s.id, { jobId: result.job.id, name: s.name });
      return result;
    });
  }

  return {
    /**
     * The code's schedules into the table (an admin's enable/disable kept), pg-boss's schedules made
     * to match every enabled row (those of rows gone removed), and the worker that fires them.
     */
    async start(): Promise<void> {
      const code = [...deps.catalogue.values()].filter((d) => d.cron).map((d) => ({ id: codeScheduleId(d.name), name: d.name, schedule: d.cron!.schedule, timeZone: d.cron!.timeZone ?? 'UTC', payload: (d.cron!.payload ?? {}) as Record<string, unknown> }));
      await store.syncFromCode(code);
      const rows = await store.list();
      for (const s of rows) if (s.enabled) await apply(s);
      const wanted = new Set(rows.filter((s) => s.enabled).map((s) => s.id));
      for (const scheduled of await boss.getSchedules(SystemQueue.cron)) {
        if (scheduled.key && !wanted.has(scheduled.key)) await boss.unschedule(SystemQueue.cron, scheduled.key);
      }
      // One firing per fetch: a failing firing must not make pg-boss re-send the others with it.
      await boss.work<Firing>(SystemQueue.cron, { batchSize: 1, pollingIntervalSeconds: deps.timings.pollIntervalSeconds, notifyPollingIntervalSeconds: deps.timings.pollIntervalSeconds }, async (jobs) => {
        for (const job of jobs) {
          const s = await store.get(job.data.scheduleId ?? codeScheduleId(job.data.name));
          // deleted or disabled since it fired
          if (!s || !s.enabled) continue;
          const result = await enqueueFiring(s, job.id, null);
          if (result) logger.info({ scheduleId: s.id, jobId: result.job.id, jobName: s.name, duplicate: result.duplicate, ...traceFields(result.job.traceparent) }, 'cron fired');
          else logger.warn({ scheduleId: s.id, firing: job.id }, 'a firing handed out again was already enqueued; skipped');
        }
      });
    },
    async list(): Promise<Schedule[]> {
      return view(await store.list());
    },
    async get(id: string): Promise<Schedule> {
      return (await view([await getOr404(id)]))[0]!;
    },
    async create(input: { name: string } & Partial<ScheduleFields> & Pick<ScheduleFields, 'schedule'>, actor: string): Promise<Schedule> {
      const fields: ScheduleFields = { schedule: input.schedule, timeZone: input.timeZone ?? 'UTC', payload: input.payload ?? {}, enabled: input.enabled ?? true };
      const def = check(input.name, fields);
      const created = await store.create({ id: randomUUID(), name: def.name, ...fields }, actor, apply);
      logger.info({ scheduleId: created.id, jobName: created.name, schedule: created.schedule, timeZone: created.timeZone, by: actor }, 'schedule created');
      return (await view([created]))[0]!;
    },
    /** Edits a schedule; the code's may only be enabled or disabled (its expression lives in the code). */
    async update(id: string, given: Partial<ScheduleFields>, actor: string): Promise<Schedule> {
      // a field given as undefined is a field not given
      const patch = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)) as Partial<ScheduleFields>;
      const updated = await store.update(
        checkedId(id),
        (before) => {
          const edits = (['schedule', 'timeZone', 'payload'] as const).filter((k) => patch[k] !== undefined);
          if (before.source === 'code' && edits.length > 0) {
            throw new JobgateError(ErrorCode.stateConflict, `The schedule of ${before.name} is defined in code: only enabled can change here.`, { errors: edits.map((k) => ({ path: k, message: 'defined in code' })) });
          }
          const next = { ...before, ...patch };
          check(before.name, next);
          return patch;
        },
        actor,
        apply,
      );
      if (!updated) throw new JobgateError(ErrorCode.notFound, `No schedule has id ${id}.`);
      logger.info({ scheduleId: id, jobName: updated.name, schedule: updated.schedule, enabled: updated.enabled, by: actor }, 'schedule changed');
      return (await view([updated]))[0]!;
    },
    async remove(id: string, actor: string): Promise<StoredSchedule> {
      const removed = await store.remove(
        checkedId(id),
        actor,
        (before) => {
          if (before.source === 'code') throw new JobgateError(ErrorCode.stateConflict, `The schedule of ${before.name} is defined in code; disable it instead.`);
        },
        (before) => boss.unschedule(SystemQueue.cron, before.id),
      );
      if (!removed) throw new JobgateError(ErrorCode.notFound, `No schedule has id ${id}.`);
      logger.info({ scheduleId: id, jobName: removed.name, by: actor }, 'schedule deleted');
      return removed;
    },
    /** Enqueues the schedule's job now (recorded in its history as a manual run), enabled or not. */
    async runNow(id: string, actor: string, options: Pick<EnqueueOptions, 'requestId' | 'traceparent'> = {}): Promise<EnqueueResult> {
      const s = await getOr404(id);
      const result = (await enqueueFiring(s, `manual:${randomUUID()}`, actor, options))!;
      logger.info({ scheduleId: id, jobId: result.job.id, jobName: s.name, by: actor }, 'schedule run now');
      return result;
    },
  };
}

export type Schedules = ReturnType<typeof createSchedules>;

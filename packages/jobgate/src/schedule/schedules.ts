// The schedule stage (main): schedules stored in PostgreSQL, the code's `cron` among them, fired
// by main's own scheduler loop (scheduler.ts) at each occurrence, by PostgreSQL's clock. Each firing
// is recorded keyed by (schedule, occurrence) in the transaction that enqueues its job, so however
// many mains run, one enqueues it; the job is routed like any other. Created, edited, disabled,
// deleted and run now from the admin, the API, the CLI and the library, without a restart.
import { randomUUID } from 'node:crypto';
import type { Pool } from 'pg';
import type { PgBoss } from 'pg-boss';
import { ConfigError, ErrorCode, JobgateError, findUnstorable, traceFields, type FieldError, type Logger } from '../support/index.ts';
import { withTransaction, type QueueTimings, type ScheduleFields, type ScheduleRun, type ScheduleStore, type StoredSchedule } from '../store/index.ts';
import { SystemQueue, type Catalogue } from '../define/catalogue.ts';
import type { JobDefinition } from '../define/define-job.ts';
import type { EnqueueOptions, EnqueueResult } from '../enqueue/perform-later.ts';
import { derivedId } from '../enqueue/batch.ts';
import { JobId } from '../protocol/wire.ts';
import { startScheduler, type Occurrences } from './scheduler.ts';

/** A schedule as the API shows it. */
export interface Schedule extends StoredSchedule {
  /** The next 5 occurrences, each of which fires (none while disabled). */
  nextRuns: string[];
  /** The last 5 firings, newest first, with their jobs' states now. */
  lastRuns: ScheduleRun[];
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
  /** Reads expressions (pg-boss's reading of cron, five fields or six with seconds first, and RRULE); removes pg-boss schedules of older releases. */
  boss: PgBoss;
  pool: Pool;
  store: ScheduleStore;
  catalogue: Catalogue;
  timings: QueueTimings;
  logger: Logger;
  definition: (name: string) => JobDefinition;
  performLater: (def: JobDefinition, payload: unknown, options: EnqueueOptions) => Promise<EnqueueResult>;
  /** LISTEN on a channel (the scheduler is told of changes made elsewhere); absent, it reads every cronIntervalSeconds. */
  listen?: (channel: string, wake: () => void) => { close(): Promise<void> };
}) {
  const { boss, store, logger } = deps;
  let scheduler: ReturnType<typeof startScheduler> | null = null;

  /**
   * The one reading of an expression: nextRuns lists these and the scheduler fires these. Strictly
   * after `after`; throws on an expression or zone it cannot read.
   */
  const occurrences: Occurrences = (s, after, count) =>
    boss.previewSchedule(s.schedule, { tz: s.timeZone, count, from: new Date(after) }).map((d) => d.getTime());

  /** Checks what a schedule would run: the job, the expression and zone, the payload. 422s name the field. */
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

  /** The next occurrences after `from` (ms), each of which fires. */
  function nextRuns(s: StoredSchedule, from: number): string[] {
    if (!s.enabled) return [];
    try {
      return occurrences(s, from, NEXT_RUNS).map((at) => new Date(at).toISOString());
    } catch {
      return [];
    }
  }

  /**
   * Schedules as the API shows them. `written`: rows this request just wrote, whose nextRuns start
   * at the write (the scheduler owes every occurrence after it, including one that came due while
   * the answer was made), not at now.
   */
  async function view(rows: StoredSchedule[], written = false): Promise<Schedule[]> {
    const runs = await store.lastRuns(rows.map((r) => r.id));
    const now = Date.now();
    return rows.map((r) => ({ ...r, nextRuns: nextRuns(r, written ? Math.min(now, Date.parse(r.updatedAt)) : now), lastRuns: runs.get(r.id) ?? [] }));
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

  const strangers = new Set<string>();
  /**
   * Fires occurrence `dueAt` of `s`: claims it and enqueues its job in one transaction, or finds it
   * claimed (another main fired it) and does nothing. A job this process does not define is left
   * to a main that does.
   */
  async function fire(s: StoredSchedule, dueAt: Date): Promise<void> {
    const def = deps.catalogue.get(s.name);
    if (!def) {
      if (!strangers.has(s.id)) logger.warn({ scheduleId: s.id, jobName: s.name }, 'a schedule fires a job this process does not define; a main that defines it fires it');
      strangers.add(s.id);
      return;
    }
    const firing = dueAt.toISOString();
    const fired = await withTransaction(deps.pool, async (db) => {
      const current = await store.claimOccurrence(db, s.id, s, dueAt);
      if (!current) return null;
      const result = await deps.performLater(def, current.payload, { db });
      await store.setFiringJob(db, s.id, firing, result.job.id);
      return result;
    });
    if (fired) logger.info({ scheduleId: s.id, jobId: fired.job.id, jobName: s.name, dueAt: firing, lateMs: Date.now() - dueAt.getTime(), duplicate: fired.duplicate, ...traceFields(fired.job.traceparent) }, 'cron fired');
    else logger.debug({ scheduleId: s.id, dueAt: firing }, 'schedule occurrence fired elsewhere');
  }

  /** The scheduler reads the schedules again now (a change made through this process). */
  const changed = <T>(value: T): T => {
    scheduler?.changed();
    return value;
  };

  return {
    /**
     * The code's schedules into the table (an admin's enable/disable kept; an expression that cannot
     * be read stops the start, naming the job), pg-boss schedules of older releases removed, and the
     * scheduler loop started.
     */
    async start(): Promise<void> {
      if (scheduler) return;
      const code = [...deps.catalogue.values()].filter((d) => d.cron).map((d) => ({ id: codeScheduleId(d.name), name: d.name, schedule: d.cron!.schedule, timeZone: d.cron!.timeZone ?? 'UTC', payload: (d.cron!.payload ?? {}) as Record<string, unknown> }));
      const unreadable = code.flatMap((c) => {
        try {
          occurrences(c, Date.now(), 1);
          return [];
        } catch (err) {
          return [`${c.name}: cron ${JSON.stringify(c.schedule)} in ${c.timeZone} is not a cron expression (five fields, or six with seconds first) or an RRULE: ${(err as Error).message}`];
        }
      });
      if (unreadable.length > 0) throw new ConfigError(unreadable);
      await store.syncFromCode(code);
      // Before this scheduler, each enabled row was a pg-boss schedule on this queue: none fires now.
      for (const scheduled of await boss.getSchedules(SystemQueue.cron)) await boss.unschedule(SystemQueue.cron, scheduled.key);
      scheduler = startScheduler({
        read: () => store.list(),
        databaseNow: () => store.now(),
        occurrences,
        fire,
        ...(deps.listen ? { listen: (wake: () => void) => deps.listen!(store.channel, wake) } : {}),
        rereadMs: deps.timings.cronIntervalSeconds * 1000,
        logger,
      });
    },
    /** Stops the scheduler loop (a firing under way finishes first). */
    async stop(): Promise<void> {
      await scheduler?.stop();
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
      const created = changed(await store.create({ id: randomUUID(), name: def.name, ...fields }, actor));
      logger.info({ scheduleId: created.id, jobName: created.name, schedule: created.schedule, timeZone: created.timeZone, by: actor }, 'schedule created');
      return (await view([created], true))[0]!;
    },
    /** Edits a schedule; the code's may only be enabled or disabled (its expression lives in the code). */
    async update(id: string, given: Partial<ScheduleFields>, actor: string): Promise<Schedule> {
      // a field given as undefined is a field not given
      const patch = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)) as Partial<ScheduleFields>;
      const updated = changed(await store.update(
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
      ));
      if (!updated) throw new JobgateError(ErrorCode.notFound, `No schedule has id ${id}.`);
      logger.info({ scheduleId: id, jobName: updated.name, schedule: updated.schedule, enabled: updated.enabled, by: actor }, 'schedule changed');
      return (await view([updated], true))[0]!;
    },
    async remove(id: string, actor: string): Promise<StoredSchedule> {
      const removed = changed(await store.remove(checkedId(id), actor, (before) => {
        if (before.source === 'code') throw new JobgateError(ErrorCode.stateConflict, `The schedule of ${before.name} is defined in code; disable it instead.`);
      }));
      if (!removed) throw new JobgateError(ErrorCode.notFound, `No schedule has id ${id}.`);
      logger.info({ scheduleId: id, jobName: removed.name, by: actor }, 'schedule deleted');
      return removed;
    },
    /** Enqueues the schedule's job now (recorded in its history as a manual run), enabled or not. */
    async runNow(id: string, actor: string, options: Pick<EnqueueOptions, 'requestId' | 'traceparent'> = {}): Promise<EnqueueResult> {
      const s = await getOr404(id);
      const def = deps.catalogue.get(s.name);
      if (!def) throw new JobgateError(ErrorCode.unknownJob, `schedule ${s.id} runs ${s.name}, which this process does not define`);
      const result = await withTransaction(deps.pool, async (db) => {
        const firing = `manual:${randomUUID()}`;
        await store.recordManualRun(db, s.id, firing);
        const result = await deps.performLater(def, s.payload, { ...options, db });
        await store.setFiringJob(db, s.id, firing, result.job.id);
        // a run someone asked for is theirs in the audit log
        await store.audit(db, actor, 'schedule.run', s.id, { jobId: result.job.id, name: s.name });
        return result;
      });
      logger.info({ scheduleId: id, jobId: result.job.id, jobName: s.name, by: actor }, 'schedule run now');
      return result;
    },
  };
}

export type Schedules = ReturnType<typeof createSchedules>;

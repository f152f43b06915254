// A schedule's parsers (POST and PATCH /admin/api/schedules) fed 10,000 generated recurrences and
// time zones: each is refused with a 4xx naming the field, or is one pg-boss's schedule() takes.
// Never another error (a 500). Seeded: PROPERTY_SEED=<the seed printed> reruns a failure.
import { PgBoss } from 'pg-boss';
import { describe, expect, it } from 'vitest';
import { PROPERTY_SEED, recurrence, timeZone } from '../../../../test/support/adversarial.ts';
import { RUNS, door, messages, property } from '../../../../test/support/property.ts';
import { NewSchedule, ScheduleChange } from '../main/admin/api.ts';
import { parseOrThrow } from '../main/validation.ts';
import { ErrorCode, JobgateError } from '../support/index.ts';
import { recurrenceErrors } from './schedules.ts';

describe(`a schedule's parsers, ${RUNS} generated inputs each (seed ${PROPERTY_SEED})`, () => {
  it('a schedule (cron or RRULE, time zone): what passes, pg-boss schedule() takes', async () => {
    // never started: previewSchedule and schedule()'s checks are pure; schedule()'s one statement
    // goes to this executor instead of a database
    const boss = new PgBoss({ connectionString: 'postgres://nobody@127.0.0.1:1/none' });
    const db = { executeSql: async () => ({ rows: [] }) };
    const accepted: Array<{ schedule: string; timeZone: string }> = [];
    const p = property(
      'schedule',
      (r) => ({ name: 'demo.light', schedule: recurrence(r), timeZone: r.chance(0.7) ? timeZone(r) : 'UTC', payload: {} }),
      (input) => {
        door('body', input);
        const body = parseOrThrow(NewSchedule, input);
        const errors = recurrenceErrors(boss, body.schedule, body.timeZone ?? 'UTC');
        if (errors.length) throw new JobgateError(ErrorCode.requestInvalid, 'The schedule is invalid.', { errors });
        accepted.push({ schedule: body.schedule, timeZone: body.timeZone ?? 'UTC' });
        return body;
      },
    );
    expect(messages(p)).toEqual([]);
    expect(accepted.length).toBeGreaterThan(200);
    const refused: string[] = [];
    for (const s of accepted) {
      await boss.schedule('jobgate-cron', s.schedule, {}, { tz: s.timeZone, key: '0b7e3c1e-5a43-4a0e-9b8e-2d2f6c1d9a10', db }).catch((err: Error) => refused.push(`${JSON.stringify(s)}: ${err.message}`));
    }
    expect(refused.slice(0, 5)).toEqual([]);
    // and a change (PATCH) parses the same fields
    expect(messages(property('schedule change', (r) => ({ schedule: recurrence(r), timeZone: timeZone(r), enabled: r.chance(0.5) }), (c) => (door('body', c), parseOrThrow(ScheduleChange, c))))).toEqual([]);
    // pg-boss's previews cost about a millisecond each (ICU time zones): 10,000 take 10 s on an idle core, several times that on a loaded one
  }, 300_000);
});

// Every parser of the HTTP surface, fed 10,000 generated strings each: it either refuses with a 4xx
// JobgateError naming the field, or gives what PostgreSQL and pg-boss take (times PostgreSQL reads,
// integers inside int4, text without NUL or lone surrogates, schedules pg-boss's schedule() accepts).
// Never another error, which the HTTP surface would answer as a 500. The strings come from
// test/support/adversarial.ts, seeded: PROPERTY_SEED=<the seed printed> reruns a failure.
// (test/e2e/http-parsers.test.ts sends such strings through a running main and fetcher.)
import type { Request, Response } from 'express';
import { PgBoss } from 'pg-boss';
import { describe, expect, it } from 'vitest';
import { PROPERTY_SEED, cursor, plausibleTimestamp, filterText, jsonNumber, noise, payloadFilter, prng, recurrence, timeZone, timestamp, uuid, numberText, type Gen, type Rng } from '../../../../test/support/adversarial.ts';
import { JobEvents, Spawn, SubmitJobs, ClaimRequest } from '../protocol/index.ts';
import { recurrenceErrors } from '../schedule/schedules.ts';
import { JOB_STATES } from '../store/index.ts';
import { ErrorCode, JobgateError, canonicalTimestamp, findUnstorable, httpStatusFor, rejectUnstorable } from '../support/index.ts';
import { BulkBody, NewSchedule, OverrideBody, PauseBody, ResumeBody, RunBody, ScheduleChange } from './admin/api.ts';
import { ListQuery as AdminListQuery, OverviewQuery } from './admin/reads.ts';
import { cursorOrThrow, EnqueueBody, JobId, JobsListQuery, parseOrThrow } from './validation.ts';
import type { z } from 'zod';

const RUNS = 10_000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** What canonicalTimestamp gives: the only time text that reaches PostgreSQL. */
const CANONICAL = /^(?!0000)\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?\+00$/;

const int4 = (n: unknown) => typeof n === 'number' && Number.isInteger(n) && n >= -(2 ** 31) && n <= 2 ** 31 - 1;
const storable = (value: unknown) => findUnstorable(value) === null;

/** The doors the routers put before their parsers (rejectUnstorable on the query and on a JSON body), as they run them. */
function door(part: 'query' | 'body', value: unknown): void {
  let refused: unknown;
  rejectUnstorable(part)({ [part]: value } as unknown as Request, {} as Response, (err?: unknown) => (refused = err));
  if (refused) throw refused;
}

/** A JSON body as express.json reads it (so `1e400` is Infinity, as in a real request). */
const json = (text: string): unknown => JSON.parse(text);

/**
 * Runs `parse` on RUNS inputs from `input`: each either gives a value `check` finds nothing wrong
 * with, or throws a JobgateError whose status is a 4xx. Returns the failures (with the input).
 */
function property<I, O>(name: string, input: (r: Rng) => I, parse: (input: I) => O, check: (output: O, input: I) => string | null = () => null) {
  const r = prng(PROPERTY_SEED ^ hash(name));
  const failures: string[] = [];
  const outcomes = { accepted: 0, refused: 0 };
  for (let i = 0; i < RUNS && failures.length < 5; i++) {
    const given = input(r);
    const show = () => JSON.stringify(given, (_k, v: unknown) => (typeof v === 'string' && v.length > 200 ? `${v.slice(0, 200)}…(${v.length})` : v));
    try {
      const output = parse(given);
      outcomes.accepted++;
      const wrong = check(output, given);
      if (wrong) failures.push(`#${i} ${show()} → accepted, but ${wrong}`);
    } catch (err) {
      outcomes.refused++;
      if (!(err instanceof JobgateError)) failures.push(`#${i} ${show()} → ${(err as Error)?.name}: ${String((err as Error)?.message).slice(0, 200)} (a 500)`);
      else if (httpStatusFor(err.code) >= 500 || httpStatusFor(err.code) < 400) failures.push(`#${i} ${show()} → ${err.code} (${httpStatusFor(err.code)})`);
      else if (!err.errors?.length) failures.push(`#${i} ${show()} → ${err.code} names no field`);
    }
  }
  return { failures, outcomes };
}

function hash(text: string): number {
  let h = 0;
  for (const c of text) h = (Math.imul(h, 31) + c.charCodeAt(0)) | 0;
  return h;
}

/** Some of `fields`, each from its generator; a field is sometimes given twice (express then has an array). */
function queryOf(r: Rng, fields: Record<string, Gen>): Record<string, unknown> {
  const query: Record<string, unknown> = {};
  for (const [key, gen] of Object.entries(fields)) {
    if (!r.chance(0.4)) continue;
    query[key] = r.chance(0.1) ? [gen(r), gen(r)] : gen(r);
  }
  if (r.chance(0.05)) query[noise(r) || 'x'] = noise(r);
  return query;
}

function cursorProblem(c: { createdAt: string; id: string } | undefined): string | null {
  if (c === undefined) return null;
  if (!CANONICAL.test(c.createdAt)) return `the cursor's time ${c.createdAt} is not canonical`;
  return UUID.test(c.id) ? null : `the cursor's id ${c.id} is not a UUID`;
}

function listProblem(q: { state?: string; name?: string; route?: string; limit: number; cursor?: { createdAt: string; id: string } }): string | null {
  if (!Number.isInteger(q.limit) || q.limit < 1 || q.limit > 500) return `limit ${q.limit}`;
  if (q.state !== undefined && !JOB_STATES.includes(q.state as never)) return `state ${q.state}`;
  if (q.route !== undefined && q.route !== 'main' && q.route !== 'fetcher') return `route ${q.route}`;
  if (!storable([q.name ?? '', q.state ?? '', q.route ?? ''])) return 'unstorable text';
  return cursorProblem(q.cursor);
}

const messages = (p: ReturnType<typeof property>) => p.failures;

describe(`the HTTP surface's parsers, ${RUNS} generated inputs each (seed ${PROPERTY_SEED})`, () => {
  it('prints the seed', () => {
    console.log(`parsers property test: PROPERTY_SEED=${PROPERTY_SEED}`);
  });

  it('a jobs list cursor', () => {
    const p = property('cursor', cursor, (c) => cursorOrThrow(c), cursorProblem);
    expect(messages(p)).toEqual([]);
    // the generator reaches both sides
    expect(p.outcomes.accepted).toBeGreaterThan(50);
  });

  it('a job, batch or schedule id', () => {
    const p = property('id', uuid, (id) => parseOrThrow(JobId, id, ['id']), (id) => (UUID.test(id) ? null : `${id} is not a UUID`));
    expect(messages(p)).toEqual([]);
    expect(p.outcomes.accepted).toBeGreaterThan(500);
  });

  it("GET /api/jobs's query (state, name, route, limit, cursor, arrays of them)", () => {
    const p = property(
      'api list',
      (r) => queryOf(r, { state: filterText, name: filterText, route: filterText, limit: numberText, cursor }),
      (q) => {
        door('query', q);
        const query = parseOrThrow(JobsListQuery, q);
        return { ...query, cursor: cursorOrThrow(query.cursor) };
      },
      listProblem,
    );
    expect(messages(p)).toEqual([]);
    expect(p.outcomes.accepted).toBeGreaterThan(100);
  });

  it("the admin's jobs list query (GET /admin/api/jobs, /admin/jobs), with the payload filter", () => {
    const p = property(
      'admin list',
      (r) => queryOf(r, { state: filterText, name: filterText, route: filterText, limit: numberText, cursor, payload: payloadFilter }),
      (q) => {
        door('query', q);
        const query = parseOrThrow(AdminListQuery, q);
        return { ...query, cursor: cursorOrThrow(query.cursor) };
      },
      (q) => listProblem(q) ?? payloadProblem(q.payload),
    );
    expect(messages(p)).toEqual([]);
    expect(p.outcomes.accepted).toBeGreaterThan(100);
  });

  it("the overview's window", () => {
    const p = property('overview', (r) => queryOf(r, { window: (x) => x.pick([noise, () => x.pick(['hour', 'day', 'week'])])(x) }), (q) => parseOrThrow(OverviewQuery, q), (q) => (['hour', 'day'].includes(q.window) ? null : `window ${q.window}`));
    expect(messages(p)).toEqual([]);
  });

  it('an enqueue body and the admin run body (priority, delaySeconds past int4, floats, 1e400)', () => {
    for (const [name, schema] of [['enqueue', EnqueueBody], ['run', RunBody]] as const) {
      const p = property(
        name,
        (r) => `{"payload": {}, "priority": ${jsonNumber(r)}, "delaySeconds": ${jsonNumber(r)}${r.chance(0.2) ? `, "runOnMain": ${r.pick(['true', '1', '"yes"'])}` : ''}}`,
        (text) => {
          const body = json(text);
          door('body', body);
          return parseOrThrow(schema as z.ZodType<{ priority?: number; delaySeconds?: number }>, body);
        },
        (b) => (b.priority !== undefined && !int4(b.priority) ? `priority ${b.priority}` : b.delaySeconds !== undefined && !(int4(b.delaySeconds) && b.delaySeconds >= 0) ? `delaySeconds ${b.delaySeconds}` : null),
      );
      expect(messages(p), name).toEqual([]);
      expect(p.outcomes.accepted, name).toBeGreaterThan(50);
    }
  });

  it('the override, pause and resume bodies (expiresInMinutes, reason)', () => {
    for (const [name, schema] of [['override', OverrideBody], ['pause', PauseBody], ['resume', ResumeBody]] as const) {
      const p = property(
        name,
        (r) => `{"enabled": ${r.pick(['true', 'false', '1'])}, "reason": ${JSON.stringify(r.chance(0.5) ? 'deploying' : noise(r))}, "expiresInMinutes": ${jsonNumber(r)}}`,
        (text) => {
          const body = json(text) as Record<string, unknown>;
          if (name !== 'override') delete body.enabled;
          if (name === 'resume') delete body.expiresInMinutes;
          door('body', body);
          return parseOrThrow(schema as z.ZodType<{ expiresInMinutes?: number }>, body);
        },
        (b) => (b.expiresInMinutes !== undefined && !(Number.isFinite(b.expiresInMinutes) && b.expiresInMinutes > 0) ? `expiresInMinutes ${b.expiresInMinutes}` : null),
      );
      expect(messages(p), name).toEqual([]);
    }
  });

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

  it("a bulk action's filter", () => {
    const p = property(
      'bulk',
      (r) => ({ action: r.pick(['retry', 'cancel', 'explode']), filter: queryOf(r, { state: filterText, name: filterText, route: filterText, payload: payloadFilter }) }),
      (body) => {
        door('body', body);
        return parseOrThrow(BulkBody, body);
      },
      (b) => payloadProblem(b.filter.payload === undefined ? undefined : parseOrThrow(AdminListQuery, { payload: b.filter.payload }).payload),
    );
    expect(messages(p)).toEqual([]);
  });

  // the signed routes: a peer's body is a client's input too (a 5xx there is retried forever)
  it("the fetcher's job events (times, seq, attempt, progress, memory)", () => {
    const p = property(
      'events',
      (r) => `{"events": [{"jobId": "0b7e3c1e-5a43-4a0e-9b8e-2d2f6c1d9a10", "seq": ${jsonNumber(r)}, "type": "${r.pick(['active', 'progress', 'completed', 'failed'])}", "attempt": ${r.chance(0.5) ? '1' : jsonNumber(r)}, "at": ${JSON.stringify(r.chance(0.5) ? plausibleTimestamp(r) : r.chance(0.8) ? timestamp(r) : noise(r))}, "startedAt": ${JSON.stringify(r.chance(0.5) ? plausibleTimestamp(r) : timestamp(r))}, "progress": ${r.chance(0.5) ? '50' : jsonNumber(r)}, "peakRssMb": ${r.chance(0.5) ? '12' : jsonNumber(r)}, "maxAttempts": ${r.chance(0.5) ? '3' : jsonNumber(r)}}]}`,
      (text) => {
        const body = json(text);
        door('body', body);
        return parseOrThrow(JobEvents, body);
      },
      ({ events: [e] }) => {
        for (const t of [e!.at, e!.startedAt, e!.finishedAt]) if (t !== undefined && !pgReadsTime(t)) return `time ${t}`;
        for (const [k, v] of Object.entries({ seq: e!.seq, attempt: e!.attempt, progress: e!.progress, peakRssMb: e!.peakRssMb, maxAttempts: e!.maxAttempts })) if (v !== undefined && !int4(v)) return `${k} ${v}`;
        return e!.progress !== undefined && (e!.progress < 0 || e!.progress > 100) ? `progress ${e!.progress}` : null;
      },
    );
    expect(messages(p)).toEqual([]);
    expect(p.outcomes.accepted).toBeGreaterThan(20);
  });

  it("a submission's and a spawn's options, a claim", () => {
    const submit = property(
      'submit',
      (r) => `{"jobs": [{"id": "0b7e3c1e-5a43-4a0e-9b8e-2d2f6c1d9a10", "name": "demo.heavy", "payload": {}, "options": {"priority": ${jsonNumber(r)}, "delaySeconds": ${jsonNumber(r)}}}]}`,
      (text) => parseOrThrow(SubmitJobs, (door('body', json(text)), json(text))),
      ({ jobs: [j] }) => (j!.options?.priority !== undefined && !int4(j!.options.priority) ? `priority ${j!.options.priority}` : j!.options?.delaySeconds !== undefined && !int4(j!.options.delaySeconds) ? `delaySeconds ${j!.options.delaySeconds}` : null),
    );
    const spawn = property(
      'spawn',
      (r) => `{"jobs": [{"id": "0b7e3c1e-5a43-4a0e-9b8e-2d2f6c1d9a10", "name": "demo.light", "payload": {}, "priority": ${jsonNumber(r)}, "delaySeconds": ${jsonNumber(r)}}], "batches": [], "seal": []}`,
      (text) => parseOrThrow(Spawn, (door('body', json(text)), json(text))),
      ({ jobs: [j] }) => (j!.priority !== undefined && !int4(j!.priority) ? `priority ${j!.priority}` : null),
    );
    const claim = property(
      'claim',
      (r) => `{"jobId": ${JSON.stringify(r.chance(0.5) ? '0b7e3c1e-5a43-4a0e-9b8e-2d2f6c1d9a10' : uuid(r))}, "attempt": ${jsonNumber(r)}, "claimSeconds": ${jsonNumber(r)}}`,
      (text) => parseOrThrow(ClaimRequest, (door('body', json(text)), json(text))),
      (c) => (int4(c.attempt) && int4(c.claimSeconds) ? null : `attempt ${c.attempt}, claimSeconds ${c.claimSeconds}`),
    );
    expect([...messages(submit), ...messages(spawn), ...messages(claim)]).toEqual([]);
  });
});

/** A payload filter's candidates go to `payload @> $n::jsonb`: JSON with only finite numbers and storable text. */
function payloadProblem(candidates: Array<Record<string, unknown>> | undefined): string | null {
  for (const c of candidates ?? []) {
    if (!storable(c)) return `payload filter ${JSON.stringify(c)} is not storable`;
    for (const v of Object.values(c)) if (typeof v === 'number' && !Number.isFinite(v)) return `payload filter ${String(v)} becomes null in JSON`;
  }
  return null;
}

/** Times a job event carries reach `jsonb_to_recordset(...) AS x(at timestamptz, ...)`: only what canonicalTimestamp reads. */
const pgReadsTime = (text: string) => canonicalTimestamp(text) !== null;

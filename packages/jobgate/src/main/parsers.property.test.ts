// Every parser of the jobs API and the admin API, fed 10,000 generated strings each: it either
// refuses with a 4xx JobgateError naming the field, or gives what PostgreSQL takes (times PostgreSQL
// reads, integers inside int4, text without NUL or lone surrogates). Never another error, which the
// HTTP surface would answer as a 500. The strings come from test/support/adversarial.ts, seeded:
// PROPERTY_SEED=<the seed printed> reruns a failure. The schedule's parsers have theirs in
// schedule/schedules.property.test.ts, the signed routes' in protocol/wire.property.test.ts;
// test/e2e/http-parsers.test.ts sends such strings through a running main and fetcher.
import { describe, expect, it } from 'vitest';
import { PROPERTY_SEED, cursor, filterText, jsonNumber, noise, payloadFilter, uuid, numberText, type Gen, type Rng } from '../../../../test/support/adversarial.ts';
import { RUNS, UUID, door, int4, json, messages, property, storable } from '../../../../test/support/property.ts';
import { JOB_STATES } from '../store/index.ts';
import { BulkBody, OverrideBody, PauseBody, ResumeBody, RunBody } from './admin/api.ts';
import { ListQuery as AdminListQuery, OverviewQuery } from './admin/reads.ts';
import { cursorOrThrow, EnqueueBody, JobId, JobsListQuery, parseOrThrow } from './validation.ts';
import type { z } from 'zod';

/** What canonicalTimestamp gives: the only time text that reaches PostgreSQL. */
const CANONICAL = /^(?!0000)\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?\+00$/;

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

describe(`the jobs API's and the admin API's parsers, ${RUNS} generated inputs each (seed ${PROPERTY_SEED})`, () => {
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
});

/** A payload filter's candidates go to `payload @> $n::jsonb`: JSON with only finite numbers and storable text. */
function payloadProblem(candidates: Array<Record<string, unknown>> | undefined): string | null {
  for (const c of candidates ?? []) {
    if (!storable(c)) return `payload filter ${JSON.stringify(c)} is not storable`;
    for (const v of Object.values(c)) if (typeof v === 'number' && !Number.isFinite(v)) return `payload filter ${String(v)} becomes null in JSON`;
  }
  return null;
}

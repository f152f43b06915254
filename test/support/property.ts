// The property runner of the HTTP surface's parsers (packages/jobgate/src/**/*.property.test.ts):
// a parser fed RUNS generated inputs either refuses with a 4xx JobgateError naming the field, or
// gives a value the test's check finds nothing wrong with. Never another error, which the HTTP
// surface would answer as a 500. Inputs come from adversarial.ts, seeded by PROPERTY_SEED.
import type { Request, Response } from 'express';
import { JobgateError, canonicalTimestamp, findUnstorable, httpStatusFor, rejectUnstorable } from '../../packages/jobgate/src/support/index.ts';
import { PROPERTY_SEED, prng, type Rng } from './adversarial.ts';

export const RUNS = 10_000;
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const int4 = (n: unknown) => typeof n === 'number' && Number.isInteger(n) && n >= -(2 ** 31) && n <= 2 ** 31 - 1;
export const storable = (value: unknown) => findUnstorable(value) === null;

/** Times reach PostgreSQL (`timestamptz`) only as what canonicalTimestamp reads. */
export const pgReadsTime = (text: string) => canonicalTimestamp(text) !== null;

/** The doors the routers put before their parsers (rejectUnstorable on the query and on a JSON body), as they run them. */
export function door(part: 'query' | 'body', value: unknown): void {
  let refused: unknown;
  rejectUnstorable(part)({ [part]: value } as unknown as Request, {} as Response, (err?: unknown) => (refused = err));
  if (refused) throw refused;
}

/** A JSON body as express.json reads it (so `1e400` is Infinity, as in a real request). */
export const json = (text: string): unknown => JSON.parse(text);

/**
 * Runs `parse` on RUNS inputs from `input`: each either gives a value `check` finds nothing wrong
 * with, or throws a JobgateError whose status is a 4xx. Returns the failures (with the input).
 */
export function property<I, O>(name: string, input: (r: Rng) => I, parse: (input: I) => O, check: (output: O, input: I) => string | null = () => null) {
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

export const messages = (p: ReturnType<typeof property>) => p.failures;

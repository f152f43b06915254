import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createCatalogue, defineJob, isJobDefinition, stableStringify, uniqueKeyOf } from '../internal.ts';

const run = async () => {};

describe('defineJob', () => {
  it('fills the defaults', () => {
    const def = defineJob({ name: 'a.b', payload: z.object({}), run });
    expect(def).toMatchObject({ runsOnFetcher: false, retry: { limit: 2, delaySeconds: 10, backoff: true }, timeoutSeconds: 900, priority: 0, unique: false, concurrency: null, rateLimit: null, cron: null });
    expect(isJobDefinition(def)).toBe(true);
    expect(isJobDefinition({ ...def })).toBe(true);
    expect(isJobDefinition({ name: 'x', run })).toBe(false);
  });

  it('names the option that is wrong', () => {
    expect(() => defineJob({ name: 'bad name!', payload: z.object({}), run })).toThrow(/defineJob\("bad name!"\): name:/);
    expect(() => defineJob({ name: 'a', payload: z.object({}), concurrency: 0, run })).toThrow(/concurrency:/);
    expect(() => defineJob({ name: 'a', payload: z.object({}), rateLimit: { perSecond: 0 }, run })).toThrow(/rateLimit\.perSecond:/);
    expect(() => defineJob({ name: 'a', payload: z.object({}), retry: { limit: -1, delaySeconds: 1, backoff: true }, run })).toThrow(/retry\.limit:/);
    expect(() => defineJob({ name: 'a', payload: z.object({}), timeoutSeconds: 0, run })).toThrow(/timeoutSeconds:/);
  });

  it('normalises cron and checks its payload against the schema', () => {
    expect(defineJob({ name: 'a', payload: z.object({}), cron: '0 2 * * *', run }).cron).toEqual({ schedule: '0 2 * * *' });
    expect(defineJob({ name: 'a', payload: z.object({}), cron: { schedule: '0 9 * * 1-5', timeZone: 'Europe/Berlin' }, run }).cron).toEqual({ schedule: '0 9 * * 1-5', timeZone: 'Europe/Berlin' });
    expect(() => defineJob({ name: 'a', payload: z.object({ n: z.number() }), cron: '* * * * *', run })).toThrow(/cron\.payload/);
  });
});

describe('catalogue', () => {
  it('refuses duplicates and the reserved prefix', () => {
    const a = defineJob({ name: 'a', payload: z.object({}), run });
    expect(() => createCatalogue([a, a])).toThrow(/defined twice/);
    expect(() => createCatalogue([defineJob({ name: 'jobgate.x', payload: z.object({}), run })])).toThrow(/reserved/);
    expect(createCatalogue([a]).get('a')).toBe(a);
  });
});

describe('unique keys', () => {
  it('do not depend on key order', () => {
    expect(stableStringify({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: null } })).toBe('{"a":{"c":null,"d":[1,{"y":2,"z":1}]},"b":1}');
    expect(uniqueKeyOf({ a: 1, b: 2 })).toBe(uniqueKeyOf({ b: 2, a: 1 }));
    expect(uniqueKeyOf({ a: 1 })).not.toBe(uniqueKeyOf({ a: 2 }));
  });
});

import { describe, expect, it } from 'vitest';
import { createApiQuota, createTokenBuckets } from './api-quota.ts';

describe('createTokenBuckets', () => {
  it('lets a burst through, then one request per 1/perSecond, each key on its own', () => {
    let t = 0;
    const buckets = createTokenBuckets({ perSecond: 2, burst: 3, now: () => t });
    expect([1, 2, 3].map(() => buckets.take('a'))).toEqual([0, 0, 0]);
    expect(buckets.take('a')).toBe(1); // empty: one more in 0.5 s, said as whole seconds
    expect(buckets.take('b')).toBe(0);
    t += 500;
    expect(buckets.take('a')).toBe(0);
    expect(buckets.take('a')).toBe(1);
    t += 10_000; // refills to the burst, never beyond
    expect([1, 2, 3, 4].map(() => buckets.take('a'))).toEqual([0, 0, 0, 1]);
  });

  it('answers the seconds until the next request at a slow rate', () => {
    let t = 0;
    const buckets = createTokenBuckets({ perSecond: 0.1, burst: 1, now: () => t });
    expect(buckets.take('a')).toBe(0);
    expect(buckets.take('a')).toBe(10);
    t += 4_000;
    expect(buckets.take('a')).toBe(6);
  });

  it('keeps only buckets that matter once there are many', () => {
    let t = 0;
    const buckets = createTokenBuckets({ perSecond: 1, burst: 1, now: () => t });
    for (let i = 0; i < 10_000; i++) buckets.take(`k${i}`);
    t += 1_000; // every bucket is full again: the same as none
    buckets.take('new');
    expect(buckets.size).toBe(1);
  });
});

describe('createApiQuota().checkEnqueue', () => {
  const quota = createApiQuota({ maxDelaySeconds: 60, maxPayloadBytes: 20 });
  const fieldOf = (body: { payload: unknown; delaySeconds?: number }) => {
    try {
      quota.checkEnqueue(body);
      return null;
    } catch (err) {
      return (err as { errors: Array<{ path: string }> }).errors[0]!.path;
    }
  };

  it('names delaySeconds or payload when over the ceiling', () => {
    expect(fieldOf({ payload: {}, delaySeconds: 60 })).toBeNull();
    expect(fieldOf({ payload: {}, delaySeconds: 61 })).toBe('delaySeconds');
    expect(fieldOf({ payload: { a: '123456789012' } })).toBeNull(); // 20 bytes
    expect(fieldOf({ payload: { a: '1234567890123' } })).toBe('payload');
    expect(fieldOf({ payload: { a: 'éééééééé' } })).toBe('payload'); // bytes, not characters
  });

  it('has documented defaults', () => {
    expect(createApiQuota().options).toEqual({ perSecond: 50, burst: 100, maxDelaySeconds: 2_592_000, maxPayloadBytes: 262_144 });
  });
});

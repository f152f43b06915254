import { describe, expect, it } from 'vitest';
import { coalesce } from './coalesce.ts';

/** A flush whose calls the test ends by hand, recording what each one carried. */
function manualFlush() {
  const calls: Array<{ items: number[]; end: (err?: Error) => void }> = [];
  const flush = (items: number[]) =>
    new Promise<string[]>((resolve, reject) => {
      calls.push({ items, end: (err) => (err ? reject(err) : resolve(items.map((i) => `r${i}`))) });
    });
  return { calls, flush };
}
const tick = () => new Promise((r) => setImmediate(r));

describe('coalesce', () => {
  it('sends a lone call at once, and calls of one tick together', async () => {
    const { calls, flush } = manualFlush();
    const call = coalesce(flush, { maxItems: 10, maxInFlight: 1 });
    const one = call(1);
    await tick();
    expect(calls.map((c) => c.items)).toEqual([[1]]);
    calls[0]!.end();
    expect(await one).toBe('r1');
    const [a, b] = [call(2), call(3)];
    await tick();
    expect(calls[1]!.items).toEqual([2, 3]);
    calls[1]!.end();
    expect(await Promise.all([a, b])).toEqual(['r2', 'r3']);
  });

  it('gathers calls made while flushes are in flight into the next one, up to maxItems', async () => {
    const { calls, flush } = manualFlush();
    const call = coalesce(flush, { maxItems: 3, maxInFlight: 1 });
    const first = call(0);
    await tick();
    const rest = [1, 2, 3, 4, 5].map(call);
    await tick();
    expect(calls).toHaveLength(1);
    calls[0]!.end();
    await first;
    await tick();
    expect(calls.map((c) => c.items)).toEqual([[0], [1, 2, 3]]);
    calls[1]!.end();
    await tick();
    expect(calls[2]!.items).toEqual([4, 5]);
    calls[2]!.end();
    expect(await Promise.all(rest)).toEqual(['r1', 'r2', 'r3', 'r4', 'r5']);
  });

  it('rejects every call of a failed flush, and the next flush goes on', async () => {
    const { calls, flush } = manualFlush();
    const call = coalesce(flush, { maxItems: 10, maxInFlight: 2 });
    const [a, b] = [call(1), call(2)];
    await tick();
    calls[0]!.end(new Error('database gone'));
    await expect(a).rejects.toThrow('database gone');
    await expect(b).rejects.toThrow('database gone');
    const c = call(3);
    await tick();
    calls[1]!.end();
    expect(await c).toBe('r3');
  });

  it('runs up to maxInFlight flushes at once', async () => {
    const { calls, flush } = manualFlush();
    const call = coalesce(flush, { maxItems: 10, maxInFlight: 2 });
    const a = call(1);
    await tick();
    const b = call(2);
    await tick();
    const c = call(3);
    await tick();
    expect(calls.map((x) => x.items)).toEqual([[1], [2]]);
    calls[0]!.end();
    await a;
    await tick();
    expect(calls.map((x) => x.items)).toEqual([[1], [2], [3]]);
    calls[1]!.end();
    calls[2]!.end();
    expect(await Promise.all([b, c])).toEqual(['r2', 'r3']);
  });
});

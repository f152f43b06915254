import { describe, expect, it } from 'vitest';
import { chunksByBytes } from './wire.ts';

describe('chunksByBytes', () => {
  it('cuts consecutive runs whose JSON body stays within the limit, in order', () => {
    const items = Array.from({ length: 10 }, (_, i) => ({ i, pad: 'x'.repeat(90) }));
    const chunks = chunksByBytes(items, 350);
    expect(chunks.flat()).toEqual(items);
    for (const chunk of chunks) expect(Buffer.byteLength(JSON.stringify({ jobs: chunk }))).toBeLessThanOrEqual(350);
    expect(chunks.length).toBeGreaterThan(1);
  });

  it('puts an item larger than the limit alone (the receiver answers 413 for it), and nothing for nothing', () => {
    const big = { pad: 'y'.repeat(1_000) };
    expect(chunksByBytes([{ a: 1 }, big, { b: 2 }], 200)).toEqual([[{ a: 1 }], [big], [{ b: 2 }]]);
    expect(chunksByBytes([], 100)).toEqual([]);
  });
});

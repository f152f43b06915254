import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { uuidv7 } from './ids.ts';

describe('uuidv7', () => {
  it('is a version 7 UUID with its time in the first 48 bits', () => {
    const at = Date.UTC(2026, 11, 6, 19, 10, 0, 123);
    const id = uuidv7(at);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(Number.parseInt(id.replace(/-/g, '').slice(0, 12), 16)).toBe(at);
    expect(z.uuid().safeParse(id).success).toBe(true);
  });

  it('sorts by time, and differs within one millisecond', () => {
    const ids = [uuidv7(1_000), uuidv7(2_000), uuidv7(2 ** 40 + 5)];
    expect([...ids].sort()).toEqual(ids);
    const same = new Set(Array.from({ length: 1_000 }, () => uuidv7(5_000)));
    expect(same.size).toBe(1_000);
  });
});

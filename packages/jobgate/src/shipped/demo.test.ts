import { describe, expect, it } from 'vitest';
import { demoFanout, demoHeavy, demoLight } from './demo.ts';

const defs = { 'demo.heavy': demoHeavy, 'demo.light': demoLight, 'demo.fanout': demoFanout } as const;

describe('demo job payloads stop at what a demo needs', () => {
  it.each([
    ['demo.heavy', { allocateMb: 256 }, true], ['demo.heavy', { allocateMb: 257 }, false], ['demo.heavy', { allocateMb: 16_384 }, false],
    ['demo.light', { allocateMb: 64 }, true], ['demo.light', { allocateMb: 65 }, false], ['demo.light', { allocateMb: 2_048 }, false],
    ['demo.light', { sleepMs: 600_000 }, true], ['demo.light', { sleepMs: 600_001 }, false], ['demo.heavy', { sleepMs: 3_600_000 }, false],
    ['demo.heavy', { progressSteps: 100 }, true], ['demo.heavy', { progressSteps: 101 }, false],
    ['demo.fanout', { children: 1_000 }, true], ['demo.fanout', { children: 1_001 }, false], ['demo.fanout', { children: 100_000 }, false],
  ] as const)('%s %j → %s', (name, payload, ok) => {
    const parsed = defs[name].payload.safeParse(payload);
    expect(parsed.success).toBe(ok);
    if (!ok) expect(parsed.error!.issues.map((i) => i.path.join('.'))).toEqual(Object.keys(payload));
  });
});

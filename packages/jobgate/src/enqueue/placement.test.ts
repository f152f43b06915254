import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineJob } from '../define/define-job.ts';
import { SystemQueue } from '../define/catalogue.ts';
import { place, placementOf } from './placement.ts';

const run = async () => {};
const light = defineJob({ name: 'p.light', payload: z.object({}), run });
const heavy = defineJob({ name: 'p.heavy', payload: z.object({}), runsOnFetcher: true, run });

describe('placement', () => {
  it('puts a main job in its own queue, whatever the override says', () => {
    expect(placementOf(light, false, false)).toEqual({ route: 'main', routeReason: 'definition', queue: 'p.light' });
    expect(placementOf(light, true, true)).toEqual({ route: 'main', routeReason: 'definition', queue: 'p.light' });
  });

  it('keeps a fetcher job in the ledger for the forwarder (no queue), or sends it to main for one run or under the override', () => {
    expect(placementOf(heavy, false, false)).toEqual({ route: 'fetcher', routeReason: 'definition', queue: null });
    expect(placementOf(heavy, true, false)).toEqual({ route: 'main', routeReason: 'run-on-main', queue: SystemQueue.onMain });
    expect(placementOf(heavy, false, true)).toEqual({ route: 'main', routeReason: 'override', queue: SystemQueue.onMain });
    // the per-run choice is the more specific reason
    expect(placementOf(heavy, true, true).routeReason).toBe('run-on-main');
  });

  it('reads the override only for a fetcher job that is not sent to main for this run', async () => {
    let reads = 0;
    const overrideOn = async () => (reads++, true);
    await place(light, false, overrideOn);
    await place(heavy, true, overrideOn);
    expect(reads).toBe(0);
    expect((await place(heavy, false, overrideOn)).routeReason).toBe('override');
    expect(reads).toBe(1);
  });
});

// Jobs the bench loads into both apps (JOBGATE_JOB_MODULES): as big as its rows need, where the
// demo jobs stop at what a demo needs (a 1 GiB hog, a fan-out of 10,000).
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { defineJob } from 'jobgate';

/** Holds `allocateMb` MB on the fetcher (every page touched, so it counts in RSS) for `sleepMs`. */
export const benchHog = defineJob({
  name: 'bench.hog',
  payload: z.strictObject({ allocateMb: z.number().int().min(0).max(4_096).default(0), sleepMs: z.number().int().min(0).max(600_000).default(0) }),
  runsOnFetcher: true,
  retry: { limit: 2, delaySeconds: 1, backoff: true },
  async run({ allocateMb, sleepMs }, ctx) {
    const held = Array.from({ length: allocateMb }, () => Buffer.alloc(2 ** 20, 1));
    await sleep(sleepMs, undefined, { signal: ctx.signal });
    ctx.logger.info({ heldMb: held.length, rssMb: ctx.memory.rssMb() }, 'bench hog done');
  },
});

/**
 * Enqueues `children` demo.heavy children (routed to the fetcher, empty payloads) as one batch with
 * demo.batch-done when it ends: demo.fanout's work at the bench's size.
 */
export const benchFanout = defineJob({
  name: 'bench.fanout',
  payload: z.strictObject({ children: z.number().int().min(0).max(100_000) }),
  retry: { limit: 2, delaySeconds: 1, backoff: true },
  async run({ children }, ctx) {
    const batch = ctx.batch({ onFinish: 'demo.batch-done', properties: { parent: ctx.job.id, children } });
    await batch.addMany('demo.heavy', Array.from({ length: children }, () => ({})));
    return { batchId: batch.id };
  },
});

/** A routed no-op tagged with the pressure run it belongs to (bench/pressure.ts). */
export const benchRouted = defineJob({
  name: 'bench.routed',
  payload: z.strictObject({ run: z.string().max(40), n: z.number().int() }),
  runsOnFetcher: true,
  retry: { limit: 2, delaySeconds: 1, backoff: true },
  async run() {},
});

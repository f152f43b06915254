import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { defineJob, type JobContext } from '../define/define-job.ts';
import { PermanentJobError } from '../support/index.ts';

/**
 * What a demo job may be asked for: bounded to what a demo needs, because the demo jobs are on
 * under `npm start` and anyone with an API token may enqueue them. A job that needs more (the
 * bench's 1 GiB job, the tests' memory hogs) defines its own.
 */
export const DEMO_LIMITS = {
  /** demo.heavy, on the fetcher, where the memory guard watches. */
  heavyAllocateMb: 256,
  /** demo.light, on main, next to the web app (up to 4 at a time). */
  lightAllocateMb: 64,
  /** 10 minutes. */
  sleepMs: 600_000,
  progressSteps: 100,
  fanoutChildren: 1_000,
} as const;

const demoPayload = (maxAllocateMb: number) =>
  z.strictObject({
    sleepMs: z.number().int().min(0).max(DEMO_LIMITS.sleepMs).optional(),
    allocateMb: z.number().int().min(0).max(maxAllocateMb).optional(),
    failAttempts: z.number().int().min(0).max(100).optional(),
    progressSteps: z.number().int().min(1).max(DEMO_LIMITS.progressSteps).optional(),
    /** Fail at once, with no retry (PermanentJobError). */
    failPermanently: z.boolean().optional(),
  });
/** demo.heavy's payload (the fetcher). */
export const DemoPayload = demoPayload(DEMO_LIMITS.heavyAllocateMb);
export type DemoPayload = z.infer<typeof DemoPayload>;
/** demo.light's payload: the same, with less memory (it runs on main). */
export const DemoLightPayload = demoPayload(DEMO_LIMITS.lightAllocateMb);

/** Sleeps, holds memory, reports progress and fails the first `failAttempts` attempts, as asked. */
async function runDemo(payload: DemoPayload, ctx: JobContext): Promise<{ attempt: number }> {
  if (payload.failPermanently) throw new PermanentJobError('demo failure, permanent (failPermanently)');
  if (ctx.job.attempt <= (payload.failAttempts ?? 0)) {
    throw new Error(`demo failure on attempt ${ctx.job.attempt} of ${payload.failAttempts}`);
  }
  // Touch every page, so the memory really counts in RSS.
  const held = Array.from({ length: payload.allocateMb ?? 0 }, () => Buffer.alloc(2 ** 20, 1));
  const steps = payload.progressSteps ?? 1;
  for (let step = 1; step <= steps; step++) {
    // (no timer when asked for no sleep: a timer of 0 ms still waits a millisecond or more)
    if (payload.sleepMs) await sleep(payload.sleepMs / steps, undefined, { signal: ctx.signal });
    if (steps > 1) await ctx.progress((step / steps) * 100, `step ${step} of ${steps}`);
  }
  ctx.logger.info({ heldMb: held.length, rssMb: ctx.memory.rssMb() }, 'demo job done');
  return { attempt: ctx.job.attempt };
}

export const demoLight = defineJob({
  name: 'demo.light',
  payload: DemoLightPayload,
  retry: { limit: 2, delaySeconds: 1, backoff: true },
  timeoutSeconds: 3_600,
  run: runDemo,
});

export const demoHeavy = defineJob({
  name: 'demo.heavy',
  payload: DemoPayload,
  runsOnFetcher: true,
  retry: { limit: 2, delaySeconds: 1, backoff: true },
  timeoutSeconds: 3_600,
  run: runDemo,
});

/** What a batch callback is given (enqueue/batch.ts BatchSummary), as a schema. */
const BatchSummary = z.object({
  id: z.uuid(),
  on: z.enum(['finish', 'success', 'failure']),
  counts: z.object({ queued: z.number(), active: z.number(), completed: z.number(), failed: z.number(), cancelled: z.number() }),
  properties: z.record(z.string(), z.unknown()),
});

/** demo.fanout's callback: logs how its batch ended. */
export const demoBatchDone = defineJob({
  name: 'demo.batch-done',
  payload: z.strictObject({ batch: BatchSummary }),
  retry: { limit: 2, delaySeconds: 1, backoff: true },
  async run({ batch }, ctx) {
    ctx.logger.info({ batchId: batch.id, on: batch.on, counts: batch.counts, properties: batch.properties }, 'demo batch finished');
    return batch.counts;
  },
});

export const FanoutPayload = z.strictObject({
  children: z.number().int().min(0).max(DEMO_LIMITS.fanoutChildren),
  route: z.enum(['main', 'fetcher']).default('main'),
  /** Every failEvery-th child fails at once, with no retry. */
  failEvery: z.number().int().min(1).optional(),
  /** How long each child sleeps. */
  sleepMs: z.number().int().min(0).max(60_000).optional(),
});

/**
 * Enqueues `children` children (demo.light on main, demo.heavy on the fetcher) as one batch, with
 * demo.batch-done when it finishes; they commit with this job's success.
 */
export const demoFanout = defineJob({
  name: 'demo.fanout',
  payload: FanoutPayload,
  retry: { limit: 2, delaySeconds: 1, backoff: true },
  async run({ children, route, failEvery, sleepMs }, ctx) {
    const batch = ctx.batch({ onFinish: demoBatchDone, properties: { parent: ctx.job.id, children, route } });
    const payloads = Array.from({ length: children }, (_, i) => ({
      ...(sleepMs ? { sleepMs } : {}),
      ...(failEvery && (i + 1) % failEvery === 0 ? { failPermanently: true } : {}),
    }));
    await batch.addMany(route === 'fetcher' ? demoHeavy : demoLight, payloads);
    ctx.logger.info({ batchId: batch.id, children, route }, 'demo fan-out: children enqueued with this job');
    return { batchId: batch.id };
  },
});

import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { defineJob, type JobContext } from '../define/define-job.ts';

export const DemoPayload = z.strictObject({
  sleepMs: z.number().int().min(0).max(3_600_000).optional(),
  allocateMb: z.number().int().min(0).max(16_384).optional(),
  failAttempts: z.number().int().min(0).max(100).optional(),
  progressSteps: z.number().int().min(1).max(1_000).optional(),
});
export type DemoPayload = z.infer<typeof DemoPayload>;

/** Sleeps, holds memory, reports progress and fails the first `failAttempts` attempts, as asked. */
async function runDemo(payload: DemoPayload, ctx: JobContext): Promise<{ attempt: number }> {
  if (ctx.job.attempt <= (payload.failAttempts ?? 0)) {
    throw new Error(`demo failure on attempt ${ctx.job.attempt} of ${payload.failAttempts}`);
  }
  // Touch every page, so the memory really counts in RSS.
  const held = Array.from({ length: payload.allocateMb ?? 0 }, () => Buffer.alloc(2 ** 20, 1));
  const steps = payload.progressSteps ?? 1;
  for (let step = 1; step <= steps; step++) {
    await sleep((payload.sleepMs ?? 0) / steps, undefined, { signal: ctx.signal });
    if (steps > 1) await ctx.progress((step / steps) * 100, `step ${step} of ${steps}`);
  }
  ctx.logger.info({ heldMb: held.length, rssMb: ctx.memory.rssMb() }, 'demo job done');
  return { attempt: ctx.job.attempt };
}

export const demoLight = defineJob({
  name: 'demo.light',
  payload: DemoPayload,
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

// The messages between main and the fetcher, one zod schema each, shared by both sides.
import { z } from 'zod';

export const MAX_BATCH = 500;

export const SubmitJob = z.strictObject({
  id: z.uuid(),
  name: z.string().min(1).max(100),
  payload: z.unknown(),
  options: z
    .strictObject({
      priority: z.number().int().optional(),
      delaySeconds: z.number().int().min(0).optional(),
      requestId: z.string().max(128).optional(),
    })
    .optional(),
});
export type SubmitJob = z.infer<typeof SubmitJob>;

export const SubmitJobs = z.strictObject({ jobs: z.array(SubmitJob).min(1).max(MAX_BATCH) });
export type SubmitJobs = z.infer<typeof SubmitJobs>;

export const SubmitResult = z.object({ accepted: z.array(z.object({ id: z.uuid(), duplicate: z.boolean() })) });
export type SubmitResult = z.infer<typeof SubmitResult>;

export const FetcherJobState = z.enum(['queued', 'active', 'completed', 'failed', 'cancelled']);

export const ExecutionView = z.object({
  attempt: z.number(),
  startedAt: z.string(),
  finishedAt: z.string().optional(),
  outcome: z.enum(['running', 'completed', 'failed', 'lost']),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
  peakRssMb: z.number().optional(),
});

export const FetcherJob = z.object({
  id: z.uuid(),
  name: z.string(),
  state: FetcherJobState,
  progress: z.number(),
  progressMessage: z.string().optional(),
  attempts: z.number(),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
  executions: z.array(ExecutionView).optional(),
});
export type FetcherJob = z.infer<typeof FetcherJob>;

export const FetcherStatus = z.object({
  status: z.enum(['ok', 'stopping']),
  version: z.string(),
  uptimeSeconds: z.number(),
  memory: z.object({ rssMb: z.number(), heapUsedMb: z.number(), limitMb: z.number(), peakRssMb: z.number() }),
  intake: z.enum(['open', 'paused']),
  queues: z.record(z.string(), z.object({ queued: z.number(), active: z.number(), failed: z.number() })),
});
export type FetcherStatus = z.infer<typeof FetcherStatus>;

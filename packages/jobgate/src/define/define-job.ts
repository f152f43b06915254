import { z } from 'zod';
import type { Logger } from '../support/index.ts';
import type { Route } from '../store/index.ts';
import type { FanOut } from '../run/children.ts';

/** What a handler gets besides its payload, fan-out included (run/children.ts). */
export interface JobContext extends FanOut {
  job: { id: string; name: string; attempt: number; maxAttempts: number; ranOn: Route };
  /** Carries jobId, jobName, attempt and the request id of the enqueue. */
  logger: Logger;
  /** Aborted on timeout and on shutdown: pass it to every I/O call. */
  signal: AbortSignal;
  /** Records progress on the job (0-100) with an optional message. */
  progress(percent: number, message?: string): Promise<void>;
  memory: { rssMb(): number; peakRssMb(): number };
}

export interface RetryPolicy {
  /** Retries after the first attempt (0 = run once). */
  limit: number;
  /** Delay before the first retry. */
  delaySeconds: number;
  /** Exponential backoff: delay × 2^(retry-1), with up to 2× jitter (pg-boss's formula). */
  backoff: boolean;
  /** Upper bound on one backoff delay. */
  maxDelaySeconds?: number;
}

/** A job's schedule in code; `Input` is what its payload must be (the job's schema's input). */
export interface CronSchedule<Input = unknown> {
  /**
   * Five fields, or six with seconds first; RRULE strings work too. Fires at each occurrence (within
   * a second or two, once however many mains run); checked when main starts.
   */
  schedule: string;
  /** IANA time zone, e.g. Europe/Berlin; UTC when unset. */
  timeZone?: string;
  /** The payload each run gets; must satisfy the job's schema. */
  payload?: Input;
}

export interface JobDefinitionInput<S extends z.ZodType> {
  /** Letters, digits, `.`, `-`, `_`; e.g. `movies.fetch`. */
  name: string;
  payload: S;
  runsOnFetcher?: boolean;
  retry?: RetryPolicy;
  timeoutSeconds?: number;
  /** Higher runs first. */
  priority?: number;
  /** No second queued or active job of this name with the same payload. */
  unique?: boolean;
  /** At most this many running at once, across every process. */
  concurrency?: number;
  /** At most `perSecond` starts in any one second, across every process. */
  rateLimit?: { perSecond: number };
  cron?: string | CronSchedule<z.input<S>>;
  /**
   * `thread`: the handler runs in a worker thread whose JS heap is capped at `maxHeapMb`; blowing
   * it fails the job (JG_HEAP_OUT_OF_MEMORY) and leaves the process alone. The job must be defined
   * in a module listed in jobModules (the reference apps: JOBGATE_JOB_MODULES), which the thread imports. Off-heap memory (Buffers)
   * is not capped by this: the memory guard watches RSS for that. `process`: the same in a child
   * process started with --max-old-space-size (costlier to start, immune to NODE_OPTIONS).
   */
  isolation?: 'none' | 'thread' | 'process';
  maxHeapMb?: number;
  run(payload: z.output<S>, ctx: JobContext): Promise<unknown>;
}

/**
 * A job, as `defineJob` returns it. Its schema fixes two payload types, in zod's order:
 * `Payload` is what `run` gets (the schema's output: defaults filled in, transforms applied) and
 * `Input` is what enqueueing it takes (the schema's input: a field with a default may be left out).
 * `JobDefinition` alone is a job of any payload (both `unknown`).
 * @example
 * const resize = defineJob({ name: 'images.resize', payload: z.object({ size: z.enum(['s', 'm', 'l']).default('m') }), async run({ size }) {} });
 * // typeof resize: JobDefinition<{ size: 's' | 'm' | 'l' }, { size?: 's' | 'm' | 'l' | undefined }>
 */
export interface JobDefinition<Payload = unknown, Input = Payload> {
  readonly name: string;
  readonly payload: z.ZodType<Payload, Input>;
  readonly runsOnFetcher: boolean;
  readonly retry: Readonly<RetryPolicy>;
  readonly timeoutSeconds: number;
  readonly priority: number;
  readonly unique: boolean;
  readonly concurrency: number | null;
  readonly rateLimit: Readonly<{ perSecond: number }> | null;
  readonly cron: Readonly<CronSchedule> | null;
  readonly isolation: 'none' | 'thread' | 'process';
  readonly maxHeapMb: number;
  run(payload: Payload, ctx: JobContext): Promise<unknown>;
}

const JOB_NAME = /^[a-z0-9][a-z0-9._-]{0,99}$/i;
const BRAND = Symbol.for('jobgate.job-definition');

/** True for what `defineJob` returned (also across module copies). */
export function isJobDefinition(value: unknown): value is JobDefinition {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
}

const Options = z.strictObject({
  name: z.string().regex(JOB_NAME, 'letters, digits, ".", "-" and "_", at most 100'),
  runsOnFetcher: z.boolean().default(false),
  retry: z
    .strictObject({
      limit: z.number().int().min(0).max(100),
      delaySeconds: z.number().int().min(0),
      backoff: z.boolean(),
      maxDelaySeconds: z.number().int().min(1).optional(),
    })
    .default({ limit: 2, delaySeconds: 10, backoff: true }),
  timeoutSeconds: z.number().int().min(1).max(86_400).default(900),
  priority: z.number().int().default(0),
  unique: z.boolean().default(false),
  concurrency: z.number().int().min(1).nullable().default(null),
  rateLimit: z.strictObject({ perSecond: z.number().int().min(1).max(10_000) }).nullable().default(null),
  isolation: z.enum(['none', 'thread', 'process']).default('none'),
  maxHeapMb: z.number().int().min(16).max(65_536).default(256),
  cron: z
    .union([z.string().min(1), z.strictObject({ schedule: z.string().min(1), timeZone: z.string().optional(), payload: z.unknown().optional() })])
    .nullable()
    .default(null)
    .transform((c) => (typeof c === 'string' ? { schedule: c } : c)),
});

/**
 * Declares a job. Options are checked here, once, with messages that name the option.
 * @example
 * export const sendNotification = defineJob({
 *   name: 'notifications.send',
 *   payload: z.object({ userId: z.string(), text: z.string() }),
 *   retry: { limit: 5, delaySeconds: 30, backoff: true },
 *   async run({ userId, text }, ctx) { await deliver(userId, text, { signal: ctx.signal }); },
 * });
 */
export function defineJob<S extends z.ZodType>(input: JobDefinitionInput<S>): JobDefinition<z.output<S>, z.input<S>> {
  const { payload, run, ...rest } = input;
  const parsed = Options.safeParse(rest);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(options)'}: ${i.message}`).join('; ');
    throw new TypeError(`defineJob(${JSON.stringify(input.name)}): ${issues}`);
  }
  // a schema from the app's own copy of zod passes too (not instanceof this copy's ZodType)
  if (typeof (payload as { safeParse?: unknown } | null)?.safeParse !== 'function') throw new TypeError(`defineJob(${JSON.stringify(input.name)}): payload must be a zod schema`);
  if (typeof run !== 'function') throw new TypeError(`defineJob(${JSON.stringify(input.name)}): run must be a function`);
  const options = parsed.data;
  if (options.cron) {
    const cronPayload = payload.safeParse(options.cron.payload ?? {});
    if (!cronPayload.success) throw new TypeError(`defineJob(${JSON.stringify(input.name)}): cron.payload does not satisfy the payload schema`);
  }
  return Object.freeze({ ...options, payload: payload as unknown as z.ZodType<z.output<S>, z.input<S>>, run, [BRAND]: true });
}

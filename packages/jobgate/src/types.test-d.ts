// Type tests of the public API (index.ts): checked by `tsc -p .` in `npm test`, never run (vitest
// takes *.test.ts, and tsconfig.build.json leaves *.test-d.ts out of dist/). Each `@ts-expect-error`
// fails the check once its line compiles, so a type that decays (to `any`, to `string`, to a
// payload inferred from the call) fails here.
import { expectTypeOf } from 'vitest';
import { z } from 'zod';
import { createMain, defineJob, JobgateError, type BatchView, type ErrorCode, type ErrorInfo, type JobContext, type JobDefinition, type JobRecord, type JobState, type Main, type Route, type RouteReason, type ScheduleRun } from './index.ts';

const Size = z.enum(['s', 'm', 'l']);
type Size = z.infer<typeof Size>;

/** A job whose schema has a default: the handler sees `quality`, enqueueing may leave it out. */
const resize = defineJob({
  name: 'images.resize',
  payload: z.object({ imageId: z.string(), size: Size, quality: z.number().int().default(80) }),
  async run(payload) {
    expectTypeOf(payload).toEqualTypeOf<{ imageId: string; size: Size; quality: number }>();
  },
});

declare const main: Main;
declare const ctx: JobContext;
/** A payload typed wider than the job's (a request body read loosely): without NoInfer it widened the job's type and compiled. */
declare const wide: { imageId: string; size: string };

type ResizeOutput = { imageId: string; size: Size; quality: number };
type ResizeInput = { imageId: string; size: Size; quality?: number | undefined };

// The definition carries both payload types, output first (zod's order).
expectTypeOf(resize).toEqualTypeOf<JobDefinition<ResizeOutput, ResizeInput>>();
expectTypeOf<Parameters<typeof resize.run>[0]>().toEqualTypeOf<ResizeOutput>();

// No `any` in a definition of no particular job: its payloads are `unknown`.
expectTypeOf<JobDefinition>().not.toBeAny();
expectTypeOf<Parameters<JobDefinition['run']>[0]>().toBeUnknown();
expectTypeOf<z.input<JobDefinition['payload']>>().toBeUnknown();
expectTypeOf<z.output<JobDefinition['payload']>>().toBeUnknown();
// ...and a typed job is still a job of the catalogue createMain takes.
void createMain({ databaseUrl: 'postgres://localhost/app', jobs: [resize] });

// Every enqueue entry point: the defaulted field may be left out; a wrong enum value, a missing
// field or a field of the wrong type is an error (the payload does not widen the definition's type).
void main.performLater(resize, { imageId: 'i1', size: 's' });
void main.performLater(resize, { imageId: 'i1', size: 'm', quality: 90 });
// @ts-expect-error: 'xxl' is not a size
void main.performLater(resize, { imageId: 'i1', size: 'xxl' });
// @ts-expect-error: imageId is required
void main.performLater(resize, { size: 's' });
// @ts-expect-error: a string is not a size
void main.performLater(resize, wide);
// @ts-expect-error: quality is a number
void main.performLater(resize, { imageId: 'i1', size: 's', quality: 'high' });

void main.performManyLater(resize, [{ imageId: 'i1', size: 's' }, { imageId: 'i2', size: 'l', quality: 50 }]);
// @ts-expect-error: 'xxl' is not a size
void main.performManyLater(resize, [{ imageId: 'i1', size: 's' }, { imageId: 'i2', size: 'xxl' }]);
// @ts-expect-error: a string is not a size
void main.performManyLater(resize, [wide]);

void main.batch().add(resize, { imageId: 'i1', size: 's' }).add(resize, { imageId: 'i2', size: 'm' });
// @ts-expect-error: 'xxl' is not a size
void main.batch().add(resize, { imageId: 'i1', size: 'xxl' });
// @ts-expect-error: 'xxl' is not a size (the second add)
void main.batch().add(resize, { imageId: 'i1', size: 's' }).add(resize, { imageId: 'i2', size: 'xxl' });
// @ts-expect-error: a string is not a size
void main.batch().add(resize, wide);

void ctx.performLater(resize, { imageId: 'i1', size: 's' });
// @ts-expect-error: 'xxl' is not a size
void ctx.performLater(resize, { imageId: 'i1', size: 'xxl' });
// @ts-expect-error: a string is not a size
void ctx.performLater(resize, wide);
void ctx.performManyLater(resize, [{ imageId: 'i1', size: 's' }]);
// @ts-expect-error: 'xxl' is not a size
void ctx.performManyLater(resize, [{ imageId: 'i1', size: 'xxl' }]);
// @ts-expect-error: a string is not a size
void ctx.performManyLater(resize, [wide]);
const childBatch = ctx.batch({});
void childBatch.add(resize, { imageId: 'i1', size: 's' });
// @ts-expect-error: 'xxl' is not a size
void childBatch.add(resize, { imageId: 'i1', size: 'xxl' });
// @ts-expect-error: a string is not a size
void childBatch.add(resize, wide);
void childBatch.addMany(resize, [{ imageId: 'i1', size: 's' }]);
// @ts-expect-error: 'xxl' is not a size
void childBatch.addMany(resize, [{ imageId: 'i1', size: 'xxl' }]);
// @ts-expect-error: a string is not a size
void childBatch.addMany(resize, [wide]);

// A schedule in code takes the schema's input too.
defineJob({ name: 'images.nightly', payload: z.object({ size: Size.default('m') }), cron: { schedule: '0 3 * * *', payload: {} }, async run() {} });
defineJob({
  name: 'images.nightly-wrong',
  payload: z.object({ size: Size.default('m') }),
  // @ts-expect-error: 'xxl' is not a size
  cron: { schedule: '0 3 * * *', payload: { size: 'xxl' } },
  async run() {},
});

// A job named by string is the escape hatch: its payload is `unknown` to the compiler and checked
// at runtime against the schema of the job of that name. A type argument states what it should be.
declare const body: unknown;
void main.performLater('images.resize', body);
void main.performLater('images.resize', { imageId: 'i1', size: 'xxl' });
void main.performManyLater('images.resize', [body, 42]);
void main.batch().add('images.resize', body);
void ctx.performLater('images.resize', body);
void ctx.performManyLater('images.resize', [body]);
void childBatch.add('images.resize', body);
void childBatch.addMany('images.resize', [body]);
void main.performLater<ResizeInput>('images.resize', { imageId: 'i1', size: 's' });
// @ts-expect-error: with a type argument the payload is checked against it
void main.performLater<ResizeInput>('images.resize', { imageId: 'i1', size: 'xxl' });

// States, routes and error codes are unions of literals, not `string`.
expectTypeOf<string>().not.toExtend<JobState>();
expectTypeOf<JobState>().not.toBeNever();
expectTypeOf<'queued' | 'completed' | 'failed'>().toExtend<JobState>();
expectTypeOf<string>().not.toExtend<ErrorCode>();
expectTypeOf<'JG_PAYLOAD_INVALID'>().toExtend<ErrorCode>();
expectTypeOf<JobgateError['code']>().toEqualTypeOf<ErrorCode>();
expectTypeOf<ErrorInfo['code']>().toEqualTypeOf<ErrorCode>();
expectTypeOf<Route>().toEqualTypeOf<'main' | 'fetcher'>();

// The records getJob and listJobs return keep them.
expectTypeOf(main.getJob).returns.resolves.toEqualTypeOf<JobRecord | null>();
expectTypeOf(main.listJobs).returns.resolves.toHaveProperty('jobs').toEqualTypeOf<JobRecord[]>();
expectTypeOf<JobRecord['state']>().toEqualTypeOf<JobState>();
expectTypeOf<JobRecord['route']>().toEqualTypeOf<Route>();
expectTypeOf<JobRecord['routeReason']>().toEqualTypeOf<RouteReason>();
expectTypeOf<NonNullable<JobRecord['error']>['code']>().toEqualTypeOf<ErrorCode>();
expectTypeOf<NonNullable<JobRecord['executions']>[number]['outcome']>().toEqualTypeOf<'running' | 'completed' | 'failed' | 'lost'>();
expectTypeOf<NonNullable<JobRecord['executions']>[number]['ranOn']>().toEqualTypeOf<Route>();
expectTypeOf<BatchView['state']>().toEqualTypeOf<'running' | 'finished'>();
expectTypeOf<ScheduleRun['state']>().toEqualTypeOf<JobState | 'deleted' | null>();
// @ts-expect-error: not a state
export const notAState: JobState = 'done';
// @ts-expect-error: not an error code
export const notACode: ErrorCode = 'JG_NOPE';

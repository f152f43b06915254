import { z } from 'zod';
import { ErrorCode, JobgateError, fieldErrorsFromZod } from '../support/index.ts';
import { JOB_STATES, parseCursor, type ListFilter } from '../store/index.ts';

/** Parses with `schema` or throws 422 problem+json naming each bad field (under `prefix`). */
export function parseOrThrow<T>(schema: z.ZodType<T>, value: unknown, prefix: string[] = []): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new JobgateError(ErrorCode.requestInvalid, 'The request is invalid.', { errors: fieldErrorsFromZod(parsed.error.issues, prefix) });
  }
  return parsed.data;
}

export { JobId } from '../protocol/index.ts';

/** A job to enqueue: POST /api/jobs/:name, and the admin's run (which adds runOnMain). */
export const EnqueueBody = z.strictObject({
  payload: z.unknown().default({}),
  priority: z.number().int().min(-1_000_000).max(1_000_000).optional(),
  delaySeconds: z.number().int().min(0).max(31_536_000).optional(),
});

/** The job list's filters both APIs share, and its paging. */
export const JobFilterFields = {
  state: z.enum(JOB_STATES as [string, ...string[]]).optional(),
  name: z.string().min(1).max(100).optional(),
  route: z.enum(['main', 'fetcher']).optional(),
};
export const PageFields = {
  limit: z.coerce.number().int().min(1).max(500).default(50),
  cursor: z.string().min(1).max(200).optional(),
};
/** GET /api/jobs's query. */
export const JobsListQuery = z.strictObject({ ...JobFilterFields, ...PageFields });

/** A cursor this API handed out, or 422 naming `cursor`. */
export function cursorOrThrow(cursor: string | undefined): ListFilter['cursor'] {
  if (cursor === undefined) return undefined;
  const parsed = parseCursor(cursor);
  if (!parsed) throw new JobgateError(ErrorCode.requestInvalid, 'The cursor is not one this API gave out.', { errors: [{ path: 'cursor', message: 'invalid cursor' }] });
  return parsed;
}

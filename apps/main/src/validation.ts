import type { z } from 'zod';
import { ErrorCode, JobgateError, fieldErrorsFromZod } from '@jobgate/runtime';

/** Parses with `schema` or throws 422 problem+json naming each bad field (under `prefix`). */
export function parseOrThrow<T>(schema: z.ZodType<T>, value: unknown, prefix: string[] = []): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new JobgateError(ErrorCode.requestInvalid, 'The request is invalid.', { errors: fieldErrorsFromZod(parsed.error.issues, prefix) });
  }
  return parsed.data;
}

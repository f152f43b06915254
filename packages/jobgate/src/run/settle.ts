// How an attempt ends: the error it is stored with, whether it is retried, and how long a handler
// that ignores its aborted signal gets. Pure: unit-tested without PostgreSQL.
import { ErrorCode, JobgateError, PermanentJobError, cleanText, MAX_ERROR_MESSAGE } from '../support/index.ts';
import type { ErrorInfo } from '../store/index.ts';

/** A handler that ignores its aborted signal gets this long before its attempt is settled anyway. */
export const ABORT_GRACE_MS = 5_000;

/** What an attempt's error is stored as: code and message, the message cleaned of NUL and cut to MAX_ERROR_MESSAGE. */
export function errorInfo(err: unknown): ErrorInfo {
  const [code, message] = err instanceof JobgateError ? [err.code, err.message] : [ErrorCode.jobFailed, err instanceof Error ? err.message || err.name : String(err)];
  return { code, message: cleanText(message, MAX_ERROR_MESSAGE) };
}

/**
 * A failed attempt's fate: `permanent` (PermanentJobError, or a payload that no longer parses)
 * skips the remaining retries; otherwise it is retried while attempts are left.
 */
export function failureOutcome(err: unknown, attempt: number, maxAttempts: number): { permanent: boolean; retrying: boolean } {
  const permanent = err instanceof PermanentJobError || (err instanceof Error && err.name === 'ZodError');
  return { permanent, retrying: !permanent && attempt < maxAttempts };
}

/** Why an aborted attempt ended, as a JobgateError (timeout, shutdown, cancel, claim lost). */
export function abortReason(signal: AbortSignal, thrown: unknown): unknown {
  const reason: unknown = signal.reason;
  if (reason instanceof JobgateError) return reason;
  return new JobgateError(ErrorCode.jobAborted, reason instanceof Error ? reason.message : 'aborted', { cause: thrown });
}

/**
 * Resolves with the handler; once `signal` aborts, the handler gets `graceMs` to stop on its own,
 * then the attempt is settled as failed anyway (the handler may still be running: log it loudly).
 */
export async function settleWithin(handler: Promise<unknown>, signal: AbortSignal, graceMs: number): Promise<void> {
  if (signal.aborted) throw abortReason(signal, undefined);
  let onAbort: (() => void) | undefined;
  const abandoned = new Promise<never>((_, reject) => {
    onAbort = () => {
      const t = setTimeout(() => reject(abortReason(signal, new Error('the handler ignored its aborted signal'))), graceMs);
      handler.finally(() => clearTimeout(t)).catch(() => {});
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    await Promise.race([handler, abandoned]);
  } finally {
    signal.removeEventListener('abort', onAbort!);
  }
}

import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ErrorCode, JobgateError, PermanentJobError } from '../support/index.ts';
import { abortReason, errorInfo, failureOutcome, settleWithin } from './settle.ts';

describe('settling an attempt', () => {
  it('stores an error as code and message, cleaned and cut', () => {
    expect(errorInfo(new JobgateError(ErrorCode.jobTimeout, 'timed out after 5s'))).toEqual({ code: 'JG_JOB_TIMEOUT', message: 'timed out after 5s' });
    expect(errorInfo(new Error('boom\u0000!'))).toEqual({ code: 'JG_JOB_FAILED', message: 'boom\uFFFD!' });
    expect(errorInfo('plain')).toEqual({ code: 'JG_JOB_FAILED', message: 'plain' });
    expect(errorInfo(new Error('x'.repeat(10_000))).message.length).toBeLessThan(10_000);
  });

  it('retries while attempts are left, never a permanent failure or a payload that no longer parses', () => {
    expect(failureOutcome(new Error('flaky'), 1, 3)).toEqual({ permanent: false, retrying: true });
    expect(failureOutcome(new Error('flaky'), 3, 3)).toEqual({ permanent: false, retrying: false });
    expect(failureOutcome(new PermanentJobError('gone for good'), 1, 3)).toEqual({ permanent: true, retrying: false });
    const zodError = z.object({ a: z.number() }).safeParse({}).error;
    expect(failureOutcome(zodError, 1, 3)).toEqual({ permanent: true, retrying: false });
  });

  it('names why an aborted attempt ended', () => {
    const controller = new AbortController();
    controller.abort(new JobgateError(ErrorCode.jobCancelled, 'cancelled'));
    expect((abortReason(controller.signal, undefined) as JobgateError).code).toBe('JG_CANCELLED');
    const plain = new AbortController();
    plain.abort(new Error('shutdown'));
    expect(abortReason(plain.signal, undefined)).toMatchObject({ code: 'JG_JOB_ABORTED', message: 'shutdown' });
  });

  it('waits for the handler, and gives one that ignores its aborted signal only the grace period', async () => {
    await expect(settleWithin(Promise.resolve('done'), new AbortController().signal, 50)).resolves.toBeUndefined();
    const controller = new AbortController();
    const ignoring = new Promise(() => {});
    const settled = settleWithin(ignoring, controller.signal, 50);
    const started = performance.now();
    controller.abort(new JobgateError(ErrorCode.jobTimeout, 'timed out'));
    await expect(settled).rejects.toMatchObject({ code: 'JG_JOB_TIMEOUT' });
    expect(performance.now() - started).toBeGreaterThanOrEqual(45);
    // already aborted: it does not start waiting at all
    await expect(settleWithin(Promise.resolve(), controller.signal, 50)).rejects.toMatchObject({ code: 'JG_JOB_TIMEOUT' });
  });
});

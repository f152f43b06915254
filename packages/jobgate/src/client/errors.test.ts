import { describe, expect, it } from 'vitest';
import { FetcherClientError, FetcherErrorCode, answeredNotNow, fromNetworkError, fromStatus, isRetryable, parseRetryAfter } from '../internal.ts';

describe('isRetryable', () => {
  it.each([
    [fromNetworkError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })), true],
    [fromNetworkError(Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' })), true],
    [fromNetworkError(Object.assign(new Error('Headers Timeout Error'), { code: 'UND_ERR_HEADERS_TIMEOUT' })), true],
    [fromNetworkError(Object.assign(new Error('Connect Timeout Error'), { code: 'UND_ERR_CONNECT_TIMEOUT' })), true],
    [fromStatus(429, 'slow down'), true],
    [fromStatus(502, 'bad gateway'), true],
    [fromStatus(503, 'unavailable'), true],
    [fromStatus(504, 'gateway timeout'), true],
    [fromStatus(408, 'request timeout'), true],
    [fromStatus(400, 'bad'), false],
    [fromStatus(401, 'Invalid signature'), false],
    [fromStatus(404, 'not found'), false],
    [fromStatus(409, 'conflict'), false],
    [fromStatus(422, 'invalid'), false],
    [fromStatus(500, 'bug'), false],
    [fromNetworkError(new TypeError('unexpected')), false],
    [new Error('not ours'), false],
  ])('%s → %s', (err, expected) => {
    expect(isRetryable(err)).toBe(expected);
  });

  it('tells the other app saying "not now" (a code of ours) from a platform or proxy in front of it', () => {
    expect(answeredNotNow(fromStatus(503, 'database away', 1_000, undefined, 'fetcher', 'JG_DATABASE_UNAVAILABLE'))).toBe(true);
    expect(answeredNotNow(fromStatus(429, 'slow down', 1_000, undefined, 'fetcher', 'JG_RATE_LIMITED'))).toBe(true);
    // a platform's 503 while the app sleeps or boots carries none of our codes: that one is woken
    expect(answeredNotNow(fromStatus(503, 'Service Unavailable'))).toBe(false);
    expect(answeredNotNow(fromStatus(502, 'bad gateway', undefined, undefined, 'fetcher', 'SOME_PROXY_CODE'))).toBe(false);
    // not retryable whatever its code
    expect(answeredNotNow(fromStatus(422, 'invalid', undefined, undefined, 'fetcher', 'JG_PAYLOAD_INVALID'))).toBe(false);
    expect(answeredNotNow(fromNetworkError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })))).toBe(false);
  });

  it('keeps stable codes', () => {
    expect(fromStatus(503, 'x').code).toBe(FetcherErrorCode.unavailable);
    expect(fromStatus(422, 'x')).toBeInstanceOf(FetcherClientError);
    expect(fromStatus(422, 'x').code).toBe('JG_FETCHER_REJECTED');
  });
});

describe('parseRetryAfter', () => {
  it('reads seconds and HTTP dates', () => {
    expect(parseRetryAfter('7')).toBe(7_000);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4_000)).toBe(6_000);
    expect(parseRetryAfter(undefined)).toBeUndefined();
    expect(parseRetryAfter('soon')).toBeUndefined();
  });
});

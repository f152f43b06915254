import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineJob } from './define-job.ts';
import { SystemQueue } from './catalogue.ts';
import { onMainInsert, queueOptions } from './queue-policy.ts';

const timings = { pollIntervalSeconds: 2, superviseIntervalSeconds: 30, cronIntervalSeconds: 30, heartbeatSeconds: 30 };
const def = defineJob({ name: 'q.job', payload: z.object({}), runsOnFetcher: true, retry: { limit: 4, delaySeconds: 5, backoff: true, maxDelaySeconds: 60 }, timeoutSeconds: 120, run: async () => {} });

describe('queue policy', () => {
  it('maps a definition onto pg-boss options, our timeout firing before its expiry', () => {
    expect(queueOptions(def, timings, false)).toEqual({ retryLimit: 4, retryDelay: 5, retryBackoff: true, retryDelayMax: 60, expireInSeconds: 150, heartbeatSeconds: 30, deadLetter: SystemQueue.deadLetter, notify: true });
  });

  it('gives an attempt that waits for main\'s claim an hour more before it expires, within pg-boss\'s 24 h', () => {
    expect(queueOptions(def, timings, true).expireInSeconds).toBe(150 + 3_600);
    const long = defineJob({ name: 'q.long', payload: z.object({}), timeoutSeconds: 86_400, run: async () => {} });
    expect(queueOptions(long, timings, true).expireInSeconds).toBe(86_400);
  });

  it('numbers a taken-over job\'s attempts after the fetcher\'s, with the retries it has left', () => {
    const insert = onMainInsert(def, timings, 'id-1', { payload: {}, name: 'q.job', attemptBase: 3 }, 7, 10);
    expect(insert).toMatchObject({ id: 'id-1', priority: 7, retryLimit: 1, startAfter: 10, deadLetter: SystemQueue.deadLetter });
    expect(onMainInsert(def, timings, 'id-2', { payload: {}, name: 'q.job', attemptBase: 9 }, 0).retryLimit).toBe(0);
  });
});

import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineJob } from '../define/define-job.ts';
import { callbacksFor } from '../store/batches.ts';
import { batchSpec, callbackPayload, derivedId } from './batch.ts';

const done = defineJob({ name: 'test.done', payload: z.object({ batch: z.unknown() }).loose(), async run() {} });
const counts = (c: Partial<Record<'queued' | 'active' | 'completed' | 'failed' | 'cancelled', number>>) => ({ queued: 0, active: 0, completed: 0, failed: 0, cancelled: 0, ...c });

describe('derivedId', () => {
  it('is a UUID (version 8) that depends on the parent and the key only', () => {
    const a = derivedId('7b1e3f52-6c1f-4a53-9d7e-0b6a1c2d3e4f', '#0');
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(z.uuid().safeParse(a).success).toBe(true);
    expect(derivedId('7b1e3f52-6c1f-4a53-9d7e-0b6a1c2d3e4f', '#0')).toBe(a);
    expect(derivedId('7b1e3f52-6c1f-4a53-9d7e-0b6a1c2d3e4f', '#1')).not.toBe(a);
    expect(derivedId('8b1e3f52-6c1f-4a53-9d7e-0b6a1c2d3e4f', '#0')).not.toBe(a);
  });
});

describe('batchSpec and callbacks', () => {
  it('names each callback by its job, with its own payload or none', () => {
    const spec = batchSpec('b', { onFinish: done, onSuccess: 'test.done', onFailure: { job: done, payload: { note: 'x' } }, properties: { importId: 7 } });
    expect(spec).toEqual({
      id: 'b',
      properties: { importId: 7 },
      callbacks: [
        { on: 'finish', name: 'test.done', payload: {} },
        { on: 'success', name: 'test.done', payload: {} },
        { on: 'failure', name: 'test.done', payload: { note: 'x' } },
      ],
    });
    expect(callbackPayload(spec.callbacks[2]!, { id: 'b', counts: counts({ completed: 1 }), properties: { importId: 7 } })).toEqual({
      note: 'x',
      batch: { id: 'b', on: 'failure', counts: counts({ completed: 1 }), properties: { importId: 7 } },
    });
  });

  it('runs finish always, success only when every job completed, failure when any failed', () => {
    expect([...callbacksFor(counts({ completed: 3 }))].sort()).toEqual(['finish', 'success']);
    expect([...callbacksFor(counts({ completed: 197, failed: 3 }))].sort()).toEqual(['failure', 'finish']);
    expect([...callbacksFor(counts({ completed: 2, cancelled: 1 }))].sort()).toEqual(['finish']);
    expect([...callbacksFor(counts({}))].sort()).toEqual(['finish', 'success']);
  });
});

import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineJob } from '../define/define-job.ts';
import type { Spawn } from '../protocol/wire.ts';
import type { Queryable } from '../store/index.ts';
import { attemptChildren, childrenToMain } from './children.ts';

const child = defineJob({ name: 'test.child', payload: z.strictObject({ n: z.number() }), async run() {} });
const PARENT = '7b1e3f52-6c1f-4a53-9d7e-0b6a1c2d3e4f';

/** Children of one attempt over a stand-in database: what each write sent, and whether a transaction commits. */
function attempt(options: { failCommit?: boolean; sendsElsewhere?: boolean } = {}) {
  const writes: Array<{ spawn: Spawn; inTransaction: boolean }> = [];
  const db = { query: async () => ({ rows: [], rowCount: 0 }) } as Queryable;
  const children = attemptChildren(
    {
      lookup: (name) => (name === child.name ? child : undefined),
      write: async (spawn, given) => void writes.push({ spawn: structuredClone(spawn), inTransaction: given === db }),
      transaction: async (fn) => {
        const value = await fn(db);
        if (options.failCommit) throw new Error('commit failed');
        return value;
      },
      writesInTransaction: options.sendsElsewhere !== true,
    },
    { id: PARENT },
  );
  return { children, writes };
}

describe("a handler's children", () => {
  it('are held until the attempt succeeds, then written at once with the batches sealed', async () => {
    const { children, writes } = attempt();
    const batch = children.fanOut.batch({ onFinish: 'test.done' });
    const { ids } = await batch.addMany(child, [{ n: 1 }, { n: 2 }]);
    await children.fanOut.performLater(child, { n: 3 }, { key: 'three' });
    expect(writes).toEqual([]);
    await children.flush();
    expect(writes).toHaveLength(1);
    expect(writes[0]!.spawn).toMatchObject({ parentId: PARENT, seal: [batch.id], batches: [{ id: batch.id }] });
    expect(writes[0]!.spawn.jobs.map((j) => [j.id, j.batchId ?? null])).toEqual([[ids[0], batch.id], [ids[1], batch.id], [expect.any(String), null]]);
  });

  it('get the same ids in every attempt (their place, or their key), and a key used twice is refused', async () => {
    const first = attempt();
    const second = attempt();
    const a = await first.children.fanOut.performManyLater(child, [{ n: 1 }, { n: 2 }]);
    const b = await second.children.fanOut.performManyLater(child, [{ n: 1 }, { n: 2 }]);
    expect(b.ids).toEqual(a.ids);
    await first.children.fanOut.performLater(child, { n: 3 }, { key: 'k' });
    await expect(first.children.fanOut.performLater(child, { n: 4 }, { key: 'k' })).rejects.toMatchObject({ code: 'JG_REQUEST_INVALID' });
    await expect(first.children.fanOut.performLater(child, { n: 'x' } as never)).rejects.toMatchObject({ code: 'JG_PAYLOAD_INVALID', errors: [{ path: 'payload.n' }] });
  });

  it('commit with ctx.transaction; rolled back, they are dropped and their places taken again by the same children', async () => {
    const ok = attempt();
    await ok.children.fanOut.transaction(async () => ok.children.fanOut.performLater(child, { n: 1 }));
    expect(ok.writes).toMatchObject([{ inTransaction: true }]);
    await ok.children.flush(); // nothing left to write
    expect(ok.writes).toHaveLength(1);

    const failing = attempt({ failCommit: true });
    const inside = failing.children.fanOut.transaction(async () => failing.children.fanOut.performLater(child, { n: 1 }));
    await expect(inside).rejects.toThrow('commit failed');
    const again = await failing.children.fanOut.performLater(child, { n: 1 });
    const fresh = await attempt().children.fanOut.performLater(child, { n: 1 });
    expect(again.id).toBe(fresh.id);

    // on the fetcher the children went to main before the local commit failed: they stay written, their places taken
    const fetcher = attempt({ failCommit: true, sendsElsewhere: true });
    const first = await fetcher.children.fanOut.transaction(async () => fetcher.children.fanOut.performLater(child, { n: 1 })).catch(() => null);
    expect(first).toBeNull();
    const next = await fetcher.children.fanOut.performLater(child, { n: 2 });
    expect(next.id).not.toBe(fresh.id);
    await fetcher.children.flush();
    expect(fetcher.writes.map((w) => w.spawn.jobs.map((j) => j.payload))).toEqual([[{ n: 1 }], [{ n: 2 }]]);
  });
});

describe('childrenToMain', () => {
  it('cuts a big spawn into requests that fit: batches opened by the first, sealed by the last', async () => {
    const sent: Spawn[] = [];
    const big = 'x'.repeat(600 * 1024);
    const spawn: Spawn = { parentId: PARENT, jobs: Array.from({ length: 12 }, (_, n) => ({ id: crypto.randomUUID(), name: 'test.child', payload: { big, n }, batchId: PARENT })), batches: [{ id: PARENT, properties: {}, callbacks: [] }], seal: [PARENT] };
    await childrenToMain(async (s) => void sent.push(s))(spawn);
    expect(sent.length).toBeGreaterThan(1);
    expect(sent.flatMap((s) => s.jobs).length).toBe(12);
    expect(sent.map((s) => s.batches.length)).toEqual([1, ...sent.slice(1).map(() => 0)]);
    expect(sent.map((s) => s.seal.length)).toEqual([...sent.slice(1).map(() => 0), 1]);
    expect(sent.every((s) => Buffer.byteLength(JSON.stringify(s)) < 8 * 2 ** 20)).toBe(true);
  });
});

// Signing between the two real apps (FAULTS.md rows 22 and 27 across the hop): clock skew, and a
// rotation of FETCHER_SHARED_SECRET done app by app while jobs stream, with zero 401s.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { parseSecrets } from '../../packages/jobgate/src/protocol/index.ts';
import { createFetcherClient } from '../../packages/jobgate/src/client/index.ts';
import { TEST_SHARED_SECRET, type AppProcess } from '../support/apps.ts';
import { call, completedRuns, databasePerTest, enqueue, startPair, states } from '../support/gateway.ts';

// A database of its own for each test, and the apps the test starts on it.
const t = databasePerTest();

const rejected = (apps: AppProcess[]) => apps.flatMap((a) => a.logs.filter((l) => l.msg === 'signature rejected'));

describe('clock skew between the apps (row 22)', () => {
  it('240 s ahead is accepted both ways; 600 s ahead is refused as stale and nothing is lost', async () => {
    t.pair = await startPair(t.db, { startFetcher: false });
    const skewed240 = await t.pair.startFetcher({}, 240);
    const ok = await Promise.all([1, 2, 3].map(() => enqueue(t.pair!.main, 'test.remote', {})));
    await t.allCompleted(ok); // forwards accepted there; its claims and events accepted here
    expect(rejected([t.pair.main, skewed240])).toEqual([]);

    await skewed240.stop();
    const skewed600 = await t.pair.startFetcher({}, 600);
    const held = await Promise.all([1, 2].map(() => enqueue(t.pair!.main, 'test.remote', {})));
    const refusal = await skewed600.waitForLog('stale forward refused', (l) => l.msg === 'signature rejected', 30_000);
    expect(refusal.reason).toMatch(/timestamp outside the 300 s window \(skew (59\d|60\d) s\)/);
    await t.pair.main.waitForLog('main keeps the batch', (l) => l.msg === 'fetcher refused the request itself; the batch stays in the outbox', 30_000);
    await sleep(1_000);
    const s = await states(t.db, held);
    expect(s.failed).toBeUndefined();
    expect(s.completed).toBeUndefined();

    await skewed600.stop();
    await t.pair.startFetcher();
    await t.allCompleted(held, 90_000);
    for (const [, runs] of await completedRuns(t.db, [...ok, ...held])) expect(runs).toEqual([{ ranOn: 'fetcher' }]);
    console.log(`row 22: fetcher 240 s ahead: 3/3 jobs done, 0 refusals; 600 s ahead: refused as stale (${refusal.reason}), 2 jobs kept and done once the clock was right`);
  }, 180_000);
});

describe('secret rotation across both apps while jobs stream (row 27)', () => {
  it('old+new everywhere, then new+old, then new alone: zero 401s, every job done, the old key refused after', async () => {
    const OLD = TEST_SHARED_SECRET;
    const NEW = 'whsec_' + Buffer.alloc(32, 9).toString('base64');
    t.pair = await startPair(t.db);
    const started: AppProcess[] = [t.pair.main, t.pair.fetcher!];
    const accepted: string[] = [];
    let streaming = true;
    const stream = (async () => {
      while (streaming) {
        // main restarting: the request fails and the producer tries again, as a user would
        const r = await call(t.pair!.main.url, 'POST', '/api/jobs/test.remote', { payload: {} }).catch(() => null);
        if (r?.status === 202) accepted.push(r.json.id);
        await sleep(100);
      }
    })();
    const restartBoth = async (secret: string) => {
      await t.pair!.fetcher!.stop();
      started.push(await t.pair!.startFetcher({ FETCHER_SHARED_SECRET: secret }));
      await sleep(500);
      await t.pair!.main.stop();
      started.push(await t.pair!.startMain({ FETCHER_SHARED_SECRET: secret }));
      await sleep(500);
    };
    await sleep(500);
    await restartBoth(`${OLD} ${NEW}`); // 1. everyone accepts the new key, still signs with the old
    await restartBoth(`${NEW} ${OLD}`); // 2. everyone signs with the new key, still accepts the old
    await restartBoth(NEW); //             3. the old key is gone
    streaming = false;
    await stream;
    await t.allCompleted(accepted, 90_000);
    for (const [, runs] of await completedRuns(t.db, accepted)) expect(runs).toEqual([{ ranOn: 'fetcher' }]);
    expect(rejected(started)).toEqual([]);

    const withOld = createFetcherClient({ baseUrl: t.pair.fetcher!.url, keys: parseSecrets(OLD), retries: 0 });
    const stale = await withOld.submit([{ id: randomUUID(), name: 'test.remote', payload: {} }]).then(() => 'accepted', (err: { status?: number }) => err.status);
    await withOld.close();
    expect(stale).toBe(401);
    console.log(`row 27: ${accepted.length} jobs accepted while both apps were restarted three times with rotating secrets; 0 × 401 on either side; all done once; the old key afterwards → ${stale}`);
  }, 180_000);
});

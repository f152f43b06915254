// A fetcher started before main (or while main redeploys) says so the way an operator reads it: one
// line at warn naming main (not "fetcher unreachable"), no stack, at most once a minute however many
// loops ask main (pauses, job events); one line when main answers again.
import { afterEach, describe, expect, it } from 'vitest';
import { freePort, startFetcher, startMain, TEST_SHARED_SECRET, type AppProcess } from '../support/apps.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { enqueue, ADMIN_PASSWORD } from '../support/gateway.ts';
import { waitFor } from '../support/wait.ts';

let db: TestDatabase | undefined;
const apps: AppProcess[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.stop()));
  await db?.drop();
});

describe('a fetcher that cannot reach main', () => {
  it('logs one line naming main, without a stack, then one when main is back', async () => {
    db = await createTestDatabase();
    const mainPort = await freePort();
    const fetcher = await startFetcher({ DATABASE_URL: db.url, MAIN_SERVICE_URL: `http://127.0.0.1:${mainPort}`, JOBGATE_DEMO_JOBS: 'true' });
    apps.push(fetcher);
    // a job event waiting too: the events loop asks main as well as the pauses poll (every 0.5 s here)
    await fetcher.waitForLog('main unreachable', (l) => l.msg === 'main unreachable; retrying', 30_000);
    const seenAt = Date.now();
    await waitFor('a few more polls of main', () => Date.now() - seenAt > 5_000, { timeoutMs: 10_000 });
    const about = fetcher.logs.filter((l) => /unreachable|could not (ask|read|deliver)/.test(l.msg) || /unreachable/.test(String(l.err?.message ?? '')));
    expect(about.map((l) => l.msg)).toEqual(['main unreachable; retrying']);
    expect(about[0]).toMatchObject({ level: 'warn', peer: 'main', error: expect.stringMatching(/^main unreachable: .*ECONNREFUSED/) });
    expect(about[0]!.err).toBeUndefined();
    expect(fetcher.logs.some((l) => JSON.stringify(l).includes('fetcher unreachable'))).toBe(false);

    const main = await startMain({ DATABASE_URL: db.url, PORT: String(mainPort), FETCHER_SERVICE_URL: fetcher.url, FETCHER_SHARED_SECRET: TEST_SHARED_SECRET, ADMIN_PASSWORD, JOBGATE_DEMO_JOBS: 'true' });
    apps.push(main);
    await fetcher.waitForLog('main reachable again', (l) => l.msg === 'main reachable again' && l.level === 'info', 30_000);
    // and the channel works: a routed job completes
    const id = await enqueue(main, 'demo.heavy', { sleepMs: 10 });
    await waitFor('the routed job completed', async () => (await db!.pool.query(`SELECT state FROM jobgate.jobs WHERE id = $1`, [id])).rows[0]?.state === 'completed', { timeoutMs: 60_000, intervalMs: 250 });
  });
});

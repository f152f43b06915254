// An upgrade in place, rehearsed from the previous release (test/support/previous-release.ts): a
// deployment of that release, on a database its own migrations made, holds jobs finished, running
// on main, running on the fetcher, queued, delayed and retrying on both sides; main is then
// replaced by this release (its migrations run while the previous fetcher still works), then the
// fetcher. Every job completes exactly once under the new code, and the rows written before the
// upgrade stay readable.
import { afterEach, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { createCounterTables } from '../support/setup-database.ts';
import { call, completedRuns, effects, enqueue, handlerStarts, startPair, states, type Pair } from '../support/gateway.ts';
import { PREVIOUS_RELEASE, previousRelease } from '../support/previous-release.ts';
import { waitFor } from '../support/wait.ts';

let db: TestDatabase | undefined;
let pair: Pair | undefined;
afterEach(async () => {
  await pair?.stop();
  await db?.drop();
});

async function enqueueLater(main: Pair['main'], name: string, payload: unknown, delaySeconds: number): Promise<string> {
  const r = await call(main.url, 'POST', `/api/jobs/${name}`, { payload, delaySeconds });
  if (r.status !== 202) throw new Error(`enqueue ${name} answered ${r.status}: ${JSON.stringify(r.json)}`);
  return r.json.id as string;
}

describe(`an upgrade in place from the previous release (${PREVIOUS_RELEASE.name})`, () => {
  it('keeps every job queued, delayed, retrying and running on either side: each completes once under this release', async () => {
    db = await createTestDatabase({ empty: true });
    await createCounterTables(db.pool);
    pair = await startPair(db, { mainExtras: previousRelease('main'), fetcherExtras: previousRelease('fetcher') });
    const old = pair.main;

    // finished under the previous release
    const before = [await enqueue(old, 'test.record', { label: 'before, on main' }), await enqueue(old, 'test.remote', { label: 'before, routed' })];
    await waitFor('the jobs before the upgrade completed', async () => (await states(db!, before)).completed === 2, { timeoutMs: 60_000 });

    // in flight when the upgrade starts
    const running = [await enqueue(old, 'test.record', { label: 'running on main', sleepMs: 6_000 }), await enqueue(old, 'test.remote', { label: 'running on the fetcher', sleepMs: 6_000 })];
    const retrying = [await enqueue(old, 'test.record', { label: 'retrying on main', failAttempts: 1 }), await enqueue(old, 'test.remote', { label: 'retrying on the fetcher', failAttempts: 1, sleepMs: 500 })];
    const delayed = [await enqueueLater(old, 'test.record', { label: 'delayed on main' }, 12), await enqueueLater(old, 'test.remote', { label: 'delayed to the fetcher' }, 12)];
    const queued: string[] = [];
    for (let i = 0; i < 10; i++) queued.push(await enqueue(old, 'test.record', { label: `queued on main ${i}`, sleepMs: 400 }), await enqueue(old, 'test.remote', { label: `queued to the fetcher ${i}`, sleepMs: 400 }));
    await waitFor('the long jobs running on both sides', async () => (await handlerStarts(db!, running)) >= 2, { timeoutMs: 60_000 });

    const migrated = async () => (await db!.pool.query(`SELECT max(version)::int AS v FROM jobgate.schema_migrations`)).rows[0].v as number;
    const previousSchema = await migrated();
    // main first: this release's migrations run while the previous release's fetcher works on
    await pair.main.stop();
    const upgradedAt = new Date();
    const upgraded = await pair.startMain({}, {});
    expect(await migrated()).toBeGreaterThan(previousSchema);
    // then the fetcher
    await pair.fetcher!.stop();
    await pair.startFetcher({}, 0, {});

    const inFlight = [...running, ...retrying, ...delayed, ...queued];
    await waitFor(`${inFlight.length} jobs completed after the upgrade`, async () => (await states(db!, inFlight)).completed === inFlight.length, { timeoutMs: 150_000, intervalMs: 500 });
    const all = [...before, ...inFlight];
    // once each: one effect, one handler run to its end, one completed attempt
    expect(await effects(db, all)).toBe(all.length);
    const { rows: ends } = await db.pool.query(`SELECT job_id, count(*)::int AS n FROM public.test_events WHERE job_id = ANY($1::uuid[]) AND event = 'end' GROUP BY job_id`, [all]);
    expect(ends.filter((r) => r.n !== 1)).toEqual([]);
    expect(ends).toHaveLength(all.length);
    const runs = await completedRuns(db, all);
    expect([...runs.entries()].filter(([, r]) => r.length !== 1)).toEqual([]);
    // where they ran: routed jobs on the fetcher, main's on main
    for (const id of [running[1], retrying[1], delayed[1]]) expect(runs.get(id!)).toEqual([{ ranOn: 'fetcher' }]);
    for (const id of [running[0], retrying[0], delayed[0]]) expect(runs.get(id!)).toEqual([{ ranOn: 'main' }]);
    // the retried ones show their failed attempt before the one that completed
    for (const id of retrying) {
      const job = (await call(upgraded.url, 'GET', `/api/jobs/${id}`)).json;
      expect(job.executions.map((e: { outcome: string }) => e.outcome)).toEqual(['failed', 'completed']);
    }
    // the delayed ones ran under this release
    const { rows: starts } = await db.pool.query(`SELECT min(at) AS at FROM public.test_events WHERE job_id = ANY($1::uuid[]) AND event = 'start'`, [delayed]);
    expect(starts[0].at.getTime()).toBeGreaterThan(upgradedAt.getTime());
    // rows written before the upgrade read as they did
    for (const id of before) {
      const r = await call(upgraded.url, 'GET', `/api/jobs/${id}`);
      expect(r.status).toBe(200);
      expect(r.json).toMatchObject({ state: 'completed', executions: [{ attempt: 1, outcome: 'completed' }] });
    }
    const errors = [pair.main, pair.fetcher!].flatMap((app) => app.logs.filter((l) => l.level === 'error'));
    expect(errors).toEqual([]);
  }, 300_000);
});

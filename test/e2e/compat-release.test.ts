// The compatibility policy (docs/operations.md, "Compatibility"): this release's main and the
// previous release's fetcher work together, and so do the previous release's main and this
// fetcher, so either service may be deployed first; main rolled back one release runs on the
// schema this release migrated. Real processes of both releases on one database: the previous
// release from its own sources (test/support/previous-release.ts).
import { describe, expect, it } from 'vitest';
import { databasePerTest, effects, enqueue, startPair, type Pair } from '../support/gateway.ts';
import { PREVIOUS_RELEASE, previousRelease } from '../support/previous-release.ts';

const t = databasePerTest();

/** Routed jobs (one failing its first attempt: a retry, a claim and events each way) and a main job. */
async function runJobs(pair: Pair): Promise<string[]> {
  const ids = [
    ...(await Promise.all(Array.from({ length: 4 }, (_, i) => enqueue(pair.main, 'test.remote', { label: `routed ${i}` })))),
    await enqueue(pair.main, 'test.remote', { failAttempts: 1, label: 'retried' }),
    await enqueue(pair.main, 'test.record', { label: 'on main' }),
  ];
  await t.allCompleted(ids, 90_000);
  expect(await effects(t.db, ids)).toBe(ids.length);
  const { rows } = await t.db.pool.query(
    `SELECT j.name, e.ran_on, e.outcome, count(*)::int AS n FROM public.main_attempts e JOIN public.main_jobs j ON j.id = e.job_id
     WHERE e.job_id = ANY($1::uuid[]) GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`,
    [ids],
  );
  expect(rows).toEqual([
    { name: 'test.record', ran_on: 'main', outcome: 'completed', n: 1 },
    { name: 'test.remote', ran_on: 'fetcher', outcome: 'completed', n: 5 },
    { name: 'test.remote', ran_on: 'fetcher', outcome: 'failed', n: 1 },
  ]);
  return ids;
}

const errors = (pair: Pair) => [pair.main, pair.fetcher!].flatMap((app) => app.logs.filter((l) => l.level === 'error'));
/** This release serves a peer of the previous one in the legacy lane, and says so (docs/security.md). */
const servedInLegacyLane = (logs: Array<{ msg: string }>) => logs.some((l) => l.msg.startsWith('a peer signs without jobgate-header-signature'));

describe(`compatibility with the previous release (${PREVIOUS_RELEASE.name})`, () => {
  it("this main with the previous release's fetcher: routed jobs run once, retries and events flow", async () => {
    const pair = (t.pair = await startPair(t.db, { fetcherExtras: previousRelease('fetcher') }));
    await runJobs(pair);
    expect(servedInLegacyLane(pair.main.logs)).toBe(true);
    expect(errors(pair)).toEqual([]);
  }, 180_000);

  it("main rolled back to the previous release on this release's schema, with this fetcher; then forward again", async () => {
    const pair = (t.pair = await startPair(t.db));
    await runJobs(pair);
    // roll main back: the previous release's main on the schema this release migrated
    await pair.main.stop();
    await pair.startMain({}, previousRelease('main'));
    await runJobs(pair);
    expect(servedInLegacyLane(pair.fetcher!.logs)).toBe(true);
    expect(errors(pair)).toEqual([]);
    // and forward again
    await pair.main.stop();
    await pair.startMain({}, {});
    await runJobs(pair);
    expect(errors(pair)).toEqual([]);
  }, 240_000);
});

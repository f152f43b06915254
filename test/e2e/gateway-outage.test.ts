// A fetcher that is away: killed while jobs flow, asleep (a platform holding requests while it
// boots), slow, or blackholed (issue 5 "done when"; FAULTS.md rows 17-20). Outages are seconds, not
// minutes: each test shortens the timeouts it exercises (headers, wake-up) in proportion, so the
// same things happen (attempts cut, wake-ups given up and retried, one probe) in less time.
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { completedRuns, databasePerTest, effects, enqueue, handlerStarts, percentile, startPair, states, type Pair } from '../support/gateway.ts';
import { waitFor } from '../support/wait.ts';
import { startFaultProxy } from '../support/fault-proxy.ts';

// A database of its own for each test, and the apps the test starts on it.
const t = databasePerTest();


async function expectExactlyOnceOnFetcher(ids: string[]): Promise<void> {
  const runs = await completedRuns(t.db, ids);
  const twice = ids.filter((id) => runs.get(id)!.length !== 1);
  expect(twice).toEqual([]);
  expect(await effects(t.db, ids)).toBe(ids.length);
}

const forwardFailures = (p: Pair) => p.main.logs.filter((l) => l.component === 'forwarder' && typeof l.ms === 'number');

/**
 * Row 17's outage, as long as the 200 enqueues take. Each wake-up gives up after WAKE_MS and the
 * outbox retries a batch at most RETRY_MAX_S apart (production: 90 s and 60 s), so batches fail,
 * back off and wake the fetcher more than once while it is down, and the first retry after it is
 * back is seconds away.
 */
const DOWN_MS = 15_000;
const WAKE_MS = 6_000;
const RETRY_MAX_S = 5;

describe('fetcher down', () => {
  it(`SIGKILLed for ${DOWN_MS / 1000} s while 200 jobs flow: none lost, none completed twice, nothing failed (rows 17 and 5)`, async () => {
    t.pair = await startPair(t.db, { mainEnv: { FETCHER_WAKE_TIMEOUT_MS: String(WAKE_MS), FETCHER_FORWARD_RETRY_MAX_SECONDS: String(RETRY_MAX_S) } });
    const ids: string[] = [];
    let killedAt = 0;
    const producer = (async () => {
      for (let i = 0; i < 200; i++) {
        ids.push(await enqueue(t.pair!.main, 'test.remote', { sleepMs: 100 }));
        if (i === 30) {
          t.pair!.fetcher!.kill('SIGKILL');
          killedAt = Date.now();
        }
        await sleep(50);
      }
    })();
    await producer;
    await t.pair.fetcher!.exited;
    await sleep(Math.max(0, killedAt + DOWN_MS - Date.now()));
    const s = await states(t.db, ids);
    expect(s.failed).toBeUndefined();
    const restartAt = Date.now();
    await t.pair.startFetcher();
    await t.allCompleted(ids, 90_000);
    const drained = (Date.now() - restartAt) / 1000;
    await expectExactlyOnceOnFetcher(ids);
    const { rows } = await t.db.pool.query(`SELECT count(*)::int AS n FROM public.main_attempts WHERE job_id = ANY($1::uuid[]) AND outcome = 'lost'`, [ids]);
    const attempts = forwardFailures(t.pair).length;
    const wakes = t.pair.main.logs.filter((l) => l.msg === 'fetcher awake').length;
    console.log(
      `rows 5/17: fetcher down ${DOWN_MS / 1000} s with ${s.queued ?? 0}+${s.forwarding ?? 0} jobs waiting (queued+forwarding), ${s.active ?? 0} cut short mid-run; ` +
        `${attempts} failed forward attempts, ${wakes} batches delivered after a wake-up; all 200 done ${drained.toFixed(1)} s after restart; ${rows[0].n} lost attempts re-run; effects 200/200`,
    );
  }, 240_000);
});

/** Row 18: the platform holds requests this long; a forward gives up on its headers well before (then wakes the fetcher). */
const ASLEEP_MS = 8_000;
const HEADERS_MS = 2_000;

describe('fetcher asleep (row 18)', () => {
  it(`the platform holds every request for ${ASLEEP_MS / 1000} s: one wake-up for 50 queued jobs, all delivered`, async () => {
    t.pair = await startPair(t.db, { proxyToFetcher: true, mainEnv: { FETCHER_FORWARD_BATCH_SIZE: '10', FETCHER_HEADERS_TIMEOUT_MS: String(HEADERS_MS) } });
    const wakesAt = Date.now() + ASLEEP_MS;
    t.pair.toFetcher!.setMode({ kind: 'hold', until: wakesAt });
    const probesBefore = t.pair.fetcher!.logs.filter((l) => l.msg === 'request' && l.path === '/healthz').length;
    const ids = await Promise.all(Array.from({ length: 50 }, () => enqueue(t.pair!.main, 'test.remote', {})));
    await t.allCompleted(ids, 60_000);
    const firstAccepted = t.pair.fetcher!.logs.find((l) => l.msg === 'jobs accepted');
    const probes = t.pair.fetcher!.logs.filter((l) => l.msg === 'request' && l.path === '/healthz').length - probesBefore;
    // one wake-up in flight: its single /healthz probe was held with everything else until the fetcher "woke"
    expect(probes).toBe(1);
    await expectExactlyOnceOnFetcher(ids);
    const waiting = t.pair.main.logs.filter((l) => l.msg === 'fetcher awake').length;
    console.log(`row 18: 50 jobs, 1 wake-up (${probes} /healthz probe) shared by ${waiting} waiting batches; first forward ${((Date.parse(firstAccepted!.time) - wakesAt) / 1000).toFixed(1)} s after the platform let requests through`);
  });
});

/** Rows 19-20: a fetcher slower than the client's headers timeout (every chunk, both ways); batches retried at most 2 s apart. */
const SLOW_MS = 5_000;
const FAILING_ENV = { FETCHER_WAKE_TIMEOUT_MS: '1000', FETCHER_HEADERS_TIMEOUT_MS: String(HEADERS_MS), FETCHER_FORWARD_RETRY_MAX_SECONDS: '2' };

describe('slow or silent fetcher (rows 19 and 20)', () => {
  it('slow: each attempt is cut at the client timeout (not undici’s 300 s), retried, delivered once when it speeds up', async () => {
    t.pair = await startPair(t.db, { proxyToFetcher: true, mainEnv: FAILING_ENV });
    t.pair.toFetcher!.setMode({ kind: 'delay', ms: SLOW_MS });
    const ids = await Promise.all(Array.from({ length: 3 }, () => enqueue(t.pair!.main, 'test.remote', {})));
    let peakSockets = 0;
    const proxy = t.pair.toFetcher!;
    const sampler = setInterval(() => (peakSockets = Math.max(peakSockets, proxy.connections)), 100);
    await waitFor('two attempts cut short', () => forwardFailures(t.pair!).length >= 2, { timeoutMs: 40_000, intervalMs: 250 });
    t.pair.toFetcher!.setMode({ kind: 'pass' });
    await t.allCompleted(ids);
    clearInterval(sampler);
    const durations = forwardFailures(t.pair).map((l) => l.ms as number);
    for (const ms of durations) expect(ms).toBeLessThan(15_000);
    expect(await handlerStarts(t.db, ids)).toBe(3);
    await expectExactlyOnceOnFetcher(ids);
    console.log(`row 19: attempts against a ${SLOW_MS / 1000} s-slow fetcher cut after ${durations.map((d) => (d / 1000).toFixed(1)).join(', ')} s; peak sockets through the proxy ${peakSockets}; duplicates 0`);
  });

  it('blackholed: each attempt fails within the headers timeout and the jobs wait; delivered once it answers again', async () => {
    t.pair = await startPair(t.db, { proxyToFetcher: true, mainEnv: FAILING_ENV });
    t.pair.toFetcher!.setMode({ kind: 'blackhole' });
    t.pair.toFetcher!.cut();
    const ids = await Promise.all(Array.from({ length: 3 }, () => enqueue(t.pair!.main, 'test.remote', {})));
    await waitFor('two attempts failed', () => forwardFailures(t.pair!).length >= 2, { timeoutMs: 60_000, intervalMs: 250 });
    expect((await states(t.db, ids)).failed).toBeUndefined();
    t.pair.toFetcher!.setMode({ kind: 'pass' });
    t.pair.toFetcher!.cut();
    await t.allCompleted(ids);
    const durations = forwardFailures(t.pair).map((l) => l.ms as number);
    for (const ms of durations) expect(ms).toBeLessThan(15_000);
    await expectExactlyOnceOnFetcher(ids);
    console.log(`row 20: ${durations.length} attempts into a blackhole, each failed after p95 ${(percentile(durations, 95) / 1000).toFixed(1)} s; nothing failed; all delivered once it answered`);
  });
});

describe("the fetcher's database away", () => {
  it('the fetcher answers 503 with Retry-After: main wakes nothing, counts no failure towards the backoff, and delivers once it is back', async () => {
    // the fetcher's connections to PostgreSQL (and only its) go through a proxy the test closes
    const viaProxy = new URL(t.db.url);
    const toPostgres = await startFaultProxy({ host: viaProxy.hostname, port: Number(viaProxy.port || 5432) });
    viaProxy.port = String(toPostgres.port);
    try {
      t.pair = await startPair(t.db, { fetcherEnv: { DATABASE_URL: viaProxy.toString() } });
      await toPostgres.refuse();
      toPostgres.cut();
      const awayAt = Date.now();
      const ids = await Promise.all(Array.from({ length: 10 }, (_, i) => enqueue(t.pair!.main, 'test.remote', { sleepMs: 10, label: `db-away-${i}` })));
      const said = await t.pair.main.waitForLog('main hears why the fetcher cannot take jobs', (l) => l.msg?.startsWith('the fetcher cannot take jobs now') === true, 30_000);
      expect(said).toMatchObject({ code: 'JG_DATABASE_UNAVAILABLE', status: 503, retryAfterSeconds: 1 });
      // several deliveries refused while its database stays away
      await sleep(Math.max(0, awayAt + 8_000 - Date.now()));
      const refused = t.pair.fetcher!.logs.filter((l) => l.msg === 'request' && l.status === 503 && String(l.path).startsWith('/v1/jobs')).length;
      // it answered each time: awake, so nothing woke it, and the jobs wait as it asked (a second),
      // not a backoff grown by each refusal (1, 2, 4, 8 s … after 8 s of them)
      expect(t.pair.main.logs.filter((l) => l.msg === 'fetcher unreachable; waking it')).toEqual([]);
      const { rows } = await t.db.pool.query(`SELECT state, forward_tries FROM jobgate.jobs WHERE id = ANY($1::uuid[])`, [ids]);
      expect(rows.every((r) => r.forward_tries === 0 && ['queued', 'forwarding'].includes(r.state)), JSON.stringify(rows)).toBe(true);

      await toPostgres.resume();
      const backAt = Date.now();
      await t.allCompleted(ids);
      await expectExactlyOnceOnFetcher(ids);
      console.log(`fetcher's database away 8 s: ${refused} deliveries answered 503 (Retry-After 1), no wake-up, no backoff counted; all ${ids.length} jobs done ${((Date.now() - backAt) / 1000).toFixed(1)} s after it was back`);
    } finally {
      await t.pair?.stop();
      t.pair = null;
      await toPostgres.close();
    }
  });
});

describe("main's database failing a delivery", () => {
  it("the jobs go again in a second, with no failure counted towards their backoff, and are delivered once it is back", async () => {
    t.pair = await startPair(t.db);
    // main's database refuses to record a delivery (or a claim) while the flag is up, as a
    // database that is starting up does (57P03): markForwarded's retries run out, so the delivery fails
    await t.db.pool.query(`
      CREATE TABLE public.main_db_fails (on_since timestamptz);
      CREATE FUNCTION public.main_db_fails() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF EXISTS (SELECT 1 FROM public.main_db_fails) THEN
          RAISE EXCEPTION 'the database system is starting up' USING ERRCODE = '57P03';
        END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER main_db_fails BEFORE UPDATE ON jobgate.jobs FOR EACH ROW
        WHEN (NEW.state IN ('forwarded', 'active') AND OLD.state IS DISTINCT FROM NEW.state) EXECUTE FUNCTION public.main_db_fails();
      INSERT INTO public.main_db_fails VALUES (now());`);
    const ids = await Promise.all(Array.from({ length: 5 }, (_, i) => enqueue(t.pair!.main, 'test.remote', { sleepMs: 10, label: `main-db-${i}` })));
    // (a delivery that held its jobs first says its hold failed, then goes on under a lease: the
    // line that records the failed delivery is the lease's, which says when the jobs go again)
    const said = await t.pair.main.waitForLog('the forwarder says main’s database failed the delivery', (l) => l.msg?.startsWith("main's database failed during a delivery; the jobs go again in a second") === true, 60_000);
    expect(said).toMatchObject({ component: 'forwarder' });
    // the failed delivery is recorded just after that line: the jobs wait in the outbox as 'forwarding'
    let rows: Array<{ state: string; forward_tries: number }> = [];
    await waitFor('the failed delivery recorded', async () => {
      ({ rows } = await t.db.pool.query(`SELECT state, forward_tries FROM jobgate.jobs WHERE id = ANY($1::uuid[])`, [ids]));
      return rows.every((r) => r.state === 'forwarding');
    });
    // not a backoff grown by the failure (1, 2, 4 s …): no try counted, and they go again in a second
    expect(rows.every((r) => r.forward_tries === 0), JSON.stringify(rows)).toBe(true);
    await t.pair.main.waitForLog('a second delivery that main’s database fails', (l) => l.msg?.startsWith("main's database failed during a delivery") === true && l !== said, 60_000);
    const { rows: after } = await t.db.pool.query(`SELECT forward_tries FROM jobgate.jobs WHERE id = ANY($1::uuid[])`, [ids]);
    expect(after.every((r) => r.forward_tries === 0), JSON.stringify(after)).toBe(true);
    expect(t.pair.main.logs.filter((l) => l.msg === 'fetcher unreachable; waking it')).toEqual([]);

    await t.db.pool.query('DELETE FROM public.main_db_fails');
    await t.allCompleted(ids);
    await expectExactlyOnceOnFetcher(ids);
  });
});

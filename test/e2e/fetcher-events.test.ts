// Job events from the fetcher back to main: written in the same transaction as each state change,
// delivered signed and in order, retried while the receiver is down (issue 4 item 5).
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobEvents, Purpose, parseSecrets, verify, type JobEvent } from '../../packages/jobgate/src/protocol/index.ts';
import { createFetcherClient } from '../../packages/jobgate/src/client/index.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { startFetcher, TEST_SHARED_SECRET, type AppProcess } from '../support/apps.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { waitFor } from '../support/wait.ts';

const keys = parseSecrets(TEST_SHARED_SECRET);
let db: TestDatabase;
let proxy: FaultProxy;
let receiver: ReturnType<typeof createServer>;
const received: JobEvent[] = [];
let rejectedSignatures = 0;
let claims = 0;
/** Each claim the stand-in granted: job and attempt. */
const claimed: Array<[string, number]> = [];
/** While set, the stand-in answers events 503 (main redeploying) but still grants claims. */
let eventsDown = false;
/** Deliveries of events the stand-in answered 503. */
let refusedDeliveries = 0;
let fetcher: AppProcess;
/** The fetcher retries refused events at most this far apart (production: 30 s), so an outage of seconds sees several retries. */
const FETCHER_ENV = { JOBGATE_DEMO_JOBS: 'true', FETCHER_EVENTS_RETRY_MAX_MS: '2000' };

beforeAll(async () => {
  db = await createTestDatabase();
  // Stands in for main's POST /internal/v1/job-events: verifies, records, acknowledges.
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const h = (n: string) => req.headers[n] as string | undefined;
      const headers = { id: h('webhook-id'), timestamp: h('webhook-timestamp'), signature: h('webhook-signature') };
      // the fetcher claims each attempt at main first: this stand-in grants every claim
      if (req.url === '/internal/v1/claims' && verify({ keys, purpose: Purpose.claimJob, body, headers }).ok) {
        claims++;
        const claim = JSON.parse(body) as { jobId: string; attempt: number };
        claimed.push([claim.jobId, claim.attempt]);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ outcome: 'claimed' }));
        return;
      }
      // and asks which jobs are paused: none
      if (req.url === '/internal/v1/pauses' && verify({ keys, purpose: Purpose.readPauses, body, headers }).ok) {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ pauses: [] }));
        return;
      }
      if (eventsDown) {
        refusedDeliveries++;
        res.writeHead(503).end();
        return;
      }
      const check = verify({ keys, purpose: Purpose.jobEvents, body, headers });
      if (!check.ok || req.url !== '/internal/v1/job-events') {
        rejectedSignatures++;
        res.writeHead(401).end();
        return;
      }
      const { events } = JobEvents.parse(JSON.parse(body));
      received.push(...events);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ applied: events.length, ignored: 0 }));
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
  proxy = await startFaultProxy({ host: '127.0.0.1', port: (receiver.address() as AddressInfo).port });
  fetcher = await startFetcher({ DATABASE_URL: db.url, MAIN_SERVICE_URL: proxy.url(), ...FETCHER_ENV });
});
afterAll(async () => {
  await fetcher?.stop();
  await proxy?.close();
  receiver?.close();
  await db?.drop();
});

const eventsOf = (id: string) => received.filter((e) => e.jobId === id);

describe('job events', () => {
  it('reach a receiver that was down at first (several deliveries refused), each exactly once and in order', async () => {
    eventsDown = true;
    const startedAt = Date.now();
    const client = createFetcherClient({ baseUrl: fetcher.url, keys });
    const ok = randomUUID();
    const flaky = randomUUID();
    try {
      await client.submit([
        { id: ok, name: 'demo.heavy', payload: { sleepMs: 300, progressSteps: 3 } },
        { id: flaky, name: 'demo.heavy', payload: { failAttempts: 1 } },
      ]);
      await waitFor('both completed on the fetcher', async () => (await client.getJob(ok)).state === 'completed' && (await client.getJob(flaky)).state === 'completed', { timeoutMs: 20_000 });
    } finally {
      await client.close();
    }
    const queued = (await db.pool.query('SELECT count(*)::int AS n FROM jobgate_fetcher.job_events')).rows[0].n;
    expect(received).toHaveLength(0);
    // the receiver stays down until the fetcher has retried with backoff a few times (a redeploy of main)
    await waitFor('6 refused deliveries', () => refusedDeliveries >= 6, { timeoutMs: 40_000, intervalMs: 100 });
    const backAt = Date.now();
    eventsDown = false;
    await waitFor('all events delivered', async () => (await db.pool.query('SELECT count(*)::int AS n FROM jobgate_fetcher.job_events')).rows[0].n === 0, { timeoutMs: 40_000 });
    console.log(`events: ${queued} waited in the outbox while the receiver was down (${refusedDeliveries} deliveries refused over ${((backAt - startedAt) / 1000).toFixed(1)} s); all delivered ${((Date.now() - backAt) / 1000).toFixed(1)} s after it came back; ${rejectedSignatures} rejected`);

    // one event per step main cannot know: main granted each attempt (the claims), so none says it
    // started; numbered in the order main applies them (gaps allowed: main applies what is newer)
    expect(eventsOf(ok).map((e) => [e.type, e.attempt, e.progress ?? null])).toEqual([
      ['progress', 1, 33],
      ['progress', 1, 67],
      ['progress', 1, 100],
      ['completed', 1, null],
    ]);
    expect(eventsOf(ok).at(-1)).toMatchObject({ state: 'completed', peakRssMb: expect.any(Number) });
    expect(eventsOf(flaky).map((e) => [e.type, e.attempt, e.state])).toEqual([
      ['failed', 1, 'queued'],
      ['completed', 2, 'completed'],
    ]);
    for (const id of [ok, flaky]) {
      const seqs = eventsOf(id).map((e) => e.seq);
      expect(seqs).toEqual([...new Set(seqs)].sort((a, b) => a - b));
    }
    expect(eventsOf(flaky)[0]!.error).toMatchObject({ code: 'JG_JOB_FAILED', message: 'demo failure on attempt 1 of 1' });
    expect(rejectedSignatures).toBe(0);
    expect(claims).toBe(3); // one per attempt: ok's first, flaky's first and second
  });

  it('tells main of an attempt lost to a kill -9 mid-job by claiming the next attempt', async () => {
    const client = createFetcherClient({ baseUrl: fetcher.url, keys });
    const id = randomUUID();
    await client.submit([{ id, name: 'demo.heavy', payload: { sleepMs: 3_000 } }]);
    await waitFor('the attempt running', async () => (await client.getJob(id)).state === 'active');
    await client.close();
    fetcher.kill('SIGKILL');
    await fetcher.exited;
    fetcher = await startFetcher({ DATABASE_URL: db.url, MAIN_SERVICE_URL: proxy.url(), ...FETCHER_ENV });
    await waitFor('completed event', () => eventsOf(id).some((e) => e.type === 'completed'), { timeoutMs: 40_000, intervalMs: 250 });
    // Delivery is at least once: a batch main acknowledged just before the kill, not yet marked
    // delivered, is sent again after the restart (main applies each (job, seq) once). So a seq may
    // come twice, the same event both times, and never after a later one.
    const delivered = eventsOf(id);
    const first = new Map<number, JobEvent>();
    for (const e of delivered) {
      if (first.has(e.seq)) expect(e, `seq ${e.seq} sent again`).toEqual(first.get(e.seq));
      else first.set(e.seq, e);
    }
    const seqs = delivered.map((e) => e.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    // main hears of the lost attempt from the claim of the next one (its grant writes attempt 1 lost:
    // gateway-outage asserts that row on a real main), then of the end of attempt 2
    expect(claimed.filter(([jobId]) => jobId === id).map(([, attempt]) => attempt)).toEqual([1, 2]);
    expect([...first.values()].map((e) => [e.type, e.attempt])).toEqual([['completed', 2]]);
  });
});

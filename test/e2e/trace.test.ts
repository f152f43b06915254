// One trace across the hop (issue 9): the enqueueing request's W3C traceparent is stored with the
// job, carried on the forward and on the job's events, and every log line about the job on either
// app carries its traceId.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { apiHeaders, call, databasePerTest, startPair } from '../support/gateway.ts';

const t = databasePerTest();

describe('trace context', () => {
  it("puts one traceId on every log line of a routed job, on both apps, from the caller's traceparent or a new one", async () => {
    // (main at debug: it logs each claim it handles, in the claim's own trace)
    const pair = (t.pair = await startPair(t.db, { mainEnv: { LOG_LEVEL: 'debug' } }));
    const { main, fetcher } = pair;
    const traceId = randomBytes(16).toString('hex');
    const given = await call(main.url, 'POST', '/api/jobs/test.remote', { payload: { sleepMs: 50 } }, { ...apiHeaders, traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` });
    const fresh = await call(main.url, 'POST', '/api/jobs/test.remote', { payload: {} });
    const local = await call(main.url, 'POST', '/api/jobs/test.record', { payload: {} }, { ...apiHeaders, traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` });
    expect([given.status, fresh.status, local.status]).toEqual([202, 202, 202]);
    await t.allCompleted([given.json.id, fresh.json.id, local.json.id]);
    // the routed jobs' ends reach main's log when their events arrive
    for (const id of [given.json.id, fresh.json.id]) await main.waitForLog('routed job completed', (l) => l.jobId === id && l.msg === 'routed job completed');

    const traceOf = async (id: string) => (await call(main.url, 'GET', `/api/jobs/${id}`)).json.traceparent as string;
    expect(await traceOf(given.json.id)).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
    const freshTrace = (await traceOf(fresh.json.id)).slice(3, 35);
    expect(freshTrace).toMatch(/^[0-9a-f]{32}$/);
    expect(freshTrace).not.toBe(traceId);

    const linesOf = (id: string) => ({ main: main.logs.filter((l) => l.jobId === id), fetcher: fetcher!.logs.filter((l) => l.jobId === id) });
    for (const [id, expected] of [[given.json.id, traceId], [fresh.json.id, freshTrace]] as const) {
      const lines = linesOf(id);
      // main: enqueued (the request's log) and completed (from the events); the fetcher: started, completed
      expect(lines.main.map((l) => l.msg)).toEqual(expect.arrayContaining(['job enqueued', 'routed job completed']));
      expect(lines.fetcher.map((l) => l.msg)).toEqual(expect.arrayContaining(['job started', 'job completed']));
      expect([...lines.main, ...lines.fetcher].filter((l) => l.traceId !== expected)).toEqual([]);
    }
    const localLines = linesOf(local.json.id).main;
    expect(localLines.map((l) => l.msg)).toEqual(expect.arrayContaining(['job enqueued', 'job started', 'job completed']));
    expect(localLines.filter((l) => l.traceId !== traceId)).toEqual([]);
    // the fetcher's claim of the attempt is handled at main in the job's trace, whether it went
    // alone (the request's W3C header) or in one request with the other claims of its fetch (each
    // claim carries its job's traceparent)
    expect(main.logs.filter((l) => l.msg === 'fetcher claim' && l.jobId === given.json.id && l.traceId === traceId).length).toBeGreaterThanOrEqual(1);
    // the request's own log line is in the same trace
    expect(main.logs.find((l) => l.msg === 'request' && l.requestId === given.headers.get('x-request-id'))?.traceId).toBe(traceId);
    const given2 = linesOf(given.json.id);
    console.log(`trace: ${given2.main.length} main and ${given2.fetcher.length} fetcher log lines of one routed job, all traceId ${traceId}`);

    // a malformed traceparent is not trusted: a new trace instead
    const bad = await call(main.url, 'POST', '/api/jobs/test.record', { payload: {} }, { ...apiHeaders, traceparent: `00-${'0'.repeat(32)}-${randomBytes(8).toString('hex')}-01` });
    expect((await traceOf(bad.json.id)).slice(3, 35)).not.toBe('0'.repeat(32));
  });
});

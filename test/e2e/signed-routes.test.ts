// Signed routes are bounded before they are read and act at most once (issue 15; FAULTS.md rows
// 42, 44, 45): no content coding, a size limit per route, a floor rate for slow bodies, a cap on
// bodies in flight; a signature bound to the resource it reads; a replay answered from the store.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { BodyBudgets, parseSecrets, signedHeaders } from '../../packages/jobgate/src/protocol/index.ts';
import { startMain, TEST_SHARED_SECRET } from '../support/apps.ts';
import { admin, ADMIN_PASSWORD, adminHeaders, enqueue, pairPerFile, states } from '../support/gateway.ts';
import { waitFor } from '../support/wait.ts';
import { FETCHER_JOBS } from '../support/fetcher-jobs.ts';

const keys = parseSecrets(TEST_SHARED_SECRET);
const f = pairPerFile();

const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

async function send(base: string, method: string, path: string, body: string | Buffer | undefined, headers: Record<string, string>) {
  const res = await fetch(`${base}${path}`, { method, headers, body });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null, headers: res.headers };
}

/** With the fetcher stopped: a routed job main holds undelivered, and a signed claim of its first attempt as the fetcher would send it. */
async function undeliveredWithClaim(): Promise<{ id: string; claim: string; headers: Record<string, string> }> {
  await f.pair.fetcher!.stop();
  const id = await enqueue(f.pair.main, 'test.remote', {});
  await waitFor('forwarding', async () => (await f.db.pool.query(`SELECT state FROM jobgate.jobs WHERE id = $1`, [id])).rows[0]?.state !== 'queued', { timeoutMs: 10_000 });
  const claim = JSON.stringify({ jobId: id, attempt: 1, claimSeconds: 30 });
  return { id, claim, headers: { 'content-type': 'application/json', ...signedHeaders(keys, `clm_${randomUUID()}`, claim) } };
}

/** Writes the request line and headers by hand, then `body` at `bytesPerTick` every `tickMs`; resolves with the status line. */
function slowRequest(port: number, path: string, headers: Record<string, string>, body: string, bytesPerTick: number, tickMs: number): Promise<{ status: number; ms: number; head: string }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    let timer: NodeJS.Timeout | undefined;
    socket.on('connect', () => {
      socket.write(`POST ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n`);
      let at = 0;
      timer = setInterval(() => {
        if (at >= body.length || socket.destroyed) return clearInterval(timer);
        socket.write(body.slice(at, at + bytesPerTick));
        at += bytesPerTick;
      }, tickMs);
    });
    socket.on('data', (d) => {
      answer += d;
      const m = /^HTTP\/1\.1 (\d{3})/.exec(answer);
      if (m && answer.includes('\r\n\r\n')) {
        clearInterval(timer);
        socket.destroy();
        resolve({ status: Number(m[1]), ms: Date.now() - started, head: answer.slice(0, answer.indexOf('\r\n\r\n')).toLowerCase() });
      }
    });
    socket.on('error', (err) => {
      clearInterval(timer);
      reject(err);
    });
  });
}

describe('bounded before read', () => {
  it('a gzip flood gets 415 unread: 40 bombs (7.9 MB each inflated) barely move the fetcher’s RSS and restart nothing (row 42)', async () => {
    const fetcher = f.pair.fetcher!;
    const inflated = JSON.stringify({ jobs: [{ id: randomUUID(), name: 'test.remote', payload: { pad: 'a'.repeat(7_900_000) } }] });
    const bomb = gzipSync(inflated, { level: 9 });
    const before = rssMb(fetcher.pid);
    const answers = await Promise.all(Array.from({ length: 40 }, () =>
      send(fetcher.url, 'POST', '/v1/jobs', bomb, { 'content-type': 'application/json', 'content-encoding': 'gzip' }).then((r) => r.status)));
    const after = rssMb(fetcher.pid);
    expect(new Set(answers)).toEqual(new Set([415]));
    // inflated, the bombs would take 316 MB; unread, the allocator's noise stays well under 60 MB
    expect(after - before).toBeLessThan(60);
    expect(fetcher.child.exitCode).toBeNull();
    // and signed ones too: the coding is refused before the signature is even looked at
    const signed = await send(fetcher.url, 'POST', '/v1/jobs', bomb, { 'content-type': 'application/json', 'content-encoding': 'gzip', ...signedHeaders(keys, `fwd_${randomUUID()}`, bomb) });
    expect(signed.status).toBe(415);
    console.log(`gzip flood: 40 × ${(bomb.length / 1024).toFixed(1)} KB bombs → 415 each; fetcher RSS ${before.toFixed(0)} → ${after.toFixed(0)} MB, no restart`);
  });

  it('answers 413 on a Content-Length over the route’s limit, and on a body that grows past it, before buffering more', async () => {
    const main = f.pair.main;
    // a claim is ~100 bytes: its route takes 4 KiB
    const big = JSON.stringify({ jobId: randomUUID(), attempt: 1, claimSeconds: 10, pad: 'x'.repeat(5_000) });
    const declared = await send(main.url, 'POST', '/internal/v1/claims', big, { 'content-type': 'application/json', ...signedHeaders(keys, `clm_${randomUUID()}`, big) });
    expect(declared.status).toBe(413);
    expect(declared.json).toMatchObject({ status: 413, code: 'JG_BODY_TOO_LARGE' });
    // chunked, no Content-Length: cut when the count passes the limit
    const stream = new ReadableStream({ start(c) { for (let i = 0; i < 20; i++) c.enqueue(new TextEncoder().encode('x'.repeat(1_000))); c.close(); } });
    // (a fresh, well-formed message for the route: the headers pass, so the body is read, up to the limit)
    const chunked = await fetch(`${main.url}/internal/v1/claims`, { method: 'POST', headers: { 'content-type': 'application/json', ...signedHeaders(keys, `clm_${randomUUID()}`, 'not the body') }, body: stream, duplex: 'half' } as RequestInit);
    expect(chunked.status).toBe(413);
    // a read has no body at all
    const read = await send(f.pair.fetcher!.url, 'GET', '/v1/status', undefined, { ...signedHeaders(keys, `sts_${randomUUID()}`, '') });
    expect(read.status).toBe(200);
  });

  it('cuts a body slower than the floor rate with 408 well before HTTP_REQUEST_TIMEOUT_MS (30 s)', async () => {
    const body = JSON.stringify({ jobs: [{ id: randomUUID(), name: 'test.remote', payload: {} }] });
    const slow = await slowRequest(f.pair.fetcher!.port, '/v1/jobs', { 'content-type': 'application/json', ...signedHeaders(keys, `fwd_${randomUUID()}`, body) }, body, 1, 200);
    expect(slow.status).toBe(408);
    expect(slow.ms).toBeLessThan(20_000);
    console.log(`slow body (5 bytes/s): 408 after ${(slow.ms / 1000).toFixed(1)} s`);
  });

  it('reads no body before the headers say a fresh message for this route; caps the bytes of bodies read at once (503 with Retry-After)', async () => {
    // anonymous slow senders: refused on their headers (401), their bodies never buffered, no slot taken
    const anonymous = await Promise.all(Array.from({ length: 40 }, () => slowRequest(f.pair.main.port, '/internal/v1/job-events', { 'content-type': 'application/json' }, 'x'.repeat(2_000), 1, 500)));
    expect(new Set(anonymous.map((r) => r.status))).toEqual(new Set([401]));
    // peers' messages (header-signed) declaring 2 MiB each, sent slowly: 4 fit the 8 MiB the small
    // routes read at once, the others wait (503); bodies signed the old way (no header signature)
    // have a lane of their own, so they take none of it
    const body = 'x'.repeat(2 * 2 ** 20 - 64);
    const line = { method: 'POST', path: '/internal/v1/job-events' };
    const fits = Math.floor(BodyBudgets.control.limitBytes / Buffer.byteLength(body));
    const senders = await Promise.all(Array.from({ length: 20 }, () => slowRequest(f.pair.main.port, '/internal/v1/job-events', { 'content-type': 'application/json', ...signedHeaders(keys, `evt_${randomUUID()}`, body, Date.now(), line) }, body, 1, 500)));
    const statuses = senders.map((r) => r.status);
    expect(statuses.filter((s) => s === 503)).toHaveLength(20 - fits);
    expect(senders.find((r) => r.status === 503)!.head).toMatch(/\r\nretry-after: 1/);
    expect(statuses.filter((s) => s !== 503).every((s) => s === 408)).toBe(true);
    // and the route works again right after: every reserved byte was given back
    const events = JSON.stringify({ events: [{ jobId: randomUUID(), seq: 1, type: 'active', attempt: 1, at: new Date().toISOString() }] });
    for (let i = 0; i < 3; i++) expect((await send(f.pair.main.url, 'POST', '/internal/v1/job-events', events, { 'content-type': 'application/json', ...signedHeaders(keys, `evt_${randomUUID()}`, events) })).status).toBe(200);
  });
});

describe('signatures bound to what they act on', () => {
  it('a captured GET /v1/jobs/A signature is refused on /v1/jobs/B (row 45)', async () => {
    const [a, b] = [randomUUID(), randomUUID()];
    const headers = signedHeaders(keys, `get_${a}_${randomUUID()}`, '');
    expect((await send(f.pair.fetcher!.url, 'GET', `/v1/jobs/${a}`, undefined, headers)).status).toBe(404); // signed for A: answered (A is unknown)
    const moved = await send(f.pair.fetcher!.url, 'GET', `/v1/jobs/${b}`, undefined, headers);
    expect(moved.status).toBe(401);
    expect(moved.json).toMatchObject({ title: 'Invalid signature' });
    // an unbound read id (the old shape) is refused as well
    expect((await send(f.pair.fetcher!.url, 'GET', `/v1/jobs/${a}`, undefined, signedHeaders(keys, `get_${randomUUID()}`, ''))).status).toBe(401);
  });

  it('a replayed claim gets the stored answer and changes nothing, even after the attempt failed (row 44)', async () => {
    const main = f.pair.main;
    // a fetcher job main knows; its first attempt claimed by a signed message the test captures
    const { id, claim, headers } = await undeliveredWithClaim();
    const first = await send(main.url, 'POST', '/internal/v1/claims', claim, headers);
    expect(first).toMatchObject({ status: 200, json: { outcome: 'claimed' } });
    // the attempt fails (its signed event), so a new claim of attempt 1 would no longer be granted
    const failed = JSON.stringify({ events: [{ jobId: id, seq: 1, type: 'failed', attempt: 1, at: new Date().toISOString(), state: 'queued', error: { code: 'JG_JOB_FAILED', message: 'boom' } }] });
    expect((await send(main.url, 'POST', '/internal/v1/job-events', failed, { 'content-type': 'application/json', ...signedHeaders(keys, `evt_${randomUUID()}`, failed) })).status).toBe(200);
    const ledger = async () => (await f.db.pool.query(`SELECT j.state, j.updated_at, e.outcome, e.error, e.finished_at FROM jobgate.jobs j LEFT JOIN jobgate.attempts e ON e.job_id = j.id AND e.attempt = 1 WHERE j.id = $1`, [id])).rows[0];
    const before = await ledger();
    expect(before.outcome).toBe('failed');
    const replayed = await send(main.url, 'POST', '/internal/v1/claims', claim, headers);
    expect(replayed).toMatchObject({ status: 200, json: { outcome: 'claimed' } });
    expect(replayed.headers.get('webhook-replayed')).toBe('true');
    expect(await ledger()).toEqual(before);
    // the same id with another body: 409, nothing done
    const other = JSON.stringify({ jobId: id, attempt: 2, claimSeconds: 30 });
    const conflict = await send(main.url, 'POST', '/internal/v1/claims', other, { ...headers, ...signedHeaders(keys, headers['webhook-id']!, other, Number(headers['webhook-timestamp']) * 1000) });
    expect(conflict.status).toBe(409);
    expect(await ledger()).toEqual(before);
    await f.pair.startFetcher();
  });

  it('copies of a claim sent while the first is being handled are granted to that one attempt alone, and nothing else changes', async () => {
    const main = f.pair.main;
    const { id, claim, headers } = await undeliveredWithClaim();
    // five copies at once: some handled side by side, the later ones answered from the record
    const answers = await Promise.all(Array.from({ length: 5 }, () => send(main.url, 'POST', '/internal/v1/claims', claim, headers)));
    expect(answers.map((a) => [a.status, a.json.outcome])).toEqual(Array.from({ length: 5 }, () => [200, 'claimed']));
    const { rows } = await f.db.pool.query(
      `SELECT j.state, j.attempts, j.claimed_by, (SELECT count(*)::int FROM jobgate.attempts e WHERE e.job_id = j.id) AS attempt_rows FROM jobgate.jobs j WHERE j.id = $1`,
      [id],
    );
    expect(rows[0]).toMatchObject({ state: 'active', attempts: 1, claimed_by: 'fetcher' });
    expect(rows[0].attempt_rows).toBeLessThanOrEqual(1);
    // answered from the record from now on
    const later = await send(main.url, 'POST', '/internal/v1/claims', claim, headers);
    expect(later).toMatchObject({ status: 200, json: { outcome: 'claimed' } });
    expect(later.headers.get('webhook-replayed')).toBe('true');
    const done = JSON.stringify({ events: [{ jobId: id, seq: 1, type: 'completed', attempt: 1, at: new Date().toISOString(), state: 'completed' }] });
    expect((await send(main.url, 'POST', '/internal/v1/job-events', done, { 'content-type': 'application/json', ...signedHeaders(keys, `evt_${randomUUID()}`, done) })).status).toBe(200);
    expect((await states(f.db, [id])).completed).toBe(1);
    await f.pair.startFetcher();
  });

  it('claims sent together are answered in order, each as it would be alone; the batch is bounded and replay-safe', async () => {
    const main = f.pair.main;
    await f.pair.fetcher!.stop();
    const [a, b] = await Promise.all([enqueue(main, 'test.remote', {}), enqueue(main, 'test.remote', {})]);
    // undelivered (the fetcher is down): waiting, or taken by a delivery that cannot land. Not
    // necessarily both taken: the previous test's delivery may still be waking the fetcher (it was
    // stopped again before a probe saw it up), and with both forwarder loops in that wake-up the
    // second job waits in the outbox, as jobs do while the fetcher cannot be reached.
    expect((await f.db.pool.query(`SELECT count(*)::int AS n FROM jobgate.jobs WHERE id = ANY($1::uuid[]) AND state IN ('queued', 'forwarding')`, [[a, b]])).rows[0].n).toBe(2);
    const unknown = randomUUID();
    const body = JSON.stringify({ claims: [b, unknown, a].map((jobId) => ({ jobId, attempt: 1, claimSeconds: 30, traceparent: `00-${'ab'.repeat(16)}-${'cd'.repeat(8)}-01` })) });
    const headers: Record<string, string> = { 'content-type': 'application/json', ...signedHeaders(keys, `clm_${randomUUID()}`, body) };
    const answered = await send(main.url, 'POST', '/internal/v1/claims/batch', body, headers);
    expect(answered).toMatchObject({ status: 200, json: { answers: [{ outcome: 'claimed' }, { outcome: 'unknown' }, { outcome: 'claimed' }] } });
    const claimed = (await f.db.pool.query(`SELECT id, state, claimed_by, attempts FROM jobgate.jobs WHERE id = ANY($1::uuid[]) ORDER BY id`, [[a, b]])).rows;
    expect(claimed.map((r) => [r.state, r.claimed_by, r.attempts])).toEqual([['active', 'fetcher', 1], ['active', 'fetcher', 1]]);
    // main's override cannot take a job the fetcher claimed; a second attempt waits while the first's claim lives
    const second = JSON.stringify({ claims: [{ jobId: a, attempt: 2, claimSeconds: 30 }] });
    expect((await send(main.url, 'POST', '/internal/v1/claims/batch', second, { 'content-type': 'application/json', ...signedHeaders(keys, `clm_${randomUUID()}`, second) })).json).toMatchObject({ answers: [{ outcome: 'wait' }] });
    // replayed: the stored answers, nothing changed
    const replayed = await send(main.url, 'POST', '/internal/v1/claims/batch', body, headers);
    expect(replayed.headers.get('webhook-replayed')).toBe('true');
    expect(replayed.json).toEqual(answered.json);
    // more than 500 claims, or a bad one, is refused naming the field, and claims nothing
    const tooMany = JSON.stringify({ claims: Array.from({ length: 501 }, () => ({ jobId: randomUUID(), attempt: 1, claimSeconds: 30 })) });
    const refused = await send(main.url, 'POST', '/internal/v1/claims/batch', tooMany, { 'content-type': 'application/json', ...signedHeaders(keys, `clm_${randomUUID()}`, tooMany) });
    expect(refused.status).toBe(422);
    expect(JSON.stringify(refused.json.errors)).toContain('claims');
    const bad = JSON.stringify({ claims: [{ jobId: b, attempt: 0, claimSeconds: 30 }] });
    const badAnswer = await send(main.url, 'POST', '/internal/v1/claims/batch', bad, { 'content-type': 'application/json', ...signedHeaders(keys, `clm_${randomUUID()}`, bad) });
    expect(badAnswer.status).toBe(422);
    expect(badAnswer.json.errors).toEqual([expect.objectContaining({ path: 'claims.0.attempt' })]);
    // the test claimed them as the fetcher would, but the fetcher never received them: settle them
    // at main with the events the fetcher would send (a job the fetcher claimed is not forwarded again)
    const at = new Date().toISOString();
    const done = JSON.stringify({ events: [a, b].map((jobId) => ({ jobId, seq: 1, type: 'completed', attempt: 1, at, state: 'completed' })) });
    expect((await send(main.url, 'POST', '/internal/v1/job-events', done, { 'content-type': 'application/json', ...signedHeaders(keys, `evt_${randomUUID()}`, done) })).status).toBe(200);
    expect((await states(f.db, [a!, b!])).completed).toBe(2);
    await f.pair.startFetcher();
  });
});

describe('one bad message never stalls delivery', () => {
  it('a big outbox batch goes out in requests the fetcher takes: 20 jobs of 900 KB (18 MB) in one batch, all delivered once, no 413 (row 46)', async () => {
    // a web-only main takes the jobs; a worker started afterwards finds all 20 waiting and takes them as one batch
    await f.pair.main.stop();
    await f.pair.startMain({ JOBGATE_ROLE: 'web' });
    const label = 'x'.repeat(900_000);
    const ids = await Promise.all(Array.from({ length: 20 }, () => enqueue(f.pair.main, 'test.remote', { label })));
    const requestsBefore = f.pair.fetcher!.logs.filter((l) => l.msg === 'jobs accepted').length;
    const worker = await startMain({ DATABASE_URL: f.db.url, JOBGATE_DEMO_JOBS: 'true', FETCHER_SHARED_SECRET: TEST_SHARED_SECRET, FETCHER_SERVICE_URL: f.pair.fetcher!.url, ADMIN_PASSWORD, JOBGATE_ROLE: 'worker', PORT: '0', FETCHER_FORWARD_IN_FLIGHT: '1' });
    try {
      await waitFor('all 20 completed', async () => (await states(f.db, ids)).completed === 20, { timeoutMs: 60_000, intervalMs: 250 });
      const requests = f.pair.fetcher!.logs.filter((l) => l.msg === 'jobs accepted').slice(requestsBefore);
      // 18 MB in requests under 8 MiB each: at least three, none refused
      expect(requests.length).toBeGreaterThanOrEqual(3);
      expect(f.pair.fetcher!.logs.filter((l) => l.msg === 'request' && l.status === 413)).toEqual([]);
      expect(worker.logs.filter((l) => l.msg.includes('(413)'))).toEqual([]);
      const { rows } = await f.db.pool.query(`SELECT count(*)::int AS n FROM jobgate.attempts WHERE job_id = ANY($1::uuid[]) AND outcome = 'completed'`, [ids]);
      expect(rows[0].n).toBe(20);
      console.log(`big batch: 20 × 900 KB jobs delivered in ${requests.length} requests (${requests.map((r) => r.jobs).join(' + ')}); each completed once`);
    } finally {
      await worker.stop();
      await f.pair.main.stop();
      await f.pair.startMain();
    }
  });
});

describe('one poisoned event', () => {
  it('is set aside while every other event of its batch is applied; visible on the admin page; sent again on request (row 47)', async () => {
    // four at once: the fetcher runs up to JOBGATE_WORKER_CONCURRENCY (4) of a job at a time
    const ids = await Promise.all(Array.from({ length: 4 }, () => enqueue(f.pair.main, 'test.remote', { sleepMs: 1_500 })));
    await waitFor('all running on the fetcher', async () => (await states(f.db, ids)).active === 4, { timeoutMs: 30_000, intervalMs: 100 });
    // main goes away: the jobs finish on the fetcher and their events wait there, with one main will refuse
    await f.pair.main.stop();
    await f.db.pool.query(
      `INSERT INTO jobgate_fetcher.job_events (job_id, job_seq, type, attempt, data) VALUES ($1, 1, 'progress', 1, $2)`,
      [randomUUID(), JSON.stringify({ progress: 5, message: 'x'.repeat(600) })], // longer than main takes (500)
    );
    await waitFor('all completed on the fetcher', async () => (await f.db.pool.query(`SELECT count(*)::int AS n FROM ${FETCHER_JOBS} WHERE id = ANY($1::uuid[]) AND state = 'completed'`, [ids])).rows[0].n === 4, { timeoutMs: 30_000, intervalMs: 100 });
    await f.pair.startMain();
    await waitFor('all 4 completed at main, from their events', async () => (await states(f.db, ids)).completed === 4, { timeoutMs: 30_000, intervalMs: 100 });
    // (the batch is settled, its refused event set aside, when the dispatcher's transaction ends)
    const aside = await waitFor('the refused event set aside', async () => {
      const r = await f.db.pool.query(`SELECT set_aside_reason FROM jobgate_fetcher.job_events WHERE set_aside_at IS NOT NULL`);
      return r.rowCount === 1 ? r : null;
    }, { timeoutMs: 10_000, intervalMs: 100 });
    expect(aside.rows[0].set_aside_reason).toMatch(/422/);
    expect(f.pair.fetcher!.logs.filter((l) => l.msg.startsWith('main refused a job event'))).toHaveLength(1);
    // visible: the fetcher's status (through main's admin API) and the page's first paint
    const status = await waitFor('the fetcher reporting it', async () => {
      const s = (await admin(f.pair.main, 'GET', '/fetcher_service')).json;
      return s.fetcher.status?.events?.setAside === 1 && s;
    }, { timeoutMs: 10_000, intervalMs: 250 });
    expect(status.fetcher.status.events).toMatchObject({ setAside: 1, setAsideSince: expect.any(String) });
    const page = await (await fetch(`${f.pair.main.url}/admin/fetcher_service`, { headers: adminHeaders })).text();
    expect(page).toMatch(/1 job events from the fetcher that main refused are set aside there/);
    // sent again on request: main still refuses it, so it is set aside again, and nothing else is held up
    const resend = await admin(f.pair.main, 'POST', '/fetcher_service/resend-events');
    expect(resend).toMatchObject({ status: 200, json: { resent: 1 } });
    await waitFor('set aside again', async () => (await f.db.pool.query(`SELECT 1 FROM jobgate_fetcher.job_events WHERE set_aside_at IS NOT NULL`)).rowCount === 1 && f.pair.fetcher!.logs.filter((l) => l.msg.startsWith('main refused a job event')).length === 2, { timeoutMs: 10_000, intervalMs: 100 });
    expect((await admin(f.pair.main, 'GET', '/audit')).json.audit[0]).toMatchObject({ action: 'fetcher.resend-events', detail: { resent: 1 } });
    await f.db.pool.query(`DELETE FROM jobgate_fetcher.job_events WHERE set_aside_at IS NOT NULL`);
  });
});

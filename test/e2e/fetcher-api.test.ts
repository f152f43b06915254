// The fetcher's signed v1 API against a real fetcher process and PostgreSQL
// (FAULTS.md rows 23-26 and 32, batches, idempotency, kill -9 mid-job).
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Purpose, parseSecrets, signedHeaders } from '../../packages/jobgate/src/protocol/index.ts';
import { startFetcher, TEST_SHARED_SECRET, type AppProcess } from '../support/apps.ts';
import { createFetcherClient } from '../../packages/jobgate/src/client/index.ts';
import { fetcherPerFile } from '../support/gateway.ts';
import { waitFor } from '../support/wait.ts';
import { FETCHER_JOBS } from '../support/fetcher-jobs.ts';

const keys = parseSecrets(TEST_SHARED_SECRET);
const f = fetcherPerFile({ retries: 0 });

const rows = async () => (await f.db.pool.query(`SELECT count(*)::int AS n FROM ${FETCHER_JOBS}`)).rows[0].n as number;
const submission = (jobs: unknown[]) => JSON.stringify({ jobs });
async function post(body: string, headers: Record<string, string>) {
  const res = await fetch(`${f.fetcher.url}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  return { status: res.status, type: res.headers.get('content-type') ?? '', json: (await res.json()) as any };
}

describe('signatures (rows 23-26)', () => {
  const body = submission([{ id: randomUUID(), name: 'test.remote', payload: {} }]);
  const good = () => signedHeaders(keys, `fwd_${randomUUID()}`, body);
  const other = parseSecrets('whsec_' + Buffer.alloc(32, 8).toString('base64'));

  it.each([
    ['unsigned', () => ({})],
    ['wrong secret', () => signedHeaders(other, `fwd_${randomUUID()}`, body)],
    ['tampered body', () => signedHeaders(keys, `fwd_${randomUUID()}`, body.replace('test.remote', 'test.remotf'))],
    ['short signature', () => ({ ...good(), 'webhook-signature': 'v1,AAAA' })],
    ['six signatures', () => ({ ...good(), 'webhook-signature': Array(6).fill(good()['webhook-signature']).join(' ') })],
    ['2 KB header', () => ({ ...good(), 'webhook-signature': 'v1,' + 'A'.repeat(2048) })],
    ['stale by 301 s', () => signedHeaders(keys, `fwd_${randomUUID()}`, body, Date.now() - 301_000)],
    ['from the future by 301 s', () => signedHeaders(keys, `fwd_${randomUUID()}`, body, Date.now() + 301_000)],
    ['a job event replayed as a submission', () => signedHeaders(keys, `evt_${randomUUID()}`, body)],
  ])('%s → 401, nothing created', async (_label, headers) => {
    const before = await rows();
    const res = await post(body, headers());
    expect(res.status).toBe(401);
    expect(res.type).toContain('application/problem+json');
    expect(res.json).toMatchObject({ title: 'Invalid signature', status: 401 });
    expect(JSON.stringify(res.json)).not.toMatch(/window|matching|route|too many/);
    expect(await rows()).toBe(before);
  });

  it('a replay within the window gets the first answer and creates nothing new', async () => {
    const id = randomUUID();
    const replayed = submission([{ id, name: 'test.remote', payload: { label: 'replay' } }]);
    const headers = signedHeaders(keys, `fwd_${id}`, replayed);
    expect((await post(replayed, headers)).json).toEqual({ accepted: [{ id, duplicate: false }] });
    const before = await rows();
    const again = await post(replayed, headers);
    // the stored answer of the first delivery (Standard Webhooks: the same id is the same message)
    expect(again).toMatchObject({ status: 202, json: { accepted: [{ id, duplicate: false }] } });
    expect(await rows()).toBe(before);
  });

  it('accepts a message signed 240 s ago (clock skew inside the window)', async () => {
    const id = randomUUID();
    const b = submission([{ id, name: 'test.remote', payload: {} }]);
    expect((await post(b, signedHeaders(keys, `fwd_${id}`, b, Date.now() - 240_000))).status).toBe(202);
  });
});

describe('submissions', () => {
  it('accepts a batch of 500 in one request, and a resubmission yields 500 duplicates and one execution each', async () => {
    const jobs = Array.from({ length: 500 }, (_, i) => ({ id: randomUUID(), name: 'test.remote', payload: { label: `batch-${i}` } }));
    const started = Date.now();
    const first = await f.client.submit(jobs);
    const acceptMs = Date.now() - started;
    expect(first.accepted).toHaveLength(500);
    expect(first.accepted.every((a) => !a.duplicate)).toBe(true);
    const again = await f.client.submit(jobs);
    expect(again.accepted.every((a) => a.duplicate)).toBe(true);
    const ids = jobs.map((j) => j.id);
    await waitFor('500 completed', async () => (await f.db.pool.query(`SELECT count(*)::int AS n FROM ${FETCHER_JOBS} WHERE id = ANY($1) AND state = 'completed'`, [ids])).rows[0].n === 500, { timeoutMs: 60_000, intervalMs: 250 });
    const { rows: runs } = await f.db.pool.query(`SELECT count(*)::int AS n, count(DISTINCT job_id)::int AS jobs FROM public.test_events WHERE job_id = ANY($1) AND event = 'start'`, [ids]);
    console.log(`batch: 500 accepted in ${acceptMs} ms; resubmitted: 500 duplicates; executions ${runs[0].n} for ${runs[0].jobs} jobs`);
    expect(runs[0]).toEqual({ n: 500, jobs: 500 });
  });

  it('refuses an id reused for a different payload with 409 naming it, changing nothing (row 32)', async () => {
    const id = randomUUID();
    await f.client.submit([{ id, name: 'test.remote', payload: { label: 'original' } }]);
    const before = await rows();
    const fresh = randomUUID();
    const body = submission([{ id: fresh, name: 'test.remote', payload: {} }, { id, name: 'test.remote', payload: { label: 'changed' } }]);
    const res = await post(body, signedHeaders(keys, `fwd_${randomUUID()}`, body));
    expect(res.status).toBe(409);
    expect(res.json.errors).toEqual([{ path: 'jobs.1.id', message: expect.stringContaining(id) }]);
    expect(await rows()).toBe(before);
    const { rows: kept } = await f.db.pool.query(`SELECT payload FROM ${FETCHER_JOBS} WHERE id = $1`, [id]);
    expect(kept[0].payload).toMatchObject({ label: 'original' });
  });

  it.each([
    ['unknown job', [{ id: randomUUID(), name: 'no.such.job', payload: {} }], 'jobs.0.name'],
    ['a main-only job', [{ id: randomUUID(), name: 'test.record', payload: {} }], 'jobs.0.name'],
    ['bad payload', [{ id: randomUUID(), name: 'test.remote', payload: { sleepMs: 'x' } }], 'jobs.0.payload.sleepMs'],
    ['not a uuid', [{ id: 'job-1', name: 'test.remote', payload: {} }], 'jobs.0.id'],
    ['empty batch', [], 'jobs'],
    ['501 jobs', Array.from({ length: 501 }, () => ({ id: randomUUID(), name: 'test.remote', payload: {} })), 'jobs'],
  ])('%s → 422 naming %s', async (_label, jobs, path) => {
    const body = submission(jobs);
    const res = await post(body, signedHeaders(keys, `fwd_${randomUUID()}`, body));
    expect(res.status).toBe(422);
    expect(res.json.errors.map((e: any) => e.path)).toContain(path);
  });
});

describe('reads', () => {
  it('answers signed status and job reads', async () => {
    const status = await f.client.status();
    expect(status).toMatchObject({ status: 'ok', intake: 'open', memory: { limitMb: 512 } });
    expect(status.memory.rssMb).toBeGreaterThan(20);
    const id = randomUUID();
    await f.client.submit([{ id, name: 'test.remote', payload: { sleepMs: 100 } }]);
    await waitFor('completed', async () => (await f.client.getJob(id)).state === 'completed');
    const job = await f.client.getJob(id);
    expect(job).toMatchObject({ id, name: 'test.remote', state: 'completed', progress: 100, attempts: 1, executions: [{ attempt: 1, outcome: 'completed' }] });
    await expect(f.client.getJob(randomUUID())).rejects.toMatchObject({ code: 'JG_FETCHER_REJECTED', status: 404 });
    const unsigned = await fetch(`${f.fetcher.url}/v1/status`);
    expect(unsigned.status).toBe(401);
  });
});

describe('kill -9 mid-job', () => {
  it('runs the job again after the heartbeat; one lost and one completed execution', async () => {
    const id = randomUUID();
    await f.client.submit([{ id, name: 'test.remote', payload: { sleepMs: 3_000 } }]);
    await waitFor('started', async () => (await f.db.pool.query(`SELECT 1 FROM public.test_events WHERE job_id = $1 AND event = 'start'`, [id])).rowCount);
    f.fetcher.kill('SIGKILL');
    await f.fetcher.exited;
    const killedAt = Date.now();
    f.fetcher = await startFetcher({ DATABASE_URL: f.db.url });
    await f.client.close();
    f.client = createFetcherClient({ baseUrl: f.fetcher.url, keys, retries: 0 });
    await waitFor('completed after restart', async () => (await f.client.getJob(id)).state === 'completed', { timeoutMs: 40_000, intervalMs: 250 });
    const job = await f.client.getJob(id);
    expect(job.executions?.map((e) => [e.attempt, e.outcome])).toEqual([[1, 'lost'], [2, 'completed']]);
    const { rows: effects } = await f.db.pool.query('SELECT count(*)::int AS n FROM public.test_effects WHERE job_id = $1', [id]);
    expect(effects[0].n).toBe(1);
    console.log(`f.fetcher kill -9 mid-job (row 5): completed ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the kill; executions 2, effects 1`);
  });
});

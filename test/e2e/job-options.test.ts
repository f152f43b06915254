// Job options, each shown against a real main process and PostgreSQL: backoff, unique, priority,
// timeout, cron, delay; plus transactional enqueue through the library itself.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { startMain, TEST_JOBS_MODULE, type AppProcess } from '../support/apps.ts';
import { apiHeaders } from '../support/gateway.ts';
import { waitFor } from '../support/wait.ts';
import { join } from 'node:path';

let db: TestDatabase;
let main: AppProcess;

beforeAll(async () => {
  db = await createTestDatabase();
  main = await startMain({ DATABASE_URL: db.url });
});
afterAll(async () => {
  await main?.stop();
  await db?.drop();
});

async function enqueue(name: string, body: unknown, base = main.url) {
  const response = await fetch(`${base}/api/jobs/${name}`, { method: 'POST', headers: apiHeaders, body: JSON.stringify(body) });
  return { status: response.status, json: (await response.json()) as any };
}
const getJob = async (id: string) => (await (await fetch(`${main.url}/api/jobs/${id}`, { headers: apiHeaders })).json()) as any;
const waitForState = (id: string, state: string, timeoutMs = 30_000) =>
  waitFor(`job ${id} ${state}`, async () => {
    const job = await getJob(id);
    return job.state === state ? job : null;
  }, { timeoutMs });

async function events(jobId: string, event = 'start') {
  const { rows } = await db.pool.query<{ attempt: number; at: Date; detail: any; pid: number }>(
    'SELECT attempt, at, detail, pid FROM public.test_events WHERE job_id = $1 AND event = $2 ORDER BY seq', [jobId, event]);
  return rows;
}

describe('retry', () => {
  it('spaces retries by exponential backoff (delay 1 s: 1-2 s, 2-4 s, 4-8 s)', async () => {
    const { json } = await enqueue('test.backoff', { payload: { failAttempts: 99 } });
    const job = await waitForState(json.id, 'failed', 40_000);
    expect(job.executions.map((e: any) => e.outcome)).toEqual(['failed', 'failed', 'failed', 'failed']);
    const starts = await events(json.id);
    const fails = await events(json.id, 'failed');
    expect(starts.map((s) => s.attempt)).toEqual([1, 2, 3, 4]);
    // gap k = start of attempt k+1 minus the failure of attempt k; pg-boss adds up to 100% jitter,
    // and a worker may notice a due retry up to one poll (0.5 s) late.
    const gaps = [1, 2, 3].map((k) => (starts[k]!.at.getTime() - fails[k - 1]!.at.getTime()) / 1000);
    console.log(`backoff gaps (s): ${gaps.map((g) => g.toFixed(2)).join(', ')}`);
    gaps.forEach((gap, i) => {
      expect(gap).toBeGreaterThanOrEqual(2 ** i - 0.05);
      // the upper side is loose: a busy machine's worker notices a due retry late
      expect(gap).toBeLessThan(2 ** (i + 1) + 5);
    });
  });
});

describe('unique', () => {
  it('keeps a second identical job out while the first is queued or active', async () => {
    const payload = { sleepMs: 1_500, label: `unique-${Date.now()}` };
    const first = await enqueue('test.unique', { payload, delaySeconds: 1 });
    expect(first.status).toBe(202);
    const whileQueued = await enqueue('test.unique', { payload });
    expect(whileQueued).toMatchObject({ status: 200, json: { id: first.json.id, duplicate: true, state: 'queued' } });
    await waitForState(first.json.id, 'active');
    const whileActive = await enqueue('test.unique', { payload });
    expect(whileActive).toMatchObject({ status: 200, json: { id: first.json.id, duplicate: true, state: 'active' } });
    const other = await enqueue('test.unique', { payload: { ...payload, label: 'another' } });
    expect(other.status).toBe(202);
    await waitForState(first.json.id, 'completed');
    const afterwards = await enqueue('test.unique', { payload });
    expect(afterwards.status).toBe(202);
    expect(afterwards.json.id).not.toBe(first.json.id);
    expect(await events(first.json.id)).toHaveLength(1);
  });
});

describe('priority', () => {
  it('runs higher priority first', async () => {
    // One at a time (concurrency 1): a blocker holds the slot while the others queue up behind it.
    const blocker = await enqueue('test.ordered', { payload: { sleepMs: 1_000, label: 'blocker' } });
    await waitForState(blocker.json.id, 'active');
    const ids: Record<string, string> = {};
    for (const [label, priority] of [['low-1', 0], ['high-1', 10], ['low-2', 0], ['high-2', 10], ['mid', 5]] as const) {
      ids[label] = (await enqueue('test.ordered', { payload: { label }, priority })).json.id;
    }
    for (const id of Object.values(ids)) await waitForState(id, 'completed');
    const { rows } = await db.pool.query(`SELECT detail->>'label' AS label FROM public.test_events WHERE job_name = 'test.ordered' AND event = 'start' ORDER BY at`);
    expect(rows.map((r) => r.label)).toEqual(['blocker', 'high-1', 'high-2', 'mid', 'low-1', 'low-2']);
  });
});

describe('delay', () => {
  it('does not start a job before delaySeconds', async () => {
    const { json } = await enqueue('test.record', { payload: {}, delaySeconds: 2 });
    const job = await waitForState(json.id, 'completed');
    const waited = Date.parse(job.executions[0].startedAt) - Date.parse(job.createdAt);
    expect(waited).toBeGreaterThanOrEqual(1_950);
  });
});

describe('timeout', () => {
  it('aborts ctx.signal at timeoutSeconds and retries the job', async () => {
    const { json } = await enqueue('test.timeout', { payload: { sleepMs: 10_000 } });
    const job = await waitForState(json.id, 'failed');
    expect(job.executions.map((e: any) => [e.attempt, e.outcome, e.error?.code])).toEqual([[1, 'failed', 'JG_JOB_TIMEOUT'], [2, 'failed', 'JG_JOB_TIMEOUT']]);
    const aborted = await events(json.id, 'aborted');
    expect(aborted.map((e) => e.detail.reason)).toEqual(['timed out after 1s', 'timed out after 1s']);
    for (const e of job.executions) {
      const ms = Date.parse(e.finishedAt) - Date.parse(e.startedAt);
      expect(ms).toBeGreaterThanOrEqual(950);
      // cut at the 1 s timeout, not at the end of the 10 s sleep
      expect(ms).toBeLessThan(9_000);
    }
  });
});

describe('cron', () => {
  it('registers cron schedules with their time zone and fires them', async () => {
    // Alone: a main without the cron module would delete the code schedule's row at its start.
    await main.stop();
    const cronMain = await startMain({ DATABASE_URL: db.url, JOBGATE_JOB_MODULES: `${TEST_JOBS_MODULE},${join(import.meta.dirname, '../fixtures/cron-jobs.ts')}` });
    try {
      // each code schedule is a row (source code), fired by main's scheduler (pg-boss schedules nothing)
      const { rows: schedules } = await db.pool.query(`SELECT name, schedule, time_zone, source FROM jobgate.schedules ORDER BY name`);
      expect(schedules).toEqual(expect.arrayContaining([
        { name: 'test.cron', schedule: '* * * * * *', time_zone: 'Europe/Berlin', source: 'code' },
        { name: 'maintenance.cleanup', schedule: '0 2 * * *', time_zone: 'UTC', source: 'code' },
      ]));
      expect((await db.pool.query(`SELECT 1 FROM pgboss_main.schedule`)).rowCount).toBe(0);
      const started = Date.now();
      // a per-second schedule fires each second
      const fired = await waitFor('two cron runs', async () => {
        const { rows } = await db.pool.query(`SELECT id, payload FROM public.main_jobs WHERE name = 'test.cron' AND state = 'completed'`);
        return rows.length >= 2 ? rows : null;
      }, { timeoutMs: 20_000 });
      console.log(`cron: two runs of a per-second schedule completed ${((Date.now() - started) / 1000).toFixed(1)} s after start`);
      expect(fired[0].payload).toEqual({ from: 'cron' });
    } catch (err) {
      console.log(cronMain.logs.filter((l) => /cron|queue|schedule/.test(l.msg)).slice(-5));
      throw err;
    } finally {
      await cronMain.stop();
    }
    // The schedule goes when the job's cron does: a main without the cron module deletes its row.
    const plain = await startMain({ DATABASE_URL: db.url });
    try {
      const { rows } = await db.pool.query(`SELECT name FROM jobgate.schedules WHERE source = 'code'`);
      expect(rows.map((r) => r.name)).toEqual(['maintenance.cleanup']);
    } finally {
      await plain.stop();
    }
  });
});

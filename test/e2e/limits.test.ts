// `concurrency` and `rateLimit` hold across processes: three real main processes share one
// database, each running one job at a time, so together they could run three at once and reaching
// the limit of two takes two of them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { startMain, type AppProcess } from '../support/apps.ts';
import { apiHeaders } from '../support/gateway.ts';
import { waitFor } from '../support/wait.ts';

let db: TestDatabase;
let mains: AppProcess[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  const env = { DATABASE_URL: db.url, JOBGATE_WORKER_CONCURRENCY: '1' };
  mains = await Promise.all([startMain(env), startMain(env), startMain(env)]);
});
afterAll(async () => {
  await Promise.all(mains.map((m) => m.stop()));
  await db?.drop();
});

async function enqueueMany(name: string, count: number, payload: unknown): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    // spread over the processes' APIs
    const response = await fetch(`${mains[i % mains.length]!.url}/api/jobs/${name}`, { method: 'POST', headers: apiHeaders, body: JSON.stringify({ payload }) });
    expect(response.status).toBe(202);
    ids.push(((await response.json()) as { id: string }).id);
  }
  return ids;
}

const waitAllCompleted = (name: string, count: number) =>
  waitFor(`${count} ${name} jobs completed`, async () => {
    const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM public.main_jobs WHERE name = $1 AND state = 'completed'`, [name]);
    return rows[0].n === count;
  }, { timeoutMs: 45_000 });

describe('across three worker processes', () => {
  it('never runs more than `concurrency: 2` at once', async () => {
    await enqueueMany('test.limited', 12, { sleepMs: 400 });
    await waitAllCompleted('test.limited', 12);
    const { rows } = await db.pool.query<{ job_id: string; event: string; at: Date; pid: number }>(
      `SELECT job_id, event, at, pid FROM public.test_events WHERE job_name = 'test.limited' ORDER BY at, event = 'start'`);
    let running = 0;
    let peak = 0;
    for (const row of rows) {
      running += row.event === 'start' ? 1 : -1;
      peak = Math.max(peak, running);
    }
    const pids = new Set(rows.map((r) => r.pid));
    console.log(`concurrency: peak ${peak} of limit 2 over ${rows.length / 2} runs in ${pids.size} processes`);
    expect(pids.size).toBeGreaterThanOrEqual(2);
    expect(peak).toBe(2);
  });

  it('never starts more than `rateLimit: {perSecond: 2}` in any one second', async () => {
    await enqueueMany('test.rated', 10, {});
    await waitAllCompleted('test.rated', 10);
    // The claim time is when the gate admitted the start (executions.started_at).
    const { rows } = await db.pool.query<{ started_at: Date }>(
      `SELECT e.started_at FROM public.main_attempts e JOIN public.main_jobs j ON j.id = e.job_id WHERE j.name = 'test.rated' ORDER BY e.started_at`);
    const starts = rows.map((r) => r.started_at.getTime());
    let worst = 0;
    for (let i = 0; i < starts.length; i++) {
      worst = Math.max(worst, starts.filter((t) => t >= starts[i]! && t < starts[i]! + 1_000).length);
    }
    const { rows: pids } = await db.pool.query(`SELECT DISTINCT pid FROM public.test_events WHERE job_name = 'test.rated'`);
    const spanSeconds = (starts.at(-1)! - starts[0]!) / 1000;
    console.log(`rate limit: at most ${worst} starts in any 1 s window (limit 2); 10 starts over ${spanSeconds.toFixed(2)} s in ${pids.length} processes`);
    expect(pids.length).toBeGreaterThanOrEqual(2);
    expect(worst).toBe(2);
    expect(spanSeconds).toBeGreaterThanOrEqual(4);
  });
});

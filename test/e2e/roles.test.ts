// JOBGATE_ROLE (issue 9): a web process that serves and enqueues but runs no handler, worker
// processes that run the jobs, the forwarder and cron; SIGKILL of a worker loses nothing, and a
// cron occurrence fires once however many workers run.
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { startMain, TEST_JOBS_MODULE, TEST_SHARED_SECRET, type AppProcess } from '../support/apps.ts';
import { completedRuns, databasePerTest, effects, enqueue, startPair } from '../support/gateway.ts';
import type { TestDatabase } from '../support/database.ts';
import { waitFor } from '../support/wait.ts';

const CRON_MODULE = join(import.meta.dirname, '../fixtures/cron-jobs.ts');
/** test.cron's schedule while the workers start: New Year's midnight, so nothing fires before the test schedules it. */
const QUIET_CRON = '0 0 1 1 *';

/**
 * Makes test.cron (the workers' code schedule) fire each second from `at` for five seconds, as a
 * deploy with a new cron would: its row changed and the change announced. Nothing earlier is due.
 */
async function scheduleCronFrom(db: TestDatabase, at: Date): Promise<void> {
  const s = at.getUTCSeconds();
  // seconds and minutes read the same in UTC and Europe/Berlin (whole-hour offsets)
  await db.pool.query(`UPDATE jobgate.schedules SET schedule = $1, updated_at = clock_timestamp() WHERE name = 'test.cron' AND source = 'code'`, [`${s}-${s + 4} ${at.getUTCMinutes()} * * * *`]);
  await db.pool.query(`SELECT pg_notify('jg_schedules_jobgate', '')`);
}
const t = databasePerTest();

describe('web and worker roles', () => {
  it('runs 200 jobs on a worker only, loses nothing when it is SIGKILLed, and fires each cron occurrence once with two workers', async () => {
    const pair = (t.pair = await startPair(t.db, { mainEnv: { JOBGATE_ROLE: 'web' } }));
    const web = pair.main;
    const workers: AppProcess[] = [];
    const startWorker = async () => {
      const worker = await startMain({
        DATABASE_URL: t.db.url,
        JOBGATE_DEMO_JOBS: 'true',
        FETCHER_SHARED_SECRET: TEST_SHARED_SECRET,
        FETCHER_SERVICE_URL: pair.fetcher!.url,
        JOBGATE_ROLE: 'worker',
        JOBGATE_JOB_MODULES: `${TEST_JOBS_MODULE},${CRON_MODULE}`,
        TEST_CRON_SCHEDULE: QUIET_CRON,
      });
      workers.push(worker);
      return worker;
    };
    // one worker first: it is killed mid-run; then two, for the cron check
    const first = await startWorker();
    try {
      // a worker serves health only
      expect((await fetch(`${first.url}/healthz`)).status).toBe(200);
      expect((await fetch(`${first.url}/api/jobs`)).status).toBe(404);

      const ids: string[] = [];
      for (let i = 0; i < 200; i++) ids.push(await enqueue(web, i % 4 === 0 ? 'test.remote' : 'test.record', { sleepMs: 200 }));
      await waitFor('40 jobs done', async () => (await effects(t.db, ids)) >= 40, { timeoutMs: 60_000 });
      first.kill('SIGKILL');
      await first.exited;
      const running = (await t.db.pool.query(`SELECT count(*)::int AS n FROM public.main_jobs WHERE id = ANY($1::uuid[]) AND state = 'active' AND route = 'main'`, [ids])).rows[0].n;
      await Promise.all([startWorker(), startWorker()]);
      // the cron seconds checked below start 3 s after both workers are up (all five in one minute)
      const soon = Date.now() + 3_000;
      const firstSecond = new Date(soon % 60_000 > 55_000 ? Math.ceil(soon / 60_000) * 60_000 : soon);
      await scheduleCronFrom(t.db, firstSecond);
      await t.allCompleted(ids, 120_000);

      const runs = await completedRuns(t.db, ids);
      expect([...runs.values()].filter((r) => r.length !== 1)).toEqual([]);
      expect([...runs.values()].filter(([r]) => r!.ranOn === 'fetcher')).toHaveLength(50);
      expect(await effects(t.db, ids)).toBe(200);
      // no handler ever ran in the web process: by the handlers' own record, and by its logs
      const { rows: byPid } = await t.db.pool.query(`SELECT pid, count(*)::int AS n FROM public.test_events WHERE event = 'start' GROUP BY pid`);
      expect(byPid.map((r) => r.pid)).not.toContain(web.pid);
      expect(web.logs.filter((l) => l.msg === 'job started' || l.msg === 'cron fired')).toEqual([]);

      // cron: with two workers up, each of the five seconds fires once
      const ticks = async () => (await t.db.pool.query(`SELECT r.due_at, count(*)::int AS n FROM jobgate.schedule_runs r JOIN jobgate.schedules s ON s.id = r.schedule_id WHERE s.name = 'test.cron' GROUP BY 1 ORDER BY 1`)).rows;
      await waitFor('the five seconds fired', async () => (await ticks()).length >= 5, { timeoutMs: 30_000, intervalMs: 250 });
      // both workers try each second: give a second firing of any of them time to show
      if (Date.now() < firstSecond.getTime() + 8_000) await sleep(firstSecond.getTime() + 8_000 - Date.now());
      const slots = await ticks();
      const { rows: jobs } = await t.db.pool.query(`SELECT count(*)::int AS n FROM public.main_jobs WHERE name = 'test.cron'`);
      const fired = workers.flatMap((w) => w.logs.filter((l) => l.msg === 'cron fired' && l.jobName === 'test.cron'));
      console.log(`roles: 200 jobs (150 on main workers, 50 routed) done, ${running} running when the only worker was SIGKILLed; web ran 0 handlers; cron seconds ${JSON.stringify(slots.map((s) => s.n))}, firings logged ${fired.length} (${workers.map((w) => w.logs.filter((l) => l.msg === 'cron fired').length).join(' + ')})`);
      expect(slots.map((s) => new Date(s.due_at).getTime())).toEqual([0, 1, 2, 3, 4].map((i) => Math.floor(firstSecond.getTime() / 1_000) * 1_000 + i * 1_000));
      expect(slots.every((s) => s.n === 1)).toBe(true);
      expect(jobs[0].n).toBe(5);
      expect(fired).toHaveLength(5);
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
    }
  }, 180_000);
});

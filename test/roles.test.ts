// JOBGATE_ROLE (issue 9): a web process that serves and enqueues but runs no handler, worker
// processes that run the jobs, the forwarder and cron; SIGKILL of a worker loses nothing, and a
// cron tick fires once however many workers run.
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { SystemQueue } from '../packages/jobgate/src/internal.ts';
import { PgBoss } from '../packages/jobgate/src/store/index.ts';
import { startMain, TEST_JOBS_MODULE, TEST_SHARED_SECRET, type AppProcess } from './support/apps.ts';
import { completedRuns, databasePerTest, effects, enqueue, startPair } from './support/gateway.ts';
import { TEST_BOSS_SCHEMA } from './support/database.ts';
import { waitFor } from './support/wait.ts';

const CRON_MODULE = join(import.meta.dirname, 'fixtures/cron-jobs.ts');
/** test.cron's schedule while the workers start: New Year's midnight, so no slot fires before the test schedules one. */
const QUIET_CRON = '0 0 1 1 *';

/**
 * Schedules test.cron (as the workers registered it: same key and zone) to fire every second from
 * `at` to the end of that minute, so its slot's first second comes due at `at`. Nothing earlier in
 * the hour is due, so no slot fires before then.
 */
async function scheduleCronFrom(databaseUrl: string, at: Date): Promise<void> {
  const boss = new PgBoss({ connectionString: databaseUrl, schema: TEST_BOSS_SCHEMA, migrate: false, supervise: false, schedule: false });
  boss.on('error', () => {});
  await boss.start();
  try {
    // seconds and minutes read the same in UTC and Europe/Berlin (whole-hour offsets)
    await boss.schedule(SystemQueue.cron, `${at.getUTCSeconds()}-59 ${at.getUTCMinutes()} * * * *`, { name: 'test.cron' }, { key: 'test.cron', tz: 'Europe/Berlin' });
  } finally {
    await boss.stop({ graceful: false, close: true });
  }
}
const t = databasePerTest();

describe('web and worker roles', () => {
  it('runs 200 jobs on a worker only, loses nothing when it is SIGKILLed, and fires each cron tick once with two workers', async () => {
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
      const running = (await t.db.pool.query(`SELECT count(*)::int AS n FROM jobgate.jobs WHERE id = ANY($1::uuid[]) AND state = 'active' AND route = 'main'`, [ids])).rows[0].n;
      await Promise.all([startWorker(), startWorker()]);
      // the cron slot checked below starts 3 s after both workers are up
      const firstSecond = new Date(Date.now() + 3_000);
      await scheduleCronFrom(t.db.url, firstSecond);
      await t.allCompleted(ids, 120_000);

      const runs = await completedRuns(t.db, ids);
      expect([...runs.values()].filter((r) => r.length !== 1)).toEqual([]);
      expect([...runs.values()].filter(([r]) => r!.ranOn === 'fetcher')).toHaveLength(50);
      expect(await effects(t.db, ids)).toBe(200);
      // no handler ever ran in the web process: by the handlers' own record, and by its logs
      const { rows: byPid } = await t.db.pool.query(`SELECT pid, count(*)::int AS n FROM public.test_events WHERE event = 'start' GROUP BY pid`);
      expect(byPid.map((r) => r.pid)).not.toContain(web.pid);
      expect(web.logs.filter((l) => l.msg === 'job started' || l.msg === 'cron fired')).toEqual([]);

      // cron: a per-second schedule is sent once per minute slot by pg-boss; with two workers up
      // when a slot's first second comes due, that slot still has exactly one firing. The slot is
      // made to start a few seconds after both came up (instead of waiting for the next minute).
      const boundary = Math.floor(firstSecond.getTime() / 60_000) * 60_000;
      await waitFor('the slot fired', async () => (await t.db.pool.query(`SELECT 1 FROM jobgate.jobs WHERE name = 'test.cron'`)).rowCount, { timeoutMs: 30_000, intervalMs: 250 });
      // both workers keep finding the slot's seconds due for a while: give a second firing time to show
      if (Date.now() < firstSecond.getTime() + 8_000) await sleep(firstSecond.getTime() + 8_000 - Date.now());
      const { rows: slots } = await t.db.pool.query(
        `SELECT date_trunc('minute', created_at) AS slot, count(*)::int AS n FROM jobgate.jobs WHERE name = 'test.cron' GROUP BY 1 ORDER BY 1`,
      );
      const fired = workers.flatMap((w) => w.logs.filter((l) => l.msg === 'cron fired' && l.jobName === 'test.cron'));
      console.log(`roles: 200 jobs (150 on main workers, 50 routed) done, ${running} running when the only worker was SIGKILLed; web ran 0 handlers; cron slots ${JSON.stringify(slots.map((s) => s.n))}, firings logged ${fired.length}`);
      expect(slots.filter((s) => new Date(s.slot).getTime() >= boundary)).toHaveLength(1);
      expect(slots.every((s) => s.n === 1)).toBe(true);
      expect(fired).toHaveLength(slots.length);
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
    }
  }, 180_000);
});

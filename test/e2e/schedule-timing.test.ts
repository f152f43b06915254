// Schedules fire on time: a `* * * * *` schedule (the code's cron and one made at run time) fires
// within seconds after the minute, once per occurrence with two mains running, and `nextRuns[0]` is
// the occurrence that fires; a six-field (seconds) expression fires on its seconds; after downtime
// the latest occurrence missed fires once. Every wait here is for the clock (the next minute
// boundary, then ~25 s of downtime), so the file has one test that shares them (1 to 2 minutes).
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { admin, ADMIN_PASSWORD, databasePerTest } from '../support/gateway.ts';
import { startMain, TEST_JOBS_MODULE, TEST_SHARED_SECRET, type AppProcess } from '../support/apps.ts';
import { waitFor } from '../support/wait.ts';

const t = databasePerTest();

/**
 * The ceiling a firing's lateness is held to. The promise is 2 s; this is a 2-core machine shared
 * with other test files, so the test allows 5 s and prints what it measured.
 */
const LATE_CEILING_MS = 5_000;

interface Firing {
  scheduleId: string;
  /** The occurrence it fired for: its fired_at rounded down to the expression's step. */
  due: number;
  firedAt: number;
  jobId: string | null;
}

/** The firings (not run-now) of `scheduleId`, each with the occurrence it belongs to (`stepMs`: 60 s for a minute expression). */
async function firingsOf(scheduleId: string, stepMs: number): Promise<Firing[]> {
  const { rows } = await t.db.pool.query(`SELECT job_id, fired_at FROM jobgate.schedule_runs WHERE schedule_id = $1 AND NOT manual ORDER BY fired_at`, [scheduleId]);
  return rows.map((r) => {
    const firedAt = new Date(r.fired_at).getTime();
    return { scheduleId, firedAt, due: Math.floor(firedAt / stepMs) * stepMs, jobId: r.job_id };
  });
}

const lateness = (fs: Firing[]) => fs.map((f) => f.firedAt - f.due);
const summary = (ms: number[]) => `n=${ms.length} min=${Math.min(...ms)} ms max=${Math.max(...ms)} ms mean=${Math.round(ms.reduce((a, b) => a + b, 0) / ms.length)} ms`;

describe('schedules fire on time', () => {
  it('fires each occurrence of a minute and a seconds expression within seconds, once with two mains, at the time nextRuns listed', async () => {
    // Two mains with the code's cron every minute, both running schedules (production cron interval).
    const env = {
      DATABASE_URL: t.db.url,
      JOBGATE_DEMO_JOBS: 'true',
      FETCHER_SHARED_SECRET: TEST_SHARED_SECRET,
      FETCHER_SERVICE_URL: 'http://127.0.0.1:9',
      ADMIN_PASSWORD,
      JOBGATE_JOB_MODULES: `${TEST_JOBS_MODULE},${join(import.meta.dirname, '../fixtures/cron-jobs.ts')}`,
      TEST_CRON_SCHEDULE: '* * * * *',
      JOBGATE_CRON_INTERVAL_SECONDS: '30',
    };
    const mains: AppProcess[] = [];
    try {
      mains.push(await startMain(env));
      mains.push(await startMain(env));
      const [a, b] = mains as [AppProcess, AppProcess];

      // Not in the last 3 s of a minute: the schedule is made before the occurrence its nextRuns names.
      const toMinute = 60_000 - (Date.now() % 60_000);
      if (toMinute < 3_000) await sleep(toMinute + 100);

      const list = (await admin(a, 'GET', '/schedules')).json.schedules as Array<{ id: string; name: string; nextRuns: string[] }>;
      const code = list.find((s) => s.name === 'test.cron')!;
      expect(code).toMatchObject({ schedule: '* * * * *' });
      const minute = await admin(b, 'POST', '/schedules', { name: 'test.record', schedule: '* * * * *', payload: { label: 'every minute' } });
      expect(minute.status).toBe(201);
      const seconds = await admin(a, 'POST', '/schedules', { name: 'test.record', schedule: '*/10 * * * * *', payload: { label: 'every 10 s' } });
      expect(seconds.status).toBe(201);
      const created = Date.now();

      // nextRuns is what will fire: one a minute on the minute, or every 10 s on the tens
      const nextOf = (s: { nextRuns: string[] }) => s.nextRuns.map((r) => Date.parse(r));
      for (const next of [nextOf(code), nextOf(minute.json)]) {
        expect(next).toHaveLength(5);
        expect(next.every((at, i) => at % 60_000 === 0 && (i === 0 || at - next[i - 1]! === 60_000))).toBe(true);
      }
      const tens = nextOf(seconds.json);
      expect(tens.every((at, i) => at % 10_000 === 0 && (i === 0 || at - tens[i - 1]! === 10_000)), seconds.json.nextRuns.join(' ')).toBe(true);
      expect(tens[0]! - created).toBeLessThanOrEqual(10_000);

      // the first occurrence of each minute schedule after it was made (the code's may have fired
      // before); the 10 s expression shows the steps after the first
      const afterCreation = (fs: Firing[]) => fs.filter((f) => f.due >= Date.parse(minute.json.nextRuns[0]));
      await waitFor('a firing of each minute schedule', async () => {
        const [c, m] = await Promise.all([firingsOf(code.id, 60_000), firingsOf(minute.json.id, 60_000)]);
        return afterCreation(c).length >= 1 && m.length >= 1 && (await firingsOf(seconds.json.id, 10_000)).length >= 2;
      }, { timeoutMs: 90_000, intervalMs: 500 });
      // a firing under way on the other main has had its time to commit
      await sleep(LATE_CEILING_MS);

      const codeFirings = afterCreation(await firingsOf(code.id, 60_000));
      const minuteFirings = await firingsOf(minute.json.id, 60_000);
      const tenFirings = (await firingsOf(seconds.json.id, 10_000)).filter((f) => f.firedAt <= Date.now() - LATE_CEILING_MS);
      const all = [...codeFirings, ...minuteFirings, ...tenFirings];
      console.log(`schedule lateness: code cron ${summary(lateness(codeFirings))}; runtime * * * * * ${summary(lateness(minuteFirings))}; */10 s ${summary(lateness(tenFirings))}`);
      console.log(`fired at (s past the minute): ${JSON.stringify({ code: codeFirings.map((f) => (f.firedAt % 60_000) / 1000), minute: minuteFirings.map((f) => (f.firedAt % 60_000) / 1000) })}`);

      // on time: each within the ceiling after its occurrence
      expect(lateness(all).filter((ms) => ms > LATE_CEILING_MS)).toEqual([]);
      // the first firing of the schedule made at run time is the one nextRuns named first
      expect(new Date(minuteFirings[0]!.due).toISOString()).toBe(minute.json.nextRuns[0]);
      expect(new Date(tenFirings[0]!.due).toISOString()).toBe(seconds.json.nextRuns[0]);
      // every 10 s occurrence from the first to the last fired, each once
      const tenDue = tenFirings.map((f) => f.due);
      expect(tenDue).toEqual(tenDue.map((_, i) => tenDue[0]! + i * 10_000));
      // once per occurrence with two mains, each firing one job
      for (const fs of [codeFirings, minuteFirings]) expect(new Set(fs.map((f) => f.due)).size).toBe(fs.length);
      expect(all.every((f) => f.jobId)).toBe(true);
      const { rows } = await t.db.pool.query(`SELECT count(*)::int AS n FROM public.main_jobs WHERE id = ANY($1::uuid[])`, [all.map((f) => f.jobId)]);
      expect(rows[0].n).toBe(all.length);
      // both mains tried each occurrence; one fired it
      const firedLogs = mains.flatMap((m) => m.logs.filter((l) => l.msg === 'cron fired' && l.scheduleId === minute.json.id));
      expect(firedLogs.map((l) => l.dueAt).sort()).toEqual(minuteFirings.map((f) => new Date(f.due).toISOString()));
      // the history names the occurrence each firing was for
      const history = (await admin(a, 'GET', `/schedules/${minute.json.id}`)).json.lastRuns as Array<{ dueAt: string; at: string }>;
      expect(history.map((r) => r.dueAt).reverse()).toEqual(minuteFirings.map((f) => new Date(f.due).toISOString()));

      // Downtime: no main runs while two or more 10 s occurrences pass; one back within the late
      // limit fires the latest of them once (not one job per occurrence missed), then each on time.
      const dueAts = async () => (await t.db.pool.query(`SELECT due_at, fired_at FROM jobgate.schedule_runs WHERE schedule_id = $1 AND NOT manual ORDER BY due_at`, [seconds.json.id])).rows.map((r) => ({ due: new Date(r.due_at).getTime(), firedAt: new Date(r.fired_at).getTime() }));
      await Promise.all(mains.splice(0).map((m) => m.stop()));
      const lastBefore = (await dueAts()).at(-1)!.due;
      // the passing of time is what this waits for
      await sleep(lastBefore + 25_000 - Date.now());
      const restartAt = Date.now();
      mains.push(await startMain(env));
      const up = Date.now();
      const after = await waitFor('two on-time firings after the restart', async () => {
        const f = (await dueAts()).filter((x) => x.due > lastBefore);
        return f.filter((x) => x.due > up).length >= 2 ? f : null;
      }, { timeoutMs: 60_000, intervalMs: 500 });
      const missed = Math.floor((restartAt - lastBefore) / 10_000);
      console.log(`downtime: ${missed} occurrences of */10 s passed with no main; fired after the restart (s late): ${JSON.stringify(after.map((x) => (x.firedAt - x.due) / 1000))}`);
      expect(missed).toBeGreaterThanOrEqual(2);
      // the first firing is at the latest the occurrence last missed, fired once within the late limit
      expect(after[0]!.due).toBeGreaterThanOrEqual(lastBefore + missed * 10_000);
      expect(after[0]!.firedAt - after[0]!.due).toBeLessThan(60_000);
      expect(after.map((x) => x.due)).toEqual(after.map((_, i) => after[0]!.due + i * 10_000));
      expect(after.filter((x) => x.due > up).every((x) => x.firedAt - x.due < LATE_CEILING_MS)).toBe(true);
    } finally {
      await Promise.all(mains.map((m) => m.stop()));
    }
  }, 300_000);
});

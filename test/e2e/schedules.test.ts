// Schedules managed at run time (issue 18): stored in PostgreSQL, fired once per occurrence
// however many mains run, changed and disabled without a restart, each firing in its history.
// (How punctually: schedule-timing.test.ts.)
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { admin, databasePerTest, startPair } from '../support/gateway.ts';
import { startMain, TEST_SHARED_SECRET } from '../support/apps.ts';
import { runCli } from '../support/cli.ts';
import { waitFor } from '../support/wait.ts';

const t = databasePerTest();

/** The jobs a schedule's firings enqueued (not run-now), with the occurrence each was for. */
async function firings(scheduleId: string): Promise<Array<{ job_id: string; due_at: Date }>> {
  const { rows } = await t.db.pool.query(`SELECT job_id, due_at FROM jobgate.schedule_runs WHERE schedule_id = $1 AND NOT manual ORDER BY fired_at`, [scheduleId]);
  return rows;
}

describe('schedules made at run time', () => {
  it('fires each occurrence once across two mains, is disabled without a restart, and its history shows the firing', async () => {
    t.pair = await startPair(t.db);
    // a second main on the same database: both run the schedule worker
    const second = await startMain({ DATABASE_URL: t.db.url, JOBGATE_DEMO_JOBS: 'true', FETCHER_SHARED_SECRET: TEST_SHARED_SECRET, FETCHER_SERVICE_URL: 'http://127.0.0.1:9' });
    try {
      // every second (six fields: seconds first), each second once
      const created = await admin(t.pair.main, 'POST', '/schedules', { name: 'test.record', schedule: '* * * * * *', timeZone: 'Europe/Berlin', payload: { label: 'scheduled' } });
      expect(created.status).toBe(201);
      expect(created.json).toMatchObject({ name: 'test.record', schedule: '* * * * * *', timeZone: 'Europe/Berlin', payload: { label: 'scheduled' }, enabled: true, source: 'runtime', lastRuns: [] });
      // what it lists is what fires: one-second steps
      const next = (created.json.nextRuns as string[]).map((r) => Date.parse(r));
      expect(next.map((at, i) => (i === 0 ? 0 : at - next[i - 1]!))).toEqual([0, 1_000, 1_000, 1_000, 1_000]);
      const id = created.json.id as string;

      const [first] = await waitFor('the first firing', async () => {
        const f = await firings(id);
        return f.length > 0 && f[0]!.job_id ? f : null;
      }, { timeoutMs: 30_000 });
      await waitFor('its job completed', async () => (await t.db.pool.query(`SELECT 1 FROM public.main_jobs WHERE id = $1 AND state = 'completed'`, [first!.job_id])).rowCount, { timeoutMs: 20_000 });
      await waitFor('five firings', async () => (await firings(id)).length >= 5, { timeoutMs: 20_000 });
      const disabled = await admin(t.pair.main, 'PATCH', `/schedules/${id}`, { enabled: false });
      expect(disabled.json).toMatchObject({ enabled: false, nextRuns: [], updatedBy: expect.stringMatching(/^admin/) });
      // the last five firings, newest first, each with its occurrence and its job
      const history = disabled.json.lastRuns as Array<{ jobId: string; dueAt: string; state: string; at: string; manual: boolean }>;
      expect(history).toHaveLength(5);
      expect(history.every((r) => r.jobId && !r.manual && Date.parse(r.dueAt) <= Date.parse(r.at))).toBe(true);
      expect(history.map((r) => r.dueAt)).toEqual([...history.map((r) => r.dueAt)].sort().reverse());

      // three more seconds' occurrences pass: nothing more fires, on either main (what a
      // firing under way when it was disabled enqueued is counted in `before`)
      await sleep(1_000);
      const before = await firings(id);
      await sleep(3_000);
      const after = await firings(id);
      expect(after).toEqual(before);
      // once per occurrence, each on a whole second, and each firing enqueued one job
      expect(after.length).toBeGreaterThan(1);
      expect(after.every((f) => f.due_at.getTime() % 1_000 === 0)).toBe(true);
      expect(new Set(after.map((f) => f.due_at.getTime())).size).toBe(after.length);
      const { rows } = await t.db.pool.query(`SELECT count(*)::int AS n FROM public.main_jobs WHERE name = 'test.record' AND payload->>'label' = 'scheduled'`);
      expect(rows[0].n).toBe(after.length);
      // pg-boss schedules none of it: main's scheduler does
      const { rows: bossSchedules } = await t.db.pool.query(`SELECT key FROM pgboss_main.schedule`);
      expect(bossSchedules).toEqual([]);

      // run now: enqueued whatever its state, in the history as a manual run, audited
      const ran = await admin(t.pair.main, 'POST', `/schedules/${id}/run`);
      expect(ran.status).toBe(202);
      expect((await admin(t.pair.main, 'GET', `/schedules/${id}`)).json.lastRuns[0]).toMatchObject({ jobId: ran.json.id, manual: true });
      const { rows: audit } = await t.db.pool.query(`SELECT action FROM jobgate.admin_audit WHERE target = $1 ORDER BY id`, [id]);
      expect(audit.map((a) => a.action)).toEqual(['schedule.create', 'schedule.update', 'schedule.run']);
    } finally {
      await second.stop();
    }
  });

  it('refuses what it cannot run with a 422 naming the field, keeps the code schedules editable only as enabled, deletes its own', async () => {
    t.pair = await startPair(t.db);
    const post = (body: unknown) => admin(t.pair!.main, 'POST', '/schedules', body);
    const paths = async (body: unknown) => ((await post(body)).json.errors ?? []).map((e: { path: string }) => e.path);
    expect(await paths({ name: 'test.record', schedule: 'every tuesday' })).toEqual(['schedule']);
    expect(await paths({ name: 'test.record', schedule: '0 3 * * *', timeZone: 'Mars/Olympus_Mons' })).toEqual(['timeZone']);
    expect(await paths({ name: 'test.record', schedule: '0 3 * * *', payload: { sleepMs: 'soon' } })).toEqual(['payload.sleepMs']);
    expect(await paths({ name: 'test.record', schedule: '0 3 * * *', extra: 1 })).toEqual(['(root)']);
    expect((await post({ name: 'no.such.job', schedule: '0 3 * * *' })).status).toBe(404);
    expect((await admin(t.pair.main, 'GET', '/schedules')).json.schedules.filter((s: { source: string }) => s.source === 'runtime')).toEqual([]);

    const list = (await admin(t.pair.main, 'GET', '/schedules')).json.schedules as Array<{ id: string; name: string; source: string; enabled: boolean }>;
    const cleanup = list.find((s) => s.name === 'maintenance.cleanup')!;
    expect(cleanup).toMatchObject({ source: 'code', enabled: true, schedule: '0 2 * * *' });
    expect((await admin(t.pair.main, 'PATCH', `/schedules/${cleanup.id}`, { schedule: '0 4 * * *' })).status).toBe(409);
    expect((await admin(t.pair.main, 'DELETE', `/schedules/${cleanup.id}`)).status).toBe(409);
    expect((await admin(t.pair.main, 'PATCH', `/schedules/${cleanup.id}`, { enabled: false })).json.enabled).toBe(false);
    // a restart keeps an admin's choice for a code schedule
    await t.pair.main.stop();
    await t.pair.startMain();
    expect((await admin(t.pair.main, 'GET', `/schedules/${cleanup.id}`)).json).toMatchObject({ enabled: false, nextRuns: [] });
    expect((await admin(t.pair.main, 'PATCH', `/schedules/${cleanup.id}`, { enabled: true })).json.nextRuns).toHaveLength(5);

    // from the CLI: add, change, list, delete
    const cli = (args: string[]) => runCli(t.db.url, args);
    const added = await cli(['schedules', 'add', 'test.record', '--cron', '30 6 * * 1-5', '--tz', 'America/New_York', '--payload', '{"label":"weekday"}']);
    expect(added.code).toBe(0);
    const made = JSON.parse(added.stdout) as { id: string; nextRuns: string[] };
    expect(made.nextRuns).toHaveLength(5);
    expect((await cli(['schedules', 'set', made.id, '--cron', 'not a cron'])).code).toBe(2);
    expect((await cli(['schedules', 'set', made.id, '--disable'])).code).toBe(0);
    expect((await admin(t.pair.main, 'GET', `/schedules/${made.id}`)).json).toMatchObject({ enabled: false, schedule: '30 6 * * 1-5', timeZone: 'America/New_York', updatedBy: expect.stringMatching(/^cli:/) });
    expect((await cli(['schedules', 'list'])).stdout).toContain('30 6 * * 1-5');
    expect((await cli(['schedules', 'rm', made.id])).code).toBe(0);
    expect((await admin(t.pair.main, 'GET', `/schedules/${made.id}`)).status).toBe(404);
    expect((await admin(t.pair.main, 'DELETE', `/schedules/${made.id}`)).status).toBe(404);
  });
});

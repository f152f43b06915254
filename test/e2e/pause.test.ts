// Pausing a job everywhere (issue 18): while paused no new attempt starts on either side, its jobs
// keep queueing, nothing is failed or retried; every change is audited; a pause may expire.
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { admin, databasePerTest, enqueue, handlerStarts, startPair, states } from '../support/gateway.ts';
import { runCli } from '../support/cli.ts';

const t = databasePerTest();

async function executions(id: string): Promise<Array<{ attempt: number; outcome: string }>> {
  const { rows } = await t.db.pool.query('SELECT attempt, outcome FROM public.main_attempts WHERE job_id = $1 ORDER BY attempt', [id]);
  return rows;
}

async function auditActions(target: string): Promise<Array<{ actor: string; action: string }>> {
  const { rows } = await t.db.pool.query(`SELECT actor, action FROM jobgate.admin_audit WHERE target = $1 ORDER BY id`, [target]);
  return rows;
}

describe('pause and resume a job everywhere', () => {
  it('a paused routed job does not start on the fetcher for 10 s while other jobs do, then runs after resume', async () => {
    t.pair = await startPair(t.db);
    const paused = await admin(t.pair.main, 'POST', '/jobs/test.remote/pause', { reason: 'provider API is down' });
    expect(paused.status).toBe(200);
    expect(paused.json).toMatchObject({ name: 'test.remote', reason: 'provider API is down', by: expect.stringMatching(/^admin/), expiresAt: null });
    // the fetcher hears of it (it asks main every poll interval)
    await t.pair.fetcher!.waitForLog('the fetcher knows', (l) => l.msg === 'paused jobs changed' && l.paused?.includes('test.remote'), 10_000);
    const since = Date.now();
    const held = await enqueue(t.pair.main, 'test.remote', { label: 'held' });
    const others = await Promise.all([
      ...Array.from({ length: 3 }, () => enqueue(t.pair!.main, 'test.record-remote', {})),
      enqueue(t.pair.main, 'test.record', {}),
    ]);
    await t.allCompleted(others);
    // held where it waits: the outbox keeps it (the forwarder reads the pauses), the fetcher never has it
    await sleep(Math.max(0, 10_000 - (Date.now() - since)));
    expect(await handlerStarts(t.db, [held])).toBe(0);
    expect(await executions(held)).toEqual([]);
    expect(['queued', 'forwarding', 'forwarded']).toContain(Object.keys(await states(t.db, [held]))[0]);
    expect((await admin(t.pair.main, 'GET', '/pauses')).json.pauses.map((p: { name: string }) => p.name)).toEqual(['test.remote']);

    const resumed = await admin(t.pair.main, 'POST', '/jobs/test.remote/resume', { reason: 'provider is back' });
    expect(resumed.json).toMatchObject({ name: 'test.remote', resumed: true });
    await t.allCompleted([held], 30_000);
    // one attempt: the pause used none of its retries
    expect(await executions(held)).toEqual([{ attempt: 1, outcome: 'completed' }]);
    expect(await handlerStarts(t.db, [held])).toBe(1);
    expect((await admin(t.pair.main, 'GET', '/pauses')).json.pauses).toEqual([]);
    expect(await auditActions('test.remote')).toEqual([{ actor: expect.stringMatching(/^admin/), action: 'job.pause' }, { actor: expect.stringMatching(/^admin/), action: 'job.resume' }]);
  });

  it('pauses a main job, and every job (*), from the CLI; a pause with an expiry ends by itself, audited', async () => {
    t.pair = await startPair(t.db);
    const cli = (args: string[]) => runCli(t.db.url, args);
    expect((await cli(['pause', 'test.record'])).code).toBe(2); // no --reason
    expect((await cli(['pause', 'no.such.job', '--reason', 'x'])).code).toBe(2);
    const paused = await cli(['pause', '*', '--reason', 'maintenance window']);
    expect(paused.code).toBe(0);
    expect(paused.stdout).toContain('paused *');
    expect(JSON.parse((await cli(['pauses', '--json'])).stdout).pauses.map((p: { name: string }) => p.name)).toEqual(['*']);
    await t.pair.main.waitForLog('main knows', (l) => l.msg === 'paused jobs changed' && l.paused?.includes('*'), 10_000);
    const held = await enqueue(t.pair.main, 'test.record', {});
    await sleep(3_000);
    expect(await handlerStarts(t.db, [held])).toBe(0);
    expect((await cli(['resume', '*', '--reason', 'done'])).code).toBe(0);
    await t.allCompleted([held], 20_000);
    expect((await auditActions('*')).map((a) => a.action)).toEqual(['job.pause', 'job.resume']);
    expect((await auditActions('*'))[0]!.actor).toMatch(/^cli:/);

    // 3 s: the watcher ends it, audited as the system
    expect((await admin(t.pair.main, 'POST', '/jobs/test.record/pause', { reason: 'brief', expiresInMinutes: 0.05 })).status).toBe(200);
    const later = await enqueue(t.pair.main, 'test.record', {});
    await sleep(1_500);
    expect(await handlerStarts(t.db, [later])).toBe(0);
    await t.allCompleted([later], 20_000);
    expect(await executions(later)).toEqual([{ attempt: 1, outcome: 'completed' }]);
    expect(await auditActions('test.record')).toEqual([{ actor: expect.stringMatching(/^admin/), action: 'job.pause' }, { actor: 'system', action: 'job.pause-expired' }]);
    // unknown job, bad body: 4xx naming the field, nothing changed
    expect((await admin(t.pair.main, 'POST', '/jobs/no.such/pause', { reason: 'x' })).status).toBe(404);
    const bad = await admin(t.pair.main, 'POST', '/jobs/test.record/pause', { reason: '', expiresInMinutes: -1 });
    expect(bad.status).toBe(422);
    expect(bad.json.errors.map((e: { path: string }) => e.path).sort()).toEqual(['expiresInMinutes', 'reason']);
    expect((await admin(t.pair.main, 'GET', '/pauses')).json.pauses).toEqual([]);
  });
});

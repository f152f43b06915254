// The `jobgate` CLI (issue 9), run as a real process against both apps on a real database.
import { describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.ts';
import { admin, call, databasePerTest, enqueue, startPair } from '../support/gateway.ts';

const t = databasePerTest();
const jobgate = (args: string[], env: Record<string, string> = {}) => runCli(t.db.url, args, env);

const state = async (id: string) => (await t.db.pool.query(`SELECT state FROM public.main_jobs WHERE id = $1`, [id])).rows[0]?.state as string;

describe('jobgate CLI', () => {
  it('status, jobs list/show/retry/cancel (one and bulk), override on/off, enqueue, work --burst', async () => {
    // a web-only main: nothing runs jobs until `jobgate work` does
    const pair = (t.pair = await startPair(t.db, { mainEnv: { JOBGATE_ROLE: 'web' } }));
    const env = { FETCHER_SERVICE_URL: pair.fetcher!.url };

    const status = await jobgate(['status', '--json'], env);
    expect(status.code).toBe(0);
    const parsed = JSON.parse(status.stdout);
    expect(parsed).toMatchObject({ fetcher: { state: 'awake' }, override: { enabled: false }, outbox: { pending: 0 } });
    expect(parsed.queues.fetcher).toBeTypeOf('object');

    const added = await jobgate(['enqueue', 'test.record', '--payload', '{"label":"cli"}'], env);
    expect(added.code).toBe(0);
    const job = JSON.parse(added.stdout);
    expect(job).toMatchObject({ name: 'test.record', route: 'main', state: 'queued' });
    const table = await jobgate(['status'], env);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^fetcher\s+awake/m);
    expect(table.stdout).toMatch(/^override\s+off/m);
    expect(table.stdout).toMatch(/side\s+queue\s+queued\s+active\s+failed\n[- ]+\nmain\s+test\.record\s+1\s+0\s+0/);
    expect(JSON.parse((await jobgate(['jobs', 'show', job.id, '--json'], env)).stdout)).toMatchObject({ id: job.id, state: 'queued', payload: { label: 'cli' } });
    const listed = await jobgate(['jobs', 'list', '--name', 'test.record', '--payload', 'label=cli', '--json'], env);
    expect(JSON.parse(listed.stdout).jobs.map((j: { id: string }) => j.id)).toEqual([job.id]);
    expect((await jobgate(['jobs', 'list', '--state', 'queued'], env)).stdout).toContain(job.id);
    expect(JSON.parse((await jobgate(['enqueue', 'test.remote', '--run-on-main'], env)).stdout)).toMatchObject({ route: 'main', routeReason: 'run-on-main' });
    // two jobs now: a page of one says how to get the next
    const firstPage = (await jobgate(['jobs', 'list', '--limit', '1'], env)).stdout;
    const next = /more: add --cursor (\S+)/.exec(firstPage)?.[1];
    expect(next, firstPage).toBeDefined();
    expect((await jobgate(['jobs', 'list', '--limit', '1', '--cursor', next!], env)).stdout).not.toContain(firstPage.split('\n')[2]!.slice(0, 36));

    // work --burst drains 100 (+2) jobs and exits 0
    const ids = await Promise.all(Array.from({ length: 100 }, (_, i) => enqueue(pair.main, 'test.record', { label: `burst-${i}` })));
    const burst = await jobgate(['work', '--burst'], env);
    expect(burst.code, burst.stderr).toBe(0);
    expect(burst.stdout).toMatch(/burst: 102 completed, 0 failed/);
    expect((await t.db.pool.query(`SELECT count(*)::int AS n FROM public.main_jobs WHERE id = ANY($1::uuid[]) AND state = 'completed'`, [[...ids, job.id]])).rows[0].n).toBe(101);
    // … and exits 1 when a job fails; the failed job is retried from the CLI
    const failing = await enqueue(pair.main, 'test.limited', { failAttempts: 1 });
    const failed = await jobgate(['work', '--burst', '--queues', 'test.limited'], env);
    expect(failed.code).toBe(1);
    expect(await state(failing)).toBe('failed');
    const retried = await jobgate(['jobs', 'retry', failing, '--json'], env);
    expect(retried.code, retried.stderr).toBe(0);
    const again = JSON.parse(retried.stdout).newJob.id as string;
    expect(await state(again)).toBe('queued');
    expect((await jobgate(['jobs', 'retry', failing], env)).code).toBe(1); // once only

    // cancel one, then in bulk by payload with progress
    const later = (await call(pair.main.url, 'POST', '/api/jobs/test.record', { payload: { label: 'later' }, delaySeconds: 600 })).json.id as string;
    expect((await jobgate(['jobs', 'cancel', later], env)).code).toBe(0);
    expect(await state(later)).toBe('cancelled');
    const bulkIds: string[] = [];
    for (let i = 0; i < 5; i++) bulkIds.push((await call(pair.main.url, 'POST', '/api/jobs/test.record', { payload: { label: 'bulk' }, delaySeconds: 600 })).json.id);
    expect((await jobgate(['jobs', 'cancel', '--all-matching', '--payload', 'label=bulk'], env)).code).toBe(2); // no terminal to confirm on, no --yes
    const bulk = await jobgate(['jobs', 'cancel', '--all-matching', '--payload', 'label=bulk', '--yes'], env);
    expect(bulk.code, bulk.stderr).toBe(0);
    expect(bulk.stderr).toMatch(/cancel: 5 done of 5 matched/);
    expect(await Promise.all(bulkIds.map(state))).toEqual(Array(5).fill('cancelled'));
    // … and deleted, with their queue entries
    const deleted = await jobgate(['jobs', 'delete', '--all-matching', '--payload', 'label=bulk', '--state', 'cancelled', '--yes'], env);
    expect(deleted.code, deleted.stderr).toBe(0);
    expect(deleted.stdout).toMatch(/delete: 5 of 5 matching jobs/);
    expect((await t.db.pool.query(`SELECT count(*)::int AS n FROM public.main_jobs WHERE id = ANY($1::uuid[])`, [bulkIds])).rows[0].n).toBe(0);
    expect((await t.db.pool.query(`SELECT count(*)::int AS n FROM pgboss_main.job WHERE id = ANY($1::uuid[])`, [bulkIds])).rows[0].n).toBe(0);

    // the override, audited with the CLI as the actor
    const on = await jobgate(['override', 'on', '--reason', 'fetcher deploy broken', '--expires', '30m'], env);
    expect(on.code, on.stderr).toBe(0);
    expect(JSON.parse(on.stdout)).toMatchObject({ enabled: true, reason: 'fetcher deploy broken' });
    expect(JSON.parse((await jobgate(['enqueue', 'test.remote'], env)).stdout)).toMatchObject({ route: 'main', routeReason: 'override' });
    expect((await jobgate(['override', 'off'], env)).code).toBe(0);
    const { json: audit } = await admin(pair.main, 'GET', '/override');
    expect(audit.audit.slice(0, 2).map((a: { action: string; actor: string; reason: string }) => [a.action, a.actor.split(':')[0], a.reason])).toEqual([
      ['off', 'cli', 'switched off from the CLI'],
      ['on', 'cli', 'fetcher deploy broken'],
    ]);
    const { json: adminAudit } = await admin(pair.main, 'GET', '/audit');
    expect(adminAudit.audit.filter((a: { action: string; actor: string }) => a.actor.startsWith('cli:')).map((a: { action: string }) => a.action)).toEqual(expect.arrayContaining(['job.retry', 'job.cancel']));
    console.log(`cli: status ${parsed.fetcher.state}; burst drained 102 jobs (${burst.stdout.trim()}); bulk cancel 5; override on/off by ${audit.audit[0].actor}`);
  });

  it('says what is wrong with its arguments (exit 2), helps on every command, and migrates', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['frobnicate'], /unknown command "frobnicate"/],
      [['jobs'], /jobs: say which: list, show, retry, cancel/],
      [['jobs', 'list', '--state', 'nope'], /--state:/],
      [['jobs', 'list', '--bogus'], /--bogus/],
      [['jobs', 'list', '--limit', '0'], /--limit:/],
      [['jobs', 'show', 'not-a-uuid'], /<id>: not a job id/],
      [['jobs', 'retry'], /<id>: say which job/],
      [['jobs', 'cancel', '--all-matching'], /needs at least one filter/],
      [['jobs', 'delete', '--all-matching', '--created-before', 'yesterday'], /--created-before: an ISO 8601/],
      [['enqueue', 'test.record', '--payload', '{bad'], /--payload: not JSON/],
      [['enqueue', 'test.record', '--payload', '{"sleepMs":"x"}'], /--payload: payload\.sleepMs/],
      [['enqueue', 'no.such.job'], /<name>: no job named "no.such.job"/],
      [['override', 'on'], /--reason: say why/],
      [['override', 'on', '--reason', 'x', '--expires', 'soon'], /--expires:/],
      [['work', '--queues', ','], /--queues:/],
      [['work', '--burst', '--queues', 'test.remote'], /--queues: test\.remote: not a job main runs/],
      [['work', '--queues', 'no.such.job'], /--queues: no\.such\.job: not a job main runs/],
      [['status', 'extra'], /unexpected argument "extra"/],
    ];
    // independent invocations (nothing here writes), a few at a time
    const helps = [['--help'], ['status', '--help'], ['jobs', 'list', '--help'], ['jobs', 'retry', '--help'], ['override', 'on', '--help'], ['enqueue', '--help'], ['work', '--help'], ['migrate', '--help']];
    const runs = [...cases.map(([args, message]) => ({ args, code: 2, stream: 'stderr' as const, message })), ...helps.map((args) => ({ args, code: 0, stream: 'stdout' as const, message: /jobgate/ }))];
    for (let i = 0; i < runs.length; i += 4) {
      const batch = runs.slice(i, i + 4);
      const results = await Promise.all(batch.map((c) => jobgate(c.args)));
      batch.forEach((c, k) => {
        expect(results[k]!.code, c.args.join(' ')).toBe(c.code);
        expect(results[k]![c.stream], c.args.join(' ')).toMatch(c.message);
      });
    }
    const missing = await jobgate(['jobs', 'show', '4f6bef6d-d3d8-4e5c-b2ab-a34697c15910']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/No job has id/);
    const noDb = await jobgate(['status'], { DATABASE_URL: '' });
    expect(noDb.code).toBe(1);
    expect(noDb.stderr).toMatch(/DATABASE_URL/);
    const migrated = await jobgate(['migrate']);
    expect(migrated.code, migrated.stderr).toBe(0);
    expect(migrated.stdout).toMatch(/pg-boss schema pgboss_main ready/);
  });
});

// An attempt is written when it says something the job's row cannot (migration 026): a job that
// completes at its first attempt writes no execution row, and `attempts` (the view every read
// goes through) still shows every attempt, where it ran and how it ended: failed, lost (cut short),
// cancelled under its handler, running, completed.
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { withTransaction } from '../../packages/jobgate/src/store/index.ts';
import { mainLedgerPerFile, TEST_SCHEMA } from '../support/database.ts';

const t = mainLedgerPerFile();

async function queued(name = 'attempts.job', maxAttempts = 3, route: 'main' | 'fetcher' = 'main'): Promise<string> {
  const id = randomUUID();
  await t.ledger.insertJob({ id, name, route, payload: {}, priority: 0, uniqueKey: null, maxAttempts, delaySeconds: 0 });
  return id;
}
const claim = (id: string, attempt: number, claimSeconds = 30) => t.ledger.claimAttempt({ id, attempt, ranOn: 'main', concurrency: null, perSecond: null, claimSeconds });
const rows = async (id: string) => (await t.db.pool.query(`SELECT attempt, outcome FROM ${TEST_SCHEMA}.executions WHERE job_id = $1 ORDER BY attempt`, [id])).rows;
const attempts = async (id: string) => (await t.ledger.getJob(id, { executions: true }))!.executions!.map((e) => ({ attempt: e.attempt, ranOn: e.ranOn, outcome: e.outcome, code: e.error?.code ?? null, finished: Boolean(e.finishedAt), peakRssMb: e.peakRssMb ?? null }));

describe('attempts', () => {
  it('a job that completes at its first attempt writes no execution row, and shows that attempt', async () => {
    const id = await queued();
    expect(await claim(id, 1)).toEqual({ outcome: 'claimed' });
    expect(await attempts(id)).toEqual([{ attempt: 1, ranOn: 'main', outcome: 'running', code: null, finished: false, peakRssMb: null }]);
    await t.ledger.finishAttempt({ id, attempt: 1, outcome: 'completed', state: 'completed', error: null, peakRssMb: 42 });
    expect(await rows(id)).toEqual([]);
    expect(await attempts(id)).toEqual([{ attempt: 1, ranOn: 'main', outcome: 'completed', code: null, finished: true, peakRssMb: 42 }]);
    const [execution] = (await t.ledger.getJob(id, { executions: true }))!.executions!;
    expect(Date.parse(execution!.finishedAt!)).toBeGreaterThanOrEqual(Date.parse(execution!.startedAt));
  });

  it('a failed attempt keeps its row; the retry that completes the job does not need one', async () => {
    const id = await queued();
    await claim(id, 1);
    await t.ledger.finishAttempt({ id, attempt: 1, outcome: 'failed', state: 'queued', error: { code: 'JG_HANDLER_ERROR', message: 'boom' } as never, peakRssMb: 7 });
    await claim(id, 2);
    await t.ledger.finishAttempt({ id, attempt: 2, outcome: 'completed', state: 'completed', error: null, peakRssMb: 9 });
    expect(await rows(id)).toEqual([{ attempt: 1, outcome: 'failed' }]);
    expect(await attempts(id)).toEqual([
      { attempt: 1, ranOn: 'main', outcome: 'failed', code: 'JG_HANDLER_ERROR', finished: true, peakRssMb: 7 },
      { attempt: 2, ranOn: 'main', outcome: 'completed', code: null, finished: true, peakRssMb: 9 },
    ]);
  });

  it('an attempt cut short is written lost by the attempt that follows it, or by the queue giving the job up', async () => {
    const id = await queued();
    await claim(id, 1, 1);
    // its process died: the claim lapses, and the queue's next attempt takes the job
    await new Promise((r) => setTimeout(r, 1_100));
    expect(await claim(id, 2)).toEqual({ outcome: 'claimed' });
    expect(await attempts(id)).toEqual([
      { attempt: 1, ranOn: 'main', outcome: 'lost', code: 'JG_JOB_LOST', finished: true, peakRssMb: null },
      { attempt: 2, ranOn: 'main', outcome: 'running', code: null, finished: false, peakRssMb: null },
    ]);
    // the last attempt dies too, and the queue gives up on the job
    expect(await t.ledger.failUnsettled(id, 'the queue gave up')).toBe(true);
    expect(await rows(id)).toEqual([{ attempt: 1, outcome: 'lost' }, { attempt: 2, outcome: 'lost' }]);
    expect((await t.ledger.getJob(id))!.state).toBe('failed');
  });

  it('a job cancelled under its handler shows the attempt running until the handler stops; until then it is neither deleted nor retried', async () => {
    const id = await queued();
    await claim(id, 1);
    expect(await t.ledger.cancelJobs([id], 'not needed')).toEqual([id]);
    expect((await attempts(id)).map((a) => a.outcome)).toEqual(['running']);
    const deleted = await withTransaction(t.db.pool, (client) => t.ledger.deleteJobsIn(client, [id]));
    expect(deleted).toEqual([]);
    expect(await t.ledger.markRetried(id, randomUUID())).toBe(false);
    // the handler's heartbeat finds the job cancelled and stops it
    expect(await t.ledger.refreshClaim(id, 1, 30, 'main')).toBe(false);
    await t.ledger.endCancelledAttempt(id, 1, 11);
    expect(await attempts(id)).toEqual([{ attempt: 1, ranOn: 'main', outcome: 'failed', code: 'JG_CANCELLED', finished: true, peakRssMb: 11 }]);
    expect((await withTransaction(t.db.pool, (client) => t.ledger.deleteJobsIn(client, [id]))).map((j) => j.id)).toEqual([id]);
  });

  it('a job cancelled while its handler ran, which ended before its heartbeat heard, stays cancelled; the attempt says how it ended', async () => {
    const [one, two] = [await queued(), await queued()];
    await claim(one, 1);
    await claim(two, 1);
    await t.ledger.cancelJobs([one, two], 'not needed');
    // one alone, two with another job's end (one statement for both)
    const [other] = [await queued()];
    await claim(other, 1);
    await t.ledger.finishAttempt({ id: one, attempt: 1, outcome: 'completed', state: 'completed', error: null, peakRssMb: 5 });
    await Promise.all([
      t.ledger.finishAttempt({ id: two, attempt: 1, outcome: 'failed', state: 'queued', error: { code: 'JG_HANDLER_ERROR', message: 'boom' } as never, peakRssMb: 6 }),
      t.ledger.finishAttempt({ id: other, attempt: 1, outcome: 'completed', state: 'completed', error: null, peakRssMb: 7 }),
    ]);
    expect((await t.ledger.getJob(one))!.state).toBe('cancelled');
    expect((await t.ledger.getJob(two))!.state).toBe('cancelled');
    expect(await attempts(one)).toEqual([{ attempt: 1, ranOn: 'main', outcome: 'completed', code: null, finished: true, peakRssMb: 5 }]);
    expect(await attempts(two)).toEqual([{ attempt: 1, ranOn: 'main', outcome: 'failed', code: 'JG_HANDLER_ERROR', finished: true, peakRssMb: 6 }]);
    expect(await attempts(other)).toEqual([{ attempt: 1, ranOn: 'main', outcome: 'completed', code: null, finished: true, peakRssMb: 7 }]);
    // nothing runs: they can go
    expect((await withTransaction(t.db.pool, (client) => t.ledger.deleteJobsIn(client, [one, two]))).length).toBe(2);
  });

  it("an attempt's end that comes late (its job moved on to a later attempt) changes nothing, alone or beside the current attempt's end", async () => {
    const id = await queued();
    await claim(id, 1, 1);
    await new Promise((r) => setTimeout(r, 1_100));
    await claim(id, 2);
    await Promise.all([
      t.ledger.finishAttempt({ id, attempt: 1, outcome: 'failed', state: 'queued', error: { code: 'JG_HANDLER_ERROR', message: 'late' } as never, peakRssMb: 1 }),
      t.ledger.finishAttempt({ id, attempt: 2, outcome: 'completed', state: 'completed', error: null, peakRssMb: 2 }),
    ]);
    expect((await t.ledger.getJob(id))!.state).toBe('completed');
    expect((await attempts(id)).map((a) => [a.attempt, a.outcome])).toEqual([[1, 'lost'], [2, 'completed']]);
  });

  it('a cancelled job whose handler died frees itself once the claim lapses: its attempt shows lost', async () => {
    const id = await queued();
    await claim(id, 1, 1);
    await t.ledger.cancelJobs([id], 'not needed');
    await new Promise((r) => setTimeout(r, 1_100));
    expect((await attempts(id)).map((a) => [a.outcome, a.code])).toEqual([['lost', 'JG_JOB_LOST']]);
    expect(await t.ledger.markRetried(id, randomUUID())).toBe(true);
  });

  it("a routed job's attempts, from the fetcher's events: the one that completes the job writes no row; a failed one does", async () => {
    const [id, retried] = await Promise.all([queued('attempts.routed', 3, 'fetcher'), queued('attempts.routed', 3, 'fetcher')]);
    const at = () => new Date().toISOString();
    const event = (jobId: string, seq: number, type: string, attempt: number, extra: Record<string, unknown> = {}) => ({ jobId, seq, type, attempt, at: at(), ...extra }) as never;
    for (const job of [id, retried]) expect(await t.ledger.claimAttempt({ id: job, attempt: 1, ranOn: 'fetcher', concurrency: null, perSecond: null, claimSeconds: 30 })).toEqual({ outcome: 'claimed' });
    const granted = (await t.ledger.getJob(id, { executions: true }))!.executions![0]!.startedAt;
    await t.ledger.applyEvents([event(id, 1, 'active', 1, { startedAt: at() })]);
    expect((await attempts(id)).map((a) => [a.ranOn, a.outcome])).toEqual([['fetcher', 'running']]);
    await t.ledger.applyEvents([event(id, 2, 'completed', 1, { state: 'completed', finishedAt: at(), peakRssMb: 80 }), event(retried, 1, 'active', 1), event(retried, 2, 'failed', 1, { state: 'queued', error: { code: 'JG_HANDLER_ERROR', message: 'once' } })]);
    await t.ledger.applyEvents([event(retried, 3, 'active', 2), event(retried, 4, 'completed', 2, { state: 'completed', peakRssMb: 81 })]);
    expect(await rows(id)).toEqual([]);
    expect(await attempts(id)).toEqual([{ attempt: 1, ranOn: 'fetcher', outcome: 'completed', code: null, finished: true, peakRssMb: 80 }]);
    // the attempt's start is main's grant, as before
    expect((await t.ledger.getJob(id, { executions: true }))!.executions![0]!.startedAt).toBe(granted);
    expect(await rows(retried)).toEqual([{ attempt: 1, outcome: 'failed' }]);
    expect((await attempts(retried)).map((a) => [a.attempt, a.ranOn, a.outcome, a.peakRssMb])).toEqual([[1, 'fetcher', 'failed', null], [2, 'fetcher', 'completed', 81]]);
  });

  it('many jobs run to success at their first attempt: no execution rows at all', async () => {
    const ids = await Promise.all(Array.from({ length: 20 }, () => queued('attempts.many')));
    for (const id of ids) await claim(id, 1);
    await Promise.all(ids.map((id) => t.ledger.finishAttempt({ id, attempt: 1, outcome: 'completed', state: 'completed', error: null, peakRssMb: 1 })));
    expect((await t.db.pool.query(`SELECT count(*)::int AS n FROM ${TEST_SCHEMA}.executions WHERE job_id = ANY($1::uuid[])`, [ids])).rows[0].n).toBe(0);
    expect((await t.db.pool.query(`SELECT count(*)::int AS n FROM ${TEST_SCHEMA}.attempts WHERE job_id = ANY($1::uuid[]) AND outcome = 'completed'`, [ids])).rows[0].n).toBe(20);
  });
});

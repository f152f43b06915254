// claim_attempt(), the compare-and-set every runner goes through, straight against PostgreSQL:
// racing claims never exceed `concurrency`, and starts never exceed `rateLimit` in any second.
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { withTransaction } from '../../packages/jobgate/src/store/index.ts';
import { mainLedgerPerFile } from '../support/database.ts';

const t = mainLedgerPerFile();

async function queuedJobs(name: string, count: number, route: 'main' | 'fetcher' = 'main'): Promise<string[]> {
  const ids = Array.from({ length: count }, () => randomUUID());
  for (const id of ids) await t.ledger.insertJob({ id, name, route, payload: {}, priority: 0, uniqueKey: null, maxAttempts: 1, delaySeconds: 0 });
  return ids;
}

describe('claim_attempt', () => {
  it('admits exactly `concurrency` of many racing claims', async () => {
    const ids = await queuedJobs('gate.concurrency', 8);
    const results = await Promise.all(ids.map((id) => t.ledger.claimAttempt({ id, attempt: 1, ranOn: 'main', concurrency: 2, perSecond: null, claimSeconds: 30 })));
    expect(results.filter((r) => r.outcome === 'claimed')).toHaveLength(2);
    expect(results.filter((r) => r.outcome === 'wait')).toHaveLength(6);
  });

  it('frees a slot when a claim ends or expires', async () => {
    const [a, b, c] = await queuedJobs('gate.expiry', 3);
    const claim = (id: string, claimSeconds = 30) => t.ledger.claimAttempt({ id, attempt: 1, ranOn: 'main', concurrency: 1, perSecond: null, claimSeconds });
    expect(await claim(a!, 1)).toEqual({ outcome: 'claimed' });
    expect((await claim(b!)).outcome).toBe('wait');
    await new Promise((r) => setTimeout(r, 1_100)); // a's claim lapses (its runner died)
    expect(await claim(b!)).toEqual({ outcome: 'claimed' });
    await t.ledger.finishAttempt({ id: b!, attempt: 1, outcome: 'completed', state: 'completed', error: null, peakRssMb: 1 });
    expect(await claim(c!)).toEqual({ outcome: 'claimed' });
  });

  it('admits at most `perSecond` starts in any second and says how long to wait', async () => {
    const ids = await queuedJobs('gate.rate', 5);
    const results = await Promise.all(ids.map((id) => t.ledger.claimAttempt({ id, attempt: 1, ranOn: 'main', concurrency: null, perSecond: 2, claimSeconds: 30 })));
    expect(results.filter((r) => r.outcome === 'claimed')).toHaveLength(2);
    const waits = results.flatMap((r) => (r.outcome === 'wait' ? [r.waitMs] : []));
    expect(waits).toHaveLength(3);
    for (const ms of waits) expect(ms).toBeGreaterThan(800), expect(ms).toBeLessThanOrEqual(1_000);
  });

  it('keeps a job with the attempt whose claim is alive (compare-and-set); takes it over once the claim lapses', async () => {
    const [id] = await queuedJobs('gate.cas', 1);
    const claim = (attempt: number, claimSeconds = 30) => t.ledger.claimAttempt({ id: id!, attempt, ranOn: 'main', concurrency: null, perSecond: null, claimSeconds });
    expect(await claim(1, 1)).toEqual({ outcome: 'claimed' });
    // attempt 2 (the queue gave attempt 1 up, but its runner is alive and refreshing) must wait
    expect(await t.ledger.refreshClaim(id!, 1, 1, 'main')).toBe(true);
    const blocked = await claim(2);
    expect(blocked.outcome).toBe('wait');
    await new Promise((r) => setTimeout(r, 1_100)); // attempt 1 stops refreshing: its claim lapses
    expect(await claim(2)).toEqual({ outcome: 'claimed' });
    // attempt 1 learns it lost the job at its next refresh
    expect(await t.ledger.refreshClaim(id!, 1, 30, 'main')).toBe(false);
    const job = await t.ledger.getJob(id!, { executions: true });
    expect(job?.executions?.map((e) => [e.attempt, e.outcome])).toEqual([[1, 'lost'], [2, 'running']]);
  });

  it('refuses to run a job that is finished or cancelled, and marks a cut-short attempt lost', async () => {
    const [done, crashed] = await queuedJobs('gate.state', 2);
    await t.ledger.claimAttempt({ id: done!, attempt: 1, ranOn: 'main', concurrency: null, perSecond: null, claimSeconds: 30 });
    await t.ledger.finishAttempt({ id: done!, attempt: 1, outcome: 'completed', state: 'completed', error: null, peakRssMb: 1 });
    expect(await t.ledger.claimAttempt({ id: done!, attempt: 2, ranOn: 'main', concurrency: null, perSecond: null, claimSeconds: 30 })).toEqual({ outcome: 'gone' });
    // attempt 1's runner died: its claim is already past (claimSeconds 0)
    await t.ledger.claimAttempt({ id: crashed!, attempt: 1, ranOn: 'main', concurrency: null, perSecond: null, claimSeconds: 0 });
    expect(await t.ledger.claimAttempt({ id: crashed!, attempt: 2, ranOn: 'main', concurrency: null, perSecond: null, claimSeconds: 30 })).toEqual({ outcome: 'claimed' });
    const job = await t.ledger.getJob(crashed!, { executions: true });
    expect(job?.executions?.map((e) => [e.attempt, e.outcome])).toEqual([[1, 'lost'], [2, 'running']]);
  });

  it('grants a job only to its owner: main takes over undelivered fetcher jobs, never one the fetcher claimed', async () => {
    const [claimedByFetcher, undelivered, inDoubt] = await queuedJobs('gate.owner', 3, 'fetcher');
    const claim = (id: string, ranOn: 'main' | 'fetcher', attempt = 1) => t.ledger.claimAttempt({ id, attempt, ranOn, concurrency: null, perSecond: null, claimSeconds: 1 });
    // main cannot run a fetcher job, the fetcher can
    expect(await claim(undelivered!, 'main')).toEqual({ outcome: 'gone' });
    expect(await claim(claimedByFetcher!, 'fetcher')).toEqual({ outcome: 'claimed' });
    await t.ledger.markForwarding([inDoubt!]); // a forward whose answer never came
    await new Promise((r) => setTimeout(r, 1_100)); // the fetcher's claim lapses: still the fetcher's job
    const moved = await withTransaction(t.db.pool, (c) => t.ledger.takeOverUndelivered(c, 10, 'override', ['gate.owner'], [claimedByFetcher!, undelivered!, inDoubt!]));
    expect(moved.map((m) => m.id).sort()).toEqual([undelivered!, inDoubt!].sort());
    // the fetcher, asking for a job main took over, is told it is gone; main may run it
    expect(await claim(inDoubt!, 'fetcher')).toEqual({ outcome: 'gone' });
    expect(await claim(inDoubt!, 'main')).toEqual({ outcome: 'claimed' });
    // a late refusal from the fetcher cannot fail a job main now runs
    await t.ledger.failJobs([inDoubt!], { code: 'JG_JOB_FAILED', message: 'the fetcher refused the job' });
    expect(await t.ledger.getJob(inDoubt!)).toMatchObject({ route: 'main', routeReason: 'override', state: 'active' });
    expect(await t.ledger.getJob(claimedByFetcher!)).toMatchObject({ route: 'fetcher', routeReason: 'definition' });
  });
});

describe('claims asked together (claim_attempts)', () => {
  it('answers each as claim_attempt would alone: first attempts granted at once, the rest by their own rules', async () => {
    const [fresh, delivered, retried, finished, elsewhere, twice] = await queuedJobs('gate.together', 6, 'fetcher');
    const [paused] = await queuedJobs('gate.together-paused', 1, 'fetcher');
    await t.ledger.markForwarding([delivered!]);
    await t.ledger.markForwarded([delivered!]);
    const one = (id: string, attempt = 1, ranOn: 'main' | 'fetcher' = 'fetcher', claimSeconds = 30) => t.ledger.claimAttempt({ id, attempt, ranOn, concurrency: null, perSecond: null, claimSeconds });
    // a retry whose first attempt was cut short, and a job that finished
    await one(retried!, 1, 'fetcher', 0);
    await one(finished!);
    await t.ledger.finishAttempt({ id: finished!, attempt: 1, outcome: 'completed', state: 'completed', error: null, peakRssMb: 1 });
    await t.db.pool.query(`INSERT INTO jobgate.pauses (name, reason, paused_by) VALUES ('gate.together-paused', 'a test', 'test')`);
    // asked in one turn: one call of claim_attempts
    const answers = await Promise.all([one(fresh!), one(delivered!), one(retried!, 2), one(finished!, 2), one(elsewhere!, 1, 'main'), one(twice!), one(twice!), one(paused!)]);
    expect(answers.map((a) => a.outcome)).toEqual(['claimed', 'claimed', 'claimed', 'gone', 'gone', 'claimed', 'claimed', 'paused']);
    const rows = await Promise.all([fresh, delivered, retried, elsewhere, paused].map(async (id) => (await t.db.pool.query(`SELECT state, attempts, claimed_by FROM jobgate.jobs WHERE id = $1`, [id])).rows[0]));
    expect(rows.map((r) => [r.state, r.attempts, r.claimed_by])).toEqual([['active', 1, 'fetcher'], ['active', 1, 'fetcher'], ['active', 2, 'fetcher'], ['queued', 0, null], ['queued', 0, null]]);
    expect((await t.ledger.getJob(retried!, { executions: true }))?.executions?.map((e) => [e.attempt, e.outcome])).toEqual([[1, 'lost'], [2, 'running']]);
  });
});

describe('the reconciler against a moving ledger (issue 15)', () => {
  it('never moves a job back once a later attempt was claimed after the fetcher was asked; a job running on the fetcher cannot be cancelled', async () => {
    const [id] = await queuedJobs('gate.reconcile', 1, 'fetcher');
    await t.ledger.markForwarding([id!]);
    await t.ledger.markForwarded([id!]);
    expect((await t.ledger.claimAttempt({ id: id!, attempt: 1, ranOn: 'fetcher', concurrency: null, perSecond: null, claimSeconds: 30 })).outcome).toBe('claimed');
    await t.ledger.finishAttempt({ id: id!, attempt: 1, outcome: 'failed', state: 'queued', error: { code: 'JG_JOB_FAILED', message: 'x' }, peakRssMb: 1 });
    await t.db.pool.query(`UPDATE jobgate.jobs SET state = 'forwarded', updated_at = now() - interval '1 hour' WHERE id = $1`, [id]);
    // the reconciler takes the quiet job and asks the fetcher, which says: queued after attempt 1
    const [taken] = (await t.ledger.quietFetcherJobs(60, 10)).filter((j) => j.id === id);
    expect(taken).toMatchObject({ id, attempts: 1 });
    // meanwhile the fetcher claims attempt 2: the job runs there
    expect((await t.ledger.claimAttempt({ id: id!, attempt: 2, ranOn: 'fetcher', concurrency: null, perSecond: null, claimSeconds: 30 })).outcome).toBe('claimed');
    const stale = { state: 'queued', progress: 0, attempts: 1, executions: [{ attempt: 1, startedAt: new Date().toISOString(), finishedAt: new Date().toISOString(), outcome: 'failed' as const }] };
    expect(await t.ledger.reconcileFromFetcher(taken!, stale)).toBe(false);
    const job = await t.ledger.getJob(id!, { executions: true });
    expect(job).toMatchObject({ state: 'active', attempts: 2 });
    // running on the fetcher (a live claim): a cancel leaves it alone (the API answers 409)
    expect(await t.ledger.cancelJobs([id!], 'cancelled from a test')).toEqual([]);
    await t.db.pool.query(`UPDATE jobgate.jobs SET state = 'forwarded' WHERE id = $1`, [id]); // even if its state lagged behind
    expect(await t.ledger.cancelJobs([id!], 'cancelled from a test')).toEqual([]);
  });
});

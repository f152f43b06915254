// A job main runs that needs no decision from main's ledger is recorded by its pg-boss row alone
// (store/queue-records.ts, store/record-runs.ts): enqueued, run, retried, cancelled, paused,
// retried by an admin and deleted with no row in jobgate.jobs, and shown all the while as the
// ledger's jobs are. Gated and unique jobs keep their ledger rows.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createLogger } from '../../packages/jobgate/src/support/index.ts';
import { createAdminStore, createBoss, createMainLedger, createOverviewStore, ensureRecordIndexes, type JobRecord, type MainLedger, type PgBoss } from '../../packages/jobgate/src/store/index.ts';
import { createCatalogue, createMainRuntime, defineJob, PermanentJobError, type MainRuntime } from '../../packages/jobgate/src/internal.ts';
import { createJobActions, type JobActions } from '../../packages/jobgate/src/main/job-actions.ts';
import { createTestDatabase, TEST_BOSS_SCHEMA, TEST_SCHEMA, type TestDatabase } from '../support/database.ts';
import { waitFor } from '../support/wait.ts';

const failures = new Map<string, number>();
const gates = new Map<string, () => void>();
const plain = defineJob({ name: 'rec.plain', payload: z.strictObject({ key: z.string() }), retry: { limit: 2, delaySeconds: 0, backoff: false }, async run({ key }, ctx) {
  await ctx.progress(40, 'on its way');
  const left = failures.get(key) ?? 0;
  if (left > 0) {
    failures.set(key, left - 1);
    throw new Error(`boom ${key}`);
  }
  if (key.startsWith('permanent')) throw new PermanentJobError('not this one');
  if (key.startsWith('hold')) await new Promise<void>((resolve, reject) => {
    gates.set(key, resolve);
    ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error), { once: true });
  });
} });
const gated = defineJob({ name: 'rec.gated', payload: z.strictObject({ n: z.number() }), concurrency: 1, run: async () => {} });
const unique = defineJob({ name: 'rec.unique', payload: z.strictObject({ n: z.number() }), unique: true, run: async () => {} });

let db: TestDatabase;
let boss: PgBoss;
let ledger: MainLedger;
let jobs: MainRuntime;
let actions: JobActions;

beforeAll(async () => {
  db = await createTestDatabase();
  // (the failures these tests cause on purpose are not worth a log line)
  const logger = createLogger({ level: 'error', name: 'test' });
  // a running handler hears of a cancel at its next heartbeat (claimSeconds / 4)
  const timings = { pollIntervalSeconds: 0.5, superviseIntervalSeconds: 1, cronIntervalSeconds: 1, heartbeatSeconds: 10 };
  boss = createBoss({ connectionString: db.url, schema: TEST_BOSS_SCHEMA, poolSize: 3, timings, logger });
  await boss.start();
  ledger = createMainLedger(db.pool, TEST_SCHEMA, { bossSchema: TEST_BOSS_SCHEMA });
  jobs = createMainRuntime({ pool: db.pool, boss, ledger, catalogue: createCatalogue([plain, gated, unique]), logger, timings, workerConcurrency: 4 });
  await jobs.start();
  actions = createJobActions({ jobs, ledger, pool: db.pool, store: createAdminStore(db.pool, TEST_SCHEMA) });
});
afterAll(async () => {
  await jobs?.stop(1_000);
  await ledger?.rollup.close();
  await db?.drop();
});

const ledgerRows = async (id: string) => (await db.pool.query(`SELECT count(*)::int AS n FROM ${TEST_SCHEMA}.jobs WHERE id = $1`, [id])).rows[0].n as number;
const executionRows = async (id: string) => (await db.pool.query(`SELECT attempt, outcome, error->>'code' AS code FROM ${TEST_SCHEMA}.executions WHERE job_id = $1 ORDER BY attempt`, [id])).rows;
const job = async (id: string) => (await jobs.getJob(id))!;
const until = async (id: string, ok: (j: JobRecord) => boolean, what: string) => waitFor(what, async () => ok(await job(id)) || null, { timeoutMs: 30_000 });

describe('a job recorded by its pg-boss row', () => {
  it('is enqueued, run and completed with no ledger row and no attempt row', async () => {
    const { job: queued } = await jobs.performLater(plain, { key: 'ok' });
    expect(queued).toMatchObject({ name: 'rec.plain', route: 'main', state: 'queued', attempts: 0, maxAttempts: 3, payload: { key: 'ok' } });
    expect(queued.traceparent).toMatch(/^00-/);
    await until(queued.id, (j) => j.state === 'completed', 'the job completes');
    expect(await ledgerRows(queued.id)).toBe(0);
    expect(await executionRows(queued.id)).toEqual([]);
    const done = (await jobs.getJob(queued.id))!;
    expect(done).toMatchObject({ state: 'completed', attempts: 1, progress: 100, progressMessage: 'on its way', createdAt: queued.createdAt });
    expect(done.executions).toEqual([expect.objectContaining({ attempt: 1, ranOn: 'main', outcome: 'completed' })]);
    expect((await jobs.listJobs({ name: 'rec.plain', limit: 50 })).jobs.map((j) => j.id)).toContain(queued.id);
  });

  it('commits or rolls back with the caller\'s transaction', async () => {
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      const { job: gone } = await jobs.performLater(plain, { key: 'rolled-back' }, { db: client });
      await client.query('ROLLBACK');
      expect(await jobs.getJob(gone.id)).toBeNull();
      await client.query('BEGIN');
      // (the connection has prepared the enqueue's statement by now: this one runs it again)
      const { job: kept } = await jobs.performLater(plain, { key: 'committed' }, { db: client });
      // a transaction reached through a query builder rather than node-postgres itself
      const { job: adapted } = await jobs.performLater(plain, { key: 'through an adapter' }, { db: { query: (text: string, values?: unknown[]) => client.query(text, values) } });
      expect(adapted).toMatchObject({ state: 'queued', payload: { key: 'through an adapter' } });
      // a second runtime on the same pool prepares its own queue's statement on the same connection
      const other = defineJob({ name: 'rec.other', payload: z.strictObject({ n: z.number() }), run: async () => {} });
      await boss.createQueue(other.name);
      const second = createMainRuntime({ pool: db.pool, boss, ledger, catalogue: createCatalogue([other]), logger: createLogger({ level: 'error', name: 'test' }), timings: { pollIntervalSeconds: 0.5, superviseIntervalSeconds: 1, cronIntervalSeconds: 1, heartbeatSeconds: 10 }, workerConcurrency: 1 });
      expect((await second.performLater(other, { n: 1 }, { db: client })).job).toMatchObject({ name: 'rec.other', state: 'queued' });
      await client.query('COMMIT');
      await until(kept.id, (j) => j.state === 'completed', 'the committed job completes');
      await until(adapted.id, (j) => j.state === 'completed', 'the job enqueued through an adapter completes');
    } finally {
      client.release();
    }
  });

  it('keeps a row for each failed attempt; the retry that completes it needs none', async () => {
    failures.set('twice', 2);
    const { job: queued } = await jobs.performLater(plain, { key: 'twice' });
    await until(queued.id, (j) => j.state === 'completed', 'the third attempt completes');
    expect(await executionRows(queued.id)).toEqual([{ attempt: 1, outcome: 'failed', code: 'JG_JOB_FAILED' }, { attempt: 2, outcome: 'failed', code: 'JG_JOB_FAILED' }]);
    expect((await jobs.getJob(queued.id))!.executions!.map((e) => [e.attempt, e.outcome])).toEqual([[1, 'failed'], [2, 'failed'], [3, 'completed']]);
    expect(await ledgerRows(queued.id)).toBe(0);
  });

  it('fails for good with its error, counted in the overview', async () => {
    const { job: queued } = await jobs.performLater(plain, { key: 'permanent-1' });
    await until(queued.id, (j) => j.state === 'failed', 'the job fails');
    const failed = await job(queued.id);
    expect(failed).toMatchObject({ attempts: 1, error: { code: 'JG_PERMANENT_FAILURE', message: 'not this one' } });
    expect(failed.finishedAt).toBeDefined();
    await ledger.rollup.flush();
    const { rows } = await db.pool.query(`SELECT sum(failed)::int AS failed FROM ${TEST_SCHEMA}.job_minutes WHERE name = 'rec.plain'`);
    expect(rows[0].failed).toBeGreaterThanOrEqual(1);
  });

  it('shows its progress while it runs, and a cancel stops its handler', async () => {
    const { job: queued } = await jobs.performLater(plain, { key: 'hold-1' });
    await until(queued.id, (j) => j.state === 'active' && j.progress === 40, 'the job runs and reports progress');
    expect((await job(queued.id)).progressMessage).toBe('on its way');
    expect((await ledger.countsByName('main'))['rec.plain']!.active).toBeGreaterThanOrEqual(1);
    expect(await actions.cancel([queued.id], 'tester')).toEqual([queued.id]);
    expect((await job(queued.id)).state).toBe('cancelled');
    // its runner hears of it at its next heartbeat: the attempt ends, written as cancelled under its handler
    await waitFor('the cancelled attempt is written', async () => (await executionRows(queued.id)).length === 1 || null, { timeoutMs: 30_000 });
    expect(await executionRows(queued.id)).toEqual([{ attempt: 1, outcome: 'failed', code: 'JG_CANCELLED' }]);
    expect((await job(queued.id)).state).toBe('cancelled');

    // retried by an admin: a new job, the original marked, and only once
    const first = gates.get('hold-1');
    const again = await actions.retry(await job(queued.id), 'tester');
    expect((await job(queued.id)).retriedAs).toBe(again.id);
    await expect(actions.retry(await job(queued.id), 'tester')).rejects.toThrow(/retried already/);
    const release = await waitFor('the retry runs its handler', () => (gates.get('hold-1') !== first ? gates.get('hold-1') : null), { timeoutMs: 30_000 });
    release();
    await until(again.id, (j) => j.state === 'completed', 'the retry completes');

    // deleted with its attempts' rows
    expect(await actions.remove([queued.id], 'tester')).toEqual([queued.id]);
    expect(await jobs.getJob(queued.id)).toBeNull();
    expect(await executionRows(queued.id)).toEqual([]);
  });

  it('waits out a pause, and is cancelled and deleted by filter', async () => {
    await jobs.pauseJob('rec.plain', { reason: 'test', actor: 'tester' });
    const { job: held } = await jobs.performLater(plain, { key: 'paused' });
    const { job: delayed } = await jobs.performLater(plain, { key: 'later' }, { delaySeconds: 3_600 });
    await new Promise((r) => setTimeout(r, 1_500));
    expect(await job(held.id)).toMatchObject({ state: 'queued', pausedBy: { name: 'rec.plain' } });
    await jobs.resumeJob('rec.plain', { actor: 'tester' });
    await until(held.id, (j) => j.state === 'completed', 'the job runs once resumed');

    const cancelled = await actions.bulk('cancel', { name: 'rec.plain' }, 'tester');
    expect(cancelled.done).toBeGreaterThanOrEqual(1);
    expect((await job(delayed.id)).state).toBe('cancelled');
    const deleted = await actions.bulk('delete', { name: 'rec.plain', state: 'cancelled' }, 'tester');
    expect(deleted.done).toBeGreaterThanOrEqual(1);
    expect(await jobs.getJob(delayed.id)).toBeNull();
  });

  it('is held or released as the pauses say when its enqueue\'s transaction was open across a pause or a resume', async () => {
    // a queue no worker here fetches from: what pg-boss would hand out is read from its row
    const idle = defineJob({ name: 'rec.idle', payload: z.strictObject({ n: z.number() }), run: async () => {} });
    await boss.createQueue(idle.name);
    const enqueuer = createMainRuntime({ pool: db.pool, boss, ledger, catalogue: createCatalogue([idle]), logger: createLogger({ level: 'error', name: 'test' }), timings: { pollIntervalSeconds: 0.5, superviseIntervalSeconds: 1, cronIntervalSeconds: 1, heartbeatSeconds: 10 }, workerConcurrency: 1 });
    const blocked = async (id: string) => (await db.pool.query(`SELECT blocked FROM ${TEST_BOSS_SCHEMA}.job WHERE id = $1`, [id])).rows[0].blocked as boolean;
    /** Enqueues in a transaction, makes `change` while it is open, commits it; `change` answers after the commit. */
    async function across(change: () => Promise<unknown>): Promise<string> {
      const client = await db.pool.connect();
      try {
        await client.query('BEGIN');
        const { job: queued } = await enqueuer.performLater(idle, { n: 1 }, { db: client });
        let answered = false;
        const changed = change().then(() => (answered = true));
        await new Promise((r) => setTimeout(r, 300));
        expect(answered, 'the change waits for the transaction open at its commit').toBe(false);
        await client.query('COMMIT');
        await changed;
        return queued.id;
      } finally {
        client.release();
      }
    }
    // enqueued by the pauses before the pause (not held), committed after it: held once the pause answers
    const beforePause = await across(() => enqueuer.pauseJob('rec.idle', { reason: 'test', actor: 'tester' }));
    expect(await blocked(beforePause)).toBe(true);
    // enqueued while paused (held), committed after the resume: released once the resume answers
    const beforeResume = await across(() => enqueuer.resumeJob('rec.idle', { actor: 'tester' }));
    expect(await blocked(beforeResume)).toBe(false);
    expect(await blocked(beforePause)).toBe(false);
  });

  it('writes an attempt cut short as lost when the next one starts', async () => {
    await jobs.pauseJob('rec.plain', { reason: 'test', actor: 'tester' });
    const { job: queued } = await jobs.performLater(plain, { key: 'cut-short' });
    // written held by the pause (pg-boss's blocked), which this worker's fetch skips
    expect((await db.pool.query(`SELECT blocked FROM ${TEST_BOSS_SCHEMA}.job WHERE id = $1`, [queued.id])).rows).toEqual([{ blocked: true }]);
    // the first attempt is fetched (by a worker that did not hold it back) and given up without a word (its runner died)
    await db.pool.query(`UPDATE ${TEST_BOSS_SCHEMA}.job SET blocked = false WHERE id = $1`, [queued.id]);
    const [fetched] = await boss.fetch('rec.plain', { batchSize: 1 });
    expect(fetched!.id).toBe(queued.id);
    await boss.fail('rec.plain', queued.id);
    await jobs.resumeJob('rec.plain', { actor: 'tester' });
    await until(queued.id, (j) => j.state === 'completed', 'the second attempt completes');
    expect(await executionRows(queued.id)).toEqual([{ attempt: 1, outcome: 'lost', code: 'JG_JOB_LOST' }]);
  });

  it('is how jobs written together are recorded (performManyLater): in the caller\'s transaction, held by a pause, each run once', async () => {
    const many = (keys: string[], extra: { batchId?: string } = {}) => keys.map((key) => ({ id: randomUUID(), name: 'rec.plain', payload: { key }, ...extra }));
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      const gone = many(['many-rolled-back-1', 'many-rolled-back-2']);
      expect((await jobs.spawn({ jobs: gone, batches: [], seal: [] }, { db: client })).size).toBe(2);
      await client.query('ROLLBACK');
      for (const j of gone) expect(await jobs.getJob(j.id)).toBeNull();
    } finally {
      client.release();
    }
    await jobs.pauseJob('rec.plain', { reason: 'test', actor: 'tester' });
    const kept = many(['many-1', 'many-2', 'many-3']);
    // with a gated job beside them: it keeps its ledger row
    const gatedOne = { id: randomUUID(), name: 'rec.gated', payload: { n: 7 } };
    const written = await jobs.spawn({ jobs: [...kept, gatedOne], batches: [], seal: [] });
    expect([...written].sort()).toEqual([...kept.map((j) => j.id), gatedOne.id].sort());
    for (const j of kept) {
      expect(await ledgerRows(j.id)).toBe(0);
      expect(await job(j.id)).toMatchObject({ name: 'rec.plain', route: 'main', state: 'queued', payload: { key: j.payload.key }, pausedBy: { name: 'rec.plain' } });
    }
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM ${TEST_BOSS_SCHEMA}.job WHERE id = ANY($1::uuid[]) AND blocked`, [kept.map((j) => j.id)])).rows[0].n).toBe(3);
    expect(await ledgerRows(gatedOne.id)).toBe(1);
    await jobs.resumeJob('rec.plain', { actor: 'tester' });
    for (const j of kept) await until(j.id, (x) => x.state === 'completed' && x.attempts === 1, 'each job written together completes once');
    await until(gatedOne.id, (x) => x.state === 'completed', 'the gated job completes');
    // written again under the same ids (a caller's retry): nothing new
    expect((await jobs.spawn({ jobs: kept, batches: [], seal: [] })).size).toBe(0);
  });

  it('is not used for a job under a gate, or a unique one: those keep their ledger rows', async () => {
    const { job: g } = await jobs.performLater(gated, { n: 1 });
    const { job: u } = await jobs.performLater(unique, { n: 1 });
    for (const id of [g.id, u.id]) {
      expect(await ledgerRows(id)).toBe(1);
      await until(id, (j) => j.state === 'completed', 'the ledger job completes');
    }
  });

  it("is counted once in the overview's live counts and the status page's, beside ledger jobs whose pg-boss rows are not records", async () => {
    await db.pool.query(ensureRecordIndexes(TEST_BOSS_SCHEMA));
    // a queue no worker here runs: what is written stays as written
    const name = 'rec.counted';
    await boss.createQueue(name);
    const recordIds = [randomUUID(), randomUUID(), randomUUID()];
    await boss.insert(name, recordIds.map((id, n) => ({ id, data: { payload: { n }, record: 1 } })));
    // ledger jobs (gated, unique, batched) have a ledger row and a pg-boss row without `record`
    const ledgerIds = [randomUUID(), randomUUID()];
    await boss.insert(name, ledgerIds.map((id) => ({ id, data: { payload: {} } })));
    await db.pool.query(`INSERT INTO ${TEST_SCHEMA}.jobs (id, name, route, state, payload, max_attempts, run_at) SELECT unnest($1::uuid[]), $2, 'main', 'queued', '{}', 1, now()`, [ledgerIds, name]);
    // one record fetched, and one ledger job's pg-boss row fetched before its claim (the ledger says queued)
    await db.pool.query(`UPDATE ${TEST_BOSS_SCHEMA}.job SET state = 'active', started_on = now() WHERE name = $1 AND id = ANY($2::uuid[])`, [name, [recordIds[0], ledgerIds[0]]]);
    // and one record that failed for good today
    const failedId = randomUUID();
    await boss.insert(name, [{ id: failedId, data: { payload: {}, record: 1 } }]);
    await db.pool.query(`UPDATE ${TEST_BOSS_SCHEMA}.job SET state = 'failed', completed_on = now() WHERE name = $1 AND id = $2`, [name, failedId]);
    const live = await createOverviewStore(db.pool, TEST_SCHEMA, TEST_BOSS_SCHEMA).live();
    expect(live.filter((l) => l.name === name)).toEqual([{ name, side: 'main', queued: 4, running: 1 }]);
    // the status page's counts: the same, and the day's failures
    expect((await ledger.countsByName('main'))[name]).toEqual({ queued: 4, active: 1, failed: 1 });
    await db.pool.query(`DELETE FROM ${TEST_BOSS_SCHEMA}.job WHERE name = $1`, [name]);
    await db.pool.query(`DELETE FROM ${TEST_SCHEMA}.jobs WHERE name = $1`, [name]);
    expect((await createOverviewStore(db.pool, TEST_SCHEMA, TEST_BOSS_SCHEMA).live()).filter((l) => l.name === name)).toEqual([]);
  });
});

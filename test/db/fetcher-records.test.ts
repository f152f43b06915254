// A job the fetcher takes without a gate is recorded by its pg-boss row alone
// (store/fetcher-records.ts): idempotent on main's id, claimed at main for every attempt, its end
// one event in the outbox written before pg-boss's settle, numbered by attempt, and a retry that
// finds an end waiting for main does not run. Main here is its claims (what the fetcher's
// RemoteClaims would ask over HTTP); the e2e files run the same against a real main.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createLogger, ErrorCode } from '../../packages/jobgate/src/support/index.ts';
import { createBoss, createFetcherLedger, toWireEvent, type FetcherLedger, type PgBoss, type StoredEvent } from '../../packages/jobgate/src/store/index.ts';
import { createCatalogue, createFetcherRuntime, defineJob, JobEvent, type FetcherRuntime, type RemoteClaims } from '../../packages/jobgate/src/internal.ts';
import { createTestDatabase, TEST_BOSS_SCHEMA, TEST_SCHEMA, type TestDatabase } from '../support/database.ts';
import { waitFor } from '../support/wait.ts';

const TRACE = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
/** Handler runs per job id, and how many more times each id fails. */
const runs = new Map<string, number>();
const failures = new Map<string, number>();
const heavy = defineJob({ name: 'frec.heavy', runsOnFetcher: true, payload: z.strictObject({ steps: z.number().default(0) }), retry: { limit: 2, delaySeconds: 0, backoff: false }, async run({ steps }, ctx) {
  runs.set(ctx.job.id, (runs.get(ctx.job.id) ?? 0) + 1);
  for (let i = 1; i <= steps; i++) await ctx.progress((100 * i) / steps, `step ${i}`);
  const left = failures.get(ctx.job.id) ?? 0;
  if (left > 0) {
    failures.set(ctx.job.id, left - 1);
    throw new Error(`boom ${left}`);
  }
} });
const other = defineJob({ name: 'frec.other', runsOnFetcher: true, payload: z.strictObject({ steps: z.number().default(0), pad: z.string().optional() }), run: async () => {} });

let db: TestDatabase;
let boss: PgBoss;
let ledger: FetcherLedger;
let jobs: FetcherRuntime;
/** What main answers each claim, by job id (default: claimed), and the claims it was asked for. */
const mainSays = new Map<string, 'claimed' | 'gone'>();
const claims: Array<[string, number]> = [];
const remoteClaims: RemoteClaims = {
  async claim(id, attempt) {
    claims.push([id, attempt]);
    return { outcome: mainSays.get(id) ?? 'claimed' };
  },
};

beforeAll(async () => {
  db = await createTestDatabase();
  const logger = createLogger({ level: 'error', name: 'test' });
  const timings = { pollIntervalSeconds: 0.5, superviseIntervalSeconds: 1, cronIntervalSeconds: 1, heartbeatSeconds: 10 };
  boss = createBoss({ connectionString: db.url, schema: TEST_BOSS_SCHEMA, poolSize: 3, timings, logger });
  await boss.start();
  ledger = createFetcherLedger(db.pool, TEST_SCHEMA, { bossSchema: TEST_BOSS_SCHEMA });
  jobs = createFetcherRuntime({ pool: db.pool, boss, ledger, catalogue: createCatalogue([heavy, other]), logger, timings, workerConcurrency: 4, remoteClaims });
  await jobs.prepare();
  // main is known: events are kept for it
  await ledger.setEmitEvents(true);
  await jobs.start();
});
afterAll(async () => {
  await jobs?.stop(1_000);
  await db?.drop();
});

const ledgerRows = async (id: string) => (await db.pool.query(`SELECT count(*)::int AS n FROM ${TEST_SCHEMA}.jobs WHERE id = $1`, [id])).rows[0].n as number;
const bossRow = async (id: string) => (await db.pool.query(`SELECT state::text, retry_count, data, output FROM ${TEST_BOSS_SCHEMA}.job WHERE id = $1`, [id])).rows[0];
/** The events waiting for main, as the dispatcher reads them (not acknowledged: they stay). */
async function outbox(id: string): Promise<StoredEvent[]> {
  let seen: StoredEvent[] = [];
  await ledger.deliverEvents(1_000, async (events) => {
    seen = events;
    throw new Error('not delivered: read only');
  }).catch(() => {});
  return seen.filter((e) => e.jobId === id);
}
const settled = (id: string) => waitFor(`job ${id} settled`, async () => ['completed', 'failed'].includes((await bossRow(id))?.state) || null, { timeoutMs: 30_000 });

describe("the fetcher's records", () => {
  it('are taken in with no ledger row, idempotent on id; an id another job holds (another name or payload) is refused, and nothing of the submission stays', async () => {
    const [a, b, fresh] = [randomUUID(), randomUUID(), randomUUID()];
    mainSays.set(a, 'gone').set(b, 'gone').set(fresh, 'gone');
    expect(await jobs.accept([{ id: a, name: 'frec.heavy', payload: {} }, { id: b, name: 'frec.heavy', payload: { steps: 0 } }])).toEqual([{ id: a, duplicate: false }, { id: b, duplicate: false }]);
    expect(await ledgerRows(a)).toBe(0);
    expect((await bossRow(a)).data).toMatchObject({ record: 1, payload: { steps: 0 } });
    expect(await jobs.accept([{ id: a, name: 'frec.heavy', payload: {} }])).toEqual([{ id: a, duplicate: true }]);
    for (const reuse of [{ id: a, name: 'frec.other', payload: {} }, { id: b, name: 'frec.heavy', payload: { steps: 2 } }]) {
      await expect(jobs.accept([{ id: fresh, name: 'frec.heavy', payload: {} }, reuse])).rejects.toMatchObject({ code: ErrorCode.idConflict, errors: [{ path: 'jobs.1.id' }] });
    }
    expect(await bossRow(fresh)).toBeUndefined();
    // the same for a submission too big to be written into its SQL text (its values go as parameters)
    const [big, bigFresh] = [randomUUID(), randomUUID()];
    mainSays.set(big, 'gone').set(bigFresh, 'gone');
    const pad = 'x'.repeat(70 * 1024);
    expect(await jobs.accept([{ id: big, name: 'frec.other', payload: { pad } }])).toEqual([{ id: big, duplicate: false }]);
    expect(await jobs.accept([{ id: big, name: 'frec.other', payload: { pad } }])).toEqual([{ id: big, duplicate: true }]);
    for (const reuse of [{ id: a, name: 'frec.other', payload: {} }, { id: big, name: 'frec.other', payload: { pad: `${pad}y` } }]) {
      await expect(jobs.accept([{ id: bigFresh, name: 'frec.other', payload: { pad } }, reuse])).rejects.toMatchObject({ code: ErrorCode.idConflict, errors: [{ path: 'jobs.1.id' }] });
    }
    expect(await bossRow(bigFresh)).toBeUndefined();
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM ${TEST_BOSS_SCHEMA}.job WHERE id = $1`, [a])).rows[0].n).toBe(1);
    // one id twice in one submission, under two names: refused, nothing kept
    const twice = randomUUID();
    await expect(jobs.accept([{ id: twice, name: 'frec.heavy', payload: {} }, { id: twice, name: 'frec.other', payload: {} }])).rejects.toMatchObject({ code: ErrorCode.idConflict });
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM ${TEST_BOSS_SCHEMA}.job WHERE id = $1`, [twice])).rows[0].n).toBe(0);
    // under one name with two payloads: refused naming both, nothing kept; the same job twice: taken once
    await expect(jobs.accept([{ id: twice, name: 'frec.other', payload: {} }, { id: fresh, name: 'frec.other', payload: {} }, { id: twice, name: 'frec.other', payload: { steps: 1 } }])).rejects.toMatchObject({ code: ErrorCode.idConflict, errors: [{ path: 'jobs.0.id' }, { path: 'jobs.2.id' }] });
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM ${TEST_BOSS_SCHEMA}.job WHERE id = ANY($1::uuid[])`, [[twice, fresh]])).rows[0].n).toBe(0);
    mainSays.set(twice, 'gone');
    expect(await jobs.accept([{ id: twice, name: 'frec.other', payload: {} }, { id: twice, name: 'frec.other', payload: { steps: 0 } }])).toEqual([{ id: twice, duplicate: false }, { id: twice, duplicate: true }]);
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM ${TEST_BOSS_SCHEMA}.job WHERE id = $1`, [twice])).rows[0].n).toBe(1);
    // two submissions of one id with other payloads at once: one is taken, the other refused
    const raced = randomUUID();
    mainSays.set(raced, 'gone');
    const both = await Promise.allSettled([0, 1].map((steps) => jobs.accept([{ id: raced, name: 'frec.heavy', payload: { steps } }])));
    expect(both.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    expect(both.find((r) => r.status === 'rejected')).toMatchObject({ reason: { code: ErrorCode.idConflict } });
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM ${TEST_BOSS_SCHEMA}.job WHERE id = $1`, [raced])).rows[0].n).toBe(1);
  });

  it('hold each id for one job however submissions race: one id under two names at once is taken once and refused once, and the same ids in opposite orders are all taken once (no deadlock)', async () => {
    const count = async (ids: string[]) => (await db.pool.query(`SELECT count(*)::int AS n FROM ${TEST_BOSS_SCHEMA}.job WHERE id = ANY($1::uuid[])`, [ids])).rows[0].n as number;
    const pad = 'x'.repeat(70 * 1024);
    // both intake paths: values written into the SQL text, and a submission too big for that
    for (const payload of [{}, { pad }]) {
      for (let round = 0; round < 8; round++) {
        const id = randomUUID();
        mainSays.set(id, 'gone');
        const both = await Promise.allSettled(['frec.heavy', 'frec.other'].map((name) => jobs.accept([{ id, name, payload: name === 'frec.heavy' ? {} : payload }])));
        expect(both.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
        expect(both.find((r) => r.status === 'rejected')).toMatchObject({ reason: { code: ErrorCode.idConflict } });
        expect(await count([id])).toBe(1);
      }
      for (let round = 0; round < 8; round++) {
        const ids = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
        for (const id of ids) mainSays.set(id, 'gone');
        const submission = (order: string[]) => jobs.accept(order.map((id) => ({ id, name: 'frec.other', payload })));
        const answers = await Promise.all([submission(ids), submission([...ids].reverse())]);
        // each job taken by exactly one of the two (the other answers it as a duplicate)
        for (const id of ids) expect(answers.flat().filter((a) => a.id === id && !a.duplicate)).toHaveLength(1);
        expect(await count(ids)).toBe(ids.length);
      }
    }
  });

  it('send one event per step main cannot know, numbered by attempt, the end last; a failed attempt keeps its row; every event is a JobEvent on the wire', async () => {
    const id = randomUUID();
    failures.set(id, 1);
    await jobs.accept([{ id, name: 'frec.heavy', payload: { steps: 2 }, traceparent: TRACE }]);
    await settled(id);
    expect((await bossRow(id)).state).toBe('completed');
    expect(runs.get(id)).toBe(2);
    expect(claims.filter(([j]) => j === id).map(([, attempt]) => attempt)).toEqual([1, 2]);
    const events = await outbox(id);
    const STEPS = 2 ** 20;
    expect(events.map((e) => [e.jobSeq, e.type, e.attempt])).toEqual([
      [STEPS + 1, 'progress', 1],
      [STEPS + 2, 'progress', 1],
      [2 * STEPS - 1, 'failed', 1],
      [2 * STEPS + 1, 'progress', 2],
      [2 * STEPS + 2, 'progress', 2],
      [3 * STEPS - 1, 'completed', 2],
    ]);
    for (const stored of events) {
      const wire = toWireEvent(stored);
      const parsed = JobEvent.safeParse(wire);
      expect(parsed.success, `${stored.type}: ${JSON.stringify(wire)} ${parsed.error?.message ?? ''}`).toBe(true);
      expect(wire.traceparent).toBe(TRACE);
    }
    expect(toWireEvent(events[2]!)).toMatchObject({ state: 'queued', maxAttempts: 3, error: { code: 'JG_JOB_FAILED', message: 'boom 1' } });
    expect(toWireEvent(events.at(-1)!)).toMatchObject({ state: 'completed', maxAttempts: 3, peakRssMb: expect.any(Number), startedAt: expect.any(String), finishedAt: expect.any(String) });
    // the fetcher's own read of the job: its history, the failed attempt's row and the latest from pg-boss's row
    const read = (await ledger.getJob(id))!;
    expect(read).toMatchObject({ id, route: 'fetcher', state: 'completed', attempts: 2, progress: 100 });
    expect(read.executions?.map((e) => [e.attempt, e.outcome])).toEqual([[1, 'failed'], [2, 'completed']]);
    expect(await ledgerRows(id)).toBe(0);
  });

  it('write the end of each of many attempts completing at once exactly once, with its own job and trace (ends that come together go in one statement)', async () => {
    const ids = Array.from({ length: 24 }, () => randomUUID());
    await jobs.accept(ids.map((id, i) => ({ id, name: 'frec.other', payload: { steps: 0 }, ...(i % 2 ? { traceparent: TRACE } : {}) })));
    await Promise.all(ids.map(settled));
    const { rows } = await db.pool.query(`SELECT job_id, job_seq, type, attempt, data FROM ${TEST_SCHEMA}.job_events WHERE job_id = ANY($1::uuid[])`, [ids]);
    expect(rows.map((r) => r.job_id).sort()).toEqual([...ids].sort());
    for (const r of rows) {
      expect([Number(r.job_seq), r.type, r.attempt]).toEqual([2 ** 21 - 1, 'completed', 1]);
      expect(r.data).toMatchObject({ state: 'completed', maxAttempts: expect.any(Number), startedAt: expect.any(String), finishedAt: expect.any(String) });
      expect(r.data.traceparent).toBe(ids.indexOf(r.job_id) % 2 ? TRACE : undefined);
    }
  });

  it('does not run a retry while an end of its job waits in the outbox for main (its runner died between that end and the settle)', async () => {
    const id = randomUUID();
    // due in 2 s: made a retry whose attempt 1 ended (completed, not yet told to main) before it is fetched
    await jobs.accept([{ id, name: 'frec.heavy', payload: {}, delaySeconds: 2 }]);
    await db.pool.query(`UPDATE ${TEST_BOSS_SCHEMA}.job SET retry_count = 1 WHERE id = $1`, [id]);
    await db.pool.query(`INSERT INTO ${TEST_SCHEMA}.job_events (job_id, job_seq, type, attempt, data) VALUES ($1, $2, 'completed', 1, '{"state": "completed"}')`, [id, 2 ** 21 - 1]);
    await settled(id);
    expect(runs.get(id)).toBeUndefined();
    expect(claims.filter(([j]) => j === id)).toEqual([]);
    expect(await outbox(id)).toHaveLength(1);
  });

  it('end a job main owns now (taken over, finished there) unrun, shown cancelled', async () => {
    const id = randomUUID();
    mainSays.set(id, 'gone');
    await jobs.accept([{ id, name: 'frec.heavy', payload: {} }]);
    await settled(id);
    expect(runs.get(id)).toBeUndefined();
    expect((await bossRow(id)).output).toEqual({ takenOver: true });
    expect((await ledger.getJob(id))?.state).toBe('cancelled');
    expect(await outbox(id)).toEqual([]);
  });
});

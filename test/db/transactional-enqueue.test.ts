// performLater(def, payload, { db }) commits or rolls back with the caller's transaction.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createLogger } from '../../packages/jobgate/src/support/index.ts';
import { createBoss, createMainLedger, queuedCondition, recordBossWrite, runTogether, type PgBoss } from '../../packages/jobgate/src/store/index.ts';
import { createCatalogue, createMainRuntime, defineJob, type MainRuntime } from '../../packages/jobgate/src/internal.ts';
import { createTestDatabase, TEST_BOSS_SCHEMA, TEST_SCHEMA, type TestDatabase } from '../support/database.ts';
import { waitFor } from '../support/wait.ts';

const ran: string[] = [];
const signup = defineJob({
  name: 'test.signup-mail',
  payload: z.strictObject({ userId: z.string() }),
  async run({ userId }) {
    ran.push(userId);
  },
});

let db: TestDatabase;
let boss: PgBoss;
let jobs: MainRuntime;

beforeAll(async () => {
  db = await createTestDatabase();
  const logger = createLogger({ level: 'warn', name: 'test' });
  const timings = { pollIntervalSeconds: 0.5, superviseIntervalSeconds: 1, cronIntervalSeconds: 1, heartbeatSeconds: 10 };
  boss = createBoss({ connectionString: db.url, schema: TEST_BOSS_SCHEMA, poolSize: 3, timings, logger });
  await boss.start();
  jobs = createMainRuntime({ pool: db.pool, boss, ledger: createMainLedger(db.pool, TEST_SCHEMA), catalogue: createCatalogue([signup]), logger, timings, workerConcurrency: 2 });
  await jobs.start();
});
afterAll(async () => {
  await jobs?.stop(1_000);
  await db?.drop();
});

async function counts(userId: string) {
  const ledger = await db.pool.query(`SELECT count(*)::int AS n FROM jobgate.jobs WHERE payload->>'userId' = $1`, [userId]);
  const queued = await db.pool.query(`SELECT count(*)::int AS n FROM pgboss_main.job WHERE name = 'test.signup-mail' AND data->'payload'->>'userId' = $1`, [userId]);
  return { ledger: ledger.rows[0].n, queue: queued.rows[0].n };
}

describe('transactional enqueue', () => {
  it('leaves no job when the caller rolls back', async () => {
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('CREATE TABLE IF NOT EXISTS public.users (id text PRIMARY KEY)');
      await client.query(`INSERT INTO public.users VALUES ('u-rollback')`);
      const { job } = await jobs.performLater(signup, { userId: 'u-rollback' }, { db: client });
      expect(job.state).toBe('queued');
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
    expect(await counts('u-rollback')).toEqual({ ledger: 0, queue: 0 });
  });

  it('commits the job with the caller and runs it', async () => {
    const client = await db.pool.connect();
    let id: string;
    try {
      await client.query('BEGIN');
      id = (await jobs.performLater(signup, { userId: 'u-commit' }, { db: client })).job.id;
      // not visible outside the transaction before COMMIT
      expect(await counts('u-commit')).toEqual({ ledger: 0, queue: 0 });
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    expect(await counts('u-commit')).toEqual({ ledger: 1, queue: 1 });
    await waitFor('job completed', async () => (await jobs.getJob(id))?.state === 'completed');
    expect(ran).toEqual(['u-commit']);
  });

  it('writes the ledger row and the queue entry in one round trip, both or neither', async () => {
    // performLater without a caller's transaction: one statement string, no BEGIN or COMMIT
    const seen: string[] = [];
    const pool = { query: (text: string, values?: unknown[]) => (seen.push(text), db.pool.query(text, values)) };
    const counted = createMainRuntime({ pool: pool as never, boss, ledger: createMainLedger(db.pool, TEST_SCHEMA), catalogue: createCatalogue([signup]), logger: createLogger({ level: 'warn', name: 'test' }), timings: { pollIntervalSeconds: 0.5, superviseIntervalSeconds: 1, cronIntervalSeconds: 1, heartbeatSeconds: 10 }, workerConcurrency: 1 });
    await counted.performLater(signup, { userId: 'u-one-trip' });
    expect(seen).toHaveLength(1);
    expect(await counts('u-one-trip')).toEqual({ ledger: 1, queue: 1 });

    // A queue that refuses the entry (pg-boss's ON CONFLICT DO NOTHING: a 'short' queue holds one
    // queued job) leaves no ledger row behind either.
    await boss.createQueue('test.short', { policy: 'short' });
    await boss.send('test.short', {});
    const id = randomUUID();
    const queued = await recordBossWrite((bossDb) => boss.send('test.short', {}, { id, db: bossDb }), id);
    const job = { id, name: 'test.short', route: 'main' as const, routeReason: 'definition' as const, payload: { userId: 'u-refused' }, priority: 0, uniqueKey: null, maxAttempts: 1, delaySeconds: 0 };
    const [bossRows, ledgerRows] = await runTogether(db.pool, [queued, createMainLedger(db.pool, TEST_SCHEMA).insertJobStatement(job, queuedCondition(queued, 'test.short', id))]);
    expect(bossRows).toEqual([]);
    expect(ledgerRows).toEqual([]);
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM jobgate.jobs WHERE id = $1`, [id])).rows[0].n).toBe(0);
  });

  it('rejects a bad payload before touching the transaction', async () => {
    await expect(jobs.performLater(signup, { userId: 42 })).rejects.toMatchObject({ code: 'JG_PAYLOAD_INVALID', errors: [{ path: 'payload.userId' }] });
  });
});

// The forwarder's take (MainLedger.holdToForward): jobs held for a delivery by row locks alone,
// with nothing written until the delivery ends, marked forwarded (one write), put under a lease
// (a delivery that takes longer), or let go; a holder whose connection is lost lets go of them.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { createMainLedger, type MainLedger } from '../../packages/jobgate/src/store/index.ts';
import { openTransaction } from '../../packages/jobgate/src/store/transaction.ts';
import { createTestDatabase, TEST_SCHEMA, type TestDatabase } from '../support/database.ts';

let db: TestDatabase;
let ledger: MainLedger;

beforeAll(async () => {
  db = await createTestDatabase();
  ledger = createMainLedger(db.pool, TEST_SCHEMA);
});
afterAll(async () => {
  await db?.drop();
});

/** Routed jobs of a name of their own (so that each test holds only its own). */
async function routedJobs(n: number): Promise<{ name: string; ids: string[] }> {
  const name = `hold.${randomUUID().slice(0, 8)}`;
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const id = randomUUID();
    await ledger.insertJob({ id, name, route: 'fetcher', payload: { i }, priority: 0, uniqueKey: null, maxAttempts: 3, delaySeconds: 0 });
    ids.push(id);
  }
  return { name, ids };
}

/** Each job's row version (ctid, xmin) and state: a write makes a new version. */
async function versions(ids: string[]) {
  const { rows } = await db.pool.query(`SELECT id, ctid::text, xmin::text, state FROM ${TEST_SCHEMA}.jobs WHERE id = ANY($1::uuid[]) ORDER BY id`, [ids]);
  return rows;
}

/** The ids of `ids` a second forwarder could take now (held and let go at once). */
async function takeableNow(ids: string[]): Promise<string[]> {
  const other = await ledger.holdToForward(1_000);
  await other.release();
  return other.jobs.map((j) => j.id).filter((id) => ids.includes(id)).sort();
}

describe("the forwarder's hold on the jobs it delivers", () => {
  it('holds them with nothing written, keeps every other forwarder off them, and marks them forwarded with one write each', async () => {
    const { ids } = await routedJobs(3);
    const before = await versions(ids);
    const held = await ledger.holdToForward(1_000);
    expect(held.jobs.map((j) => j.id).filter((id) => ids.includes(id)).sort()).toEqual([...ids].sort());
    // nothing written by the take, and no other forwarder gets them while they are held
    expect(await versions(ids)).toEqual(before);
    expect(await takeableNow(ids)).toEqual([]);
    await held.delivered();
    const after = await versions(ids);
    expect(after.map((r) => r.state)).toEqual(['forwarded', 'forwarded', 'forwarded']);
    // one new version of each row, all written by one transaction
    expect(after.every((r, i) => r.ctid !== before[i].ctid)).toBe(true);
    expect(new Set(after.map((r) => r.xmin)).size).toBe(1);
    expect(await takeableNow(ids)).toEqual([]);
  });

  it('a delivery that takes longer puts them under a lease; one let go is due again at once, as it was', async () => {
    const { ids } = await routedJobs(2);
    const before = await versions(ids);
    const released = await ledger.holdToForward(1_000);
    await released.release();
    expect(await versions(ids)).toEqual(before);
    expect(await takeableNow(ids)).toEqual([...ids].sort());

    const leased = await ledger.holdToForward(1_000);
    await leased.lease(30);
    expect((await versions(ids)).map((r) => r.state)).toEqual(['queued', 'queued']);
    expect(await takeableNow(ids)).toEqual([]);
    // a hold ends once
    await expect(leased.delivered()).rejects.toThrow(/ended already/);
  });

  it("a holder whose connection is lost lets go of them: another forwarder takes them at once", async () => {
    const { ids } = await routedJobs(2);
    const held = await ledger.holdToForward(1_000);
    expect(held.jobs.map((j) => j.id)).toEqual(expect.arrayContaining(ids));
    // the holder's backend is the one idle in a transaction that locks these rows
    const { rows } = await db.pool.query(
      `SELECT pg_terminate_backend(l.pid) AS killed FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'transactionid' AND a.state = 'idle in transaction' AND a.datname = current_database() AND l.pid <> pg_backend_pid()`,
    );
    expect(rows.length).toBeGreaterThan(0);
    await expect(held.delivered()).rejects.toThrow();
    let takeable: string[] = [];
    for (let i = 0; i < 50 && takeable.length < ids.length; i++) {
      takeable = await takeableNow(ids);
      if (takeable.length < ids.length) await new Promise((r) => setTimeout(r, 100));
    }
    expect(takeable).toEqual([...ids].sort());
    expect((await versions(ids)).map((r) => r.state)).toEqual(['queued', 'queued']);
  });

  it("a delivery holds its jobs only while main's pool has a connection to spare; otherwise they are taken under a lease at once", async () => {
    const small = new pg.Pool({ connectionString: db.url, max: 2 });
    small.on('error', () => {});
    try {
      const onSmall = createMainLedger(small, TEST_SCHEMA);
      expect(onSmall.spareConnection()).toBe(true);
      const first = await small.connect();
      // one out: a hold would take the last one, and the app's next query would wait behind a delivery
      expect(onSmall.spareConnection()).toBe(false);
      first.release();
      expect(onSmall.spareConnection()).toBe(true);
      const { ids } = await routedJobs(2);
      const taken = await onSmall.takeToForward(1_000, 30);
      expect(taken.map((j) => j.id)).toEqual(expect.arrayContaining(ids));
      expect(await takeableNow(ids)).toEqual([]);
      await onSmall.markForwarded(ids);
      expect((await versions(ids)).map((r) => r.state)).toEqual(['forwarded', 'forwarded']);
    } finally {
      await small.end();
    }
  });

  it('the take goes with its BEGIN in one round trip; one that fails leaves no pooled connection inside a transaction', async () => {
    const one = new pg.Pool({ connectionString: db.url, max: 1 });
    one.on('error', () => {});
    try {
      const tx = await openTransaction(one, `SELECT 1 AS n`);
      expect(tx.opened).toEqual([{ n: 1 }]);
      // the transaction is open: what it does is gone with its rollback
      await tx.client.query(`CREATE TEMP TABLE held_then_gone (n int)`);
      await tx.rollback();
      await expect(one.query(`SELECT * FROM held_then_gone`)).rejects.toThrow(/does not exist/);
      await expect(openTransaction(one, `SELECT 1 / 0`)).rejects.toThrow(/division by zero/);
      // the one connection is back outside any transaction: this would fail "current transaction is aborted"
      const { rows } = await one.query(`SELECT 1 AS n, now() = statement_timestamp() AS own_transaction`);
      expect(rows).toEqual([{ n: 1, own_transaction: true }]);
    } finally {
      await one.end();
    }
  });
});

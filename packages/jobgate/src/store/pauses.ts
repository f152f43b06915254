// Paused job names (migration 019), with every change written to the admin audit log in the same
// transaction: who paused or resumed what, why, and until when; an expiry is audited as `system`.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Pool } from 'pg';
import type { Logger } from '../support/index.ts';
import { assertSchemaName } from './schema-name.ts';
import { withTransaction } from './transaction.ts';
import { recordPlans } from './queue-records.ts';
import { iso, WAITING_STATES, type JobRecord, type Queryable } from './ledger.ts';

/** `name` is a job's name, or `*`: every job. */
export interface Pause {
  name: string;
  reason: string;
  by: string;
  since: string;
  expiresAt: string | null;
}

/** How long a change of the pauses waits for the transactions writing jobs at its commit before it answers (they are waited for after, too). */
const SETTLE_WAIT_MS = 10_000;
const SETTLE_POLL_MS = 20;

/** The name that pauses every job. */
export const EVERY_JOB = '*';

const toPause = (r: Record<string, unknown>): Pause => ({ name: r.name as string, reason: r.reason as string, by: r.paused_by as string, since: iso(r.paused_at)!, expiresAt: iso(r.expires_at) ?? null });

/** The SQL of a pause in force (not expired), on `pauses` as `p`. */
const IN_FORCE = `(p.expires_at IS NULL OR p.expires_at > clock_timestamp())`;

/**
 * The SQL of "the job name `column` is not paused" (pause_of(column) IS NULL) for a statement that
 * scans many jobs: the pauses in force are read once per statement (an uncorrelated subquery, hashed),
 * where pause_of per row is called for every row scanned and, opaque to the planner, turns an
 * index scan that stops at its LIMIT into a scan and sort of every candidate (83 ms against
 * 0.5 ms for the forwarder's take of 500 out of 10,000).
 */
export function notPaused(schema: string, column: string): string {
  const s = assertSchemaName(schema);
  return `(${column} NOT IN (SELECT p.name FROM ${s}.pauses p WHERE ${IN_FORCE})
          AND NOT EXISTS (SELECT 1 FROM ${s}.pauses p WHERE p.name = '${EVERY_JOB}' AND ${IN_FORCE}))`;
}

/**
 * `jobs`, each waiting one with the pause that holds it as `pausedBy` (its name's own, else `*`):
 * how every view of a job (API, admin pages, CLI) names the pause it waits for. One read of the
 * pauses, and only when some job waits.
 */
export async function withPausedBy<T extends JobRecord>(db: Queryable, schema: string, jobs: T[]): Promise<T[]> {
  const waiting = jobs.filter((j) => (WAITING_STATES as readonly string[]).includes(j.state));
  if (waiting.length === 0) return jobs;
  const { rows } = await db.query(
    `SELECT name, reason, paused_by, paused_at, expires_at FROM ${assertSchemaName(schema)}.pauses p WHERE p.name = ANY($1::text[]) AND ${IN_FORCE}`,
    [[...new Set(waiting.map((j) => j.name)), EVERY_JOB]],
  );
  const byName = new Map(rows.map((r) => [r.name as string, toPause(r)]));
  for (const job of waiting) {
    const pause = byName.get(job.name) ?? byName.get(EVERY_JOB);
    if (pause) job.pausedBy = pause;
  }
  return jobs;
}

export type PauseStore = ReturnType<typeof createPauseStore>;

/**
 * `bossSchema`: main's pg-boss schema, where the jobs recorded by their pg-boss row wait: a pause
 * holds them there too (queue-records.ts syncBlocked), in the transaction that changes the pause.
 */
export function createPauseStore(pool: Pool, schema: string, bossSchema?: string, options: { logger?: Logger } = {}) {
  const s = assertSchemaName(schema);
  const records = bossSchema ? recordPlans(bossSchema, schema) : null;
  /** The records of `name` (`*`: of every job) blocked or unblocked as the pauses now say. */
  const sync = async (db: Queryable, name: string | null) => {
    if (records) await db.query(records.syncBlocked, [name === EVERY_JOB ? null : name]);
  };
  /**
   * After a change of the pauses committed: a transaction writing pg-boss's jobs at that moment may
   * have enqueued a record (or handed one back) by the pauses as they were, held while no longer
   * paused or not held while paused, and commit after the change's own sync. Waits for those
   * transactions to end, then syncs `name` again (nothing to do when none was writing); a change
   * answers once that is done, or after SETTLE_WAIT_MS, and the wait and the sync go on in the
   * background (a transaction left open that long is rare, and a process that has heard of a
   * pause hands back the jobs it fetches). Writers are short nearly always: the change answers a
   * few milliseconds later.
   */
  async function settle(name: string | null): Promise<void> {
    if (!records) return;
    const settled = (async () => {
      let open = (await pool.query(records.jobWriters)).rows.map((r) => r.vxid as string);
      if (open.length === 0) return;
      while (open.length > 0) {
        await sleep(SETTLE_POLL_MS);
        open = (await pool.query(records.stillOpen, [open])).rows.map((r) => r.vxid as string);
      }
      await sync(pool, name);
    })();
    const logged = settled.catch((err: unknown) => options.logger?.warn({ err, name }, 'could not hold or release the records of transactions writing across a change of the pauses; the next change of its pauses does'));
    const gaveUp = new AbortController();
    await Promise.race([logged, sleep(SETTLE_WAIT_MS, undefined, { signal: gaveUp.signal }).catch(() => {})]);
    gaveUp.abort();
  }
  /** `change`'s answer once it committed and settled. */
  const settledAfter = async <T>(name: string | null, change: Promise<T>): Promise<T> => {
    const answer = await change;
    await settle(name);
    return answer;
  };
  const COLUMNS = 'name, reason, paused_by, paused_at, expires_at';
  const audit = `INSERT INTO ${s}.admin_audit (actor, action, target, detail) VALUES ($1, $2, $3, $4)`;
  return {
    /** The pauses in force, oldest first. */
    async list(): Promise<Pause[]> {
      const { rows } = await pool.query(`SELECT ${COLUMNS} FROM ${s}.pauses p WHERE ${IN_FORCE} ORDER BY paused_at, name`);
      return rows.map(toPause);
    },
    /** Pauses `name` (again: a new reason and expiry replace the old). */
    async pause(change: { name: string; reason: string; actor: string; expiresInMinutes?: number }): Promise<Pause> {
      return settledAfter(change.name, withTransaction(pool, async (client) => {
        const { rows: before } = await client.query(`SELECT ${COLUMNS} FROM ${s}.pauses WHERE name = $1 FOR UPDATE`, [change.name]);
        const { rows } = await client.query(
          `INSERT INTO ${s}.pauses (name, reason, paused_by, expires_at)
           VALUES ($1, $2, $3, CASE WHEN $4::numeric IS NOT NULL THEN clock_timestamp() + $4::numeric * interval '1 minute' END)
           ON CONFLICT (name) DO UPDATE SET reason = excluded.reason, paused_by = excluded.paused_by, paused_at = clock_timestamp(), expires_at = excluded.expires_at
           RETURNING ${COLUMNS}`,
          [change.name, change.reason, change.actor, change.expiresInMinutes ?? null],
        );
        const pause = toPause(rows[0]);
        await client.query(audit, [change.actor, 'job.pause', change.name, JSON.stringify({ reason: change.reason, expiresAt: pause.expiresAt, before: before[0] ? toPause(before[0]) : null })]);
        await sync(client, change.name);
        return pause;
      }));
    },
    /** Resumes `name`; the pause it ended, or null if it was not paused (still audited: someone acted). */
    async resume(change: { name: string; actor: string; reason?: string }): Promise<Pause | null> {
      return settledAfter(change.name, withTransaction(pool, async (client) => {
        const { rows } = await client.query(`DELETE FROM ${s}.pauses WHERE name = $1 RETURNING ${COLUMNS}`, [change.name]);
        const ended = rows[0] ? toPause(rows[0]) : null;
        await client.query(audit, [change.actor, 'job.resume', change.name, JSON.stringify({ reason: change.reason ?? null, before: ended })]);
        await sync(client, change.name);
        return ended;
      }));
    },
    /** Ends the pauses whose expiry has passed, audited as `system`; how many. */
    async expireDue(): Promise<number> {
      // one statement (every main asks every poll interval): the pauses ended and their audit entries
      const iso = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
      const { rows } = await pool.query(
        `WITH ended AS (DELETE FROM ${s}.pauses WHERE expires_at <= clock_timestamp() RETURNING ${COLUMNS}),
              audited AS (
                INSERT INTO ${s}.admin_audit (actor, action, target, detail)
                SELECT 'system', 'job.pause-expired', name, jsonb_build_object(
                         'reason', 'expired (paused by ' || paused_by || ': ' || reason || ')',
                         'before', jsonb_build_object('name', name, 'reason', reason, 'by', paused_by, 'since', ${iso('paused_at')}, 'expiresAt', ${iso('expires_at')}))
                  FROM ended)
         SELECT count(*)::int AS n FROM ended`,
      );
      if (rows[0].n > 0) {
        await sync(pool, null);
        await settle(null);
      }
      return rows[0].n as number;
    },
  };
}

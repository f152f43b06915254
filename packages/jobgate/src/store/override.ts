import type { Pool } from 'pg';
import { assertSchemaName } from './schema-name.ts';
import { withTransaction } from './transaction.ts';
import type { Queryable } from './ledger.ts';

/** The emergency override: while enabled, fetcher jobs not yet delivered run on main. */
export interface OverrideState {
  enabled: boolean;
  reason: string | null;
  by: string | null;
  since: string | null;
  expiresAt: string | null;
}

export interface OverrideAuditEntry {
  id: number;
  at: string;
  actor: string;
  action: 'on' | 'off' | 'expired';
  reason: string | null;
  oldValue: OverrideState;
  newValue: OverrideState;
}

export interface OverrideChange {
  enabled: boolean;
  reason: string;
  actor: string;
  expiresInMinutes?: number;
}

const iso = (v: unknown) => (v instanceof Date ? v.toISOString() : ((v as string | null) ?? null));
const toState = (r: Record<string, unknown>): OverrideState => ({
  enabled: r.enabled as boolean,
  reason: (r.reason as string | null) ?? null,
  by: (r.changed_by as string | null) ?? null,
  since: iso(r.since),
  expiresAt: iso(r.expires_at),
});

export type OverrideStore = ReturnType<typeof createOverrideStore>;

/**
 * The override in PostgreSQL (one row) and its audit log: every change, including an automatic
 * expiry, writes who, when, why, and the old and new value in the same transaction.
 */
export function createOverrideStore(pool: Pool, schema: string) {
  const s = assertSchemaName(schema);
  const COLUMNS = 'enabled, reason, changed_by, since, expires_at';
  return {
    /** Through `db` when given (a caller's transaction already holds a connection: use it, not a second one). */
    async get(db: Queryable = pool): Promise<OverrideState> {
      const { rows } = await db.query(`SELECT ${COLUMNS} FROM ${s}.override_state`);
      return toState(rows[0]);
    },

    /** Switches the override; a change to the same value is still audited (someone acted). */
    async set(change: OverrideChange): Promise<OverrideState> {
      return withTransaction(pool, async (client) => {
        const { rows: before } = await client.query(`SELECT ${COLUMNS} FROM ${s}.override_state FOR UPDATE`);
        const { rows: after } = await client.query(
          `UPDATE ${s}.override_state SET enabled = $1, reason = $2, changed_by = $3, since = clock_timestamp(),
                  expires_at = CASE WHEN $1 AND $4::numeric IS NOT NULL THEN clock_timestamp() + $4::numeric * interval '1 minute' END
            RETURNING ${COLUMNS}`,
          [change.enabled, change.reason, change.actor, change.expiresInMinutes ?? null],
        );
        const [oldValue, newValue] = [toState(before[0]), toState(after[0])];
        await client.query(
          `INSERT INTO ${s}.override_audit (actor, action, reason, old_value, new_value) VALUES ($1, $2, $3, $4, $5)`,
          [change.actor, change.enabled ? 'on' : 'off', change.reason, JSON.stringify(oldValue), JSON.stringify(newValue)],
        );
        return newValue;
      });
    },

    /** Switches an override whose expiry has passed off, audited as 'expired'; true if it did. */
    async expireDue(): Promise<boolean> {
      return withTransaction(pool, async (client) => {
        const { rows: before } = await client.query(
          `SELECT ${COLUMNS} FROM ${s}.override_state WHERE enabled AND expires_at <= clock_timestamp() FOR UPDATE`,
        );
        if (!before[0]) return false;
        const { rows: after } = await client.query(
          `UPDATE ${s}.override_state SET enabled = false, changed_by = 'system', since = clock_timestamp(), expires_at = NULL
            RETURNING ${COLUMNS}`,
        );
        const oldValue = toState(before[0]);
        await client.query(
          `INSERT INTO ${s}.override_audit (actor, action, reason, old_value, new_value) VALUES ('system', 'expired', $1, $2, $3)`,
          [`expired (set by ${oldValue.by}: ${oldValue.reason ?? ''})`, JSON.stringify(oldValue), JSON.stringify(toState(after[0]))],
        );
        return true;
      });
    },

    /** Newest first. */
    async audit(limit = 50): Promise<OverrideAuditEntry[]> {
      const { rows } = await pool.query(
        `SELECT id, at, actor, action, reason, old_value, new_value FROM ${s}.override_audit ORDER BY id DESC LIMIT $1`,
        [limit],
      );
      return rows.map((r) => ({ id: Number(r.id), at: iso(r.at)!, actor: r.actor, action: r.action, reason: r.reason, oldValue: r.old_value, newValue: r.new_value }));
    },
  };
}

import { createHash, randomBytes } from 'node:crypto';
import type { Pool } from 'pg';
import { assertSchemaName } from './schema-name.ts';

export interface AdminSession {
  csrfToken: string;
  expiresAt: Date;
}

export interface AdminAuditEntry {
  id: number;
  at: string;
  actor: string;
  action: string;
  target: string | null;
  detail: Record<string, unknown>;
}

const hash = (token: string) => createHash('sha256').update(token).digest('hex');
const token = () => randomBytes(32).toString('base64url');

export type AdminStore = ReturnType<typeof createAdminStore>;

/**
 * Dashboard sessions and the admin audit log, in PostgreSQL (several main instances share them).
 * A session's cookie value is stored only as a hash.
 */
export function createAdminStore(pool: Pool, schema: string) {
  const s = assertSchemaName(schema);
  return {
    /**
     * A new session, bound to `passwordHash` (the password it was opened with): it ends when the
     * password changes. The returned `id` goes in the cookie, never in the database.
     */
    async createSession(ttlSeconds: number, passwordHash: string): Promise<{ id: string } & AdminSession> {
      const id = token();
      const csrfToken = token();
      const { rows } = await pool.query(
        `INSERT INTO ${s}.admin_sessions (id_hash, csrf_token, expires_at, password_hash) VALUES ($1, $2, clock_timestamp() + $3 * interval '1 second', $4)
         RETURNING expires_at`,
        [hash(id), csrfToken, ttlSeconds, passwordHash],
      );
      // expired sessions go as new ones come
      await pool.query(`DELETE FROM ${s}.admin_sessions WHERE expires_at < clock_timestamp()`);
      return { id, csrfToken, expiresAt: rows[0].expires_at };
    },
    /** The live session with this cookie value, opened with the password whose hash is `passwordHash`. */
    async getSession(id: string, passwordHash: string): Promise<AdminSession | null> {
      const { rows } = await pool.query(
        `SELECT csrf_token, expires_at FROM ${s}.admin_sessions WHERE id_hash = $1 AND expires_at > clock_timestamp() AND password_hash = $2`,
        [hash(id), passwordHash],
      );
      return rows[0] ? { csrfToken: rows[0].csrf_token, expiresAt: rows[0].expires_at } : null;
    },
    async deleteSession(id: string): Promise<void> {
      await pool.query(`DELETE FROM ${s}.admin_sessions WHERE id_hash = $1`, [hash(id)]);
    },
    /** This install's random salt for binding sessions to the admin password (made once, kept in the database). */
    async sessionSalt(): Promise<string> {
      await pool.query(`INSERT INTO ${s}.ledger_settings (key, value) VALUES ('admin_session_salt', to_jsonb($1::text)) ON CONFLICT (key) DO NOTHING`, [token()]);
      const { rows } = await pool.query(`SELECT value #>> '{}' AS salt FROM ${s}.ledger_settings WHERE key = 'admin_session_salt'`);
      return rows[0].salt as string;
    },
    /** Counts a wrong password or token from `address` (for every instance); old ones are pruned now and then. */
    async recordAuthFailure(address: string): Promise<void> {
      await pool.query(`INSERT INTO ${s}.auth_failures (address) VALUES ($1)`, [address.slice(0, 100)]);
      if (Math.random() < 0.05) await pool.query(`DELETE FROM ${s}.auth_failures WHERE at < clock_timestamp() - interval '1 hour'`);
    },
    /** Failures in the last `windowSeconds`: from `address`, and from everyone, with when the oldest of `address`'s leaves the window. */
    async authFailures(address: string, windowSeconds: number): Promise<{ mine: number; all: number; retryAfterSeconds: number }> {
      const { rows } = await pool.query(
        `SELECT count(*) FILTER (WHERE address = $1)::int AS mine, count(*)::int AS all,
                coalesce(ceil(extract(epoch FROM min(at) + $2 * interval '1 second' - clock_timestamp())), 1)::int AS retry
           FROM ${s}.auth_failures WHERE at > clock_timestamp() - $2 * interval '1 second'`,
        [address.slice(0, 100), windowSeconds],
      );
      return { mine: rows[0].mine, all: rows[0].all, retryAfterSeconds: Math.max(1, rows[0].retry) };
    },
    async audit(entry: { actor: string; action: string; target?: string | null; detail?: Record<string, unknown> }): Promise<void> {
      await pool.query(`INSERT INTO ${s}.admin_audit (actor, action, target, detail) VALUES ($1, $2, $3, $4)`, [
        entry.actor, entry.action, entry.target ?? null, JSON.stringify(entry.detail ?? {}),
      ]);
    },
    /** Newest first. */
    async auditLog(limit = 50): Promise<AdminAuditEntry[]> {
      const { rows } = await pool.query(`SELECT id, at, actor, action, target, detail FROM ${s}.admin_audit ORDER BY id DESC LIMIT $1`, [limit]);
      return rows.map((r) => ({ id: Number(r.id), at: (r.at as Date).toISOString(), actor: r.actor, action: r.action, target: r.target, detail: r.detail }));
    },
  };
}

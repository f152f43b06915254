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
    /** A new session; the returned `id` goes in the cookie, never in the database. */
    async createSession(ttlSeconds: number): Promise<{ id: string } & AdminSession> {
      const id = token();
      const csrfToken = token();
      const { rows } = await pool.query(
        `INSERT INTO ${s}.admin_sessions (id_hash, csrf_token, expires_at) VALUES ($1, $2, clock_timestamp() + $3 * interval '1 second')
         RETURNING expires_at`,
        [hash(id), csrfToken, ttlSeconds],
      );
      // expired sessions go as new ones come
      await pool.query(`DELETE FROM ${s}.admin_sessions WHERE expires_at < clock_timestamp()`);
      return { id, csrfToken, expiresAt: rows[0].expires_at };
    },
    async getSession(id: string): Promise<AdminSession | null> {
      const { rows } = await pool.query(
        `SELECT csrf_token, expires_at FROM ${s}.admin_sessions WHERE id_hash = $1 AND expires_at > clock_timestamp()`,
        [hash(id)],
      );
      return rows[0] ? { csrfToken: rows[0].csrf_token, expiresAt: rows[0].expires_at } : null;
    },
    async deleteSession(id: string): Promise<void> {
      await pool.query(`DELETE FROM ${s}.admin_sessions WHERE id_hash = $1`, [hash(id)]);
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

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
 * One credential check from $1 that $5 says was wrong (true) or right (false); $2 the window in
 * seconds, $3 failures per address, $4 failures in all. A wrong one is counted only while its
 * address has fewer than $3 in the window: the upsert's DO UPDATE sees the address's row as the
 * last statement to hold its lock left it (not this statement's snapshot), so concurrent failures
 * from one address take turns and the count is exact. A right one only reads. The count for all
 * addresses is the snapshot's; no address holds more than $3 of it.
 * `allowed`: counted (wrong) or let in (right); else `retry`, seconds until the oldest failure
 * that fills the budget leaves the window.
 */
const AUTH_ATTEMPT = (s: string) => `
  WITH live AS (
    SELECT address, ARRAY(SELECT t FROM unnest(failures) t WHERE t > clock_timestamp() - $2 * interval '1 second') AS at
      FROM ${s}.auth_throttle
  ), everyone AS (
    SELECT coalesce(sum(cardinality(at)), 0) AS n FROM live
  ), counted AS (
    INSERT INTO ${s}.auth_throttle AS a (address, failures)
    SELECT $1, ARRAY[clock_timestamp()] FROM everyone WHERE $5 AND everyone.n < $4
    ON CONFLICT (address) DO UPDATE
       SET failures = ARRAY(SELECT t FROM unnest(a.failures) t WHERE t > clock_timestamp() - $2 * interval '1 second') || clock_timestamp()
     WHERE (SELECT count(*) FROM unnest(a.failures) t WHERE t > clock_timestamp() - $2 * interval '1 second') < $3
    RETURNING 1
  ), mine AS (
    SELECT coalesce((SELECT cardinality(at) FROM live WHERE address = $1), 0) AS n
  )
  SELECT CASE WHEN $5 THEN EXISTS (SELECT FROM counted) ELSE mine.n < $3 AND everyone.n < $4 END AS allowed,
         ceil(extract(epoch FROM coalesce(
           (SELECT min(t) FROM live, unnest(live.at) t WHERE live.address = $1 AND cardinality(live.at) >= $3),
           (SELECT min(t) FROM live, unnest(live.at) t)
         ) + $2 * interval '1 second' - clock_timestamp()))::int AS retry
    FROM mine, everyone`;

/**
 * Dashboard sessions, the admin audit log and the wrong-credentials throttle, in PostgreSQL (several
 * main instances share them).
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
    /**
     * Whether one credential check from `address` may be answered: a wrong one (`failed`) is
     * counted, in one statement, only while the address has fewer than `perAddress` failures in
     * `windowSeconds` (so failures at once, on any instance, take turns and never exceed it); a
     * right one is let in unless the address is at that limit. Either is refused while all
     * addresses together hold `inAll` (each at most `perAddress` of them); refused: when to try again.
     */
    async authAttempt(address: string, failed: boolean, limits: { windowSeconds: number; perAddress: number; inAll: number }): Promise<{ allowed: true } | { allowed: false; retryAfterSeconds: number }> {
      const { rows } = await pool.query<{ allowed: boolean; retry: number | null }>(AUTH_ATTEMPT(s), [address, limits.windowSeconds, limits.perAddress, limits.inAll, failed]);
      if (!rows[0]!.allowed) return { allowed: false, retryAfterSeconds: Math.max(1, rows[0]!.retry ?? limits.windowSeconds) };
      // rows whose failures all left the window go now and then
      if (failed && Math.random() < 0.05) await pool.query(`DELETE FROM ${s}.auth_throttle WHERE coalesce((SELECT max(t) FROM unnest(failures) t), '-infinity') < clock_timestamp() - $1 * interval '1 second'`, [limits.windowSeconds]);
      return { allowed: true };
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

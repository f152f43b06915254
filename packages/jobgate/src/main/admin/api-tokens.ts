// The bearer tokens of createMain's `apiTokens`: which one a request carries, and what it may reach.
import { createHash, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';

/** What a token reaches: `api` the jobs API (/api/*), `admin` the admin API (/admin/api/*) as well. */
export const ApiTokenScope = { api: 'api', admin: 'admin' } as const;
export type ApiTokenScope = (typeof ApiTokenScope)[keyof typeof ApiTokenScope];

/**
 * A bearer token for scripts and other services. A plain string reaches /api/* only; an object
 * with `scope: 'admin'` reaches /admin/api/* too (with no CSRF token: that guards browser sessions),
 * and its `name` is the actor the audit log records.
 * @example
 * apiTokens: [process.env.API_TOKEN, { token: process.env.OPS_TOKEN, scope: 'admin', name: 'ops scripts' }]
 */
export type ApiToken = string | { token: string; scope?: ApiTokenScope; name?: string };

const Secret = z.string().min(16, 'each token at least 16 characters').max(500);
export const ApiTokens = z
  .array(z.union([Secret, z.strictObject({ token: Secret, scope: z.enum(['api', 'admin']).optional(), name: z.string().trim().min(1).max(100).optional() })]))
  .superRefine((tokens, ctx) => {
    const seen = new Set<string>();
    tokens.forEach((t, i) => {
      const secret = typeof t === 'string' ? t : t.token;
      // one secret with two scopes would reach whichever was listed last
      if (seen.has(secret)) ctx.addIssue({ code: 'custom', path: [i], message: 'the same token is listed twice' });
      seen.add(secret);
    });
  });

/** A token a request carried: its place in the list (each has its own request quota), scope and actor name. */
export interface FoundToken {
  index: number;
  scope: ApiTokenScope;
  /** For the audit log: the token's name, or its place in the list. */
  name: string;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** The configured tokens, compared by digest in constant time (every token, whichever matches). */
export function createApiTokens(given: readonly ApiToken[]) {
  const tokens = given.map((t, index) => {
    const { token, scope = 'api', name } = typeof t === 'string' ? { token: t } : t;
    return { digest: digest(token), found: { index, scope, name: name ?? `API token ${index + 1}` } satisfies FoundToken };
  });
  return {
    count: tokens.length,
    /** The token `secret` is, or null. */
    find(secret: string): FoundToken | null {
      const d = digest(secret);
      let found: FoundToken | null = null;
      for (const t of tokens) if (timingSafeEqual(d, t.digest)) found = t.found;
      return found;
    },
  };
}

/** The token of `Authorization: Bearer <token>`, or undefined without one. */
export function bearerOf(header: string | undefined): string | undefined {
  return header?.startsWith('Bearer ') ? header.slice(7).trim() : undefined;
}

import { createHash } from 'node:crypto';

/** JSON with object keys sorted at every level, so equal payloads give equal text. */
export function stableStringify(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/** The key `unique: true` compares: a hash of the payload's stable JSON. */
export function uniqueKeyOf(payload: unknown): string {
  return createHash('sha256').update(stableStringify(payload)).digest('base64url');
}

/**
 * PostgreSQL stores no NUL character (U+0000) in text or jsonb: one that reaches a query fails it.
 * Input from a client with one is refused at the door (findNul, a 422 naming the field); text our
 * own code writes (a handler's error, a progress message) is cleaned instead (cleanText).
 */

/** The path (`payload.items.3.name`) of the first string or key in `value` holding a NUL, or null. */
export function findNul(value: unknown, path: string[] = [], depth = 0): string | null {
  if (typeof value === 'string') return value.includes('\u0000') ? path.join('.') || '(value)' : null;
  if (value === null || typeof value !== 'object' || depth > 200) return null;
  for (const [key, item] of Object.entries(value)) {
    if (key.includes('\u0000')) return [...path, key.replaceAll('\u0000', '\\u0000')].join('.');
    const found = findNul(item, [...path, key], depth + 1);
    if (found !== null) return found;
  }
  return null;
}

/** Longest error message stored with an attempt; longer ones are cut (the full one is in the log). */
export const MAX_ERROR_MESSAGE = 2_000;
/** Longest progress message stored with a job. */
export const MAX_PROGRESS_MESSAGE = 500;

/** `text` with NUL replaced by U+FFFD and cut to `max` characters (marked with …). */
export function cleanText(text: string, max: number): string {
  const clean = text.includes('\u0000') ? text.replaceAll('\u0000', '\uFFFD') : text;
  return clean.length > max ? `${clean.slice(0, max - 1)}…` : clean;
}

/**
 * PostgreSQL stores no NUL character (U+0000) in text or jsonb, and jsonb no lone UTF-16 surrogate:
 * one that reaches a query fails it. Input from a client with one is refused at the door
 * (findUnstorable, a 422 naming the field); text our own code writes (a handler's error, a progress
 * message) is cleaned instead (cleanText).
 */

/** How deep a client's JSON may nest before it is refused (PostgreSQL's jsonb and our walks stay far from their limits). */
export const MAX_JSON_DEPTH = 200;

/**
 * The first place in `value` PostgreSQL cannot store (a string or key holding a NUL, or a lone
 * UTF-16 surrogate, which jsonb refuses) or that nests deeper than MAX_JSON_DEPTH, as a field path
 * (`payload.items.3.name`) and what is wrong there; null when all of it can be stored.
 */
export function findUnstorable(value: unknown, path: string[] = [], depth = 0): { path: string; problem: string } | null {
  const at = (p: string[]) => p.join('.') || '(value)';
  if (typeof value === 'string') return textProblem(value) ? { path: at(path), problem: textProblem(value)! } : null;
  if (value === null || typeof value !== 'object') return null;
  if (depth >= MAX_JSON_DEPTH) return { path: at(path), problem: `nested deeper than ${MAX_JSON_DEPTH} levels` };
  for (const [key, item] of Object.entries(value)) {
    const keyProblem = textProblem(key);
    if (keyProblem) return { path: at([...path, key.replaceAll('\u0000', '\\u0000').toWellFormed()]), problem: `its key ${keyProblem}` };
    const found = findUnstorable(item, [...path, key], depth + 1);
    if (found !== null) return found;
  }
  return null;
}

function textProblem(text: string): string | null {
  if (text.includes('\u0000')) return 'contains a NUL character (\\u0000)';
  if (!text.isWellFormed()) return 'contains a lone UTF-16 surrogate';
  return null;
}

/** Longest error message stored with an attempt; longer ones are cut (the full one is in the log). */
export const MAX_ERROR_MESSAGE = 2_000;
/** Longest progress message stored with a job. */
export const MAX_PROGRESS_MESSAGE = 500;

/** `text` with NUL and lone surrogates replaced by U+FFFD, cut to `max` characters (marked with …) without splitting a pair. */
export function cleanText(text: string, max: number): string {
  const clean = text.includes('\u0000') ? text.replaceAll('\u0000', '\uFFFD') : text;
  return (clean.length > max ? `${clean.slice(0, max - 1)}…` : clean).toWellFormed();
}

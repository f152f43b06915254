// Times a client writes (a jobs list cursor, a job event's times) reach PostgreSQL only in a form
// it reads: JavaScript's Date and PostgreSQL disagree at the edges (offsets beyond ±15:59:59, year
// 0, 24:00, leap seconds), and each disagreement was a 500 (22008, 22009) where a 422 belongs.

/**
 * PostgreSQL takes a zone offset up to ±15:59:59 in timestamptz input ("time zone displacement out
 * of range", 22009, beyond); JavaScript's Date up to ±23:59.
 */
const MAX_OFFSET_SECONDS = 15 * 3600 + 59 * 60 + 59;
const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(\.\d{1,6})?(?:([+-])(\d{2})(?::?(\d{2})(?::?(\d{2}))?)?|Z)$/;
const pad = (n: number, width = 2) => String(n).padStart(width, '0');

/**
 * A timestamp as PostgreSQL writes it (`created_at::text`, under any session TimeZone) or as
 * `toISOString()` does, turned into the same instant in UTC, `YYYY-MM-DD HH:MM:SS[.ffffff]+00`,
 * its fraction kept as written (PostgreSQL's microseconds; a Date would round them to
 * milliseconds). Null for anything else: not that shape, not a real date and time (02-30, 24:00, a
 * leap second), an offset PostgreSQL refuses, or outside the years 0001 to 9999 once in UTC. So
 * what is not null is always read by PostgreSQL, as the instant the client meant.
 *
 * @example canonicalTimestamp('2026-11-24 10:00:00.5+05:30') // '2026-11-24 04:30:00.5+00'
 */
export function canonicalTimestamp(text: string): string | null {
  const m = TIMESTAMP.exec(text);
  if (!m) return null;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const offset = m[8] ? (m[8] === '-' ? -1 : 1) * (Number(m[9]) * 3600 + Number(m[10] ?? 0) * 60 + Number(m[11] ?? 0)) : 0;
  if (Number(m[10] ?? 0) > 59 || Number(m[11] ?? 0) > 59 || Math.abs(offset) > MAX_OFFSET_SECONDS) return null;
  // setUTCFullYear, not Date.UTC: the latter reads years 0 to 99 as 1900 to 1999
  const local = new Date(0);
  local.setUTCFullYear(year, month - 1, day);
  local.setUTCHours(hour, minute, second, 0);
  // a real date and time: Date rolls 02-30 and 24:00 over, so compare the fields back
  if (local.getUTCFullYear() !== year || local.getUTCMonth() !== month - 1 || local.getUTCDate() !== day || local.getUTCHours() !== hour || local.getUTCMinutes() !== minute || local.getUTCSeconds() !== second) return null;
  const utc = new Date(local.getTime() - offset * 1000);
  const y = utc.getUTCFullYear();
  if (y < 1 || y > 9999) return null;
  return `${pad(y, 4)}-${pad(utc.getUTCMonth() + 1)}-${pad(utc.getUTCDate())} ${pad(utc.getUTCHours())}:${pad(utc.getUTCMinutes())}:${pad(utc.getUTCSeconds())}${m[7] ?? ''}+00`;
}

// Seeded generators of hostile input for the property tests of the HTTP surface's parsers
// (packages/jobgate/src/**/*.property.test.ts, test/e2e/http-parsers.test.ts): strings that
// look almost right (timestamps with odd offsets and years, base64url cursors of them, UUIDs with a
// wrong digit, cron fields out of range, time zone names slightly off, numbers past int4 or
// float64), and plain noise (unicode, NUL, lone surrogates, very long). Seeded: a failure names
// its seed (PROPERTY_SEED reruns it).

/** The seed of this run: PROPERTY_SEED if set, else a fresh one (printed by the tests). */
export const PROPERTY_SEED = Number(process.env.PROPERTY_SEED ?? Math.floor(Math.random() * 2 ** 31));

/** mulberry32: small, seeded, good enough to pick test cases. */
export function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  return { next, int, pick, chance: (p: number) => next() < p };
}
export type Rng = ReturnType<typeof prng>;
export type Gen = (r: Rng) => string;

const digits = (r: Rng, n: number) => Array.from({ length: n }, () => r.int(10)).join('');
const pad = (n: number, width: number) => String(n).padStart(width, '0');
const hex = (r: Rng, n: number) => Array.from({ length: n }, () => r.pick('0123456789abcdefABCDEFgz-'.split(''))).join('');

/** One code unit or code point, biased to the ones that break things: NUL, lone surrogates, controls, astral, RTL marks, separators. */
function char(r: Rng): string {
  switch (r.int(10)) {
    case 0: return '\u0000';
    case 1: return String.fromCharCode(0xd800 + r.int(0x800)); // a lone surrogate
    case 2: return String.fromCharCode(r.int(0x20));
    case 3: return String.fromCodePoint(0x10000 + r.int(0x10ffff - 0x10000));
    case 4: return r.pick(['\u202e', '\ufeff', '\u2028', '\uffff', '\ufffe', '%', '%00', '|', '=', '&', '#', '?', '/', '\\', "'", '"', '+', ' ', '\n', '*', ',', '-', ':', '.']);
    case 5: return String.fromCharCode(0x80 + r.int(0xff80));
    default: return String.fromCharCode(0x20 + r.int(0x5f));
  }
}

/** Noise: 0 to 40 characters mostly, sometimes thousands. */
export const noise: Gen = (r) => {
  const length = r.chance(0.03) ? 1_000 + r.int(20_000) : r.int(40);
  let out = '';
  for (let i = 0; i < length; i++) out += char(r);
  return out;
};

/** A number as a client might write it: int4 and safe-integer edges, floats, huge, NaN, hex, with spaces. */
export const numberText: Gen = (r) =>
  r.pick([
    () => String(r.int(1_000) - 100),
    () => r.pick(['0', '-0', '1', '-1', '500', '501', '2147483647', '2147483648', '-2147483648', '-2147483649', '4294967296', '9007199254740991', '9007199254740993', '1000000', '1000001', '31536000', '31536001', '10080', '43200']),
    () => `${r.int(1000)}.${digits(r, 1 + r.int(20))}`,
    () => `${r.pick(['', '-'])}${r.int(10)}e${r.pick(['', '-', '+'])}${r.int(400)}`,
    () => r.pick(['1e309', '-1e309', 'NaN', 'Infinity', '-Infinity', '0x10', '0b11', '0o7', '1_000', ' 5 ', '5 ', '', '.5', '5.', '+5', '--5', '1e-324', '5e-324', '4.9e-324']),
    () => digits(r, 20 + r.int(400)),
    () => `${r.int(100)}${noise(r).slice(0, 3)}`,
  ])();

/**
 * A timestamp in PostgreSQL's or ISO's shape with each field drawn near or past its range: years
 * 0000 to 99999 (and BC), months 00 to 19, days 00 to 39, 24:00, leap seconds, fractions of 0 to 9
 * digits, offsets from ±00 to ±29 with and without minutes and seconds.
 */
export const timestamp: Gen = (r) => {
  const year = r.pick([() => pad(r.int(10_000), 4), () => r.pick(['0000', '0001', '1969', '1970', '2026', '9999']), () => String(10_000 + r.int(90_000)), () => pad(r.int(100), 2)])();
  const field = (max: number, edge: number[]) => (r.chance(0.8) ? pad(r.int(max), 2) : pad(r.pick(edge), 2));
  const date = `${year}-${field(13, [0, 13, 19, 99])}-${field(29, [0, 29, 30, 31, 32, 39])}`;
  const time = `${field(24, [23, 24, 25, 99])}:${field(60, [59, 60, 99])}:${field(60, [59, 60, 61])}`;
  const fraction = r.chance(0.5) ? `.${digits(r, 1 + r.int(9))}` : '';
  const sign = r.pick(['+', '-']);
  const offset = r.pick([
    () => 'Z',
    () => '',
    () => `${sign}${pad(r.int(30), 2)}`,
    () => `${sign}${pad(r.int(30), 2)}:${pad(r.int(100), 2)}`,
    () => `${sign}${pad(r.int(30), 2)}${pad(r.int(60), 2)}`,
    () => `${sign}${pad(r.int(17), 2)}:${pad(r.int(60), 2)}:${pad(r.int(100), 2)}`,
    () => `${sign}${r.pick(['15:59', '15:59:59', '16:00', '16', '23:59', '24:00', '00'])}`,
    () => r.pick([' BC', ' AD', ' UTC', ' Europe/Berlin', '+1:00', '+5']),
  ])();
  return `${date}${r.pick([' ', 'T', 't', '  ', '_'])}${time}${fraction}${offset}`;
};

/** A real date and time with an offset from -23:59 to +23:59 (PostgreSQL reads up to ±15:59:59), years 0001 to 9999. */
export const plausibleTimestamp: Gen = (r) => {
  const at = new Date(Date.UTC(2000, 0, 1) + (r.next() - 0.5) * 2 * 30 * 365 * 86_400_000);
  if (r.chance(0.1)) at.setUTCFullYear(r.pick([1, 2, 9999, 9998]));
  const fraction = r.pick(['', `.${digits(r, 1 + r.int(6))}`]);
  const offset = r.pick(['+00', 'Z', `${r.pick(['+', '-'])}${pad(r.int(24), 2)}:${pad(r.pick([0, 30, 45, r.int(60)]), 2)}`, `${r.pick(['+', '-'])}15:59:${pad(r.int(60), 2)}`]);
  return `${at.toISOString().slice(0, 19).replace('T', r.pick([' ', 'T']))}${fraction}${offset}`;
};

/** A UUID, or one a character, a dash or a case away from one. */
export const uuid: Gen = (r) => {
  const valid = () => `${hex(r, 0)}${Array.from({ length: 32 }, () => r.pick('0123456789abcdef'.split(''))).join('').replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5')}`;
  return r.pick([
    valid,
    () => valid().toUpperCase(),
    () => r.pick(['00000000-0000-0000-0000-000000000000', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '00000000-0000-4000-8000-000000000000']),
    () => `{${valid()}}`,
    () => valid().replaceAll('-', ''),
    () => `${valid()}${r.pick(['0', ' ', '\u0000', '-', '%00'])}`,
    () => `${hex(r, 8)}-${hex(r, 4)}-${hex(r, 4)}-${hex(r, 4)}-${hex(r, 12)}`,
    () => valid().slice(0, r.int(36)),
    () => noise(r),
  ])();
};

/** A jobs list cursor: base64url of "<time>|<id>" in every near miss, or noise. */
export const cursor: Gen = (r) => {
  const text = r.pick([
    () => `${timestamp(r)}|${uuid(r)}`,
    () => `${plausibleTimestamp(r)}|${uuid(r)}`,
    () => `${plausibleTimestamp(r)}|${uuid(r)}`,
    () => `${timestamp(r)}|${uuid(r)}|${uuid(r)}`,
    () => `${timestamp(r)}`,
    () => `|${uuid(r)}`,
    () => `${noise(r)}|${uuid(r)}`,
    () => `${timestamp(r)}|${noise(r)}`,
  ])();
  return r.pick([
    // well-formed often enough that a few hundred draws always reach past the parser's door
    () => Buffer.from(`${plausibleTimestamp(r)}|00000000-0000-4000-8000-000000000000`).toString('base64url'),
    () => Buffer.from(text).toString('base64url'),
    () => Buffer.from(text).toString('base64'),
    () => Buffer.from(text).toString('base64url').slice(0, -1 - r.int(4)),
    () => text,
    () => noise(r),
  ])();
};

const CRON_FIELD = ['*', '*/0', '*/1', '*/61', '0', '59', '60', '61', '-1', '1-', '-', '5-1', '1-5/2', '1,2,,3', 'L', 'W', '15W', '5L', '1#5', '1#6', '?', 'MON-SUN', 'JAN-DEC', 'FOO', '0-59', '0-99', '31', '32', '2147483648', '7', '8', 'H', '', 'sun', '1-7'];
const RRULE_PART = ['FREQ=DAILY', 'FREQ=SECONDLY', 'FREQ=YEARLY', 'FREQ=WEEKLY', 'FREQ=NONE', 'INTERVAL=0', 'INTERVAL=2', 'INTERVAL=-1', 'COUNT=0', 'COUNT=1', 'COUNT=5', 'UNTIL=19000101T000000Z', 'UNTIL=29991231T000000Z', 'UNTIL=20261301T000000Z', 'BYHOUR=9', 'BYHOUR=24', 'BYMINUTE=61', 'BYDAY=MO,FR', 'BYDAY=XX', 'BYMONTHDAY=-1', 'BYMONTH=13', 'WKST=SU'];

/**
 * A cron expression or an RRULE, mostly near misses; a few finished rules (no firing left). Rules
 * are a tenth of the draws and a DTSTART far from now rarer still: pg-boss walks such a rule from
 * its start, up to a second and more each (the test's time, not its coverage).
 */
export const recurrence: Gen = (r) => {
  if (r.chance(0.01)) return `DTSTART:${r.pick(['20200101T000000Z', '19000101T000000', '20261301T000000Z', '30000101T000000Z'])}\nRRULE:${r.pick(['FREQ=DAILY;COUNT=1', 'FREQ=DAILY', 'FREQ=HOURLY;UNTIL=20200102T000000Z', 'FREQ=MONTHLY;INTERVAL=0'])}`;
  if (r.chance(0.1)) return Array.from({ length: 1 + r.int(3) }, () => r.pick(RRULE_PART)).join(';');
  return r.pick([
    () => Array.from({ length: r.pick([1, 4, 5, 5, 5, 6, 6, 7]) }, () => (r.chance(0.75) ? r.pick(['*', '0', '*/5', '1-5', '12']) : r.pick(CRON_FIELD))).join(r.pick([' ', ' ', ' ', '  ', '\t'])),
    () => r.pick(['* * * * *', '0 2 * * *', '0 0 29 2 *', '0 0 30 2 *', '@daily', '@yearly', '@reboot', '@every 5m', '0 0 * * 8', '* * * * * *', '0 0 31 4 *']),
    () => noise(r),
  ])();
};

let zones: string[] | undefined;
/** A time zone name, one slightly off, an offset, a POSIX rule, or noise. */
export const timeZone: Gen = (r) => {
  zones ??= Intl.supportedValuesOf('timeZone');
  return r.pick([
    () => r.pick(zones!),
    () => r.pick(zones!).toLowerCase(),
    () => `${r.pick(zones!)}${r.pick(['x', '/', ' ', '\u0000'])}`,
    () => r.pick(['UTC', 'utc', 'Z', 'GMT', 'Etc/GMT+12', 'Etc/GMT-14', 'Etc/GMT+13', 'Etc/GMT-15', 'EST5EDT', 'Local', 'localtime', 'posixrules', 'right/UTC', 'Factory', 'US/Pacific-New', 'Asia/Calcutta', '../../etc/passwd', '', ' ']),
    () => `${r.pick(['+', '-', 'UTC+', 'GMT-'])}${pad(r.int(30), 2)}${r.pick(['', `:${pad(r.int(70), 2)}`])}`,
    () => noise(r),
  ])();
};

/** A job state, name or route filter: a real one, one nearly so, or noise. */
export const filterText: Gen = (r) =>
  r.pick([
    () => r.pick(['queued', 'forwarding', 'forwarded', 'active', 'completed', 'failed', 'cancelled', 'main', 'fetcher', 'demo.light', 'demo.heavy']),
    () => r.pick(['QUEUED', 'queued ', 'both', '*', '%', '_', "'", 'demo.%', 'x'.repeat(101)]),
    () => noise(r),
  ])();

/** A payload filter: `key=value` with every kind of value (JSON numbers past float64, strings, noise). */
export const payloadFilter: Gen = (r) =>
  r.pick([
    () => `${r.pick(['sleepMs', 'barcode', 'a.b', 'x'.repeat(100), 'x'.repeat(101), '', 'k-1'])}=${r.pick([numberText, noise, () => r.pick(['true', 'null', '{}', '[]', '"x"', '"\\u0000"', '"\\ud800"'])])(r)}`,
    () => noise(r),
  ])();

/** Any of the above. */
export const anyText: Gen = (r) => r.pick([noise, numberText, timestamp, uuid, cursor, recurrence, timeZone, filterText, payloadFilter])(r);

/**
 * JSON text a client could send where a number goes: numbers past int4, float64 (`1e400`, which
 * JSON.parse reads as Infinity) and the smallest subnormal, fractions, strings, null, arrays.
 */
export const jsonNumber: Gen = (r) =>
  r.pick([
    () => r.pick(['0', '-0', '1', '-1', '0.5', '1.0', '1e308', '1e-320', '5e-324', '2147483647', '2147483648', '-2147483648', '-2147483649', '9007199254740993', '1e400', '-1e400', '100', '101', '1000000', '1000001', '-1000001', '31536000', '31536001', '10080', '10081', '43200', '43201', '3600', '3601']),
    () => String(r.int(2_000_000_000) * r.pick([1, -1, 0.5, 3, 1e-9])),
    () => `${1 + r.int(9)}${digits(r, 20 + r.int(400))}`,
    () => JSON.stringify(numberText(r)),
    () => r.pick(['null', 'true', '[]', '{}', '[1]', '"5"']),
  ])();

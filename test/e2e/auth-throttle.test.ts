// The wrong-credentials throttle under a flood: 1,000 wrong attempts at once from one address, over
// HTTP Basic (/admin/api/*), the login form (POST /admin/login) and Bearer tokens (/api/*), spread
// over two main processes on one database. At most the per-address budget (5 a minute) is ever
// checked (401); the rest are 429 with Retry-After; and the flood neither reaches the ceiling for
// all addresses nor keeps the right credential out for anyone else.
//
// Each client address is a real source address (all of 127.0.0.0/8 is loopback on Linux): main
// believes no X-Forwarded-For that is not sent, so req.ip is the socket's address.
import { Agent, request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMain, TEST_API_TOKEN, type AppProcess } from '../support/apps.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';

const ADMIN_PASSWORD = 'auth-throttle-admin-password';
const BUDGET = 5;
const FLOOD = 1_000;

let db: TestDatabase;
let mains: AppProcess[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  // two instances on one database: the budget is per address across all of them
  mains = await Promise.all([0, 1].map(() => startMain({ DATABASE_URL: db.url, ADMIN_PASSWORD })));
});
afterAll(async () => {
  await Promise.all(mains.map((m) => m.stop()));
  await db?.drop();
});

interface Answer {
  status: number;
  retryAfter: string | undefined;
}

// many sockets at once per source address, so the requests really are in flight together
const agents = new Map<string, Agent>();
const agentFor = (address: string) => agents.get(address) ?? agents.set(address, new Agent({ keepAlive: true, maxSockets: 200 })).get(address)!;
afterAll(() => agents.forEach((a) => a.destroy()));

/** One request to main `i % 2` from the source address `from`. */
function send(i: number, from: string, method: string, path: string, headers: Record<string, string>, body?: string): Promise<Answer> {
  const main = mains[i % mains.length]!;
  return new Promise((resolve, reject) => {
    const req = request(`${main.url}${path}`, { method, headers: body === undefined ? headers : { ...headers, 'content-length': String(Buffer.byteLength(body)) }, localAddress: from, agent: agentFor(from) }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, retryAfter: res.headers['retry-after'] }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

const basic = (password: string) => ({ authorization: `Basic ${Buffer.from(`admin:${password}`).toString('base64')}` });
const form = (password: string) => `password=${encodeURIComponent(password)}`;
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

const ATTEMPTS = {
  basic: {
    wrong: (i: number, from: string) => send(i, from, 'GET', '/admin/api/catalogue', basic(`wrong-${i}`)),
    right: (i: number, from: string) => send(i, from, 'GET', '/admin/api/catalogue', basic(ADMIN_PASSWORD)),
    ok: 200,
  },
  // no Origin and no Sec-Fetch-Site, as a script (or curl) posts: guardChange lets it through
  form: {
    wrong: (i: number, from: string) => send(i, from, 'POST', '/admin/login', FORM, form(`wrong-${i}`)),
    right: (i: number, from: string) => send(i, from, 'POST', '/admin/login', FORM, form(ADMIN_PASSWORD)),
    ok: 303,
  },
  bearer: {
    wrong: (i: number, from: string) => send(i, from, 'GET', '/api/jobs?limit=1', { authorization: `Bearer wrong-token-${i}` }),
    right: (i: number, from: string) => send(i, from, 'GET', '/api/jobs?limit=1', { authorization: `Bearer ${TEST_API_TOKEN}` }),
    ok: 200,
  },
};

describe('the wrong-credentials throttle under a flood from one address', () => {
  // each flood from its own address, the right credential from another one
  const cases = [
    ['basic', '127.0.0.2', '127.0.0.12'],
    ['form', '127.0.0.3', '127.0.0.13'],
    ['bearer', '127.0.0.4', '127.0.0.14'],
  ] as const;

  it.each(cases)(`%s: ${FLOOD} wrong at once from %s check at most ${BUDGET}, the rest 429 with Retry-After; the right one from %s gets in`, async (kind, attacker, admin) => {
    const attempt = ATTEMPTS[kind];
    const t0 = performance.now();
    const flood = Promise.all(Array.from({ length: FLOOD }, (_, i) => attempt.wrong(i, attacker)));
    // the right credential from another address while the flood is in flight, on either instance
    const during = (await Promise.all([attempt.right(0, admin), attempt.right(1, admin)])).map((a) => a.status);
    const duringMs = Math.round(performance.now() - t0);
    const answers = await flood;
    const floodMs = Math.round(performance.now() - t0);
    const checked = answers.filter((a) => a.status === 401).length;
    const refused = answers.filter((a) => a.status === 429);
    // the flood's address stays shut, even for the right password (else a flood would be an oracle);
    // a right token costs no query, so it gets in anyway (tokens are long and random, not guessed)…
    const flooder = (await attempt.right(0, attacker)).status;
    // …and everyone else is let in, on either instance
    const after = [(await attempt.right(0, admin)).status, (await attempt.right(1, admin)).status];
    console.log(`${kind}: ${FLOOD} wrong at once from one address over ${mains.length} mains → ${checked} × 401, ${refused.length} × 429; the right one from another address during the flood ${during.join(' and ')} (answered after ${duringMs} ms; the flood took ${floodMs} ms); after it, from the flood's address ${flooder}, from another ${after.join(' and ')}`);
    expect(checked + refused.length).toBe(FLOOD);
    expect(checked).toBeGreaterThan(0);
    // the budget is one counter per address in PostgreSQL, whichever instance asks
    expect(checked).toBeLessThanOrEqual(BUDGET);
    expect(refused.every((a) => Number(a.retryAfter) >= 1 && Number(a.retryAfter) <= 60)).toBe(true);
    expect(flooder).toBe(kind === 'bearer' ? attempt.ok : 429);
    expect(during).toEqual([attempt.ok, attempt.ok]);
    expect(after).toEqual([attempt.ok, attempt.ok]);
  });

  it('counts only wrong credentials: the right password sent many times at once from one address is never throttled', async () => {
    const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => (i % 2 ? ATTEMPTS.basic : ATTEMPTS.form).right(i, '127.0.0.5')));
    expect(answers.map((a) => a.status)).toEqual(answers.map((_, i) => (i % 2 ? 200 : 303)));
    const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM jobgate.auth_throttle WHERE address LIKE '%127.0.0.5'`);
    expect(rows[0].n).toBe(0);
  });
});

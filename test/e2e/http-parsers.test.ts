// Every client error is a 4xx: what a client writes into a query, a path or a body is parsed into
// what PostgreSQL and the libraries accept before it reaches them. Against a real main and fetcher
// on a real PostgreSQL: the finding's cursor on each list, then generated strings (seeded, as in
// packages/jobgate/src/**/*.property.test.ts) into every parser of both HTTP surfaces.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSecrets, signedHeaders } from '../../packages/jobgate/src/protocol/index.ts';
import { PROPERTY_SEED, cursor, filterText, jsonNumber, noise, numberText, payloadFilter, plausibleTimestamp, prng, recurrence, timeZone, timestamp, uuid, type Gen, type Rng } from '../support/adversarial.ts';
import { TEST_API_TOKEN, TEST_SHARED_SECRET, type AppProcess } from '../support/apps.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { ADMIN_PASSWORD, startPair, type Pair } from '../support/gateway.ts';

let db: TestDatabase;
let pair: Pair;
let main: AppProcess;

beforeAll(async () => {
  db = await createTestDatabase();
  pair = await startPair(db);
  main = pair.main;
});
afterAll(async () => {
  await pair?.stop();
  await db?.drop();
});

const API = { authorization: `Bearer ${TEST_API_TOKEN}` };
const ADMIN = { authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}` };
const LIST_ROUTES = [
  { path: '/api/jobs', headers: API },
  { path: '/admin/api/jobs', headers: ADMIN },
  { path: '/admin/jobs', headers: ADMIN },
];

describe('the jobs list cursor', () => {
  // the finding: an offset JavaScript's Date takes (up to ±23:59) but PostgreSQL does not (±15:59:59)
  const cursor = Buffer.from('2026-12-04 13:34:52+23:59|00000000-0000-4000-8000-000000000000').toString('base64url');

  it.each(LIST_ROUTES)('with an offset PostgreSQL refuses is a 422 naming cursor on $path', async ({ path, headers }) => {
    const res = await fetch(`${main.url}${path}?cursor=${cursor}`, { headers });
    const text = await res.text();
    expect(res.status, text.slice(0, 300)).toBe(422);
    expect(text).toContain('cursor');
  });

  it.each(LIST_ROUTES)('within PostgreSQL range pages on $path', async ({ path, headers }) => {
    for (const offset of ['+15:59', '-15:59:59', '+05:30', '-00']) {
      const at = Buffer.from(`2026-12-04 13:34:52.123456${offset}|00000000-0000-4000-8000-000000000000`).toString('base64url');
      const res = await fetch(`${main.url}${path}?cursor=${at}`, { headers });
      expect(res.status, `${offset}: ${(await res.text()).slice(0, 300)}`).toBe(200);
    }
  });
});

describe('what the property test below found on the code before (each a 500 then)', () => {
  const signed = (app: AppProcess, path: string, purpose: string, body: unknown) => {
    const text = JSON.stringify(body);
    return fetch(`${app.url}${path}`, { method: 'POST', headers: { ...JSON_TYPE, ...signedHeaders(keys, `${purpose}_${randomUUID()}`, text) }, body: text });
  };

  it('a schedule whose RRULE has no firing left is a 422 naming schedule (pg-boss schedule() refused it after the checks)', async () => {
    const res = await call('POST', '/admin/api/schedules', 'admin', JSON.stringify({ name: 'demo.light', schedule: 'DTSTART:20200101T000000Z\nRRULE:FREQ=DAILY;COUNT=1', timeZone: 'UTC' }));
    expect(res.status, JSON.stringify(res.json)).toBe(422);
    expect(res.json.errors).toEqual([{ path: 'schedule', message: expect.stringContaining('no firing left') }]);
  });

  it("a job event's time PostgreSQL refuses, or a number past its column, is a 422 (the fetcher sets such events aside instead of retrying them forever)", async () => {
    const event = { jobId: randomUUID(), seq: 1, type: 'active', attempt: 1, at: new Date().toISOString() };
    for (const bad of [{ at: '2026-12-04 13:34:52+23:59' }, { at: '2026-13-04T10:00:00Z' }, { startedAt: '0000-01-01T00:00:00Z' }, { seq: 2 ** 31 }, { progress: 1.5 }, { progress: 101 }, { peakRssMb: 2 ** 31 }]) {
      const res = await signed(main, '/internal/v1/job-events', 'evt', { events: [{ ...event, ...bad }] });
      expect(res.status, `${JSON.stringify(bad)}: ${await res.text()}`).toBe(422);
    }
    expect((await signed(main, '/internal/v1/job-events', 'evt', { events: [event] })).status).toBe(200);
  });

  it("a priority or delay past int4 in a submission to the fetcher, or in a fetcher job's children, is a 422", async () => {
    for (const options of [{ priority: 2 ** 31 }, { delaySeconds: 2 ** 32 }]) {
      const res = await signed(pair.fetcher!, '/v1/jobs', 'fwd', { jobs: [{ id: randomUUID(), name: 'demo.heavy', payload: {}, options }] });
      expect(res.status, `${JSON.stringify(options)}: ${await res.text()}`).toBe(422);
    }
    const res = await signed(main, '/internal/v1/children', 'spn', { jobs: [{ id: randomUUID(), name: 'demo.light', payload: {}, priority: 2 ** 31 }], batches: [], seal: [] });
    expect(res.status, await res.text()).toBe(422);
  });
});

// ---- generated strings into every parser, over HTTP ----

const REQUESTS = Number(process.env.PROPERTY_REQUESTS ?? 2_000);
const keys = parseSecrets(TEST_SHARED_SECRET);
const JSON_TYPE = { 'content-type': 'application/json' };

/** Percent-encodes each UTF-8 byte (a lone surrogate goes as U+FFFD's bytes, as a browser sends it); sometimes raw bytes that are not UTF-8. */
function enc(r: Rng, text: string): string {
  const bytes = Buffer.from(text, 'utf8');
  const encoded = [...bytes].map((b) => (/[A-Za-z0-9._~-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).padStart(2, '0')}`)).join('');
  return r.chance(0.03) ? `${encoded}${r.pick(['%ff%fe', '%c0%af', '%', '%zz', '%00'])}` : encoded;
}

/** A query string of some of `fields`, a field sometimes twice (express reads an array). */
function queryString(r: Rng, fields: Record<string, Gen>): string {
  const parts: string[] = [];
  for (const [key, gen] of Object.entries(fields)) {
    if (!r.chance(0.5)) continue;
    for (let n = r.chance(0.1) ? 2 : 1; n > 0; n--) parts.push(`${key}=${enc(r, gen(r))}`);
  }
  if (r.chance(0.05)) parts.push(`${enc(r, noise(r)) || 'x'}=${enc(r, noise(r))}`);
  return parts.join('&');
}

interface Sent { app: 'main' | 'fetcher'; method: string; path: string; body?: string; auth?: 'api' | 'admin'; signed?: string; then?: (status: number, json: any) => Promise<void> }
interface Probe { parser: string; send: (r: Rng) => Sent }

const str = (r: Rng, gen: Gen) => JSON.stringify(gen(r));
const LISTS = [['/api/jobs', 'api'], ['/admin/api/jobs', 'admin'], ['/admin/jobs', 'admin']] as const;
const ID_ROUTES = [['GET', '/api/jobs/', '', 'api'], ['GET', '/api/batches/', '', 'api'], ['GET', '/admin/api/jobs/', '', 'admin'], ['GET', '/admin/jobs/', '', 'admin'], ['GET', '/admin/api/batches/', '', 'admin'], ['GET', '/admin/batches/', '', 'admin'], ['GET', '/admin/api/schedules/', '', 'admin'], ['POST', '/admin/api/jobs/', '/cancel', 'admin'], ['POST', '/admin/api/schedules/', '/run', 'admin'], ['DELETE', '/admin/api/schedules/', '', 'admin']] as const;
let scheduleId = '';

const PROBES: Probe[] = [
  { parser: 'cursor', send: (r) => { const [path, auth] = r.pick(LISTS); return { app: 'main', method: 'GET', path: `${path}?cursor=${enc(r, cursor(r))}`, auth }; } },
  { parser: 'list filters', send: (r) => { const [path, auth] = r.pick(LISTS); return { app: 'main', method: 'GET', path: `${path}?${queryString(r, { state: filterText, name: filterText, route: filterText, limit: numberText, cursor, ...(auth === 'admin' ? { payload: payloadFilter } : {}) })}`, auth }; } },
  { parser: 'ids', send: (r) => { const [method, before, after, auth] = r.pick(ID_ROUTES); return { app: 'main', method, path: `${before}${enc(r, uuid(r))}${after}`, auth, ...(method === 'POST' ? { body: '{}' } : {}) }; } },
  {
    parser: 'job names',
    send: (r) => {
      const [path, body] = r.pick([['/api/jobs/*', '{"payload": {}}'], ['/admin/api/jobs/*/run', '{"payload": {}}'], ['/admin/api/jobs/*/pause', '{"reason": "x", "expiresInMinutes": 1}'], ['/admin/api/jobs/*/resume', '{}']]);
      return { app: 'main', method: 'POST', path: path.replace('*', enc(r, filterText(r))), auth: 'admin', body };
    },
  },
  { parser: 'enqueue numbers', send: (r) => ({ app: 'main', method: 'POST', path: r.pick(['/api/jobs/demo.light', '/admin/api/jobs/demo.light/run']), auth: 'admin', body: `{"payload": {}${r.chance(0.7) ? `, "priority": ${jsonNumber(r)}` : ''}${r.chance(0.7) ? `, "delaySeconds": ${jsonNumber(r)}` : ''}}` }) },
  { parser: 'override', send: (r) => ({ app: 'main', method: 'PUT', path: '/admin/api/override', auth: 'admin', body: `{"enabled": ${r.pick(['true', 'false'])}, "reason": ${str(r, r.chance(0.5) ? () => 'fuzzing' : noise)}, "expiresInMinutes": ${jsonNumber(r)}}` }) },
  { parser: 'pause', send: (r) => ({ app: 'main', method: 'POST', path: `/admin/api/jobs/${r.pick(['demo.light', '*', 'no.such'])}/${r.pick(['pause', 'resume'])}`, auth: 'admin', body: `{"reason": ${str(r, r.chance(0.5) ? () => 'fuzzing' : noise)}${r.chance(0.8) ? `, "expiresInMinutes": ${jsonNumber(r)}` : ''}}` }) },
  {
    parser: 'schedule create',
    send: (r) => ({
      app: 'main', method: 'POST', path: '/admin/api/schedules', auth: 'admin',
      body: `{"name": "demo.light", "schedule": ${str(r, recurrence)}, "timeZone": ${str(r, r.chance(0.7) ? timeZone : () => 'UTC')}, "enabled": ${r.pick(['true', 'true', 'false'])}}`,
      // one made is gone again at once: no firings pile up
      then: async (status, json) => { if (status === 201) await call('DELETE', `/admin/api/schedules/${json.id}`, 'admin'); },
    }),
  },
  { parser: 'schedule change', send: (r) => ({ app: 'main', method: 'PATCH', path: `/admin/api/schedules/${scheduleId}`, auth: 'admin', body: JSON.stringify({ ...(r.chance(0.8) ? { schedule: recurrence(r) } : {}), ...(r.chance(0.6) ? { timeZone: timeZone(r) } : {}), ...(r.chance(0.2) ? { enabled: true } : {}) }) }) },
  { parser: 'overview window', send: (r) => ({ app: 'main', method: 'GET', path: `${r.pick(['/admin/api/overview', '/admin/overview'])}?window=${enc(r, r.chance(0.3) ? r.pick(['hour', 'day']) : noise(r))}`, auth: 'admin' }) },
  { parser: 'login next', send: (r) => ({ app: 'main', method: 'GET', path: `/admin/login?next=${enc(r, r.pick([noise, () => `/admin/${noise(r)}`, () => `/admin/jobs?cursor=${cursor(r)}`])(r))}` }) },
  { parser: 'bulk filter', send: (r) => ({ app: 'main', method: 'POST', path: '/admin/api/jobs/bulk', auth: 'admin', body: JSON.stringify({ action: r.pick(['retry', 'cancel']), filter: { name: 'no.such.job', ...(r.chance(0.9) ? { payload: payloadFilter(r) } : {}), ...(r.chance(0.3) ? { state: filterText(r) } : {}) } }) }) },
  {
    parser: 'job events',
    send: (r) => ({
      app: 'main', method: 'POST', path: '/internal/v1/job-events', signed: 'evt',
      body: `{"events": [{"jobId": "${randomUUID()}", "seq": ${r.chance(0.5) ? '1' : jsonNumber(r)}, "type": "${r.pick(['active', 'progress', 'completed'])}", "attempt": ${r.chance(0.7) ? '1' : jsonNumber(r)}, "at": ${str(r, r.chance(0.4) ? plausibleTimestamp : timestamp)}${r.chance(0.3) ? `, "startedAt": ${str(r, r.chance(0.5) ? plausibleTimestamp : timestamp)}` : ''}${r.chance(0.3) ? `, "progress": ${jsonNumber(r)}` : ''}${r.chance(0.3) ? `, "peakRssMb": ${jsonNumber(r)}` : ''}}]}`,
    }),
  },
  // (each field valid often enough that every seed reaches the claim itself: seed 1540425864 sent 117, none valid)
  { parser: 'claims', send: (r) => ({ app: 'main', method: 'POST', path: '/internal/v1/claims', signed: 'clm', body: `{"jobId": ${r.chance(0.5) ? `"${randomUUID()}"` : str(r, uuid)}, "attempt": ${r.chance(0.7) ? '1' : jsonNumber(r)}, "claimSeconds": ${r.chance(0.7) ? '30' : jsonNumber(r)}}` }) },
  { parser: 'children', send: (r) => ({ app: 'main', method: 'POST', path: '/internal/v1/children', signed: 'spn', body: `{"jobs": [{"id": "${randomUUID()}", "name": "demo.light", "payload": {}${r.chance(0.7) ? `, "priority": ${jsonNumber(r)}` : ''}${r.chance(0.5) ? `, "delaySeconds": ${jsonNumber(r)}` : ''}}], "batches": [], "seal": []}` }) },
  { parser: 'fetcher submission', send: (r) => ({ app: 'fetcher', method: 'POST', path: '/v1/jobs', signed: 'fwd', body: `{"jobs": [{"id": "${randomUUID()}", "name": "demo.heavy", "payload": {"sleepMs": 0}, "options": {${[r.chance(0.7) ? `"priority": ${jsonNumber(r)}` : '', r.chance(0.7) ? `"delaySeconds": ${jsonNumber(r)}` : ''].filter(Boolean).join(', ')}}}]}` }) },
  { parser: 'fetcher job id', send: (r) => { const id = uuid(r); return { app: 'fetcher', method: 'GET', path: `/v1/jobs/${enc(r, id)}`, signed: `get_${id.replace(/[^A-Za-z0-9_:-]/g, '')}` }; } },
];

const AUTH = { api: `Bearer ${TEST_API_TOKEN}`, admin: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}` };

async function call(method: string, path: string, auth: 'api' | 'admin', body?: string) {
  const res = await fetch(`${main.url}${path}`, { method, headers: { authorization: AUTH[auth], ...(body ? JSON_TYPE : {}) }, body });
  return { status: res.status, json: (await res.json().catch(() => null)) as any };
}

describe(`generated strings into every parser of both apps (seed ${PROPERTY_SEED})`, () => {
  it(`${REQUESTS} requests: no 5xx, every refusal a problem naming what was wrong`, async () => {
    const made = await call('POST', '/admin/api/schedules', 'admin', JSON.stringify({ name: 'demo.light', schedule: '0 0 1 1 *', timeZone: 'UTC' }));
    expect(made.status).toBe(201);
    scheduleId = made.json.id;
    const r = prng(PROPERTY_SEED);
    const byParser = new Map<string, Map<number, number>>();
    const took = new Map<string, number>();
    const problems: string[] = [];
    const pending = new Set<Promise<void>>();
    const started = Date.now();
    for (let i = 0; i < REQUESTS; i++) {
      const { parser, send } = PROBES[i % PROBES.length]!;
      const sent = send(r);
      const base = sent.app === 'main' ? main.url : pair.fetcher!.url;
      const headers: Record<string, string> = sent.body !== undefined ? { ...JSON_TYPE } : {};
      if (sent.auth) headers.authorization = AUTH[sent.auth];
      if (sent.signed) Object.assign(headers, signedHeaders(keys, `${sent.signed}_${randomUUID()}`.slice(0, 128), sent.body ?? ''));
      const sentAt = Date.now();
      const show = `#${i} ${parser}: ${sent.method} ${sent.path.slice(0, 160)}${sent.body ? ` ${sent.body.slice(0, 200)}` : ''}`;
      const request = fetch(`${base}${sent.path}`, { method: sent.method, headers, body: sent.body, signal: AbortSignal.timeout(30_000) }).then(
        async (res) => {
          const text = await res.text();
          const counts = byParser.get(parser) ?? new Map<number, number>();
          counts.set(res.status, (counts.get(res.status) ?? 0) + 1);
          byParser.set(parser, counts);
          took.set(parser, (took.get(parser) ?? 0) + Date.now() - sentAt);
          if (res.status >= 500) problems.push(`${show} → ${res.status} ${text.slice(0, 200)}`);
          else if (res.status >= 400 && res.status !== 431 && !/problem\+json|text\/html/.test(res.headers.get('content-type') ?? '')) problems.push(`${show} → ${res.status} as ${res.headers.get('content-type')}`);
          if (sent.then) await sent.then(res.status, text.startsWith('{') ? JSON.parse(text) : null);
        },
        (err: Error) => void problems.push(`${show} → no answer: ${err.message}`),
      );
      const tracked = request.finally(() => pending.delete(tracked));
      pending.add(tracked);
      if (pending.size >= 8) await Promise.race(pending);
    }
    await Promise.all(pending);
    const summary = [...byParser].map(([parser, counts]) => `${parser} ${[...counts].sort(([a], [b]) => a - b).map(([s, n]) => `${s}×${n}`).join(' ')} (${Math.round((took.get(parser) ?? 0) / [...counts.values()].reduce((a, b) => a + b, 0))} ms each)`).join('; ');
    console.log(`http parsers (PROPERTY_SEED=${PROPERTY_SEED}): ${REQUESTS} requests in ${Date.now() - started} ms → ${summary}; problems ${problems.length}`);
    expect(problems.slice(0, 20)).toEqual([]);
    // every parser was reached past its door: some of its inputs were taken (2xx, or a 404 for an id that parsed but names nothing)
    for (const [parser, counts] of byParser) expect([...counts.keys()].some((s) => s < 300 || s === 404), `${parser} never took an input`).toBe(true);
    expect(main.child.exitCode).toBeNull();
    expect(pair.fetcher!.child.exitCode).toBeNull();
  }, 300_000);
});

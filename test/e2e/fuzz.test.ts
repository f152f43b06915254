// Fuzz (FAULTS.md row 50, issue 15): thousands of generated malformed requests to every endpoint of
// both apps, anonymous and with valid credentials and signatures (so they reach the parsers and
// validators, not only the doors). Every answer must be a 4xx problem (or a 2xx read), never a 5xx
// or a stack trace, and nothing may change in either database. Seeded: a failure names its seed.
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseSecrets, signedHeaders } from '../../packages/jobgate/src/protocol/index.ts';
import { TEST_API_TOKEN, TEST_SHARED_SECRET } from '../support/apps.ts';
import { prng } from '../support/adversarial.ts';
import { ADMIN_PASSWORD, pairPerFile } from '../support/gateway.ts';
import { FETCHER_JOBS } from '../support/fetcher-jobs.ts';

const keys = parseSecrets(TEST_SHARED_SECRET);
const SEED = Number(process.env.FUZZ_SEED ?? 20261126);
const REQUESTS = 2_400;
const f = pairPerFile();

const WEIRD_STRINGS = ['', ' ', '\u0000', 'a\u0000b', '\ud800', '\udfff', '\u202e\u202d', '💥'.repeat(50), 'Ω'.repeat(3000), '%00', '../../etc/passwd', '<script>alert(1)</script>', "'; DROP TABLE jobs; --", '${7*7}', '__proto__', 'constructor', 'x'.repeat(70_000)];
const WEIRD_VALUES: unknown[] = [null, true, false, 0, -1, 1.5, 2 ** 53 + 1, -(2 ** 63), [], {}, [[[]]], { __proto__: { polluted: true } }, ...WEIRD_STRINGS];

/** A JSON text that is not a valid request for any route: broken, too deep, huge numbers, wrong shapes. */
function badBody(r: ReturnType<typeof prng>): string | Buffer {
  switch (r.int(13)) {
    // valid but for one lone surrogate, which jsonb cannot store (reaches the database unless refused)
    case 12: return `{"payload": {"to": "u${r.pick(['\\ud800', '\\udfff', '\\ud83d'])}", "subject": "x", "body": "${r.pick(['', '\\ud800x'])}"}}`;
    case 0: return '{"payload": {"sleepMs": 1';
    case 1: return '['.repeat(5_000 + r.int(50_000)) + ']'.repeat(10);
    case 2: return `{"payload": {"sleepMs": ${'9'.repeat(400)}}, "priority": 1e400}`;
    case 3: return JSON.stringify({ payload: r.pick(WEIRD_VALUES), priority: r.pick(WEIRD_VALUES), delaySeconds: r.pick(WEIRD_VALUES), extra: r.pick(WEIRD_VALUES) });
    case 4: return JSON.stringify({ jobs: [{ id: r.pick(WEIRD_STRINGS), name: r.pick(WEIRD_STRINGS), payload: r.pick(WEIRD_VALUES), options: r.pick(WEIRD_VALUES) }] });
    case 5: return JSON.stringify({ events: [{ jobId: randomUUID(), seq: r.pick([0, -1, 1.5, 'x', null]), type: r.pick(['active', 'exploded', '']), attempt: r.pick(WEIRD_VALUES), at: r.pick(WEIRD_STRINGS) }] });
    case 6: return JSON.stringify({ jobId: r.pick([randomUUID(), ...WEIRD_STRINGS]), attempt: r.pick([0, -5, 1e12, 'one', null]), claimSeconds: r.pick([0, 1e9, 'x']) });
    case 7: return JSON.stringify({ enabled: r.pick(WEIRD_VALUES), reason: r.pick(WEIRD_STRINGS), expiresInMinutes: r.pick(WEIRD_VALUES), x: 1 });
    case 8: return Buffer.from([0xff, 0xfe, 0x7b, 0x00, 0xc0, 0xaf, 0x22, 0x7d]); // not UTF-8
    // a bare value (never an object: `{}` is a valid enqueue of a job whose payload fields are all optional)
    case 9: return JSON.stringify(r.pick(WEIRD_VALUES.filter((v) => typeof v !== 'object' || v === null || Array.isArray(v))));
    case 10: return JSON.stringify({ action: r.pick(['retry', 'cancel', 'explode']), filter: r.pick([{}, { payload: 'no-equals-sign' }, { state: 'sleeping' }, null]) });
    default: return `{"payload": {"label": "${'\\u0000'}"}}`;
  }
}

const ODD_CONTENT_TYPES = ['application/json', 'application/json; charset=utf-16', 'application/json;;;', 'text/json', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', ''];

interface Target { app: 'main' | 'fetcher'; method: string; path: (r: ReturnType<typeof prng>) => string; signed?: string; auth?: 'api' | 'admin' }
const id = (r: ReturnType<typeof prng>) => r.pick([randomUUID(), 'not-a-uuid', '%00', '%ff%fe', '..%2f..%2fetc', 'x'.repeat(2_000), '00000000-0000-0000-0000-000000000000']);
const TARGETS: Target[] = [
  { app: 'main', method: 'GET', path: (r) => `/api/jobs?${r.pick(['limit=-1', 'limit=1e309', 'state[]=x', 'state=sleeping', `cursor=${Buffer.from(r.pick(WEIRD_STRINGS)).toString('base64url')}`, 'name=%00', 'route=both&limit=0', 'limit=500&limit=2'])}`, auth: 'api' },
  { app: 'main', method: 'POST', path: (r) => `/api/jobs/${r.pick(['demo.light', 'test.remote', 'notifications.send', 'notifications.send', 'maintenance.cleanup', 'no.such', '%00', '__proto__'])}`, auth: 'api' },
  { app: 'main', method: 'GET', path: (r) => `/api/jobs/${id(r)}`, auth: 'api' },
  { app: 'main', method: 'PUT', path: () => '/api/jobs', auth: 'api' },
  { app: 'main', method: 'DELETE', path: (r) => `/api/jobs/${id(r)}`, auth: 'api' },
  { app: 'main', method: 'POST', path: () => '/internal/v1/job-events', signed: 'evt' },
  { app: 'main', method: 'POST', path: () => '/internal/v1/claims', signed: 'clm' },
  { app: 'main', method: 'POST', path: () => '/internal/v1/claims/batch', signed: 'clm' },
  { app: 'main', method: 'POST', path: () => '/internal/v1/children', signed: 'spn' },
  { app: 'main', method: 'GET', path: (r) => `/api/batches/${id(r)}`, auth: 'api' },
  { app: 'main', method: 'PUT', path: () => '/admin/api/override', auth: 'admin' },
  { app: 'main', method: 'POST', path: (r) => `/admin/api/jobs/${r.pick(['demo.heavy', 'no.such', '%00'])}/run`, auth: 'admin' },
  { app: 'main', method: 'POST', path: () => '/admin/api/jobs/bulk', auth: 'admin' },
  { app: 'main', method: 'POST', path: (r) => `/admin/api/jobs/${r.pick(['demo.heavy', '*', 'no.such', '%00', '%2A'])}/${r.pick(['pause', 'resume'])}`, auth: 'admin' },
  { app: 'main', method: 'GET', path: () => '/internal/v1/pauses', signed: 'pse' },
  { app: 'main', method: 'GET', path: (r) => `/admin/api/overview?${r.pick(['window=week', 'window=', 'window=hour&window=day', 'x=1'])}`, auth: 'admin' },
  { app: 'main', method: 'POST', path: () => '/admin/api/schedules', auth: 'admin' },
  { app: 'main', method: 'PATCH', path: (r) => `/admin/api/schedules/${id(r)}`, auth: 'admin' },
  { app: 'main', method: 'DELETE', path: (r) => `/admin/api/schedules/${id(r)}`, auth: 'admin' },
  { app: 'main', method: 'POST', path: (r) => `/admin/api/${r.pick(['schedules', 'batches'])}/${id(r)}/${r.pick(['run', 'retry-failed'])}`, auth: 'admin' },
  { app: 'main', method: 'GET', path: (r) => r.pick([`/admin/batches/${id(r)}`, '/admin/overview?window=%00', `/admin/api/batches/${id(r)}`]), auth: 'admin' },
  { app: 'main', method: 'POST', path: (r) => `/admin/api/jobs/${id(r)}/${r.pick(['retry', 'cancel'])}`, auth: 'admin' },
  { app: 'main', method: 'GET', path: (r) => `/admin/api/jobs?${r.pick(['payload=%00=1', 'payload=novalue', 'state=x', 'cursor=zz'])}`, auth: 'admin' },
  { app: 'main', method: 'GET', path: (r) => r.pick(['/admin/jobs?state=nope', `/admin/jobs/${id(r)}`, '/admin/assets/constructor', '/admin/assets/..%2fadmin.ts', '/admin/%ff', '/admin/login?next=//evil.test']), auth: 'admin' },
  { app: 'main', method: 'POST', path: () => '/admin/login' },
  { app: 'main', method: 'GET', path: (r) => r.pick(['/healthz', '/metrics', '/nope', '/%ff', `/${'a/'.repeat(3_000)}`]) },
  { app: 'fetcher', method: 'POST', path: () => '/v1/jobs', signed: 'fwd' },
  { app: 'fetcher', method: 'GET', path: (r) => `/v1/jobs/${id(r)}`, signed: 'get' },
  { app: 'fetcher', method: 'GET', path: () => '/v1/status', signed: 'sts' },
  { app: 'fetcher', method: 'PUT', path: () => '/v1/jobs', signed: 'fwd' },
  { app: 'fetcher', method: 'POST', path: () => '/v1/events/resend', signed: 'rsd' },
  { app: 'fetcher', method: 'GET', path: (r) => r.pick(['/healthz', '/nope', '/v1', '/v1/jobs/%00']) },
];

async function state() {
  const q = async (sql: string) => (await f.db.pool.query(sql)).rows[0].n as number;
  return {
    mainJobs: await q('SELECT count(*)::int AS n FROM public.main_jobs'),
    executions: await q('SELECT count(*)::int AS n FROM public.main_attempts'),
    fetcherJobs: await q(`SELECT count(*)::int AS n FROM ${FETCHER_JOBS}`),
    override: await q(`SELECT count(*)::int AS n FROM jobgate.override_audit`),
    audit: await q('SELECT count(*)::int AS n FROM jobgate.admin_audit'),
    pauses: await q('SELECT count(*)::int AS n FROM jobgate.pauses'),
    batches: await q('SELECT count(*)::int AS n FROM jobgate.batches'),
    schedules: await q('SELECT count(*)::int AS n FROM jobgate.schedules'),
    queued: await q(`SELECT count(*)::int AS n FROM pgboss_main.job`),
  };
}

const STACK = /\bat [^\s]+ \(|\.ts:\d+|node_modules|Error: |\n\s+at /;

describe('fuzz', () => {
  it(`${REQUESTS} malformed requests over every endpoint of both apps: no 5xx, no stack trace, nothing changed`, async () => {
    const r = prng(SEED);
    const before = await state();
    const byStatus = new Map<number, number>();
    const problems: string[] = [];
    const pending = new Set<Promise<void>>();
    for (let i = 0; i < REQUESTS; i++) {
      // wrong credentials count against a shared budget (then 429): keep it open so requests reach the validators
      if (i % 100 === 0) await f.db.pool.query('DELETE FROM jobgate.auth_throttle');
      const target = r.pick(TARGETS);
      const base = target.app === 'main' ? f.pair.main.url : f.pair.fetcher!.url;
      const path = target.path(r);
      const hasBody = target.method !== 'GET' && target.method !== 'DELETE';
      const body = hasBody ? badBody(r) : undefined;
      // from many addresses (main believes X-Forwarded-For from loopback), as an attacker would come
      const headers: Record<string, string> = { 'x-forwarded-for': `10.${r.int(256)}.${r.int(256)}.${r.int(256)}` };
      const type = r.next() < 0.7 ? 'application/json' : r.pick(ODD_CONTENT_TYPES);
      if (hasBody && type) headers['content-type'] = type;
      if (r.next() < 0.1) headers['content-encoding'] = r.pick(['gzip', 'br', 'identity, gzip']);
      if (r.next() < 0.05) headers['x-request-id'] = r.pick(['x'.repeat(500), '\u00ff\u00fe', 'a b c']);
      if (r.next() < 0.05) headers.traceparent = r.pick(['00-zz-zz-01', 'ff-' + '0'.repeat(32) + '-' + '0'.repeat(16) + '-01', 'x'.repeat(300)]);
      const authed = r.next() < 0.8;
      if (target.auth === 'api' && authed) headers.authorization = `Bearer ${TEST_API_TOKEN}`;
      if (target.auth === 'admin' && authed) headers.authorization = `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`;
      if (target.auth && !authed) headers.authorization = r.pick(['Bearer ', 'Basic %%%', 'Bearer ' + 'x'.repeat(5_000), 'Digest x', 'Basic ' + Buffer.from('admin').toString('base64')]);
      if (target.signed && r.next() < 0.85) {
        const webhookId = target.signed === 'get' ? `get_${path.split('/').pop()}_${randomUUID()}` : `${target.signed}_${randomUUID()}`;
        Object.assign(headers, signedHeaders(keys, webhookId.slice(0, 128), body ?? ''));
        if (r.next() < 0.2) headers['webhook-signature'] = r.pick(['v1,AAAA', 'v2,' + 'A'.repeat(44), 'v1,' + '!'.repeat(44), ('v1,' + 'A'.repeat(43) + '= ').repeat(8)]);
      }
      const send = fetch(`${base}${path}`, { method: target.method, headers, body, signal: AbortSignal.timeout(15_000) }).then(
        async (res) => {
          const text = await res.text();
          byStatus.set(res.status, (byStatus.get(res.status) ?? 0) + 1);
          if (res.status >= 500) problems.push(`#${i} ${target.method} ${path.slice(0, 80)} → ${res.status} ${text.slice(0, 200)}`);
          if (STACK.test(text)) problems.push(`#${i} ${target.method} ${path.slice(0, 80)} → a stack trace: ${text.slice(0, 200)}`);
          // (431: Node refuses oversized headers itself, before any app code runs)
          if (res.status >= 400 && res.status !== 431 && !/problem\+json|text\/html/.test(res.headers.get('content-type') ?? '')) problems.push(`#${i} ${target.method} ${path.slice(0, 80)} → ${res.status} as ${res.headers.get('content-type')}`);
        },
        (err: Error) => {
          byStatus.set(0, (byStatus.get(0) ?? 0) + 1);
          problems.push(`#${i} ${target.method} ${path.slice(0, 80)} → no answer: ${err.message}`);
        },
      );
      const tracked = send.finally(() => pending.delete(tracked));
      pending.add(tracked);
      if (pending.size >= 6) await Promise.race(pending);
    }
    await Promise.all(pending);
    const after = await state();
    const counts = [...byStatus.entries()].sort(([a], [b]) => a - b).map(([s, n]) => `${s}×${n}`).join(' ');
    console.log(`fuzz (seed ${SEED}): ${REQUESTS} requests → ${counts}; 5xx ${problems.filter((p) => / → 5\d\d /.test(p)).length}, problems ${problems.length}; state unchanged: ${JSON.stringify(after) === JSON.stringify(before)}`);
    expect(problems.slice(0, 20)).toEqual([]);
    expect(after).toEqual(before);
    expect(f.pair.main.child.exitCode).toBeNull();
    expect(f.pair.fetcher!.child.exitCode).toBeNull();
  });
});

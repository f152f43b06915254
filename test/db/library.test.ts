// jobgate as a library inside a host app's own process: createMain with options only, mounted under
// a prefix the host chooses, two instances side by side on different schemas, the admin behind
// jobgate's password or the host's own authorize(), enqueueing inside the host's transaction.
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Kysely, PostgresDialect } from 'kysely';
import { ConfigError, createMain, defineJob, fromKysely, type Main } from '../../packages/jobgate/src/index.ts';
import { createLogger } from '../../packages/jobgate/src/support/index.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { waitFor } from '../support/wait.ts';

const seen: Array<{ side: string; n: number }> = [];
const record = (side: string) =>
  defineJob({
    name: 'lib.record',
    payload: z.strictObject({ n: z.number().int() }),
    async run({ n }, ctx) {
      await ctx.progress(50, 'half way');
      seen.push({ side, n });
      return { n };
    },
  });
const TOKEN = 'library-test-token-0123456789';
const PASSWORD = 'library-admin-password';
/** A token of scope 'admin': opens /admin/api/* to a script, with no cookie and no CSRF token. */
const ADMIN_TOKEN = 'library-admin-scope-token-0123456789';
/** What the host app's own sign-in takes as a bearer token (authorize() checks it, not jobgate). */
const HOST_BEARER = 'host-app-own-session-token-0123456789';
const METRICS_TOKEN = 'library-metrics-token-0123456789';
const apiTokens = [TOKEN, { token: ADMIN_TOKEN, scope: 'admin' as const, name: 'ops script' }];
const timings = { pollIntervalSeconds: 0.5, superviseIntervalSeconds: 1, cronIntervalSeconds: 1, heartbeatSeconds: 10 };
const logger = createLogger({ level: 'warn', name: 'library-test' });

let db: TestDatabase;
let one: Main;
let two: Main;
let server: Server;
let base = '';

beforeAll(async () => {
  db = await createTestDatabase();
  // two mains in one process: separate schemas for jobgate's tables and for pg-boss
  [one, two] = await Promise.all([
    createMain({ databaseUrl: db.url, schema: 'lib_one', bossSchema: 'lib_one_boss', jobs: [record('one')], admin: { password: PASSWORD }, apiTokens, logger, timings }),
    createMain({ databaseUrl: db.url, schema: 'lib_two', bossSchema: 'lib_two_boss', jobs: [record('two')], admin: { authorize: (req) => (req.get('x-user') === 'ops' || req.get('authorization') === `Bearer ${HOST_BEARER}` ? 'ops (host sign-in)' : false) }, apiTokens, logger, timings }),
  ]);
  const app = express();
  app.get('/', (_req, res) => res.send('the host app'));
  // the library's metrics handler, mounted by the host in one line each
  app.get('/metrics', one.metricsHandler({ token: METRICS_TOKEN }));
  app.get('/ops/metrics', two.metricsHandler({ open: true }));
  app.use('/one', one.router);
  app.use('/ops/two', two.router);
  app.get('/after', (_req, res) => res.send('still the host app'));
  server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  await Promise.all([one.start(), two.start()]);
}, 60_000);

afterAll(async () => {
  const closed = new Promise((r) => server?.close(r));
  await Promise.all([one?.stop({ before: closed }), two?.stop()]);
  await db?.drop();
});

describe('createMain in a host app', () => {
  it('checks its options at the door, naming the option', async () => {
    await expect(createMain({ databaseUrl: 'mysql://x' })).rejects.toThrow(ConfigError);
    await expect(createMain({ databaseUrl: 'mysql://x' })).rejects.toThrow(/createMain\.databaseUrl: must be a postgres:\/\/ URL/);
    await expect(createMain({ databaseUrl: db.url, fetcher: { url: 'http://f', secret: 'not base64!' } })).rejects.toThrow(/createMain\.fetcher\.secret/);
    await expect(createMain({ databaseUrl: db.url, admin: { password: 'short' } })).rejects.toThrow(/createMain\.admin/);
    // a job named twice is a ConfigError, and the half-made main leaves no connection behind
    const connections = async () => (await db.pool.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'jobgate%'`)).rows[0].n as number;
    // just after start() the mains' pools are still opening connections: count once they hold steady
    let before = -1;
    await waitFor("the running mains' connections to hold steady", async () => before === (before = await connections()), { intervalMs: 500 });
    await expect(createMain({ databaseUrl: db.url, schema: 'lib_dup', bossSchema: 'lib_dup_boss', jobs: [record('x'), record('y')], logger, timings })).rejects.toThrow(/jobs: job name lib\.record is defined twice/);
    await waitFor('the failed main to close its connections', async () => (await connections()) <= before);
  });

  it("creates only its own tables in the host's database: no movies table (the reference apps' own)", async () => {
    const { rows } = await db.pool.query<{ schema: string; table: string }>(
      `SELECT table_schema AS schema, table_name AS table FROM information_schema.tables WHERE table_schema IN ('lib_one', 'lib_two') ORDER BY 1, 2`,
    );
    expect(rows.filter((r) => r.schema === 'lib_one').map((r) => r.table)).toContain('jobs');
    expect(rows.filter((r) => r.table === 'movies')).toEqual([]);
  });

  it('answers null for an id that names no job, refuses a bad page size, and starts once however often it is asked', async () => {
    expect(await one.getJob('not-a-uuid')).toBeNull();
    expect(await one.getJob('00000000-0000-4000-8000-000000000000')).toBeNull();
    await expect(one.listJobs({ limit: 0 })).rejects.toMatchObject({ code: 'JG_REQUEST_INVALID' });
    await expect(one.listJobs({ limit: 501 })).rejects.toMatchObject({ code: 'JG_REQUEST_INVALID' });
    expect(one.start()).toBe(one.start());
  });

  it('commits a job with the host transaction and leaves none after a rollback; each instance sees only its own', async () => {
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      await one.performLater('lib.record', { n: 1 }, { db: client });
      await client.query('ROLLBACK');
      await client.query('BEGIN');
      const { job } = await one.performLater('lib.record', { n: 2 }, { db: client });
      // not visible outside the transaction before the commit
      expect(await one.getJob(job.id)).toBeNull();
      await client.query('COMMIT');
      const done = await waitFor('the committed job to complete', async () => {
        const j = await one.getJob(job.id);
        return j?.state === 'completed' ? j : null;
      });
      expect(done.executions).toMatchObject([{ attempt: 1, ranOn: 'main', outcome: 'completed' }]);
      expect(seen).toEqual([{ side: 'one', n: 2 }]);
      expect(await two.getJob(job.id)).toBeNull();
      expect((await one.listJobs({ name: 'lib.record' })).jobs.map((j) => j.id)).toEqual([job.id]);
      expect((await two.listJobs()).jobs).toEqual([]);
    } finally {
      client.release();
    }
  });

  it("enqueues inside a query builder's transaction (Kysely through fromKysely): committed with it, or rolled back with it", async () => {
    const kysely = new Kysely<Record<string, never>>({ dialect: new PostgresDialect({ pool: db.pool }) });
    const { job } = await kysely.transaction().execute((trx) => one.performLater('lib.record', { n: 10 }, { db: fromKysely(trx) }));
    await waitFor('the job enqueued through Kysely to complete', async () => (await one.getJob(job.id))?.state === 'completed');
    let rolledBack = '';
    await expect(
      kysely.transaction().execute(async (trx) => {
        rolledBack = (await one.performLater('lib.record', { n: 11 }, { db: fromKysely(trx) })).job.id;
        throw new Error('the host changes its mind');
      }),
    ).rejects.toThrow('the host changes its mind');
    expect(rolledBack).not.toBe('');
    expect(await one.getJob(rolledBack)).toBeNull();
    const queued = await db.pool.query(`SELECT count(*)::int AS n FROM lib_one_boss.job WHERE id = $1`, [rolledBack]);
    expect(queued.rows[0].n).toBe(0);
    expect(seen.filter((s) => s.n >= 10)).toEqual([{ side: 'one', n: 10 }]);
  });

  it('answers only under its own paths: the host app keeps everything else', async () => {
    expect(await (await fetch(`${base}/`)).text()).toBe('the host app');
    expect(await (await fetch(`${base}/after`)).text()).toBe('still the host app');
    const notOurs = await fetch(`${base}/one/nothing-here`);
    expect(notOurs.status).toBe(404);
    expect(notOurs.headers.get('content-type')).not.toContain('problem+json');
    const ours = await fetch(`${base}/one/api/nothing-here`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect([ours.status, ours.headers.get('content-type')]).toEqual([404, 'application/problem+json; charset=utf-8']);
  });

  it('puts its mount point in links, redirects, cookies and Location headers', async () => {
    const enqueued = await fetch(`${base}/one/api/jobs/lib.record`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ payload: { n: 3 } }) });
    expect(enqueued.status).toBe(202);
    expect(enqueued.headers.get('location')).toMatch(/^\/one\/api\/jobs\/[0-9a-f-]{36}$/);

    const page = await fetch(`${base}/one/admin/jobs`, { redirect: 'manual' });
    expect([page.status, page.headers.get('location')]).toEqual([303, '/one/admin/login?next=%2Fone%2Fadmin%2Fjobs']);
    const loginForm = await (await fetch(`${base}/one/admin/login`)).text();
    expect(loginForm).toContain('<base href="/one/admin/">');
    const login = await fetch(`${base}/one/admin/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: base }, body: new URLSearchParams({ password: PASSWORD, next: '/one/admin/jobs' }) });
    expect([login.status, login.headers.get('location')]).toEqual([303, '/one/admin/jobs']);
    expect(login.headers.get('set-cookie')).toMatch(/; Path=\/one\/admin; HttpOnly; SameSite=Strict/);
    // a next outside this admin is not followed
    const elsewhere = await fetch(`${base}/one/admin/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: base }, body: new URLSearchParams({ password: PASSWORD, next: '/ops/two/admin/jobs' }) });
    expect(elsewhere.headers.get('location')).toBe('/one/admin/overview');

    const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
    const html = await (await fetch(`${base}/one/admin/jobs`, { headers: { cookie } })).text();
    expect(html).toContain('<base href="/one/admin/">');
    expect(html).toContain('href="assets/admin.css"');
    expect(html).toMatch(/href="jobs\/[0-9a-f-]{36}"/);
    expect(html).not.toMatch(/(href|src|action)="\/admin/);
    for (const asset of ['admin.css', 'admin.js']) expect((await fetch(`${base}/one/admin/assets/${asset}`)).status).toBe(200);
    // the browser script renders nothing: the pages come from the server, whole
    expect((await fetch(`${base}/one/admin/assets/views.js`)).status).toBe(404);
  });

  it("hands the admin to the host's own sign-in with authorize(), CSRF-checked, audited under the host's name", async () => {
    expect((await fetch(`${base}/ops/two/admin/fetcher_service`)).status).toBe(403);
    expect((await fetch(`${base}/ops/two/admin/api/override`)).status).toBe(403);
    // no login of jobgate's own under the host's sign-in
    expect((await fetch(`${base}/ops/two/admin/login`, { headers: { 'x-user': 'ops' } })).status).toBe(404);
    const page = await (await fetch(`${base}/ops/two/admin/fetcher_service`, { headers: { 'x-user': 'ops' } })).text();
    expect(page).toContain('<base href="/ops/two/admin/">');
    expect(page).not.toContain('id="logout"');
    const csrf = /<meta name="csrf-token" content="([^"]+)">/.exec(page)![1]!;
    expect(csrf.length).toBeGreaterThan(20);

    const change = (headers: Record<string, string>) =>
      fetch(`${base}/ops/two/admin/api/override`, { method: 'PUT', headers: { 'x-user': 'ops', 'content-type': 'application/json', ...headers }, body: JSON.stringify({ enabled: true, reason: 'library test' }) });
    expect((await change({})).status).toBe(403);
    expect((await change({ 'x-csrf-token': csrf, origin: 'https://evil.example' })).status).toBe(403);
    expect((await two.override.get()).enabled).toBe(false);
    expect((await change({ 'x-csrf-token': csrf, origin: base })).status).toBe(200);
    expect(await two.override.get()).toMatchObject({ enabled: true, reason: 'library test', by: 'ops (host sign-in)' });
    // the other instance's override is its own
    expect((await one.override.get()).enabled).toBe(false);
    await two.override.set({ enabled: false, reason: 'done', actor: 'test' });
    // /api/* takes the host's sign-in too; without it, as without any credential, 401 and a Bearer
    // challenge (the admin's pages and API above say 403)
    expect((await fetch(`${base}/ops/two/api/jobs`, { headers: { 'x-user': 'ops' } })).status).toBe(200);
    const refused = await fetch(`${base}/ops/two/api/jobs`);
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toMatch(/^Bearer /);
    expect(((await refused.json()) as { code: string }).code).toBe('JG_UNAUTHORIZED');
    expect((await fetch(`${base}/ops/two/api/jobs`, { headers: { 'x-user': 'somebody-else' } })).status).toBe(401);
    expect((await fetch(`${base}/ops/two/api/jobs`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
  });

  it('serves its metrics through the handler the host mounts: behind the token, or open when asked', async () => {
    // neither a token nor open: true (an unset variable, say) is refused at the door, never open
    expect(() => one.metricsHandler({} as { open: true })).toThrow(/main\.metricsHandler\.\(options\): give either token/);
    const refused = await fetch(`${base}/metrics`);
    expect([refused.status, refused.headers.get('content-type'), refused.headers.get('www-authenticate')]).toEqual([401, 'application/problem+json; charset=utf-8', 'Bearer realm="metrics"']);
    expect(((await refused.json()) as { code: string }).code).toBe('JG_UNAUTHORIZED');
    expect((await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(401);
    const scraped = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect([scraped.status, scraped.headers.get('content-type')]).toEqual([200, 'text/plain; version=0.0.4; charset=utf-8']);
    const text = await scraped.text();
    // the jobs run by this instance, and main's own gauges
    expect(text).toMatch(/^jobgate_jobs_completed_total\{[^}]*name="lib\.record"[^}]*\} [1-9]/m);
    expect(text).toMatch(/^jobgate_outbox_jobs\{[^}]*\} 0$/m);
    expect((await fetch(`${base}/ops/metrics`)).status).toBe(200);
  });

  it('takes an admin-scoped API token on /admin/api/* under its own password: no cookie, no CSRF token; other tokens are refused', async () => {
    const admin = (method: string, path: string, headers: Record<string, string>, body?: unknown) =>
      fetch(`${base}/one/admin/api${path}`, { method, headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...headers }, ...(body ? { body: JSON.stringify(body) } : {}) });
    // a token's scope and length are checked at the door, and one secret may have one scope only
    await expect(createMain({ databaseUrl: db.url, apiTokens: [TOKEN, { token: TOKEN, scope: 'admin' }] })).rejects.toThrow(/createMain\.apiTokens\.1: the same token is listed twice/);
    await expect(createMain({ databaseUrl: db.url, apiTokens: [{ token: 'short', scope: 'admin' }] })).rejects.toThrow(/createMain\.apiTokens\.0/);
    await expect(createMain({ databaseUrl: db.url, apiTokens: [{ token: ADMIN_TOKEN, scope: 'root' as 'admin' }] })).rejects.toThrow(/createMain\.apiTokens\.0/);
    const asScript = { authorization: `Bearer ${ADMIN_TOKEN}` };
    try {
      const paused = await admin('POST', '/jobs/lib.record/pause', asScript, { reason: 'scripted maintenance' });
      expect(paused.status).toBe(200);
      expect(await paused.json()).toMatchObject({ name: 'lib.record', reason: 'scripted maintenance', by: 'ops script (127.0.0.1)' });
      expect((await one.pauses.list()).map((p) => p.name)).toEqual(['lib.record']);
      const listed = await admin('GET', '/jobs?name=lib.record', asScript);
      expect(listed.status).toBe(200);
      expect(((await listed.json()) as { jobs: unknown[] }).jobs.length).toBeGreaterThan(0);
      expect(await (await admin('GET', '/session', asScript)).json()).toEqual({ via: 'token', actor: 'ops script (127.0.0.1)', csrfToken: null });
      // the same token reaches the jobs API, and never the HTML pages (they are for browsers)
      expect((await fetch(`${base}/one/api/jobs`, { headers: asScript })).status).toBe(200);
      expect((await fetch(`${base}/one/admin/jobs`, { headers: asScript, redirect: 'manual' })).status).toBe(303);

      // an ordinary API token: 403, problem+json, nothing changed
      const ordinary = await admin('POST', '/jobs/lib.record/resume', { authorization: `Bearer ${TOKEN}` }, {});
      expect([ordinary.status, ordinary.headers.get('content-type')]).toEqual([403, 'application/problem+json; charset=utf-8']);
      expect(await ordinary.json()).toMatchObject({ status: 403, code: 'JG_FORBIDDEN', detail: expect.stringContaining("scope 'admin'") });
      expect((await admin('GET', '/jobs', { authorization: `Bearer ${TOKEN}` })).status).toBe(403);
      expect((await one.pauses.list()).map((p) => p.name)).toEqual(['lib.record']);
      // a token that is none of them: 401 with a Bearer challenge
      const wrong = await admin('GET', '/jobs', { authorization: 'Bearer not-any-token-of-ours-0123' });
      expect([wrong.status, wrong.headers.get('www-authenticate')]).toEqual([401, 'Bearer realm="jobgate admin"']);

      // a dashboard session still needs its CSRF token for a change; GET /admin/api/session hands it over
      const login = await fetch(`${base}/one/admin/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: base }, body: new URLSearchParams({ password: PASSWORD }) });
      const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
      const noCsrf = await admin('POST', '/jobs/lib.record/resume', { cookie }, {});
      expect(noCsrf.status).toBe(403);
      expect(((await noCsrf.json()) as { detail: string }).detail).toMatch(/CSRF/);
      expect((await one.pauses.list()).map((p) => p.name)).toEqual(['lib.record']);
      const session = (await (await admin('GET', '/session', { cookie })).json()) as { via: string; csrfToken: string };
      expect(session.via).toBe('session');
      expect(session.csrfToken.length).toBeGreaterThan(20);
      const resumed = await admin('POST', '/jobs/lib.record/resume', { cookie, 'x-csrf-token': session.csrfToken }, {});
      expect([resumed.status, ((await resumed.json()) as { resumed: boolean }).resumed]).toEqual([200, true]);
      expect(await one.pauses.list()).toEqual([]);
    } finally {
      await one.pauses.resume('lib.record', { actor: 'test cleanup' });
    }
  });

  it("takes an admin-scoped API token on /admin/api/* under the host's authorize() too, and leaves other bearer tokens to the host", async () => {
    const admin = (method: string, path: string, headers: Record<string, string>, body?: unknown) =>
      fetch(`${base}/ops/two/admin/api${path}`, { method, headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...headers }, ...(body ? { body: JSON.stringify(body) } : {}) });
    const asScript = { authorization: `Bearer ${ADMIN_TOKEN}` };
    try {
      expect((await admin('POST', '/jobs/lib.record/pause', asScript, { reason: 'scripted, host auth' })).status).toBe(200);
      expect(await two.pauses.list()).toMatchObject([{ name: 'lib.record', by: 'ops script (127.0.0.1)' }]);
      expect((await admin('GET', '/jobs', asScript)).status).toBe(200);

      const ordinary = await admin('POST', '/jobs/lib.record/resume', { authorization: `Bearer ${TOKEN}` }, {});
      expect([ordinary.status, ((await ordinary.json()) as { code: string }).code]).toEqual([403, 'JG_FORBIDDEN']);
      // a bearer token that is not jobgate's goes to authorize(): the host's own, or a 403 from it
      expect((await admin('GET', '/jobs', { authorization: `Bearer ${HOST_BEARER}` })).status).toBe(200);
      expect((await admin('GET', '/jobs', { authorization: 'Bearer not-any-token-of-ours-0123' })).status).toBe(403);

      // the host's sign-in is a browser's: its changes still need the CSRF token, which /session gives
      const noCsrf = await admin('POST', '/jobs/lib.record/resume', { 'x-user': 'ops' }, {});
      expect(noCsrf.status).toBe(403);
      expect((await two.pauses.list()).map((p) => p.name)).toEqual(['lib.record']);
      const session = (await (await admin('GET', '/session', { 'x-user': 'ops' })).json()) as { via: string; actor: string; csrfToken: string };
      expect([session.via, session.actor]).toEqual(['host', 'ops (host sign-in)']);
      expect((await admin('POST', '/jobs/lib.record/resume', { 'x-user': 'ops', 'x-csrf-token': session.csrfToken }, {})).status).toBe(200);
      expect(await two.pauses.list()).toEqual([]);
    } finally {
      await two.pauses.resume('lib.record', { actor: 'test cleanup' });
    }
  });
});

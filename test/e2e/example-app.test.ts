// examples/orders-app as an adopting team runs it: the library's real tarball (`npm pack`, packed
// once per run in setup-e2e.ts) installed with npm into a copy of the example outside the repo,
// type-checked against the declarations in the tarball, and the example's server and fetcher run as
// processes of their own on PostgreSQL: on Node 24, and on the oldest Node that jobgate's
// `engines` allow (npm's `node` package of that version).
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort } from '../support/apps.ts';
import { launchChromium } from '../support/browser.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { installNode, oldestSupportedNode, run } from '../support/pack.ts';
import { waitFor } from '../support/wait.ts';
import { FETCHER_JOBS } from '../support/fetcher-jobs.ts';

const ROOT = join(import.meta.dirname, '../..');
const EXAMPLE = join(ROOT, 'examples/orders-app');
const SHOTS = join(ROOT, 'test-artifacts/screenshots');
const SECRET = `whsec_${randomBytes(32).toString('base64')}`;
const OPS = { username: 'ops', password: 'ops-password-1' };
const CLERK = { username: 'clerk', password: 'clerk-password-1' };
const basic = (u: { username: string; password: string }) => ({ authorization: `Basic ${Buffer.from(`${u.username}:${u.password}`).toString('base64')}` });

let work: string;
/** The installed copy of the example. */
let app: string;
/** The oldest Node the library's package.json allows (engines.node), and its binary. */
const OLDEST = oldestSupportedNode();
let oldestNode: string;
const running = new Set<ChildProcess>();

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'jobgate-example-'));
  app = join(work, 'orders-app');
  cpSync(EXAMPLE, app, { recursive: true, filter: (src) => !/(^|\/)(node_modules|package-lock\.json)/.test(relative(EXAMPLE, src)) });
  // One install for both Node versions: the tarball and the example's own dependencies, from
  // npm's cache where it has them. The old Node meanwhile (kept under .data/ after a first run).
  const started = Date.now();
  [, oldestNode] = await Promise.all([run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', inject('jobgateTarball')], { cwd: app }), installNode(OLDEST)]);
  console.log(`example app: npm install of the tarball and its dependencies (and node@${OLDEST}) took ${((Date.now() - started) / 1000).toFixed(1)} s`);
}, 240_000);

afterAll(async () => {
  for (const child of running) child.kill('SIGKILL');
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the tarball, as npm pack made it', () => {
  const tarball = () => inject('jobgateTarball');
  const entries = () => execFileSync('tar', ['-tzf', tarball()], { encoding: 'utf8' }).split('\n').filter(Boolean).map((e) => e.replace(/^package\//, ''));
  const read = (entry: string) => execFileSync('tar', ['-xzOf', tarball(), `package/${entry}`], { encoding: 'utf8' });
  /** Every path a part of package.json points at (`exports` conditions at any depth, `types`). */
  const targets = (value: unknown): string[] => (typeof value === 'string' ? [value] : typeof value === 'object' && value ? Object.values(value).flatMap(targets) : []);

  it('holds README.md, LICENSE, CHANGELOG.md, package.json, dist/ and migrations/, and no src/', () => {
    const files = entries();
    for (const top of ['README.md', 'LICENSE', 'CHANGELOG.md', 'package.json']) expect(files, top).toContain(top);
    expect(files.filter((f) => f.startsWith('dist/')).length).toBeGreaterThan(40);
    expect(files).toContain('dist/index.js');
    expect(files.filter((f) => /^migrations\/\d{3}_[a-z0-9_]+\.sql$/.test(f)).length).toBe(readdirSync(join(ROOT, 'packages/jobgate/migrations')).length);
    expect(files.filter((f) => f.startsWith('src/') || f.includes('/src/'))).toEqual([]);
    // nothing of the repo's own: tests, scripts, the kept manifest of an interrupted pack
    expect(files.filter((f) => !/^(dist|migrations)\//.test(f)).sort()).toEqual(['CHANGELOG.md', 'LICENSE', 'README.md', 'package.json']);
    expect(read('LICENSE')).toBe(readFileSync(join(ROOT, 'LICENSE'), 'utf8'));
    expect(read('LICENSE')).toMatch(/^MIT License\n\nCopyright \(c\) 2026 The jobgate authors\n/);
  });

  it("has a package.json without the repo's jobgate-source condition, whose every exports and types target is in the tarball", () => {
    const text = read('package.json');
    expect(text).not.toContain('jobgate-source');
    const manifest = JSON.parse(text) as { exports: Record<string, Record<string, string>>; types: string };
    const files = new Set(entries());
    const pointed = [...targets(manifest.exports), ...targets(manifest.types)];
    expect(pointed.length).toBeGreaterThanOrEqual(5);
    for (const target of pointed) expect(files, target).toContain(target.replace(/^\.\//, ''));
    // types first, default last: the order resolvers take conditions in
    for (const [subpath, conditions] of Object.entries(manifest.exports)) expect(Object.keys(conditions), subpath).toEqual(['types', 'default']);
    expect(manifest).toMatchObject({ name: 'jobgate', license: 'MIT', repository: { type: 'git', url: expect.stringMatching(/^git\+https:\/\//) }, engines: { node: expect.stringMatching(/^>=/) }, homepage: expect.any(String), bugs: { url: expect.any(String) } });
    expect((manifest as { keywords?: string[] }).keywords?.length).toBeGreaterThan(3);
  });

  it("leaves the repo's package.json as it was: the condition back in place, no kept copy left over", () => {
    const repo = readFileSync(join(ROOT, 'packages/jobgate/package.json'), 'utf8');
    expect(JSON.parse(repo).exports['.']['jobgate-source']).toBe('./src/index.ts');
    expect(existsSync(join(ROOT, 'packages/jobgate/package.json.repo'))).toBe(false);
  });
});

describe('the tarball, installed', () => {
  it('is a real package in node_modules: a directory of its own (no link into the repo) with dist/ and without src/', () => {
    const installed = join(app, 'node_modules/jobgate');
    expect(lstatSync(installed).isSymbolicLink()).toBe(false);
    expect(lstatSync(installed).isDirectory()).toBe(true);
    expect(existsSync(join(installed, 'dist/index.js'))).toBe(true);
    expect(existsSync(join(installed, 'dist/index.d.ts'))).toBe(true);
    expect(existsSync(join(installed, 'dist/main/admin/assets/admin.css'))).toBe(true);
    expect(existsSync(join(installed, 'src'))).toBe(false);
    expect(JSON.parse(readFileSync(join(app, 'package.json'), 'utf8')).dependencies.jobgate).toMatch(/^file:.*\.tgz$/);
    // what `import 'jobgate'` loads without the repo's `jobgate-source` condition: the built JavaScript
    const resolved = execFileSync(process.execPath, ['--input-type=module', '-e', `console.log(import.meta.resolve('jobgate'))`], { cwd: app, encoding: 'utf8' }).trim();
    expect(resolved).toBe(`file://${installed}/dist/index.js`);
  });

  it('type-checks with tsc against the declarations inside the tarball (their sibling imports name .js files the consumer resolves)', async () => {
    const declarations = readdirSync(join(app, 'node_modules/jobgate/dist'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.d.ts'));
    expect(declarations.length).toBeGreaterThan(20);
    for (const file of declarations) {
      const text = readFileSync(join(app, 'node_modules/jobgate/dist', file), 'utf8');
      expect(text, file).not.toMatch(/(from\s+|import\()(['"])\.{1,2}\/[^'"]+\.ts\2/);
    }
    // what a TypeScript app needs, as the example's README lists it: the tools, and a tsconfig that
    // checks jobgate's own declarations too (skipLibCheck off) under strict
    const { devDependencies } = JSON.parse(readFileSync(join(app, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
    expect(Object.keys(devDependencies)).toEqual(expect.arrayContaining(['@types/express', '@types/node', '@types/pg', 'typescript']));
    const { stdout: shown } = await run(process.execPath, [join(app, 'node_modules/typescript/bin/tsc'), '-p', '.', '--showConfig'], { cwd: app, timeoutMs: 60_000 });
    expect(JSON.parse(shown).compilerOptions).toMatchObject({ strict: true, skipLibCheck: false, noEmit: true, allowImportingTsExtensions: true, module: 'nodenext' });
    // Types, not `any`: were a declaration unresolved (skipLibCheck hides that), the probe's
    // expected errors would not happen, and tsc would fail on its unused directives.
    writeFileSync(join(app, 'src/types-probe.ts'), PROBE);
    const started = Date.now();
    const { stdout } = await run(process.execPath, [join(app, 'node_modules/typescript/bin/tsc'), '--noEmit', '-p', '.', '--listFiles'], { cwd: app, timeoutMs: 60_000 });
    console.log(`example app: tsc --noEmit took ${((Date.now() - started) / 1000).toFixed(1)} s`);
    const files = stdout.split('\n');
    for (const reached of ['dist/index.d.ts', 'dist/main/create-main.d.ts', 'dist/store/ledger.d.ts', 'dist/main/admin/auth.d.ts']) {
      expect(files, reached).toContain(join(app, 'node_modules/jobgate', reached));
    }
  });
});

const PROBE = `// Written by test/e2e/example-app.test.ts: jobgate's declarations reach the app as types, not any.
import type { Request } from 'express';
import { z } from 'zod';
import { createMain, defineJob, type ErrorCode, type JobRecord, type JobState, type Main } from 'jobgate';
import { importOrder } from './jobs.ts';

declare const main: Main;
declare const record: JobRecord;
declare const req: Request;
export const ranOn: 'main' | 'fetcher' | undefined = record.executions?.[0]?.ranOn;
export const via: 'session' | 'basic' | 'token' | 'host' | undefined = req.admin?.via;
// @ts-expect-error: the payload's orderId is a number
void main.performLater(importOrder, { orderId: 'seven' });
// @ts-expect-error: createMain knows its options
void createMain({ databaseUrl: 'postgres://x', notAnOption: true });
// @ts-expect-error: an execution ran on main or on the fetcher
export const nowhere: 'nowhere' | undefined = record.executions?.[0]?.ranOn;
// @ts-expect-error: jobgate's augmentation of express's Request is typed
export const viaNumber: number | undefined = req.admin?.via;
// enqueue takes the schema's input (a defaulted field may be left out), run gets its output
const resize = defineJob({ name: 'probe.resize', payload: z.object({ size: z.enum(['s', 'm', 'l']), quality: z.number().default(80) }), async run({ quality }) { return quality.toFixed(0); } });
void main.performLater(resize, { size: 's' });
// @ts-expect-error: 'xxl' is not a size
void main.performLater(resize, { size: 'xxl' });
declare const wide: { size: string };
// @ts-expect-error: a payload typed wider than the job's does not widen it
void main.batch().add(resize, wide);
// a job named by string takes any payload (checked at runtime)
declare const body: unknown;
void main.performLater('probe.resize', body);
// @ts-expect-error: states and error codes are unions, not string
export const state: JobState = 'done';
// @ts-expect-error: an attempt's error code is an ErrorCode
export const code: NonNullable<JobRecord['error']>['code'] = 'JG_NOPE';
export const known: ErrorCode | undefined = record.error?.code;
`;

interface ExampleProcess {
  url: string;
  lines: string[];
  /** The last lines that are not info-level JSON logs, or the last lines (for failure messages). */
  tail(n?: number): string;
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `node src/<service>.ts` in the installed example, once it says it listens. */
async function startExample(node: string, flags: string[], service: 'server' | 'fetcher', env: Record<string, string>): Promise<ExampleProcess> {
  const child = spawn(node, [...flags, `src/${service}.ts`], { cwd: app, env: { PATH: process.env.PATH, HOME: process.env.HOME, HOST: '127.0.0.1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  const lines: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => lines.push(l));
  createInterface({ input: child.stderr! }).on('line', (l) => lines.push(l));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    }),
  );
  const tail = (n = 8) => {
    const notable = lines.filter((l) => !l.startsWith('{"level":"info"'));
    return (notable.length ? notable : lines).slice(-n).map((l) => l.slice(0, 600)).join('\n');
  };
  let url: string | undefined;
  let failure = '';
  await waitFor(`the example's ${service} to listen`, () => {
    if (child.exitCode !== null || child.signalCode !== null) return (failure = `exit ${child.exitCode ?? child.signalCode}`);
    url = lines.map((l) => /listening on (http:\/\/\S+)/.exec(l)?.[1]).find((u) => u !== undefined);
    return url;
  }, { timeoutMs: 30_000, intervalMs: 50 }).catch((err: Error) => (failure = err.message));
  if (!url || failure) {
    child.kill('SIGKILL');
    throw new Error(`the example's ${service} did not start (${failure}):\n${tail(30)}`);
  }
  return {
    url,
    lines,
    tail,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
  };
}

const json = { 'content-type': 'application/json' };
async function getJson(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const res = await fetch(url, { headers });
  return { status: res.status, body: await res.json().catch(() => null) };
}

/** Node strips the example's types by default from 22.18 and 23.6 on; before, with a flag. */
function stripTypesFlags(version: string): string[] {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return (major === 22 && minor < 18) || (major === 23 && minor < 6) ? ['--experimental-strip-types'] : [];
}

const runtimes = [
  { label: `Node ${process.versions.node}`, version: process.versions.node, node: () => process.execPath, browser: true },
  { label: `Node ${OLDEST}, the oldest that jobgate's engines allow`, version: OLDEST, node: () => oldestNode, browser: false },
];

describe.each(runtimes)('the example on $label', ({ version, node, browser }) => {
  const v = `v${version}`;
  let db: TestDatabase;
  let server: ExampleProcess;
  let fetcher: ExampleProcess;
  let firstOrder: { id: number; jobId: string };
  const logs = () => `\n--- fetcher:\n${fetcher.tail()}\n--- server:\n${server.tail()}`;

  beforeAll(async () => {
    expect(execFileSync(node(), ['--version'], { encoding: 'utf8' }).trim()).toBe(v);
    const flags = stripTypesFlags(version);
    db = await createTestDatabase();
    const [serverPort, fetcherPort] = [await freePort(), await freePort()];
    const env = { DATABASE_URL: db.url, SHARED_SECRET: SECRET, OPS_PASSWORD: OPS.password, CLERK_PASSWORD: CLERK.password };
    const started = Date.now();
    [fetcher, server] = await Promise.all([
      startExample(node(), flags, 'fetcher', { ...env, PORT: String(fetcherPort), MAIN_URL: `http://127.0.0.1:${serverPort}/ops/jobs` }),
      startExample(node(), flags, 'server', { ...env, PORT: String(serverPort), FETCHER_URL: `http://127.0.0.1:${fetcherPort}` }),
    ]);
    console.log(`example app (${v}): server and fetcher listening after ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });
  afterAll(async () => {
    await Promise.all([server?.stop(), fetcher?.stop()]);
    await db?.drop();
  });

  it('POST /orders: the import job runs exactly once, on the fetcher, and GET /orders/:id (jobgate.getJob) shows it completed', async () => {
    const started = Date.now();
    const res = await fetch(`${server.url}/orders`, { method: 'POST', headers: json, body: JSON.stringify({ item: 'green tea', quantity: 3 }) });
    expect(res.status).toBe(201);
    firstOrder = (await res.json()) as { id: number; jobId: string };
    expect(res.headers.get('location')).toBe(`/orders/${firstOrder.id}`);
    const order = await waitFor('the import completed, as GET /orders/:id shows', async () => {
      const { body } = await getJson(`${server.url}/orders/${firstOrder.id}`);
      return body?.job?.state === 'completed' ? body : null;
    }, { timeoutMs: 20_000, intervalMs: 100 }).catch((err: Error) => {
      throw new Error(`${err.message}${logs()}`);
    });
    console.log(`example app (${v}): order imported on the fetcher ${((Date.now() - started) / 1000).toFixed(1)} s after POST /orders`);
    expect(order).toMatchObject({
      id: firstOrder.id,
      item: 'green tea',
      import_job_id: firstOrder.jobId,
      imported_by: 'fetcher',
      job: { id: firstOrder.jobId, name: 'orders.import', route: 'fetcher', state: 'completed', payload: { orderId: firstOrder.id }, progress: 100, progressMessage: 'imported', attempts: 1 },
    });
    expect(order.imported_at).toEqual(expect.any(String));
    expect(order.job.executions).toEqual([expect.objectContaining({ attempt: 1, ranOn: 'fetcher', outcome: 'completed' })]);
    // the handler's own record: one run, on the fetcher
    const { rows } = await db.pool.query(`SELECT job_id, attempt, ran_on FROM public.order_imports WHERE order_id = $1`, [firstOrder.id]);
    expect(rows).toEqual([{ job_id: firstOrder.jobId, attempt: 1, ran_on: 'fetcher' }]);
  });

  it('a POST /orders that fails after performLater rolls back: neither the order nor its job exists', async () => {
    const count = async () =>
      (await db.pool.query(`SELECT (SELECT count(*) FROM public.orders)::int AS orders, (SELECT count(*) FROM public.main_jobs)::int AS jobs, (SELECT count(*) FROM ${FETCHER_JOBS})::int AS "fetcherJobs"`)).rows[0];
    const before = await count();
    const res = await fetch(`${server.url}/orders`, { method: 'POST', headers: json, body: JSON.stringify({ item: 'never', quantity: 1, fail: true }) });
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({ error: expect.stringContaining('rollback demo') });
    expect(await count()).toEqual(before);
    // the id the rolled-back INSERT took (an identity is not given back)
    const { rows: [seq] } = await db.pool.query<{ id: number }>(`SELECT last_value::int AS id FROM public.orders_id_seq`);
    const lost = seq!.id;
    expect(lost).toBeGreaterThan(firstOrder.id);
    // the next order goes through the forwarder and the fetcher; the lost one never does
    const next = await fetch(`${server.url}/orders`, { method: 'POST', headers: json, body: JSON.stringify({ item: 'black tea', quantity: 1 }) });
    const { id } = (await next.json()) as { id: number };
    await waitFor('the next order imported', async () => (await getJson(`${server.url}/orders/${id}`)).body?.imported_by === 'fetcher', { timeoutMs: 20_000 });
    expect((await getJson(`${server.url}/orders/${lost}`)).status).toBe(404);
    const jobs = await db.pool.query(`SELECT count(*)::int AS n FROM (SELECT payload FROM public.main_jobs UNION ALL SELECT payload FROM ${FETCHER_JOBS}) j WHERE (payload->>'orderId')::int = $1`, [lost]);
    expect(jobs.rows[0].n).toBe(0);
  });

  it("refuses the admin pages and the admin API without the app's own sign-in (401), to a signed-in non-staff user (403)", async () => {
    for (const path of ['/ops/jobs/admin/jobs', '/ops/jobs/admin/api/jobs']) {
      const none = await fetch(`${server.url}${path}`, { redirect: 'manual' });
      expect(none.status, path).toBe(401);
      expect(none.headers.get('www-authenticate'), path).toMatch(/^Basic realm="orders-app ops"/);
      const wrong = await fetch(`${server.url}${path}`, { headers: basic({ ...OPS, password: 'not-the-password' }), redirect: 'manual' });
      expect(wrong.status, path).toBe(401);
      const clerk = await fetch(`${server.url}${path}`, { headers: basic(CLERK), redirect: 'manual' });
      expect(clerk.status, path).toBe(403);
      const ops = await fetch(`${server.url}${path}`, { headers: basic(OPS), redirect: 'manual' });
      expect(ops.status, path).toBe(200);
    }
    const { body } = await getJson(`${server.url}/ops/jobs/admin/api/jobs?name=orders.import`, basic(OPS));
    expect(body.jobs.map((j: { id: string }) => j.id)).toContain(firstOrder.jobId);
  });

  // the browser part runs once, on the project's own Node (Chromium does not care which Node serves the pages)
  if (browser) it('serves the admin under /ops/jobs in Chromium: the stylesheet loads, a job link lands on /ops/jobs/admin/jobs/<id>', async () => {
    mkdirSync(SHOTS, { recursive: true });
    let chromium: Browser | undefined;
    try {
      chromium = await launchChromium();
      const context = await chromium.newContext({ httpCredentials: OPS, viewport: { width: 1280, height: 900 } });
      const page = await context.newPage();
      const problems: string[] = [];
      page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
      page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
      page.on('response', (r) => r.status() >= 400 && problems.push(`${r.status()} ${r.url()}`));
      // a request the page's own navigation cancels (a live refresh in flight when a link is clicked) is not a failure
      page.on('requestfailed', (r) => r.failure()?.errorText !== 'net::ERR_ABORTED' && problems.push(`failed: ${r.url()} (${r.failure()?.errorText})`));
      const stylesheet = page.waitForResponse((r) => r.url().endsWith('/admin.css'));
      const res = await page.goto(`${server.url}/ops/jobs/admin/jobs`);
      expect(res?.status()).toBe(200);
      const css = await stylesheet;
      expect(css.url()).toBe(`${server.url}/ops/jobs/admin/assets/admin.css`);
      expect(css.status()).toBe(200);
      expect(await page.evaluate(`[...document.styleSheets].some((s) => s.href?.endsWith('/ops/jobs/admin/assets/admin.css') && s.cssRules.length > 0)`)).toBe(true);
      await page.locator(`tr[data-job-id="${firstOrder.jobId}"] a`).click();
      await page.waitForURL(`${server.url}/ops/jobs/admin/jobs/${firstOrder.jobId}`);
      expect(await page.locator('#job-state').innerText()).toBe('completed');
      expect(await page.locator('#executions tbody').innerText()).toContain('fetcher');
      await page.screenshot({ path: join(SHOTS, 'example-app-job.png'), fullPage: true });
      // the page's script talks to the admin API under the same mount: the fetcher shows awake
      await page.locator('nav a[href="fetcher_service"]').click();
      await page.waitForURL(`${server.url}/ops/jobs/admin/fetcher_service`);
      await waitFor('the fetcher shown awake', async () => (await page.locator('#fetcher-state').innerText()) === 'awake', { timeoutMs: 10_000 });
      // a change through the admin (CSRF-guarded under the app's sign-in) is audited under the name authorize() gave
      page.on('dialog', (d) => void d.accept(d.type() === 'prompt' ? d.defaultValue() : undefined));
      await page.fill('#override-form input[name=reason]', 'orders-app test: audit');
      await page.click('#override-form button[type=submit]');
      await waitFor('the override audit entry', async () => (await page.locator('#override-audit tbody').innerText()).includes('orders-app test: audit'), { timeoutMs: 10_000 });
      expect(await page.locator('#override-audit tbody tr:first-child').innerText()).toMatch(/^\S.*\bops\b/);
      await page.screenshot({ path: join(SHOTS, 'example-app-fetcher.png'), fullPage: true });
      await page.click('#override-off');
      await waitFor('the override off', async () => (await page.locator('#override-state').innerText()).startsWith('Off'), { timeoutMs: 10_000 });
      expect(problems).toEqual([]);
    } finally {
      await chromium?.close();
    }
  });

  it('stops both services on SIGTERM, cleanly (exit code 0)', async () => {
    const [s, f] = await Promise.all([server.stop(), fetcher.stop()]);
    expect({ server: s, fetcher: f }).toEqual({ server: { code: 0, signal: null }, fetcher: { code: 0, signal: null } });
    expect(server.lines).toContain('orders-app server stopped');
    expect(fetcher.lines).toContain('orders-app fetcher stopped');
  });
});

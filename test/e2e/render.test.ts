// render.yaml (issue 7): checked against the Blueprint spec's rules that matter, then each service's
// startCommand run exactly as written with the environment render.yaml gives it, against local
// PostgreSQL and local URLs; SIGTERM to the PID the command starts; and four processes starting at
// once on an empty database.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { parse } from 'yaml';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { loadMainConfig } from '../../apps/main/src/config.ts';
import { loadFetcherConfig } from '../../apps/fetcher/src/config.ts';
import { states } from '../support/gateway.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { withDatabase } from '../support/setup-database.ts';
import { freePort, TEST_JOBS_MODULE } from '../support/apps.ts';
import { call } from '../support/gateway.ts';
import { waitFor } from '../support/wait.ts';

const ROOT = join(import.meta.dirname, '../..');
const blueprint = parse(readFileSync(join(ROOT, 'render.yaml'), 'utf8')) as Blueprint;

interface EnvVar { key: string; value?: string; generateValue?: boolean; sync?: boolean; fromDatabase?: { name: string; property: string }; fromService?: { type: string; name: string; envVarKey?: string; property?: string }; fromGroup?: string }
interface Service { type: string; name: string; runtime: string; plan?: string; region?: string; buildCommand?: string; startCommand?: string; preDeployCommand?: string; healthCheckPath?: string; maxShutdownDelaySeconds?: number; envVars?: EnvVar[]; [k: string]: unknown }
interface Blueprint { services: Service[]; databases?: Array<{ name: string; plan?: string; region?: string; [k: string]: unknown }> }

// From Render's Blueprint spec (render.com/docs/blueprint-spec) and its JSON schema.
const SERVICE_TYPES = ['web', 'worker', 'pserv', 'cron', 'keyvalue'];
const RUNTIMES = ['node', 'python', 'ruby', 'go', 'rust', 'elixir', 'docker', 'image', 'static'];
const PLANS = ['free', 'starter', 'standard', 'pro', 'pro plus', 'pro max', 'pro ultra'];
const DATABASE_PLANS = ['free', 'basic-256mb', 'basic-1gb', 'basic-4gb', 'pro-4gb', 'pro-8gb', 'pro-16gb', 'starter', 'standard', 'pro', 'pro plus'];
const REGIONS = ['oregon', 'ohio', 'virginia', 'frankfurt', 'singapore'];
const DATABASE_PROPERTIES = ['host', 'port', 'database', 'user', 'password', 'connectionString'];
const SERVICE_KEYS = new Set(['type', 'name', 'runtime', 'plan', 'region', 'buildCommand', 'startCommand', 'preDeployCommand', 'healthCheckPath', 'maxShutdownDelaySeconds', 'envVars', 'numInstances', 'scaling', 'autoDeployTrigger', 'branch', 'rootDir', 'buildFilter', 'domains', 'disk', 'repo', 'previews']);

const service = (name: string) => blueprint.services.find((s) => s.name === name)!;

/**
 * The environment Render would give `name`, with what only the deployment knows filled in:
 * the database URL, the generated secret, and what the user pastes for `sync: false`.
 */
/** What a client of the jobs API sends to a main deployed by render.yaml: API_TOKENS is a generated value. */
const tokenOf = (fill: { secret: string }) => ({ 'content-type': 'application/json', authorization: `Bearer ${fill.secret}` });

function renderEnv(name: string, fill: { databaseUrl: string; secret: string; pasted: Record<string, string> }): Record<string, string> {
  const env: Record<string, string> = {};
  for (const v of service(name).envVars ?? []) {
    if (v.value !== undefined) env[v.key] = String(v.value);
    else if (v.generateValue) env[v.key] = fill.secret;
    else if (v.fromDatabase) env[v.key] = fill.databaseUrl;
    else if (v.fromService) env[v.key] = renderEnv(v.fromService.name, fill)[v.fromService.envVarKey!]!;
    else if (v.sync === false && fill.pasted[v.key] !== undefined) env[v.key] = fill.pasted[v.key]!;
  }
  return env;
}

describe('render.yaml against the Blueprint spec', () => {
  it('uses known types, runtimes, plans and regions, with the keys each service needs', () => {
    const names = blueprint.services.map((s) => s.name);
    expect(new Set(names).size).toBe(names.length);
    for (const s of blueprint.services) {
      expect(SERVICE_TYPES, s.name).toContain(s.type);
      expect(RUNTIMES, s.name).toContain(s.runtime);
      expect(PLANS, s.name).toContain(s.plan ?? 'starter');
      expect(REGIONS, s.name).toContain(s.region ?? 'oregon');
      for (const key of Object.keys(s)) expect(SERVICE_KEYS, `${s.name}.${key}`).toContain(key);
      expect(s.buildCommand, s.name).toEqual(expect.any(String));
      expect(s.startCommand, s.name).toMatch(/^exec node (--[a-z-]+=\d+ )*apps\/(main|fetcher)\/dist\/main\.js$/); // node gets SIGTERM itself, and runs the built JavaScript (V8 flags allowed)
      if (s.type === 'web') expect(s.healthCheckPath, s.name).toBe('/healthz');
      if (s.maxShutdownDelaySeconds !== undefined) {
        expect(Number.isInteger(s.maxShutdownDelaySeconds) && s.maxShutdownDelaySeconds >= 1 && s.maxShutdownDelaySeconds <= 300, s.name).toBe(true);
        expect(s.plan, `${s.name}: the free plan keeps the default window`).not.toBe('free');
      }
      if (s.preDeployCommand !== undefined) expect(s.plan, `${s.name}: preDeployCommand needs a paid plan`).not.toBe('free');
    }
    expect(service('jobgate-main').type).toBe('web');
    expect(service('jobgate-fetcher')).toMatchObject({ type: 'web', plan: 'free' });
    for (const d of blueprint.databases ?? []) {
      // the apps use the internal URL: nothing outside Render's network may connect
      expect(d.ipAllowList, `${d.name}: ipAllowList`).toEqual([]);
      expect(DATABASE_PLANS, d.name).toContain(d.plan);
      expect(REGIONS, d.name).toContain(d.region ?? 'oregon');
    }
  });

  it('gives every variable a value, a source or sync: false, and wires the apps to each other', () => {
    const databases = new Set((blueprint.databases ?? []).map((d) => d.name));
    for (const s of blueprint.services) {
      const keys = (s.envVars ?? []).map((v) => v.key);
      expect(new Set(keys).size, `${s.name}: duplicate keys`).toBe(keys.length);
      for (const v of s.envVars ?? []) {
        const sources = [v.value !== undefined, v.generateValue === true, v.fromDatabase !== undefined, v.fromService !== undefined, v.fromGroup !== undefined, v.sync === false].filter(Boolean);
        expect(sources.length, `${s.name} ${v.key}: exactly one source`).toBe(1);
        if (v.value !== undefined) expect(typeof v.value, `${s.name} ${v.key}: values are strings`).toBe('string');
        if (v.fromDatabase) {
          expect(databases.has(v.fromDatabase.name), `${s.name} ${v.key}`).toBe(true);
          expect(DATABASE_PROPERTIES).toContain(v.fromDatabase.property);
        }
        if (v.fromService) {
          const other = service(v.fromService.name);
          expect(other?.type, `${s.name} ${v.key}`).toBe(v.fromService.type);
          expect(other.envVars?.some((o) => o.key === v.fromService!.envVarKey), `${s.name} ${v.key}: ${v.fromService.envVarKey} exists on ${other.name}`).toBe(true);
        }
      }
      expect(s.envVars?.find((v) => v.key === 'NODE_VERSION')?.value, s.name).toMatch(/^24\./);
      expect(s.envVars?.find((v) => v.key === 'NODE_ENV')?.value, s.name).toBe('production');
    }
    // one secret, generated once, read by the other service
    expect(service('jobgate-main').envVars!.find((v) => v.key === 'FETCHER_SHARED_SECRET')).toMatchObject({ generateValue: true });
    expect(service('jobgate-fetcher').envVars!.find((v) => v.key === 'FETCHER_SHARED_SECRET')).toMatchObject({ fromService: { name: 'jobgate-main', envVarKey: 'FETCHER_SHARED_SECRET' } });
    const fill = { databaseUrl: 'postgres://u:p@dpg-x/jobgate', secret: randomBytes(32).toString('base64'), pasted: {} };
    const [main, fetcher] = [renderEnv('jobgate-main', fill), renderEnv('jobgate-fetcher', fill)];
    expect(main.JOBGATE_BOSS_SCHEMA).not.toBe(fetcher.JOBGATE_BOSS_SCHEMA);
    expect(main.JOBGATE_SCHEMA).not.toBe(fetcher.JOBGATE_SCHEMA);
    expect(Number(main.DATABASE_POOL_MAX) + Number(main.JOBGATE_QUEUE_POOL_MAX) + Number(fetcher.DATABASE_POOL_MAX) + Number(fetcher.JOBGATE_QUEUE_POOL_MAX)).toBeLessThanOrEqual(20);
  });

  it('provides every variable the apps require in production: only the sync: false ones are left to fill in', () => {
    const pasted = { FETCHER_SERVICE_URL: 'https://jobgate-fetcher.onrender.com', MAIN_SERVICE_URL: 'https://jobgate-main.onrender.com', ADMIN_PASSWORD: 'a-long-random-password' };
    const fill = { databaseUrl: 'postgres://u:p@dpg-x/jobgate', secret: randomBytes(32).toString('base64'), pasted };
    // Render's generateValue is 256 bits of base64: the apps take it as the signing secret
    expect(loadMainConfig(renderEnv('jobgate-main', fill))).toMatchObject({ NODE_ENV: 'production', TRUST_PROXY: '1' });
    expect(loadFetcherConfig(renderEnv('jobgate-fetcher', fill))).toMatchObject({ NODE_ENV: 'production', FETCHER_MEMORY_LIMIT_MB: 512 });
    // and without what the user pastes, each app refuses to start, naming it
    expect(() => loadMainConfig(renderEnv('jobgate-main', { ...fill, pasted: {} }))).toThrow(/FETCHER_SERVICE_URL[\s\S]*ADMIN_PASSWORD|ADMIN_PASSWORD[\s\S]*FETCHER_SERVICE_URL/);
    expect(() => loadFetcherConfig(renderEnv('jobgate-fetcher', { ...fill, pasted: {} }))).toThrow(/MAIN_SERVICE_URL/);
    const syncFalse = blueprint.services.flatMap((s) => (s.envVars ?? []).filter((v) => v.sync === false).map((v) => v.key)).sort();
    expect(syncFalse).toEqual(Object.keys(pasted).sort());
  });
});

// ------------------------------------------------------------------ the start commands, run

interface Started { child: ChildProcess; logs: any[]; pid: number; url: string }
const started: ChildProcess[] = [];
const dbs: TestDatabase[] = [];
const NODE_DIR = dirname(process.execPath); // Render's NODE_VERSION puts Node 24 on the PATH

async function startCommand(name: string, env: Record<string, string>): Promise<Started> {
  // the shell Render runs the command in; `exec` makes node take the shell's PID
  const child = spawn('sh', ['-c', service(name).startCommand!], { cwd: ROOT, env: { PATH: `${NODE_DIR}:${process.env.PATH}`, HOME: process.env.HOME ?? '/', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(child);
  const logs: any[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      logs.push(JSON.parse(line));
    } catch {
      /* not a log line */
    }
  });
  let stderr = '';
  child.stderr!.on('data', (c) => (stderr += c));
  const listening = await waitFor(`${name} listening`, () => {
    if (child.exitCode !== null) throw new Error(`${name} exited ${child.exitCode}: ${stderr}`);
    return logs.find((l) => l.msg === 'listening');
  }, { timeoutMs: 60_000 });
  return { child, logs, pid: listening.pid, url: `http://127.0.0.1:${listening.port}` };
}

const childrenOf = (pid: number) => {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(entry));
    } catch {
      /* gone */
    }
  }
  return out;
};

afterEach(async () => {
  for (const c of started.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});
afterAll(async () => {
  for (const d of dbs.splice(0)) await d.drop();
});

describe("render.yaml's start commands, run as written", () => {
  it('come up healthy with the env render.yaml gives them and run a routed job; SIGTERM: logged, out within 25 s, nothing lost or orphaned', async () => {
    const db = await createTestDatabase();
    dbs.push(db);
    const [mainPort, fetcherPort] = [await freePort(), await freePort()];
    const fill = {
      databaseUrl: db.url,
      secret: randomBytes(32).toString('base64'),
      pasted: { FETCHER_SERVICE_URL: `http://127.0.0.1:${fetcherPort}`, MAIN_SERVICE_URL: `http://127.0.0.1:${mainPort}`, ADMIN_PASSWORD: 'a-long-random-password' },
    };
    // Render also sets PORT; nothing else is added
    let fetcher = await startCommand('jobgate-fetcher', { ...renderEnv('jobgate-fetcher', fill), PORT: String(fetcherPort) });
    const main = await startCommand('jobgate-main', { ...renderEnv('jobgate-main', fill), PORT: String(mainPort) });
    expect(main.pid).toBe(main.child.pid); // exec: node is the process Render signals
    expect(fetcher.pid).toBe(fetcher.child.pid);
    for (const app of [main, fetcher]) expect((await fetch(`${app.url}/healthz`)).status).toBe(200);
    // production: JSON logs, the demo jobs are off
    expect((await call(main.url, 'POST', '/api/jobs/demo.heavy', { payload: {} }, tokenOf(fill))).status).toBe(404);

    // a routed job (a shipped one): movies from the demo provider, on the fetcher
    const quick = await call(main.url, 'POST', '/api/jobs/movies.fetch', { payload: { provider: 'demo', batchSize: 500, maxMovies: 2_000 } }, tokenOf(fill));
    expect(quick.json.route).toBe('fetcher');
    const done = await waitFor('routed job completed', async () => {
      const j = (await call(main.url, 'GET', `/api/jobs/${quick.json.id}`, undefined, tokenOf(fill))).json;
      return j.state === 'completed' && j;
    }, { timeoutMs: 60_000, intervalMs: 250 });
    expect(done.executions).toEqual([expect.objectContaining({ ranOn: 'fetcher', outcome: 'completed' })]);

    // SIGTERM to the fetcher in the middle of a long job: it lets the job finish (or aborts it at the
    // deadline, to be retried after the restart), exits, and the job completes
    const long = await call(main.url, 'POST', '/api/jobs/movies.fetch', { payload: { provider: 'demo', batchSize: 500, maxMovies: 300_000 } }, tokenOf(fill));
    await waitFor('long job running', async () => (await call(main.url, 'GET', `/api/jobs/${long.json.id}`, undefined, tokenOf(fill))).json.state === 'active', { timeoutMs: 30_000, intervalMs: 100 });
    const sentAt = Date.now();
    fetcher.child.kill('SIGTERM');
    const exit = await new Promise<{ code: number | null }>((resolve) => fetcher.child.on('exit', (code) => resolve({ code })));
    const fetcherSeconds = (Date.now() - sentAt) / 1000;
    expect(fetcher.logs.some((l) => l.msg === 'shutdown complete')).toBe(true);
    expect(exit.code).toBe(0);
    expect(fetcherSeconds).toBeLessThan(25);
    expect(childrenOf(fetcher.pid)).toEqual([]);
    fetcher = await startCommand('jobgate-fetcher', { ...renderEnv('jobgate-fetcher', fill), PORT: String(fetcherPort) });
    const longDone = await waitFor('long job completed after the restart', async () => {
      const j = (await call(main.url, 'GET', `/api/jobs/${long.json.id}`, undefined, tokenOf(fill))).json;
      return (j.state === 'completed' || j.state === 'failed') && j;
    }, { timeoutMs: 180_000, intervalMs: 500 });
    expect(longDone.state).toBe('completed');

    // and main
    const mainSentAt = Date.now();
    main.child.kill('SIGTERM');
    const mainExit = await new Promise<{ code: number | null }>((resolve) => main.child.on('exit', (code) => resolve({ code })));
    expect(main.logs.some((l) => l.msg === 'shutdown complete')).toBe(true);
    expect(mainExit.code).toBe(0);
    expect((Date.now() - mainSentAt) / 1000).toBeLessThan(25);
    expect(childrenOf(main.pid)).toEqual([]);
    console.log(
      `render: both start commands healthy; routed job done; fetcher SIGTERMed mid-job exited 0 in ${fetcherSeconds.toFixed(1)} s ` +
        `(${longDone.executions.map((e: any) => e.outcome).join(', ')}); main exited 0 in ${((Date.now() - mainSentAt) / 1000).toFixed(1)} s; orphans 0`,
    );
    fetcher.child.kill('SIGTERM');
  }, 300_000);

  it('four processes starting at once on an empty database migrate once, all come up, and share the work', async () => {
    // an empty database: no template, nothing migrated
    const admin = new pg.Client({ connectionString: inject('adminDatabaseUrl') });
    const name = `jgt_${randomBytes(6).toString('hex')}`;
    await admin.connect();
    await admin.query(`CREATE DATABASE "${name}"`);
    await admin.end();
    const url = withDatabase(inject('adminDatabaseUrl'), name);
    const pool = new pg.Pool({ connectionString: url, max: 2 });
    // the drop below ends its connections (WITH FORCE): an idle one that had not closed yet errs then
    pool.on('error', () => {});
    const db: TestDatabase = {
      url,
      pool,
      async drop() {
        await this.pool.end();
        const c = new pg.Client({ connectionString: inject('adminDatabaseUrl') });
        await c.connect();
        await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).finally(() => c.end());
      },
    };
    dbs.push(db);
    // the test jobs record each run; their tables are the test's, not a migration's
    await db.pool.query(`CREATE TABLE public.test_events (seq bigserial PRIMARY KEY, job_id uuid NOT NULL, job_name text NOT NULL, attempt integer NOT NULL,
      event text NOT NULL, pid integer NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp(), detail jsonb)`);
    await db.pool.query(`CREATE TABLE public.test_effects (job_id uuid PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())`);

    const ports = await Promise.all([1, 2, 3, 4].map(() => freePort()));
    const fill = { databaseUrl: url, secret: randomBytes(32).toString('base64'), pasted: { FETCHER_SERVICE_URL: `http://127.0.0.1:${ports[2]}`, MAIN_SERVICE_URL: `http://127.0.0.1:${ports[0]}`, ADMIN_PASSWORD: 'a-long-random-password' } };
    const extra = { JOBGATE_JOB_MODULES: TEST_JOBS_MODULE, JOBGATE_POLL_INTERVAL_SECONDS: '0.5' };
    const apps = await Promise.all([
      startCommand('jobgate-main', { ...renderEnv('jobgate-main', fill), ...extra, PORT: String(ports[0]) }),
      startCommand('jobgate-main', { ...renderEnv('jobgate-main', fill), ...extra, PORT: String(ports[1]) }),
      startCommand('jobgate-fetcher', { ...renderEnv('jobgate-fetcher', fill), ...extra, PORT: String(ports[2]) }),
      startCommand('jobgate-fetcher', { ...renderEnv('jobgate-fetcher', fill), ...extra, PORT: String(ports[3]) }),
    ]);
    const migrated = apps.map((a) => a.logs.find((l) => l.msg === 'migrations applied')?.applied?.length ?? 0);
    // one main and one fetcher applied every migration of their schema; the other of each found them done
    expect(migrated.slice(0, 2).filter((n) => n > 0)).toHaveLength(1);
    expect(migrated.slice(2).filter((n) => n > 0)).toHaveLength(1);

    // jobs from both mains; main → the first fetcher's URL, but both fetchers work one queue
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) ids.push((await call(apps[i % 2]!.url, 'POST', '/api/jobs/test.remote', { payload: { sleepMs: 300 } }, tokenOf(fill))).json.id);
    await waitFor('all 40 completed', async () => (await states(db, ids)).completed === 40, { timeoutMs: 90_000, intervalMs: 500 });
    const { rows } = await db.pool.query(`SELECT pid, count(*)::int AS n FROM public.test_events WHERE job_id = ANY($1::uuid[]) AND event = 'start' GROUP BY pid`, [ids]);
    const byPid = Object.fromEntries(rows.map((r) => [r.pid, r.n]));
    const effects = (await db.pool.query(`SELECT count(*)::int AS n FROM public.test_effects WHERE job_id = ANY($1::uuid[])`, [ids])).rows[0].n;
    expect(Object.keys(byPid).map(Number).sort()).toEqual([apps[2]!.pid, apps[3]!.pid].sort());
    expect(Object.values(byPid).reduce((a: number, b: any) => a + b, 0)).toBe(40); // none run twice
    expect(effects).toBe(40);
    console.log(`render: 4 processes at once on an empty database: migrations applied by one main (${migrated.slice(0, 2).join('/')}) and one fetcher (${migrated.slice(2).join('/')}); 40 jobs from both mains run ${Object.values(byPid).join(' + ')} on the two fetchers, none twice`);
    for (const a of apps) a.child.kill('SIGTERM');
    await Promise.all(apps.map((a) => new Promise((r) => (a.child.exitCode !== null ? r(null) : a.child.on('exit', r)))));
    await sleep(100);
  }, 240_000);
});

// `npm start`: an embedded PostgreSQL (data in .data/), the fetcher on :3001 and the main app on
// :3000, demo jobs on. It supervises both apps: a crashed app is restarted, Ctrl-C stops everything.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLogger } from '../packages/jobgate/src/support/index.ts';
import { startEmbeddedPostgres } from './embedded-postgres.ts';

/**
 * On a terminal, a person reads this: plain lines for the apps' JSON logs (time, app, level,
 * message, the fields that matter). Piped anywhere else (a file, a log shipper, the tests), the
 * apps' JSON lines pass through untouched. JOBGATE_LOG_FORMAT=json keeps JSON on a terminal too.
 */
const pretty = Boolean(process.stdout.isTTY) && process.env.JOBGATE_LOG_FORMAT !== 'json';
const COLORS: Record<string, string> = { warn: '\x1b[33m', error: '\x1b[31m', fatal: '\x1b[31m' };
/** Fields every line has, or that say nothing to a person reading along. */
const NOISE = new Set(['level', 'time', 'pid', 'hostname', 'app', 'msg', 'role', 'component', 'traceId', 'err']);

/** One JSON log line as a person reads it: time, app, level, message, then the other fields dimmed. */
function readableLine(app: string, line: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return `${app.padEnd(7)} ${line}`;
  }
  const level = String(entry.level ?? 'info');
  const time = typeof entry.time === 'string' ? entry.time.slice(11, 19) : new Date().toTimeString().slice(0, 8);
  const err = entry.err as { message?: string } | undefined;
  const fields = Object.entries(entry)
    .filter(([k, v]) => !NOISE.has(k) && v !== undefined)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  const text = `${time} ${app.padEnd(7)} ${(level === 'info' ? '' : level.toUpperCase()).padEnd(5)} ${String(entry.msg ?? '')}${err?.message ? `: ${err.message}` : ''}`;
  return `${COLORS[level] ?? ''}${text}${COLORS[level] ? '\x1b[0m' : ''}${fields ? `  \x1b[2m${fields}\x1b[0m` : ''}`;
}

const root = join(import.meta.dirname, '..');
const dataDir = process.env.JOBGATE_DATA_DIR ?? join(root, '.data');
const logger = createLogger({
  level: process.env.LOG_LEVEL ?? 'info',
  name: 'start',
  // on a terminal, this supervisor's own lines read like the apps' (see readableLine)
  ...(pretty ? { destination: { write: (line: string) => void process.stdout.write(`${readableLine('start', line.trimEnd())}\n`) } } : {}),
});

/** Secrets made once per checkout and kept in .data/, so restarts keep the same ones. */
async function localSecrets(): Promise<{ sharedSecret: string; adminPassword: string; apiToken: string }> {
  const file = join(dataDir, 'secrets.json');
  const kept = existsSync(file) ? (JSON.parse(await readFile(file, 'utf8')) as Partial<Awaited<ReturnType<typeof localSecrets>>>) : {};
  // a checkout from before the API token gets one added; the others stay as they were
  const secrets = {
    sharedSecret: kept.sharedSecret ?? `whsec_${randomBytes(32).toString('base64')}`,
    adminPassword: kept.adminPassword ?? randomBytes(12).toString('base64url'),
    apiToken: kept.apiToken ?? `jg_${randomBytes(24).toString('base64url')}`,
  };
  if (Object.keys(kept).length !== 3) await writeFile(file, JSON.stringify(secrets, null, 2), { mode: 0o600 });
  return secrets;
}

await mkdir(dataDir, { recursive: true });
const secrets = await localSecrets();
let databaseUrl = process.env.DATABASE_URL;
const embedded = databaseUrl
  ? null
  : await startEmbeddedPostgres({ dataDir: join(dataDir, 'pg'), logger }).catch((err: Error) => {
      process.stderr.write(`jobgate: ${err.message}\n`);
      process.exit(1);
    });
if (embedded) {
  await embedded.ensureDatabase('jobgate');
  databaseUrl = embedded.url('jobgate');
}

const mainPort = process.env.PORT ?? '3000';
const fetcherPort = process.env.FETCHER_PORT ?? '3001';
const shared = {
  ...process.env,
  DATABASE_URL: databaseUrl,
  JOBGATE_DEMO_JOBS: process.env.JOBGATE_DEMO_JOBS ?? 'true',
  FETCHER_SHARED_SECRET: process.env.FETCHER_SHARED_SECRET ?? secrets.sharedSecret,
};
const apps = {
  fetcher: { script: 'apps/fetcher/src/main.ts', env: { ...shared, PORT: fetcherPort, MAIN_SERVICE_URL: process.env.MAIN_SERVICE_URL ?? `http://127.0.0.1:${mainPort}` } },
  main: {
    script: 'apps/main/src/main.ts',
    env: {
      ...shared,
      PORT: mainPort,
      FETCHER_SERVICE_URL: process.env.FETCHER_SERVICE_URL ?? `http://127.0.0.1:${fetcherPort}`,
      ADMIN_PASSWORD: process.env.ADMIN_PASSWORD ?? secrets.adminPassword,
      API_TOKENS: process.env.API_TOKENS ?? secrets.apiToken,
    },
  },
};

// What `npx jobgate …` uses when DATABASE_URL is not set: this checkout's running apps.
await writeFile(
  join(dataDir, 'cli.env.json'),
  JSON.stringify({ DATABASE_URL: databaseUrl, FETCHER_SERVICE_URL: apps.main.env.FETCHER_SERVICE_URL, FETCHER_SHARED_SECRET: shared.FETCHER_SHARED_SECRET, JOBGATE_DEMO_JOBS: shared.JOBGATE_DEMO_JOBS }, null, 2),
  { mode: 0o600 },
);

const children = new Map<string, ChildProcess>();
let stopping = false;

function run(name: keyof typeof apps, restarts = 0): void {
  const app = apps[name];
  const child = spawn(process.execPath, ['--conditions=jobgate-source', app.script], { cwd: root, env: app.env, stdio: ['ignore', pretty ? 'pipe' : 'inherit', 'inherit'] });
  if (pretty) createInterface({ input: child.stdout! }).on('line', (line) => process.stdout.write(`${readableLine(name, line)}\n`));
  children.set(name, child);
  const started = Date.now();
  child.on('exit', (code, signal) => {
    children.delete(name);
    if (stopping) return;
    // Quick crashes back off, up to 10 s; an app that ran a while restarts at once.
    const next = Date.now() - started > 30_000 ? 0 : restarts + 1;
    const delay = Math.min(10_000, 500 * 2 ** next);
    logger.error({ app: name, code, signal, restartInMs: delay }, 'app exited; restarting');
    setTimeout(() => run(name, next), delay).unref();
  });
}

run('fetcher');
run('main');
if (pretty) {
  const token = apps.main.env.API_TOKENS.split(/\s+/)[0];
  process.stdout.write(
    [
      '',
      'jobgate is starting: the main app, the fetcher, and their PostgreSQL (' + (embedded ? `embedded, data in ${join(dataDir, 'pg')}` : 'DATABASE_URL') + ').',
      '',
      `  main app        http://127.0.0.1:${mainPort}`,
      `  admin           http://127.0.0.1:${mainPort}/admin   user admin, password ${apps.main.env.ADMIN_PASSWORD}`,
      `  jobs API token  ${token}`,
      `  fetcher         http://127.0.0.1:${fetcherPort}`,
      '',
      `  try it:  curl -X POST -H 'authorization: Bearer ${token}' -H 'content-type: application/json' \\`,
      `             -d '{"payload":{}}' http://127.0.0.1:${mainPort}/api/jobs/demo.heavy`,
      '',
      '  Ctrl-C stops everything (running jobs get up to 15 s to finish).',
      '',
      '',
    ].join('\n'),
  );
} else logger.info(
  { main: `http://127.0.0.1:${mainPort}`, fetcher: `http://127.0.0.1:${fetcherPort}`, admin: `http://127.0.0.1:${mainPort}/admin`, adminUser: 'admin', adminPassword: apps.main.env.ADMIN_PASSWORD, apiToken: apps.main.env.API_TOKENS.split(/\s+/)[0], database: embedded ? 'embedded (.data/pg)' : 'DATABASE_URL' },
  'jobgate is starting',
);

async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'stopping the apps');
  const exited = [...children.values()].map((child) => new Promise<void>((done) => {
    if (child.exitCode !== null || child.signalCode !== null) return done();
    child.once('exit', () => done());
    child.kill('SIGTERM');
  }));
  // The apps exit within 25 s; past 28 s they are killed.
  await Promise.race([Promise.all(exited), sleep(28_000)]);
  for (const child of children.values()) child.kill('SIGKILL');
  await embedded?.stop();
  process.exit(0);
}
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));

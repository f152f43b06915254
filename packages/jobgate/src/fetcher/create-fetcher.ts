// The fetcher, composed: the job service for runsOnFetcher jobs, the claims at main, the job
// events back to main, the memory guard, the pruner, and the router main's forwards arrive at.
// Options in, an object you can stop out; nothing here reads process.env.
import { readFileSync } from 'node:fs';
import pRetry from 'p-retry';
import { Counter, ErrorCode, Gauge, JobgateError, createLogger, createRegistry, metricsHandler } from '../support/index.ts';
import { signingKeys, type Spawn } from '../protocol/index.ts';
import { createMainClient, isRetryable, unreachableLog } from '../client/index.ts';
import { createFetcherLedger, createReplayStore } from '../store/index.ts';
import { openJobService } from '../run/service.ts';
import { serviceOptionsOf } from '../run/service-options.ts';
import { createJobMetrics, fetcherMemoryGauge, queueSizes } from '../run/metrics.ts';
import { isolatedChildPids } from '../run/isolation/run-isolated.ts';
import { remoteClaimsAt, type RemoteClaims } from '../run/claim-at-main.ts';
import { startEventDispatcher } from '../report/event-dispatcher.ts';
import { startPruner } from '../maintain/pruner.ts';
import { createFetcherRuntime } from './fetcher-runtime.ts';
import { createMemoryGuard, rssOfPid } from './memory-guard.ts';
import { createFetcherRouter } from './router.ts';
import { memoryBudgetMb, parseFetcherOptions, type FetcherServiceOptions } from './fetcher-options.ts';
import type { Fetcher } from './fetcher-api.ts';

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/**
 * The fetcher: the separate service that runs the heavy (`runsOnFetcher`) jobs main forwards.
 * @example
 * const fetcher = await createFetcher({ databaseUrl, jobs: [importOrder], main: { url: 'https://app.example.com/jobgate', secret } });
 * express().use(fetcher.router).listen(3001);
 * await fetcher.start();
 */
export async function createFetcher(options: FetcherServiceOptions): Promise<Fetcher> {
  const o = parseFetcherOptions(options);
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
      retentionDays: o.retentionDays,
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

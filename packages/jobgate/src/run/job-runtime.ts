import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Pool } from 'pg';
import pRetry from 'p-retry';
import type { JobWithMetadata, JobResult, PgBoss, SendOptions } from 'pg-boss';
import { ConfigError, ErrorCode, JobgateError, PermanentJobError, fieldErrorsFromZod, isDatabaseUnavailable, cleanText, findUnstorable, MAX_ERROR_MESSAGE, MAX_PROGRESS_MESSAGE, newTraceparent, parseTraceparent, traceFields, type FieldError, type Logger } from '../support/index.ts';
import { queuedCondition, recordBossWrite, runTogether, withTransaction, workWhileFull, type BossDb, type ClaimResult, type ErrorInfo, type JobRecord, type Ledger, type Queryable, type QueueTimings, type Route, type RouteReason } from '../store/index.ts';
import { OUTBOX_QUEUE_OPTIONS, SystemQueue, type Catalogue } from '../define/catalogue.ts';
import type { JobContext, JobDefinition } from '../define/define-job.ts';
import { uniqueKeyOf } from '../define/stable-json.ts';
import type { JobMetrics } from './metrics.ts';
import { runIsolated } from './isolation/run-isolated.ts';

export interface EnqueueOptions {
  /** Run inside the caller's transaction: the job commits or rolls back with it. */
  db?: Queryable;
  /** Overrides the job's default priority (higher runs first). */
  priority?: number;
  /** Do not start before this many seconds from now. */
  delaySeconds?: number;
  /** Carried into the job's logs. */
  requestId?: string;
  /** W3C traceparent of the enqueueing request (`req.traceparent`); absent, the job starts a trace of its own. */
  traceparent?: string;
  /** Run a `runsOnFetcher` job on main (the per-run emergency override). */
  runOnMain?: boolean;
}

/** A job handed over by main, with main's id (see `accept`). */
export interface AcceptedJob {
  id: string;
  name: string;
  payload: unknown;
  priority?: number;
  delaySeconds?: number;
  requestId?: string;
  traceparent?: string;
}

export interface EnqueueResult {
  job: JobRecord;
  /** A `unique` job with this payload was already queued or active: that one is returned. */
  duplicate: boolean;
}

/** What pg-boss stores as a job's data. */
interface QueuedData {
  payload: unknown;
  requestId?: string;
  traceparent?: string;
}

/** What the outbox holds for a fetcher job until it is delivered. */
export interface OutboxData extends QueuedData {
  id: string;
  name: string;
}

/** A fetcher job running on main: its name rides along, and main numbers attempts after the fetcher's. */
export interface OnMainData extends QueuedData {
  name: string;
  attemptBase: number;
}

/**
 * The fetcher's claim on main's ledger (the source of truth), over the signed API: an attempt runs
 * only once main has granted it, so main and the fetcher never run one job at once. Once the
 * fetcher has claimed a job, main never takes it over, so the claim needs no refresh there.
 * `unknown`: main has no such job (never had it, or deleted it after it finished): the fetcher does not run it.
 */
export interface RemoteClaims {
  claim(id: string, attempt: number, claimSeconds: number, traceparent?: string): Promise<ClaimResult | { outcome: 'unknown' }>;
}

export interface JobRuntimeOptions {
  /** Which side this runtime is: main runs jobs that are not `runsOnFetcher`; the fetcher runs those that are. */
  ranOn: Route;
  pool: Pool;
  boss: PgBoss;
  ledger: Ledger;
  catalogue: Catalogue;
  logger: Logger;
  timings: QueueTimings;
  /** Handlers of one job name running at once in this process, unless the job sets `concurrency`. */
  workerConcurrency: number;
  /** Where a job was defined (a module URL), for jobs whose handler runs in a worker thread. */
  moduleOf?: (name: string) => string | undefined;
  /** Main: whether the emergency override is on (new fetcher jobs then run on main). */
  overrideEnabled?: (db?: Queryable) => Promise<boolean>;
  /** Prometheus counters and histograms (createJobMetrics); absent, nothing is counted. */
  metrics?: JobMetrics;
  /** Main: fetcher jobs running on main at once (they are the heavy ones). */
  onMainConcurrency?: number;
  /** The fetcher: claims in main's ledger, when main is known. */
  remoteClaims?: RemoteClaims;
  /** Main: a delivery to the fetcher is retried with backoff, at most this far apart (default 60). */
  outboxRetryDelayMaxSeconds?: number;
}

/** pg-boss's own expiry sits this far behind `timeoutSeconds`, so our timer (with a clear error) fires first. */
const EXPIRY_SLACK_SECONDS = 30;
/** How long a fetcher attempt may wait for main's claim (main down) before pg-boss gives it up. */
const CLAIM_WAIT_BUDGET_SECONDS = 3_600;
/** pg-boss refuses expiries over 24 hours. */
const MAX_EXPIRY_SECONDS = 24 * 3_600;
/** The largest payload (as JSON) of a job that runs on the fetcher: one always fits a forward request. */
export const MAX_FETCHER_PAYLOAD_BYTES = 2 ** 20;
/** A handler that ignores its aborted signal gets this long before its attempt is settled anyway. */
const ABORT_GRACE_MS = 5_000;

const toDb = (db: Queryable) => ({ executeSql: (text: string, values?: unknown[]) => db.query(text, values) });

/** What an attempt's error is stored as: code and message, the message cleaned of NUL and cut to MAX_ERROR_MESSAGE. */
function errorInfo(err: unknown): ErrorInfo {
  const [code, message] = err instanceof JobgateError ? [err.code, err.message] : [ErrorCode.jobFailed, err instanceof Error ? err.message || err.name : String(err)];
  return { code, message: cleanText(message, MAX_ERROR_MESSAGE) };
}

/**
 * The job library at run time: `performLater` writes a job to the ledger and its queue in one
 * transaction; `start` runs the handlers of main-route jobs, the cron trigger and the dead-letter
 * watcher; `stop` drains them.
 */
export function createJobRuntime(options: JobRuntimeOptions) {
  const { pool, boss, ledger, catalogue, timings, ranOn } = options;
  const logger = options.logger.child({ component: 'jobs' });
  /** Whether this side runs `def`'s handler. */
  const runsHere = (def: JobDefinition) => def.runsOnFetcher === (ranOn === 'fetcher');
  /** A claim outlives two missed heartbeats (unless set), so a dead runner blocks a concurrency slot only briefly. */
  const claimSeconds = timings.claimSeconds ?? timings.heartbeatSeconds * 2;
  const running = new Set<Promise<unknown>>();
  const shutdown = new AbortController();
  let started = false;
  /** How to (re)start the worker of each job queue this side runs, for pause() and resume(). */
  const handlerWorkers = new Map<string, () => Promise<void>>();
  let paused = false;

  function definition(nameOrDef: string | JobDefinition): JobDefinition {
    const name = typeof nameOrDef === 'string' ? nameOrDef : nameOrDef.name;
    const def = catalogue.get(name);
    if (!def) throw new JobgateError(ErrorCode.unknownJob, `No job is named ${JSON.stringify(name)}.`);
    return def;
  }

  function queueOptions(def: JobDefinition) {
    return {
      retryLimit: def.retry.limit,
      retryDelay: def.retry.delaySeconds,
      retryBackoff: def.retry.backoff,
      ...(def.retry.maxDelaySeconds ? { retryDelayMax: def.retry.maxDelaySeconds } : {}),
      // A fetcher waits for main's claim before its timer starts (main may be redeploying): that
      // wait must not expire the attempt. A dead runner is still found by its heartbeat.
      expireInSeconds: Math.min(MAX_EXPIRY_SECONDS, def.timeoutSeconds + EXPIRY_SLACK_SECONDS + (options.remoteClaims ? CLAIM_WAIT_BUDGET_SECONDS : 0)),
      heartbeatSeconds: timings.heartbeatSeconds,
      deadLetter: SystemQueue.deadLetter,
      notify: true,
    };
  }

  /** A fetcher job queued on main carries its job's policy itself (the on-main queue is shared). */
  function onMainInsert(def: JobDefinition, id: string, data: OnMainData, priority: number, startAfter?: Date | number) {
    const retryLimit = Math.max(0, def.retry.limit - data.attemptBase);
    return {
      id,
      data,
      priority,
      retryLimit,
      retryDelay: def.retry.delaySeconds,
      retryBackoff: def.retry.backoff,
      ...(def.retry.maxDelaySeconds ? { retryDelayMax: def.retry.maxDelaySeconds } : {}),
      expireInSeconds: def.timeoutSeconds + EXPIRY_SLACK_SECONDS,
      heartbeatSeconds: timings.heartbeatSeconds,
      deadLetter: SystemQueue.deadLetter,
      ...(startAfter !== undefined ? { startAfter } : {}),
    };
  }

  async function ensureQueue(name: string, queueOpts: object = { notify: true }): Promise<void> {
    await boss.createQueue(name, queueOpts);
    // createQueue leaves an existing queue alone: apply changed options of a redefined job
    await boss.updateQueue(name, queueOpts);
  }

  /** Where a new job goes: its definition's side, unless main runs a fetcher job under an override. */
  async function placement(def: JobDefinition, opts: EnqueueOptions): Promise<{ route: Route; routeReason: RouteReason }> {
    if (!def.runsOnFetcher) return { route: 'main', routeReason: 'definition' };
    if (ranOn === 'main' && opts.runOnMain) return { route: 'main', routeReason: 'run-on-main' };
    if (ranOn === 'main' && (await options.overrideEnabled?.(opts.db))) return { route: 'main', routeReason: 'override' };
    return { route: 'fetcher', routeReason: 'definition' };
  }

  /**
   * Writes a new job: its ledger row and its queue entry (the job's own queue when this side runs
   * it, the shared on-main queue when main runs a fetcher job, else the outbox the forwarder
   * delivers from) commit together. A job that is not unique takes one round trip for both
   * (runTogether); a unique job first asks the ledger whether a live duplicate exists, inside `db`'s
   * transaction.
   */
  async function enqueueIn(db: Queryable, def: JobDefinition, payload: unknown, opts: EnqueueOptions, place: Awaited<ReturnType<typeof placement>>): Promise<EnqueueResult> {
    const { route, routeReason } = place;
    const uniqueKey = def.unique ? uniqueKeyOf(payload) : null;
    const priority = opts.priority ?? def.priority;
    const delaySeconds = opts.delaySeconds ?? 0;
    // a caller's traceparent as W3C writes it, else a new trace (it goes over the wire to the fetcher)
    const given = parseTraceparent(opts.traceparent);
    const traceparent = given ? `00-${given.traceId}-${given.spanId}-${given.flags}` : newTraceparent();
    // (the fetcher takes request ids of at most 128 characters)
    const data: QueuedData = { payload, ...(opts.requestId ? { requestId: opts.requestId.slice(0, 128) } : {}), traceparent };
    const queue = runsHere(def) ? def.name : route === 'main' ? SystemQueue.onMain : SystemQueue.outbox;
    const queueWrite = (id: string) => (bossDb: BossDb) => {
      const send: SendOptions = { id, priority, db: bossDb, ...(delaySeconds > 0 ? { startAfter: delaySeconds } : {}) };
      if (queue === def.name) return boss.send(def.name, data, def.concurrency ? { ...send, group: { id: def.name } } : send);
      if (queue === SystemQueue.onMain) {
        const onMain: OnMainData = { ...data, name: def.name, attemptBase: 0 };
        return boss.insert(SystemQueue.onMain, [onMainInsert(def, id, onMain, priority, delaySeconds > 0 ? delaySeconds : undefined)], { db: bossDb });
      }
      // Kept for the fetcher until the forwarder delivers it; never run on main from here.
      return boss.send(SystemQueue.outbox, { ...data, id, name: def.name } satisfies OutboxData, send);
    };
    const newJob = (id: string) => ({ id, name: def.name, route, routeReason, payload, priority, uniqueKey, maxAttempts: def.retry.limit + 1, delaySeconds, traceparent });

    if (!uniqueKey) {
      const id = randomUUID();
      const queued = await recordBossWrite(queueWrite(id), id);
      const [, inserted] = await runTogether(db, [queued, ledger.insertJobStatement(newJob(id), queuedCondition(queued, queue, id))]);
      // With the queue entry refused, the ledger row was not written either: nothing committed.
      if (!inserted?.[0]) throw new JobgateError(ErrorCode.internal, `the queue refused job ${id} of ${def.name}; it was not accepted`);
      return { job: ledger.toJob(inserted[0]), duplicate: false };
    }
    // A unique job can finish between a failed insert and the lookup: then insert again.
    for (let tries = 0; tries < 3; tries++) {
      const id = randomUUID();
      const job = await ledger.insertJob(newJob(id), db);
      if (!job) {
        const existing = await ledger.findLiveByUniqueKey(def.name, uniqueKey, db);
        if (existing) return { job: existing, duplicate: true };
        continue;
      }
      await queueWrite(id)(toDb(db));
      return { job, duplicate: false };
    }
    throw new JobgateError(ErrorCode.internal, `could not enqueue unique job ${def.name}: the live duplicate kept changing`);
  }

  /**
   * Validates the payload and commits the job (ledger row + queue entry) before resolving.
   * @example
   * await jobs.performLater(sendNotification, { userId: 'u1', text: 'hi' });
   * await jobs.performLater('notifications.send', payload, { db: client }); // inside the caller's BEGIN … COMMIT
   */
  async function performLater(nameOrDef: string | JobDefinition, payload: unknown, opts: EnqueueOptions = {}): Promise<EnqueueResult> {
    const def = definition(nameOrDef);
    if (ranOn === 'fetcher' && !runsHere(def)) throw new JobgateError(ErrorCode.unknownJob, `${def.name} does not run on the fetcher.`);
    const parsed = def.payload.safeParse(payload);
    if (!parsed.success) {
      throw new JobgateError(ErrorCode.payloadInvalid, `The payload of ${def.name} is invalid.`, { errors: fieldErrorsFromZod(parsed.error.issues, ['payload']) });
    }
    // a fetcher job whose payload the fetcher would refuse (413) is refused now, not at delivery
    if (def.runsOnFetcher && Buffer.byteLength(JSON.stringify(parsed.data) ?? '') > MAX_FETCHER_PAYLOAD_BYTES) {
      throw new JobgateError(ErrorCode.payloadInvalid, `The payload of ${def.name} is too large for the fetcher.`, { errors: [{ path: 'payload', message: `at most ${MAX_FETCHER_PAYLOAD_BYTES} bytes as JSON for a job that runs on the fetcher` }] });
    }
    // what PostgreSQL cannot store (a NUL, a lone surrogate) is refused here, naming the field, instead of failing the insert
    const unstorable = findUnstorable(parsed.data, ['payload']);
    if (unstorable !== null) throw new JobgateError(ErrorCode.payloadInvalid, `The payload of ${def.name} cannot be stored: ${unstorable.path} ${unstorable.problem}.`, { errors: [{ path: unstorable.path, message: unstorable.problem }] });
    try {
      // Decided before the transaction takes its connection: reading the override needs one too.
      const place = await placement(def, opts);
      // A unique job's check and insert need a transaction; any other job is one atomic round trip.
      const result = opts.db || !def.unique ? await enqueueIn(opts.db ?? pool, def, parsed.data, opts, place) : await withTransaction(pool, (client) => enqueueIn(client, def, parsed.data, opts, place));
      // (inside a caller's transaction this counts a job their rollback may still undo)
      if (!result.duplicate) options.metrics?.enqueued(def.name, place.route);
      return result;
    } catch (err) {
      if (!(err instanceof JobgateError) && isDatabaseUnavailable(err)) {
        throw new JobgateError(ErrorCode.databaseUnavailable, 'The database is unreachable; the job was not accepted.', { cause: err });
      }
      throw err;
    }
  }

  /**
   * Takes over jobs main handed to this side, under main's ids, all or none in one transaction.
   * Idempotent on id: a job already here answers `duplicate: true` and is not queued twice; an id
   * reused for another name or payload is refused (409) naming it.
   */
  async function accept(items: AcceptedJob[]): Promise<Array<{ id: string; duplicate: boolean }>> {
    const errors: FieldError[] = [];
    const parsed = items.map((item, i) => {
      const def = catalogue.get(item.name);
      if (!def || !runsHere(def)) {
        errors.push({ path: `jobs.${i}.name`, message: `no job named ${JSON.stringify(item.name)} runs on the ${ranOn}` });
        return null;
      }
      const payload = def.payload.safeParse(item.payload);
      if (!payload.success) {
        errors.push(...fieldErrorsFromZod(payload.error.issues, ['jobs', String(i), 'payload']));
        return null;
      }
      return { item, def, payload: payload.data };
    });
    if (errors.length > 0) throw new JobgateError(ErrorCode.payloadInvalid, 'Some jobs are invalid; none was accepted.', { errors });
    const valid = parsed.filter((p) => p !== null);
    try {
      return await withTransaction(pool, async (client) => {
        const rows = await ledger.insertBatchIfAbsent(
          valid.map(({ item, def, payload }) => ({ id: item.id, name: def.name, route: 'fetcher' as const, payload, priority: item.priority ?? def.priority, maxAttempts: def.retry.limit + 1, delaySeconds: item.delaySeconds ?? 0, traceparent: item.traceparent })),
          client,
        );
        const reused = rows.flatMap((r) => (r.same ? [] : [{ path: `jobs.${items.findIndex((i) => i.id === r.id)}.id`, message: `id ${r.id} is already used by a job with another name or payload` }]));
        if (reused.length > 0) throw new JobgateError(ErrorCode.idConflict, 'A job id was reused for a different job; none was accepted.', { errors: reused });
        const inserted = new Set(rows.filter((r) => r.inserted).map((r) => r.id));
        const byName = Map.groupBy(valid.filter((v) => inserted.has(v.item.id)), (v) => v.def.name);
        for (const [name, group] of byName) {
          await boss.insert(
            name,
            group.map(({ item, def, payload }) => ({
              id: item.id,
              data: { payload, ...(item.requestId ? { requestId: item.requestId } : {}), ...(item.traceparent ? { traceparent: item.traceparent } : {}) } satisfies QueuedData,
              priority: item.priority ?? def.priority,
              ...(item.delaySeconds ? { startAfter: item.delaySeconds } : {}),
              ...(def.concurrency ? { group: { id: def.name } } : {}),
            })),
            { db: toDb(client) },
          );
        }
        return valid.map(({ item }) => ({ id: item.id, duplicate: !inserted.has(item.id) }));
      }).then((answers) => {
        const fresh = new Set(answers.filter((a) => !a.duplicate).map((a) => a.id));
        for (const [name, group] of Map.groupBy(valid.filter((v) => fresh.has(v.item.id)), (v) => v.def.name)) options.metrics?.accepted(name, group.length);
        return answers;
      });
    } catch (err) {
      if (!(err instanceof JobgateError) && isDatabaseUnavailable(err)) {
        throw new JobgateError(ErrorCode.databaseUnavailable, 'The database is unreachable; no job was accepted.', { cause: err });
      }
      throw err;
    }
  }

  /** Ledger writes after a handler ran outlive a short database outage (a restart takes seconds). */
  const durably = <T>(write: () => Promise<T>) =>
    pRetry(write, { retries: 6, minTimeout: 200, maxTimeout: 3_000, shouldRetry: ({ error }) => isDatabaseUnavailable(error) });

  async function claim(def: JobDefinition, id: string, attempt: number, signal: AbortSignal, log: Logger, traceparent?: string): Promise<boolean> {
    for (;;) {
      const result = await durably(() =>
        ledger.claimAttempt({ id, attempt, ranOn, concurrency: def.concurrency, perSecond: def.rateLimit?.perSecond ?? null, claimSeconds }),
      );
      if (result.outcome === 'wait') {
        await sleep(result.waitMs, undefined, { signal });
        continue;
      }
      if (result.outcome === 'gone') log.info('job is finished or cancelled in the ledger; not running it');
      if (result.outcome !== 'claimed') return false;
      return options.remoteClaims ? claimAtMain(id, attempt, signal, log, traceparent) : true;
    }
  }

  /**
   * The fetcher's second claim, in main's ledger: until main grants it the attempt does not start.
   * Main may be away (redeploying): the local claim is kept alive meanwhile, and we retry.
   */
  async function claimAtMain(id: string, attempt: number, signal: AbortSignal, log: Logger, traceparent?: string): Promise<boolean> {
    const remote = options.remoteClaims!;
    for (let failures = 0; ; ) {
      let result: Awaited<ReturnType<RemoteClaims['claim']>>;
      try {
        result = await remote.claim(id, attempt, claimSeconds, traceparent);
        failures = 0;
      } catch (err) {
        failures++;
        // Unreachable main waits; so does a refusal (401 half-rotated secret, 404 main older than
        // the fetcher): running unclaimed could run a job twice, failing it would lose it.
        const refused = (err as { code?: string }).code === 'JG_FETCHER_REJECTED';
        if (failures === 1 || failures % 10 === 0) log[refused ? 'error' : 'warn']({ err, failures }, refused ? 'main refuses our claims; waiting (check FETCHER_SHARED_SECRET and that main is not older than the fetcher)' : 'cannot reach main to claim the job; waiting');
        await ledger.refreshClaim(id, attempt, claimSeconds, ranOn).catch(() => {});
        await sleep(Math.min(5_000, 200 * 2 ** Math.min(failures, 5)), undefined, { signal });
        continue;
      }
      if (result.outcome === 'wait') {
        await ledger.refreshClaim(id, attempt, claimSeconds, ranOn).catch(() => {});
        await sleep(result.waitMs, undefined, { signal });
        continue;
      }
      if (result.outcome === 'gone' || result.outcome === 'unknown') {
        // Main ran it (the emergency override took it over), finished or cancelled it, or no longer
        // has it at all (deleted after it finished): either way it is not ours to run.
        log.warn({ mainSays: result.outcome }, 'main owns this job now (taken over, finished, cancelled or purged there); not running it here');
        await durably(() =>
          ledger.finishAttempt({ id, attempt, outcome: 'lost', state: 'cancelled', error: { code: ErrorCode.takenOver, message: 'main took this job over (emergency override) or finished it' }, peakRssMb: 0 }),
        );
        return false;
      }
      return true;
    }
  }

  async function runOne(def: JobDefinition, job: JobWithMetadata<QueuedData>, attemptBase = 0): Promise<JobResult> {
    const attempt = attemptBase + job.retryCount + 1;
    const maxAttempts = attemptBase + job.retryLimit + 1;
    const log = logger.child({
      jobId: job.id,
      jobName: def.name,
      attempt,
      maxAttempts,
      ...(job.data.requestId ? { requestId: job.data.requestId } : {}),
      ...traceFields(job.data.traceparent),
    });
    try {
      if (!(await claim(def, job.id, attempt, AbortSignal.any([job.signal, shutdown.signal]), log, job.data.traceparent))) {
        return { id: job.id, status: 'completed', output: { skipped: true } };
      }
    } catch (err) {
      log.warn({ err }, 'could not claim the job; the queue will retry it');
      return { id: job.id, status: 'failed', output: errorInfo(err) };
    }

    const timeout = new AbortController();
    const timer = setTimeout(
      () => timeout.abort(new JobgateError(ErrorCode.jobTimeout, `timed out after ${def.timeoutSeconds}s`)),
      def.timeoutSeconds * 1000,
    );
    const claimLost = new AbortController();
    const signal = AbortSignal.any([timeout.signal, job.signal, shutdown.signal, claimLost.signal]);
    let peakRss = process.memoryUsage.rss();
    const sampler = setInterval(() => { peakRss = Math.max(peakRss, process.memoryUsage.rss()); }, 1_000);
    const heartbeat = setInterval(() => {
      ledger.refreshClaim(job.id, attempt, claimSeconds, ranOn).then(
        async (held) => {
          if (held || claimLost.signal.aborted) return;
          // Cancelled meanwhile, or another attempt took the job over (this one was given up for dead): stop now.
          const now = await ledger.getJob(job.id).catch(() => null);
          if (now?.state === 'cancelled') {
            log.warn('job cancelled while running; aborting it');
            claimLost.abort(new JobgateError(ErrorCode.jobCancelled, 'the job was cancelled while it ran'));
            return;
          }
          log.error('claim lost to another attempt; aborting this one');
          claimLost.abort(new JobgateError(ErrorCode.jobLost, 'another attempt took over this job'));
        },
        (err: unknown) => log.warn({ err }, 'claim refresh failed'),
      );
    }, (claimSeconds * 1000) / 4);
    sampler.unref();
    const ctx: JobContext = {
      job: { id: job.id, name: def.name, attempt, maxAttempts, ranOn },
      logger: log,
      signal,
      progress: async (percent, message) => {
        const pct = Math.max(0, Math.min(100, Math.round(percent)));
        await ledger.setProgress(job.id, attempt, pct, message === undefined ? null : cleanText(String(message), MAX_PROGRESS_MESSAGE));
        log.debug({ progress: pct, progressMessage: message }, 'job progress');
      },
      memory: {
        rssMb: () => Math.round(process.memoryUsage.rss() / 2 ** 20),
        peakRssMb: () => Math.round(Math.max(peakRss, process.memoryUsage.rss()) / 2 ** 20),
      },
    };
    const startedAt = performance.now();
    const seconds = () => (performance.now() - startedAt) / 1000;
    options.metrics?.started(def.name, ranOn, (Date.now() - new Date(job.startAfter).getTime()) / 1000);
    log.info('job started');
    try {
      const handler =
        def.isolation !== 'none'
          ? runIsolated(def.isolation, { moduleUrl: options.moduleOf!(def.name)!, name: def.name, payload: job.data.payload, logBindings: log.bindings(), logLevel: log.level }, ctx, def.maxHeapMb, ABORT_GRACE_MS)
          : def.run(def.payload.parse(job.data.payload), ctx);
      await settleWithin(handler, signal, ABORT_GRACE_MS);
      // cancelled while it ran, but the handler finished anyway: the job stays cancelled
      const lost = claimLost.signal.reason as JobgateError | undefined;
      if (lost?.code === ErrorCode.jobCancelled) throw lost;
      peakRss = Math.max(peakRss, process.memoryUsage.rss());
      await durably(() => ledger.finishAttempt({ id: job.id, attempt, outcome: 'completed', state: 'completed', error: null, peakRssMb: Math.round(peakRss / 2 ** 20) }));
      log.info({ ms: Math.round(performance.now() - startedAt) }, 'job completed');
      options.metrics?.finished(def.name, ranOn, 'completed', seconds());
      return { id: job.id, status: 'completed' };
    } catch (thrown) {
      const err = signal.aborted && !(thrown instanceof JobgateError) ? abortReason(signal, thrown) : thrown;
      if (err instanceof JobgateError && err.code === ErrorCode.jobCancelled) {
        // the job is settled (cancelled): end the attempt and let the queue forget it, no retry
        await durably(() => ledger.endCancelledAttempt(job.id, attempt, Math.round(peakRss / 2 ** 20))).catch((e: unknown) => log.error({ err: e }, 'could not record the cancelled attempt'));
        log.info({ ms: Math.round(performance.now() - startedAt) }, 'job cancelled while running');
        options.metrics?.finished(def.name, ranOn, 'cancelled', seconds());
        return { id: job.id, status: 'completed', output: { cancelled: true } };
      }
      const info = errorInfo(err);
      const permanent = err instanceof PermanentJobError || (err instanceof Error && err.name === 'ZodError');
      const retrying = !permanent && attempt < maxAttempts;
      log.warn({ err, retrying, ms: Math.round(performance.now() - startedAt) }, retrying ? 'job attempt failed; will retry' : 'job failed');
      options.metrics?.finished(def.name, ranOn, retrying ? 'retrying' : 'failed', seconds());
      await durably(() =>
        ledger.finishAttempt({ id: job.id, attempt, outcome: 'failed', state: retrying ? 'queued' : 'failed', error: info, peakRssMb: Math.round(peakRss / 2 ** 20) }),
      ).catch((e: unknown) => log.error({ err: e }, 'could not record the failed attempt'));
      return { id: job.id, status: permanent ? 'deadletter' : 'failed', output: info };
    } finally {
      clearTimeout(timer);
      clearInterval(sampler);
      clearInterval(heartbeat);
    }
  }

  function track<T>(promise: Promise<T>): Promise<T> {
    running.add(promise);
    promise.finally(() => running.delete(promise)).catch(() => {});
    return promise;
  }

  let prepared: Promise<void> | undefined;
  /** Makes every queue this side writes to (once): enough to enqueue, which a web-only process does. */
  function prepare(): Promise<void> {
    return (prepared ??= (async () => {
      const unplaced = [...catalogue.values()].filter((d) => runsHere(d) && d.isolation !== 'none' && !options.moduleOf?.(d.name));
      if (unplaced.length > 0) {
        throw new ConfigError([`jobModules: isolation 'thread' or 'process' needs a job defined in a module listed in jobModules (JOBGATE_JOB_MODULES), which the thread or process imports: ${unplaced.map((d) => d.name).join(', ')}`]);
      }
      await ensureQueue(SystemQueue.deadLetter);
      if (ranOn === 'main') {
        // A delivery cut short by a crash of main goes out again after a missed heartbeat, not at expiry.
        await ensureQueue(SystemQueue.outbox, {
          ...OUTBOX_QUEUE_OPTIONS,
          heartbeatSeconds: timings.heartbeatSeconds,
          ...(options.outboxRetryDelayMaxSeconds ? { retryDelayMax: options.outboxRetryDelayMaxSeconds } : {}),
        });
        await ensureQueue(SystemQueue.cron, { notify: true, retryLimit: 5, retryDelay: 2 });
      }
      for (const def of catalogue.values()) if (runsHere(def)) await ensureQueue(def.name, queueOptions(def));
      if (ranOn === 'main') await ensureQueue(SystemQueue.onMain, { notify: true });
    })());
  }

  /**
   * Runs the handlers of this side's jobs, the on-main queue, the dead-letter watcher and cron
   * (after prepare()). `queues`: only these jobs' handlers, and then no on-main queue, dead-letter
   * watcher or cron (`jobgate work --queues`).
   */
  async function start(startOptions: { queues?: string[] } = {}): Promise<void> {
    if (started) return;
    /** Only these jobs' handlers (and then no on-main queue, dead-letter watcher or cron): `jobgate work --queues`. */
    const only = startOptions.queues && startOptions.queues.length > 0 ? new Set(startOptions.queues) : null;
    /** Whether this process runs `queue`'s handlers: JOBGATE_QUEUES (if any) names it. */
    const runsQueue = (queue: string) => !only || only.has(queue);
    const strangers = [...(only ?? [])].filter((name) => !(name === SystemQueue.onMain && ranOn === 'main') && (!catalogue.get(name) || !runsHere(catalogue.get(name)!)));
    if (strangers.length > 0) throw new ConfigError([`queues: ${strangers.join(', ')} ${strangers.length > 1 ? 'are not jobs' : 'is not a job'} this ${ranOn} runs`]);
    await prepare();
    started = true;
    // One job per fetch, fetched back to back while there are jobs (workWhileFull), else woken by
    // NOTIFY or the poll.
    const workOptions = { batchSize: 1, includeMetadata: true, perJobResults: true, pollingIntervalSeconds: timings.pollIntervalSeconds, notifyPollingIntervalSeconds: timings.pollIntervalSeconds } as const;
    for (const def of catalogue.values()) {
      if (!runsHere(def) || !runsQueue(def.name)) continue;
      const startWorker = () =>
        workWhileFull(
          boss,
          def.name,
          {
            ...workOptions,
            localConcurrency: Math.min(def.concurrency ?? options.workerConcurrency, options.workerConcurrency),
            ...(def.concurrency ? { groupConcurrency: def.concurrency } : {}),
          },
          (jobs) => track(Promise.all(jobs.map((job) => runOne(def, job as JobWithMetadata<QueuedData>)))),
        );
      handlerWorkers.set(def.name, startWorker);
      await startWorker();
    }

    if (ranOn === 'main' && runsQueue(SystemQueue.onMain)) {
      // Fetcher jobs main runs (override): one queue, few at once, so they cannot knock main over.
      await workWhileFull(
        boss,
        SystemQueue.onMain,
        { ...workOptions, localConcurrency: options.onMainConcurrency ?? 1 },
        (jobs: Array<JobWithMetadata<OnMainData>>) =>
          track(
            Promise.all(
              jobs.map((job) => {
                const def = catalogue.get(job.data.name);
                if (!def) throw new JobgateError(ErrorCode.unknownJob, `no job named ${job.data.name} is defined in this process`);
                return runOne(def, job as JobWithMetadata<OnMainData>, job.data.attemptBase);
              }),
            ),
          ),
      );
    }

    if (only) {
      logger.info({ ranOn, queues: [...only] }, 'job runtime started for some queues only');
      return;
    }

    // pg-boss gave a job up without our handler settling it: the last attempt expired or its
    // runner died. Tell the ledger, so the job does not look active forever.
    await boss.work<QueuedData>(SystemQueue.deadLetter, { ...workOptions, perJobResults: false }, async (jobs) => {
      for (const job of jobs) {
        const id = (job as { sourceId?: string }).sourceId ?? job.id;
        if (await ledger.failUnsettled(id, 'the queue gave up on the job (its last attempt expired or its runner died)')) {
          logger.warn({ jobId: id }, 'job dead-lettered by the queue');
        }
      }
    });

    // Cron fires on main, which routes each firing like any other job.
    if (ranOn === 'main') await startCron();
    logger.info({ ranOn, jobs: [...catalogue.values()].filter(runsHere).map((d) => d.name) }, 'job runtime started');
  }

  async function startCron(): Promise<void> {
    const scheduled = new Set<string>();
    for (const def of catalogue.values()) {
      if (!def.cron) continue;
      await boss.schedule(SystemQueue.cron, def.cron.schedule, { name: def.name }, { key: def.name, tz: def.cron.timeZone ?? 'UTC' });
      scheduled.add(def.name);
    }
    for (const schedule of await boss.getSchedules(SystemQueue.cron)) {
      if (schedule.key && !scheduled.has(schedule.key)) await boss.unschedule(SystemQueue.cron, schedule.key);
    }
    // One firing per fetch: a failing firing must not make pg-boss re-send the others with it.
    await boss.work<{ name: string }>(SystemQueue.cron, { batchSize: 1, pollingIntervalSeconds: timings.pollIntervalSeconds, notifyPollingIntervalSeconds: timings.pollIntervalSeconds }, async (jobs) => {
      for (const job of jobs) {
        const def = catalogue.get(job.data.name);
        // Another process (a newer deploy) may know this job: fail, so the firing is retried there.
        if (!def) throw new JobgateError(ErrorCode.unknownJob, `cron fired for ${job.data.name}, which this process does not define`);
        if (!def.cron) continue; // unscheduled since it fired
        const { job: enqueued, duplicate } = await performLater(def, def.cron.payload ?? {});
        logger.info({ jobId: enqueued.id, jobName: def.name, duplicate, ...traceFields(enqueued.traceparent) }, 'cron fired');
      }
    });
  }

  /**
   * Main under the emergency override: makes up to `limit` fetcher jobs that are not yet delivered
   * (or whose delivery is in doubt) main's, and queues them on main, in one transaction. A job the
   * fetcher has already claimed stays there. Returns how many moved.
   */
  async function takeOverUndelivered(limit: number, ids: string[] | null = null): Promise<number> {
    return withTransaction(pool, async (client) => {
      // Only jobs this process defines: one it does not know (a rename in a deploy) stays with the fetcher.
      const fetcherJobs = [...catalogue.values()].filter((d) => d.runsOnFetcher).map((d) => d.name);
      const taken = await ledger.takeOverUndelivered(client, limit, 'override', fetcherJobs, ids);
      const inserts = taken.map((t) => onMainInsert(catalogue.get(t.name)!, t.id, { payload: t.payload, name: t.name, attemptBase: t.attempts, ...(t.traceparent ? { traceparent: t.traceparent } : {}) }, t.priority, t.runAt));
      if (inserts.length > 0) await boss.insert(SystemQueue.onMain, inserts, { db: toDb(client) });
      return inserts.length;
    });
  }

  /** Takes no new job (running ones carry on) until resume(); the memory guard's soft limit. */
  async function pause(): Promise<void> {
    if (paused) return;
    paused = true;
    await Promise.all([...handlerWorkers.keys()].map((name) => boss.offWork(name, { wait: false })));
    logger.warn('intake paused: no new jobs start until resumed');
  }

  async function resume(): Promise<void> {
    if (!paused || shutdown.signal.aborted) return;
    paused = false;
    for (const startWorker of handlerWorkers.values()) await startWorker();
    logger.info('intake resumed');
  }

  /**
   * Stops taking jobs and lets running ones finish; at `timeoutMs` their `ctx.signal` aborts and
   * their attempts are recorded as failed (the queue retries them).
   */
  async function stop(timeoutMs: number, reason: JobgateError = new JobgateError(ErrorCode.jobAborted, 'aborted by shutdown')): Promise<void> {
    const abortTimer = setTimeout(() => shutdown.abort(reason), timeoutMs);
    try {
      await boss.stop({ graceful: true, timeout: timeoutMs + 1_000, close: true });
      await Promise.race([Promise.allSettled(running), sleep(ABORT_GRACE_MS + 1_000)]);
    } finally {
      clearTimeout(abortTimer);
    }
  }

  return {
    performLater,
    accept,
    takeOverUndelivered,
    runsHere,
    prepare,
    start,
    pause,
    resume,
    /** How many handlers are running in this process now. */
    get running() {
      return running.size;
    },
    stop,
    definition,
    getJob: (id: string) => ledger.getJob(id, { executions: true }),
    listJobs: ledger.listJobs,
    get catalogue() {
      return catalogue;
    },
  };
}

export type JobRuntime = ReturnType<typeof createJobRuntime>;

function abortReason(signal: AbortSignal, thrown: unknown): unknown {
  const reason: unknown = signal.reason;
  if (reason instanceof JobgateError) return reason;
  return new JobgateError(ErrorCode.jobAborted, reason instanceof Error ? reason.message : 'aborted', { cause: thrown });
}

/**
 * Resolves with the handler; once `signal` aborts, the handler gets `graceMs` to stop on its own,
 * then the attempt is settled as failed anyway (the handler may still be running: log it loudly).
 */
async function settleWithin(handler: Promise<unknown>, signal: AbortSignal, graceMs: number): Promise<void> {
  if (signal.aborted) throw abortReason(signal, undefined);
  let onAbort: (() => void) | undefined;
  const abandoned = new Promise<never>((_, reject) => {
    onAbort = () => {
      const t = setTimeout(() => reject(abortReason(signal, new Error('the handler ignored its aborted signal'))), graceMs);
      handler.finally(() => clearTimeout(t)).catch(() => {});
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    await Promise.race([handler, abandoned]);
  } finally {
    signal.removeEventListener('abort', onAbort!);
  }
}

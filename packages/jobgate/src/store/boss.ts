import { PgBoss, type WorkOptions } from 'pg-boss';
import { isConnectionLost, type Logger } from '../support/index.ts';
import { assertSchemaName } from './schema-name.ts';
import { GuardedClient, PreparingClient } from './transaction.ts';

export { PgBoss };

/** How quickly the queue notices things; lowered in tests, pg-boss's minimums apply. */
export interface QueueTimings {
  /** Fallback poll while LISTEN/NOTIFY is on; retries and delayed jobs are picked up at this pace. */
  pollIntervalSeconds: number;
  /** How often expired and heartbeat-lost jobs are found (pg-boss monitor and supervise). */
  superviseIntervalSeconds: number;
  /**
   * How often each main reads the schedules again without being told of a change (a lost LISTEN
   * connection, a row changed by hand). Schedules fire at their time whatever it is.
   */
  cronIntervalSeconds: number;
  /** A running job's heartbeat; a job silent for this long counts as lost and is retried (pg-boss min 10). */
  heartbeatSeconds: number;
  /**
   * How long a runner's claim on an attempt in the ledger lasts unless refreshed (it is refreshed every
   * quarter of it); the retry of a crashed attempt waits for it to lapse. Default: twice heartbeatSeconds.
   */
  claimSeconds?: number;
}

/** A claim outlives two missed heartbeats (unless set), so a dead runner blocks a concurrency slot only briefly. */
export const claimSecondsOf = (timings: QueueTimings): number => timings.claimSeconds ?? timings.heartbeatSeconds * 2;

export const DEFAULT_TIMINGS: QueueTimings = {
  pollIntervalSeconds: 2,
  superviseIntervalSeconds: 30,
  cronIntervalSeconds: 30,
  heartbeatSeconds: 30,
};

/**
 * pg-boss with LISTEN/NOTIFY for low pick-up latency and our timings. Errors are logged, never
 * thrown: a PostgreSQL restart makes pg-boss emit errors and carry on (../shared/FAULTS.md M5).
 */
export function createBoss(options: { connectionString: string; schema: string; poolSize: number; timings: QueueTimings; logger: Logger; client?: boolean; prepare?: boolean }): PgBoss {
  const { timings } = options;
  const boss = new PgBoss({
    // client: send and read only (the CLI), no schema migration or maintenance
    ...(options.client ? { migrate: false, supervise: false } : {}),
    // no pg-boss timekeeping: schedules fire from main's own scheduler (schedule/scheduler.ts)
    schedule: false,
    connectionString: options.connectionString,
    schema: assertSchemaName(options.schema),
    max: options.poolSize,
    application_name: 'jobgate-queue',
    // pg-boss's pool is pg-pool too: its connections are guarded like ours (transaction.ts
    // guardConnections), and its recurring statements prepared (PreparingClient) unless
    // `prepare: false` (the bench's raw pg-boss); pg-boss hands its options to its pool, a Client among them
    ...({ Client: options.prepare === false ? GuardedClient : PreparingClient } as object),
    // (also bounds how late pg-boss settles a fetch a runner handed back: HAND_BACK_SECONDS must exceed it)
    connectionTimeoutMillis: 10_000,
    useListenNotify: true,
    superviseIntervalSeconds: timings.superviseIntervalSeconds,
    monitorIntervalSeconds: timings.superviseIntervalSeconds,
    // the queue stats burstWhenReadyExceeds reads: how soon a backlog makes workers fetch back to back
    queueCacheIntervalSeconds: Math.min(10, timings.superviseIntervalSeconds),
  });
  bossSchemas.set(boss, assertSchemaName(options.schema));
  const logger = options.logger.child({ component: 'pg-boss' });
  boss.on('error', (err) => logger.error({ err }, 'queue error'));
  boss.on('warning', (warning) => logger.warn({ warning }, 'queue warning'));
  return boss;
}

/** The schema of each pg-boss createBoss made (handBack writes its job table). */
const bossSchemas = new WeakMap<PgBoss, string>();

/**
 * A fetched job goes back to its queue unstarted, as if never fetched: an operator paused it, and
 * it must neither start nor wait inside pg-boss's active job (where expiry would fail it and spend
 * a retry). pg-boss has no public call for this: it is its own `restore` (state created,
 * started_on cleared, so the next fetch does not count a retry: the same attempt), fenced to the
 * attempt this worker fetched (active, and the retry_count it was fetched with), and due again
 * `afterSeconds` later (keep_until moves with it, so retention still counts from when it can run).
 *
 * The handler's result for this fetch is still settled by pg-boss after the handler returns, fenced
 * the same way: it finds the job no longer active and changes nothing, provided no one has fetched
 * the job again by then. `afterSeconds` keeps everyone off it for longer than that settle can take
 * (one statement, on a pool whose connection wait gives up after 10 s): see HAND_BACK_SECONDS.
 * False: this worker no longer holds that attempt (pg-boss gave it up meanwhile); nothing changed.
 */
export async function handBack(boss: PgBoss, job: { name: string; id: string; retryCount: number }, afterSeconds: number): Promise<boolean> {
  const s = bossSchemas.get(boss);
  if (!s) throw new Error('handBack needs a pg-boss made by createBoss');
  const due = `${s}.job_now() + $4 * interval '1 second'`;
  const { rows } = await boss.getDb().executeSql(
    `WITH given AS (
       UPDATE ${s}.job SET state = 'created', started_on = NULL, heartbeat_on = NULL, start_after = ${due},
              keep_until = keep_until + greatest(interval '0 seconds', ${due} - start_after)
        WHERE name = $1 AND id = $2 AND state = 'active' AND retry_count = $3
       RETURNING 1)
     SELECT count(*)::int AS n FROM given`,
    [job.name, job.id, job.retryCount, afterSeconds],
  );
  return rows[0].n > 0;
}

/**
 * Fails fetched attempts for good (a permanent error), to pg-boss's terminal state and the
 * dead-letter queue, with retries left: what a worker's `deadletter` result does, for which pg-boss
 * has no public call. Their retries are spent first (retry_limit = retry_count, fenced as handBack
 * is), then pg-boss's fail ends them, then each gets its retry_limit back (what its record shows
 * as its attempts allowed).
 */
export async function failForGood(boss: PgBoss, name: string, attempts: Array<{ id: string; retryCount: number; retryLimit: number }>, output: object | undefined): Promise<void> {
  const s = bossSchemas.get(boss);
  if (!s) throw new Error('failForGood needs a pg-boss made by createBoss');
  const ids = attempts.map((a) => a.id);
  await boss.getDb().executeSql(
    `UPDATE ${s}.job j SET retry_limit = j.retry_count
       FROM unnest($2::uuid[], $3::int[]) AS a(id, retry_count)
      WHERE j.name = $1 AND j.id = a.id AND j.state = 'active' AND j.retry_count = a.retry_count`,
    [name, ids, attempts.map((a) => a.retryCount)],
  );
  await boss.fail(name, attempts.map(({ id, retryCount }) => ({ id, retryCount })), output);
  await boss.getDb().executeSql(
    `UPDATE ${s}.job j SET retry_limit = a.retry_limit
       FROM unnest($2::uuid[], $3::int[], $4::int[]) AS a(id, retry_count, retry_limit)
      WHERE j.name = $1 AND j.id = a.id AND j.state = 'failed' AND j.retry_count = a.retry_count`,
    [name, ids, attempts.map((a) => a.retryCount), attempts.map((a) => a.retryLimit)],
  );
}

/** A handed-back job is due again this long after (s): longer than pg-boss's settle of the fetch can take (its pool's 10 s connection wait). */
export const HAND_BACK_SECONDS = 15;

/** How long a queue's other workers wait between fetches while idle and woken by NOTIFY (pg-boss's own default backstop). */
export const SIBLING_BACKSTOP_SECONDS = 30;

/**
 * The workers of a pg-boss, and their wake-ups after the pg-boss reports an error. A fetch that
 * failed is followed by its worker's poll interval (the siblings' backstop, SIBLING_BACKSTOP_SECONDS,
 * for those that wait for NOTIFY): the siblings are woken once that poll interval has passed. A
 * fetch whose connection was lost (killed, reset) is tried again at once by its worker (once per
 * poll interval at most): the pool has dropped that connection, so the next fetch takes a new one.
 * A database that is really away refuses that one (not a lost connection), and the worker waits
 * out its interval as before. Without this, every connection killed under a backlog left a worker
 * idle for a poll interval (the routed pressure's connection-kills phase).
 */
const errorWakes = new WeakMap<PgBoss, { siblings: Set<string>; pollMs: number; timer: NodeJS.Timeout | undefined; retriedAt: Map<string, number> }>();
function wakeAfterErrors(boss: PgBoss, id: string, sibling: boolean, pollSeconds: number): void {
  let entry = errorWakes.get(boss);
  if (!entry) {
    const made = { siblings: new Set<string>(), pollMs: pollSeconds * 1000, timer: undefined as NodeJS.Timeout | undefined, retriedAt: new Map<string, number>() };
    errorWakes.set(boss, (entry = made));
    boss.on('error', (err: unknown) => {
      // pg-boss names the worker whose fetch failed; it is tried again at once, once per poll interval at most
      const worker = (err as { worker?: unknown }).worker;
      if (typeof worker === 'string' && isConnectionLost(err) && !(performance.now() - (made.retriedAt.get(worker) ?? -Infinity) < made.pollMs)) {
        made.retriedAt.set(worker, performance.now());
        setImmediate(() => boss.notifyWorker(worker));
        return;
      }
      made.timer ??= setTimeout(() => {
        made.timer = undefined;
        for (const w of made.siblings) boss.notifyWorker(w);
        made.retriedAt.clear();
      }, made.pollMs).unref();
    });
  }
  if (sibling) entry.siblings.add(id);
}

/**
 * One statement per poll interval for all of a pg-boss's queues: which of them hold a job due now
 * (created, or a retry whose delay has passed, not blocked: the base of pg-boss's condition for a
 * fetch), and an idle worker of each such queue is woken to fetch it. Without it, every queue's
 * first worker polled on its own: a statement per queue per interval, the most of what main's
 * pg-boss did in the routed bench (main has a queue per job name, and most are idle). A queue
 * whose fetch holds back a due job (a group at its concurrency cap) has a worker woken at each
 * poll, as it polled before. Each worker still fetches on its own after SIBLING_BACKSTOP_SECONDS,
 * so a failed poll (reported as a pg-boss error, once until one succeeds) delays a delayed job at
 * most that long. A queue whose workers stopped (offWork: a pause) is forgotten (forgetDue).
 */
const duePolls = new WeakMap<PgBoss, { queues: Map<string, () => void>; timer: NodeJS.Timeout }>();
/**
 * Registers `name`'s queue with its pg-boss's shared poll: `wakeIdle` is called when the poll finds
 * a job of it due (it wakes one idle worker, if any). False: a pg-boss not made by createBoss, which
 * has no shared poll (its workers poll on their own, as pg-boss does).
 */
export function pollDueTogether(boss: PgBoss, name: string, wakeIdle: () => void, pollSeconds: number): boolean {
  const s = bossSchemas.get(boss);
  if (!s) return false;
  let entry = duePolls.get(boss);
  if (!entry) {
    const queues = new Map<string, () => void>();
    let polling = false;
    let failing = false;
    const timer = setInterval(() => {
      if (polling || queues.size === 0) return;
      polling = true;
      // (in a promise: nothing the statement's start throws escapes the timer)
      Promise.resolve()
        .then(() => boss.getDb().executeSql(
          `SELECT q.name FROM unnest($1::text[]) AS q(name)
            WHERE EXISTS (SELECT 1 FROM ${s}.job j WHERE j.name = q.name AND j.state < 'active' AND NOT j.blocked AND j.start_after <= ${s}.job_now())`,
          [[...queues.keys()]],
        ))
        .then(({ rows }: { rows: Array<{ name: string }> }) => {
          failing = false;
          for (const { name: due } of rows) queues.get(due)?.();
        })
        // (the database away: the workers' own backstop fetches, and the next poll, find the jobs)
        .catch((err: unknown) => {
          if (!failing) boss.emit('error', err as Error);
          failing = true;
        })
        .finally(() => (polling = false));
    }, pollSeconds * 1000).unref();
    // (a pg-boss started again makes its poll anew with its workers)
    boss.once('stopped', () => {
      clearInterval(timer);
      if (duePolls.get(boss)?.timer === timer) duePolls.delete(boss);
    });
    duePolls.set(boss, (entry = { queues, timer }));
  }
  entry.queues.set(name, wakeIdle);
  return true;
}

/** The workers of `name` stopped (offWork): the shared poll no longer looks at its queue; working it again registers it anew. */
export function forgetDue(boss: PgBoss, name: string): void {
  duePolls.get(boss)?.queues.delete(name);
}

/**
 * `boss.work` that fetches again at once while fetches come back full, at any batch size, and
 * waits for NOTIFY or the poll interval once one comes back short. pg-boss bursts only on
 * burstWhenBatchFull (ignored at batchSize 1) or on its cached ready count, which lags by up to
 * queueCacheIntervalSeconds + the monitor interval: until it catches up, a burst of new jobs is
 * taken one per poll interval per worker (measured: 4 jobs/s forwarding at batch 1, 2 workers,
 * 0.5 s poll). Each of `localConcurrency` workers is registered on its own, so a full fetch can
 * wake an idle worker of its queue (notifyWorker, pg-boss's public API), which wakes the next in
 * turn while its fetches come back full. `offWork(name)` stops them all.
 *
 * Idle, the workers wait for NOTIFY (every new job due now wakes them all), for the poll that
 * finds jobs due by time (delayed, retried after a delay) in all of the process's queues at once
 * (pollDueTogether, at the poll interval), for a full fetch of another worker of the queue, for an
 * error of the queue (a failed fetch), or SIBLING_BACKSTOP_SECONDS. Without NOTIFY (its listener
 * down), pg-boss polls every worker at the poll interval. Every worker polling an empty queue cost
 * more of the database than the routed jobs themselves in `npm run bench -- --only routed
 * --profile-sql`.
 */
export async function workWhileFull<T>(
  boss: PgBoss,
  name: string,
  options: WorkOptions & { batchSize: number },
  handler: (jobs: any[]) => Promise<T>,
): Promise<void> {
  const { localConcurrency = 1, ...rest } = options;
  const work = boss.work.bind(boss) as unknown as (name: string, options: WorkOptions, handler: (jobs: any[]) => Promise<T>) => Promise<string>;
  const workers: string[] = [];
  /** The workers running a handler now: a wake-up would only make them fetch again after it, as a full fetch does anyway. */
  const busy = new Set<string>();
  // (a pg-boss not made by createBoss has no shared poll: its first worker polls on its own)
  const shared = bossSchemas.has(boss);
  for (let i = 0; i < localConcurrency; i++) {
    const backstop = i === 0 && !shared ? {} : { notifyPollingIntervalSeconds: Math.max(SIBLING_BACKSTOP_SECONDS, rest.notifyPollingIntervalSeconds ?? 0, rest.pollingIntervalSeconds ?? 0) };
    let self = '';
    self = await work(name, { ...rest, ...backstop, localConcurrency: 1 }, async (jobs) => {
      const full = jobs.length >= options.batchSize;
      busy.add(self);
      // more may be waiting: one idle worker of the queue fetches now too, and wakes the next if
      // it also finds a full fetch (waking them all made each find the queue empty but one)
      if (full) {
        const idle = workers.find((id) => !busy.has(id));
        if (idle !== undefined) boss.notifyWorker(idle);
      }
      try {
        return await handler(jobs);
      } finally {
        busy.delete(self);
        // the loop re-checks this flag after the handler: set, it fetches again at once
        if (full) boss.notifyWorker(self);
      }
    });
    workers.push(self);
    wakeAfterErrors(boss, self, i > 0 || shared, rest.pollingIntervalSeconds ?? 2);
  }
  pollDueTogether(
    boss,
    name,
    () => {
      const idle = workers.find((id) => !busy.has(id));
      if (idle !== undefined) boss.notifyWorker(idle);
    },
    rest.pollingIntervalSeconds ?? 2,
  );
}

/**
 * Jobs of `queues` that pg-boss would hand out now (created, or retry with start_after passed),
 * read from its job table: `jobgate work --burst` drains until none is left (and none runs in
 * it). pg-boss's own queue stats are cached, and a burst must not stop on a stale zero.
 */
export async function dueJobs(db: { query(text: string, values?: unknown[]): Promise<{ rows: any[] }> }, bossSchema: string, queues: string[]): Promise<number> {
  const { rows } = await db.query(
    `SELECT count(*)::int AS n FROM ${assertSchemaName(bossSchema)}.job
      WHERE name = ANY($1::text[]) AND state IN ('created', 'retry') AND start_after <= now()`,
    [queues],
  );
  return rows[0].n as number;
}

/** Makes `name`'s queue, or applies changed options to it (createQueue leaves an existing queue alone). */
export async function ensureQueue(boss: PgBoss, name: string, options: object = { notify: true }): Promise<void> {
  await boss.createQueue(name, options);
  await boss.updateQueue(name, options);
}

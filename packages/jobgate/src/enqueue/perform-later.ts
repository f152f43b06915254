// The enqueue stage (main): validate the payload, place the job (main, the on-main queue, or the
// fetcher), and write its ledger row and its queue entry (a routed job: the row alone, which the
// forwarder reads) in one transaction: the caller's own (`db`), or one of ours.
import pg from 'pg';
import type { Pool } from 'pg';
import type { JobInsert, PgBoss, SendOptions } from 'pg-boss';
import { ErrorCode, JobgateError, fieldErrorsFromZod, isDatabaseUnavailable, findUnstorable, newTraceparent, parseTraceparent, uuidv7 } from '../support/index.ts';
import { insertedRow, queuedCondition, recordBossStatement, recordBossWrite, recordPlans, RECORD_COLUMNS, runTogether, statementName, toBossDb, toJob, withTransaction, type BatchStore, type BossDb, type JobRecord, type MainLedger, type Queryable, type QueueTimings, type RecordData } from '../store/index.ts';
import { SystemQueue, type Catalogue } from '../define/catalogue.ts';
import type { JobDefinition } from '../define/define-job.ts';
import { onMainInsert, recordedByQueue, type OnMainData, type QueuedData } from '../define/queue-policy.ts';
import { uniqueKeyOf } from '../define/stable-json.ts';
import type { JobMetrics } from '../run/metrics.ts';
import { place, placementOf, type Placement } from './placement.ts';
import { batchIdOrThrow, callbackPayload } from './batch.ts';
import type { Spawn } from '../protocol/wire.ts';

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
  /** Join this batch (its id, from `batch().enqueue()` or GET /api/batches): it finishes only once this job ends too. */
  batch?: string;
}

/** What jobgate's own callers may ask besides (not part of the public options). */
export interface InternalOptions {
  /** Join `batch` even if it finished (an admin's retry of its failed jobs runs it again). */
  reopenBatch?: boolean;
}

export interface EnqueueResult {
  job: JobRecord;
  /** A `unique` job with this payload was already queued or active: that one is returned. */
  duplicate: boolean;
}


/** A node-postgres Pool, also one from the app's own copy of pg (by its shape: it counts its clients). */
const isPool = (db: Queryable | undefined): db is Pool => db instanceof pg.Pool || (typeof db === 'object' && db !== null && 'totalCount' in db && typeof (db as Pool).connect === 'function');

/** The largest payload (as JSON) of a job that runs on the fetcher: one always fits a forward request. */
export const MAX_FETCHER_PAYLOAD_BYTES = 2 ** 20;

export function createEnqueuer(deps: {
  pool: Pool;
  boss: PgBoss;
  ledger: MainLedger;
  batches: BatchStore;
  catalogue: Catalogue;
  timings: QueueTimings;
  /** Whether the emergency override is on (new fetcher jobs then run on main); read inside `db`'s transaction when given. */
  overrideEnabled: (db?: Queryable) => Promise<boolean>;
  metrics?: JobMetrics;
  /** Jobs that need no ledger row are recorded by their pg-boss row alone (define/queue-policy.ts recordedByQueue). */
  records?: boolean;
}) {
  const { pool, boss, ledger, batches, catalogue, timings } = deps;
  const records = deps.records && ledger.bossSchema ? recordPlans(ledger.bossSchema, ledger.schema) : null;
  /** Whether a job placed so is recorded by its pg-boss row alone: main's, in its own queue, needing no decision from the ledger. */
  const recordedHere = (def: JobDefinition, placed: Placement) => records !== null && placed.route === 'main' && placed.queue === def.name && recordedByQueue(def);

  /** Per queue, the statement that enqueues and reads back a record, as made from pg-boss's insert last time (the same text each time). */
  const recordStatements = new Map<string, { bossText: string; text: string; name: string }>();
  function recordStatement(queue: string, bossText: string): { text: string; name: string } {
    const made = recordStatements.get(queue);
    if (made?.bossText === bossText) return made;
    const text = insertedRow(bossText, `${RECORD_COLUMNS}, ${records!.heldIfPaused}`);
    // prepared once per connection (statementName): planning the insert and its read-back anew each time cost more than running them
    const statement = { bossText, text, name: statementName(text, 'enqueue') };
    recordStatements.set(queue, statement);
    return statement;
  }

  /** A definition by name (or the definition itself, checked to be this catalogue's). */
  function definition(nameOrDef: string | JobDefinition): JobDefinition {
    const name = typeof nameOrDef === 'string' ? nameOrDef : nameOrDef.name;
    const def = catalogue.get(name);
    if (!def) throw new JobgateError(ErrorCode.unknownJob, `No job is named ${JSON.stringify(name)}.`);
    return def;
  }

  /**
   * Writes a new job: its ledger row and its queue entry (the job's own queue when this side runs
   * it, the shared on-main queue when main runs a fetcher job) commit together; a job for the
   * fetcher is its ledger row alone, the forwarder's outbox. A job that is not unique takes one round trip for both
   * (runTogether); a unique job first asks the ledger whether a live duplicate exists, inside `db`'s
   * transaction.
   */
  async function enqueueIn(db: Queryable, def: JobDefinition, payload: unknown, opts: EnqueueOptions, placed: Placement): Promise<EnqueueResult> {
    // our own pool, or the caller's node-postgres client or pool
    const onePass = !opts.db || opts.db instanceof pg.Pool || opts.db instanceof pg.Client;
    const { route, routeReason, queue } = placed;
    const uniqueKey = def.unique ? uniqueKeyOf(payload) : null;
    const priority = opts.priority ?? def.priority;
    const delaySeconds = opts.delaySeconds ?? 0;
    // a caller's traceparent as W3C writes it, else a new trace (it goes over the wire to the fetcher)
    const given = parseTraceparent(opts.traceparent);
    const traceparent = given ? `00-${given.traceId}-${given.spanId}-${given.flags}` : newTraceparent();
    // (the fetcher takes request ids of at most 128 characters)
    const data: QueuedData = { payload, ...(opts.requestId ? { requestId: opts.requestId.slice(0, 128) } : {}), traceparent };
    // A routed job is its ledger row alone: the forwarder reads the ledger, woken at commit by this NOTIFY.
    const announce = `SELECT pg_notify('${ledger.forwardChannel}', '')`;
    const queueWrite = (id: string) => (bossDb: BossDb) => {
      const send: SendOptions = { id, priority, db: bossDb, ...(delaySeconds > 0 ? { startAfter: delaySeconds } : {}) };
      if (queue === def.name) return boss.send(def.name, data, def.concurrency ? { ...send, group: { id: def.name } } : send);
      const onMain: OnMainData = { ...data, name: def.name, attemptBase: 0 };
      return boss.insert(SystemQueue.onMain, [onMainInsert(def, timings, id, onMain, priority, delaySeconds > 0 ? delaySeconds : undefined)], { db: bossDb, returnId: true });
    };
    const newJob = (id: string) => ({ id, name: def.name, route, routeReason, payload, priority, uniqueKey, maxAttempts: def.retry.limit + 1, delaySeconds, traceparent, ...(data.requestId ? { requestId: data.requestId } : {}) });

    // A job recorded by its pg-boss row (main's, in its own queue, without gates): that row alone,
    // read back in the same round trip as the job every view will show.
    // (a paused name's record is written held, as a pause holds those written before it)
    if (records && recordedHere(def, placed)) {
      const id = uuidv7();
      const record: RecordData = { ...data, record: 1 };
      const queued = await recordBossStatement((bossDb) => boss.send(def.name, record, { id, priority, db: bossDb, ...(delaySeconds > 0 ? { startAfter: delaySeconds } : {}) }), id);
      // (answered by the insert itself, and held while its name is paused, in the same statement;
      // prepared once per connection and queue where the connection is node-postgres's)
      const { text, name } = recordStatement(def.name, queued.text);
      const { rows } = onePass ? await (db as pg.Pool).query({ name, text, values: queued.values }) : await db.query(text, queued.values);
      if (!rows?.[0]) throw new JobgateError(ErrorCode.internal, `the queue refused job ${id} of ${def.name}; it was not accepted`);
      return { job: toJob(rows[0]), duplicate: false };
    }
    // One round trip needs node-postgres's own connection (it runs several statements at once and
    // answers each); anything else that has query(text, values) gets one statement at a time, in
    // the caller's transaction.
    if (!uniqueKey && onePass) {
      const id = uuidv7();
      if (route === 'fetcher') {
        const [inserted] = await runTogether(db, [ledger.insertJobStatement(newJob(id), 'true'), announce]);
        return { job: ledger.toJob(inserted![0]), duplicate: false };
      }
      const queued = await recordBossWrite(queueWrite(id), id);
      const [, inserted] = await runTogether(db, [queued, ledger.insertJobStatement(newJob(id), queuedCondition(queued, queue ?? def.name, id))]);
      // With the queue entry refused, the ledger row was not written either: nothing committed.
      if (!inserted?.[0]) throw new JobgateError(ErrorCode.internal, `the queue refused job ${id} of ${def.name}; it was not accepted`);
      return { job: ledger.toJob(inserted[0]), duplicate: false };
    }
    // A unique job can finish between a failed insert and the lookup: then insert again.
    for (let tries = 0; tries < 3; tries++) {
      const id = uuidv7();
      const job = await ledger.insertJob(newJob(id), db);
      if (!job) {
        const existing = uniqueKey ? await ledger.findLiveByUniqueKey(def.name, uniqueKey, db) : null;
        if (existing) return { job: existing, duplicate: true };
        continue;
      }
      if (route === 'fetcher') {
        await db.query(announce);
        return { job, duplicate: false };
      }
      // a queue that refuses the entry fails the enqueue: the caller's transaction must not commit the row alone
      if ((await queueWrite(id)(toBossDb(db))) === null) throw new JobgateError(ErrorCode.internal, `the queue refused job ${id} of ${def.name}; it was not accepted`);
      return { job, duplicate: false };
    }
    throw new JobgateError(ErrorCode.internal, `could not enqueue unique job ${def.name}: the live duplicate kept changing`);
  }

  /**
   * The payload as the job's schema outputs it, or a 422 naming the field under `path`: invalid,
   * too large for the fetcher (one always fits a forward request), or not storable in PostgreSQL
   * (a NUL, a lone surrogate).
   */
  function checkedPayload(def: JobDefinition, payload: unknown, path: string[]): unknown {
    const parsed = def.payload.safeParse(payload);
    if (!parsed.success) {
      throw new JobgateError(ErrorCode.payloadInvalid, `The payload of ${def.name} is invalid.`, { errors: fieldErrorsFromZod(parsed.error.issues, path) });
    }
    if (def.runsOnFetcher && Buffer.byteLength(JSON.stringify(parsed.data) ?? '') > MAX_FETCHER_PAYLOAD_BYTES) {
      throw new JobgateError(ErrorCode.payloadInvalid, `The payload of ${def.name} is too large for the fetcher.`, { errors: [{ path: path.join('.'), message: `at most ${MAX_FETCHER_PAYLOAD_BYTES} bytes as JSON for a job that runs on the fetcher` }] });
    }
    const unstorable = findUnstorable(parsed.data, path);
    if (unstorable !== null) throw new JobgateError(ErrorCode.payloadInvalid, `The payload of ${def.name} cannot be stored: ${unstorable.path} ${unstorable.problem}.`, { errors: [{ path: unstorable.path, message: unstorable.problem }] });
    return parsed.data;
  }

  /**
   * Validates the payload and commits the job (ledger row + queue entry) before resolving.
   * @example
   * await jobs.performLater(sendNotification, { userId: 'u1', text: 'hi' });
   * await jobs.performLater('notifications.send', payload, { db: client }); // inside the caller's BEGIN … COMMIT
   */
  async function performLater(nameOrDef: string | JobDefinition, payload: unknown, opts: EnqueueOptions & InternalOptions = {}): Promise<EnqueueResult> {
    const def = definition(nameOrDef);
    if (opts.batch !== undefined) return joinBatch(def, payload, opts, opts.batch);
    const payloadOk = checkedPayload(def, payload, ['payload']);
    try {
      // Decided before the transaction takes its connection: reading the override needs one too.
      const placed = await place(def, Boolean(opts.runOnMain), () => deps.overrideEnabled(opts.db));
      // A unique job's check and insert need a transaction; any other job is one atomic round trip.
      const result = opts.db || !def.unique ? await enqueueIn(opts.db ?? pool, def, payloadOk, opts, placed) : await withTransaction(pool, (client) => enqueueIn(client, def, payloadOk, opts, placed));
      // (inside a caller's transaction this counts a job their rollback may still undo)
      if (!result.duplicate) deps.metrics?.enqueued(def.name, placed.route);
      return result;
    } catch (err) {
      if (!(err instanceof JobgateError) && isDatabaseUnavailable(err)) {
        throw new JobgateError(ErrorCode.databaseUnavailable, 'The database is unreachable; the job was not accepted.', { cause: err });
      }
      throw err;
    }
  }

  /** performLater into an existing batch: written as a spawn of one, so the batch is checked in the same transaction. */
  async function joinBatch(def: JobDefinition, payload: unknown, opts: EnqueueOptions & InternalOptions, batchId: string): Promise<EnqueueResult> {
    batchIdOrThrow(batchId);
    const id = uuidv7();
    const job = { id, name: def.name, payload, batchId, ...(opts.priority !== undefined ? { priority: opts.priority } : {}), ...(opts.delaySeconds ? { delaySeconds: opts.delaySeconds } : {}), ...(opts.runOnMain ? { runOnMain: true } : {}) };
    const write = async (db: Queryable): Promise<EnqueueResult> => {
      const written = await spawn({ jobs: [job], batches: [], seal: [], ...(opts.requestId ? { requestId: opts.requestId } : {}), ...(opts.traceparent ? { traceparent: opts.traceparent } : {}) }, { db, reopenBatch: Boolean(opts.reopenBatch) });
      if (written.has(id)) return { job: (await ledger.getJob(id, { db }))!, duplicate: false };
      const existing = await ledger.findLiveByUniqueKey(def.name, uniqueKeyOf(def.payload.parse(payload)), db);
      if (!existing) throw new JobgateError(ErrorCode.internal, `could not enqueue unique job ${def.name}: the live duplicate kept changing`);
      return { job: existing, duplicate: true };
    };
    return isPool(opts.db) ? withTransaction(opts.db, write) : opts.db ? write(opts.db) : withTransaction(pool, write);
  }

  /**
   * Writes many jobs and the batches they open in one transaction (`db`'s, or one of ours), each
   * job's ledger row in one statement and the queue entries of main's jobs in one statement per
   * queue: a handler's children, `batch().enqueue()`, `performManyLater`. A job whose id is taken
   * (the same child written by an earlier attempt of its parent) or whose unique twin is live is
   * skipped. Returns the ids written.
   */
  async function spawn(spawned: Spawn, opts: { db?: Queryable; reopenBatch?: boolean } = {}): Promise<Set<string>> {
    const defs = spawned.jobs.map((j, n) => {
      const def = catalogue.get(j.name);
      if (!def) throw new JobgateError(ErrorCode.unknownJob, `No job is named ${JSON.stringify(j.name)}.`, { errors: [{ path: `jobs.${n}.name`, message: 'no job of this name is defined' }] });
      return def;
    });
    const payloads = spawned.jobs.map((j, n) => checkedPayload(defs[n]!, j.payload, ['jobs', String(n), 'payload']));
    spawned.batches.forEach((b, n) =>
      b.callbacks.forEach((c, m) => {
        const def = catalogue.get(c.name);
        if (!def) throw new JobgateError(ErrorCode.unknownJob, `No job is named ${JSON.stringify(c.name)}.`, { errors: [{ path: `batches.${n}.callbacks.${m}.name`, message: 'no job of this name is defined' }] });
        // what it will run with, counts aside: a callback that could never run is refused now
        checkedPayload(def, callbackPayload(c, { id: b.id, counts: { queued: 0, active: 0, completed: 0, failed: 0, cancelled: 0 }, properties: b.properties }), ['batches', String(n), 'callbacks', String(m), 'payload']);
      }),
    );
    const unstorable = findUnstorable(spawned.batches.map((b) => b.properties), ['batches']);
    if (unstorable) throw new JobgateError(ErrorCode.payloadInvalid, `A batch's properties cannot be stored: ${unstorable.path} ${unstorable.problem}.`, { errors: [{ path: unstorable.path.replace(/^batches\.(\d+)/, 'batches.$1.properties'), message: unstorable.problem }] });
    const overrideOn = defs.some((d, n) => d.runsOnFetcher && !spawned.jobs[n]!.runOnMain) ? await deps.overrideEnabled(opts.db) : false;
    const parentTrace = parseTraceparent(spawned.traceparent);
    const jobs = spawned.jobs.map((j, n) => {
      const def = defs[n]!;
      const placed = placementOf(def, Boolean(j.runOnMain), overrideOn);
      const traceparent = newTraceparent(parentTrace?.traceId);
      const requestId = spawned.requestId?.slice(0, 128);
      return {
        def, placed,
        row: {
          id: j.id, name: def.name, route: placed.route, routeReason: placed.routeReason, payload: payloads[n], priority: j.priority ?? def.priority,
          uniqueKey: def.unique ? uniqueKeyOf(payloads[n]) : null, maxAttempts: def.retry.limit + 1, delaySeconds: j.delaySeconds ?? 0, traceparent,
          ...(requestId ? { requestId } : {}), ...(spawned.parentId ? { parentId: spawned.parentId } : {}), ...(j.batchId ? { batchId: j.batchId } : {}),
        },
      };
    });
    // main's own jobs that need no decision from the ledger, not in a batch nor a handler's children
    // (performManyLater): recorded by their pg-boss rows alone, as performLater records them
    const recorded = jobs.filter(({ def, placed, row }) => !spawned.parentId && !row.batchId && recordedHere(def, placed));
    const ledgered = recorded.length > 0 ? jobs.filter((j) => !recorded.includes(j)) : jobs;
    const write = async (db: Queryable): Promise<Set<string>> => {
      await batches.insert(db, spawned.batches, spawned.parentId ?? null);
      const written = ledgered.length > 0 ? await ledger.insertJobs(db, ledgered.map((j) => j.row)) : new Set<string>();
      for (const [name, group] of Map.groupBy(recorded, (j) => j.def.name)) {
        const entries = group.map(({ row }): JobInsert => {
          const data: RecordData = { payload: row.payload, ...(row.requestId ? { requestId: row.requestId } : {}), traceparent: row.traceparent, record: 1 };
          return { id: row.id, data, priority: row.priority, ...(row.delaySeconds > 0 ? { startAfter: row.delaySeconds } : {}) };
        });
        // (pg-boss skips an id it holds already: only those it wrote are answered)
        const ids = (await boss.insert(name, entries, { db: toBossDb(db), returnId: true })) ?? [];
        for (const id of ids) written.add(id);
        // a paused name's records are written held, as a pause holds those written before it
        if (ids.length > 0) await db.query(records!.blockIfPaused, [name, ids]);
      }
      // members counted into their batches after the insert (so a unique twin finishing meanwhile
      // cannot wait on a batch row this holds); only members written count: the same children
      // written again by a retried parent join nothing, whatever their batch has done since
      const members = new Map<string, number>();
      for (const { row } of jobs) if (row.batchId && written.has(row.id)) members.set(row.batchId, (members.get(row.batchId) ?? 0) + 1);
      const took = await batches.countIn(db, members, Boolean(opts.reopenBatch));
      const missing = spawned.jobs.findIndex((j) => j.batchId && written.has(j.id) && !took.has(j.batchId));
      if (missing >= 0) throw new JobgateError(ErrorCode.stateConflict, 'A job names a batch it cannot join.', { errors: [{ path: `jobs.${missing}.batchId`, message: 'no running batch has this id (it does not exist, or it finished)' }] });
      // the queue entries of main's new jobs, one insert per queue
      const byQueue = new Map<string, JobInsert[]>();
      for (const { def, placed, row } of ledgered) {
        if (!written.has(row.id) || placed.queue === null) continue;
        const data: QueuedData = { payload: row.payload, ...(row.requestId ? { requestId: row.requestId } : {}), traceparent: row.traceparent };
        const delay = row.delaySeconds > 0 ? row.delaySeconds : undefined;
        const entry: JobInsert =
          placed.queue === def.name
            ? { id: row.id, data, priority: row.priority, ...(delay ? { startAfter: delay } : {}), ...(def.concurrency ? { group: { id: def.name } } : {}) }
            : onMainInsert(def, timings, row.id, { ...data, name: def.name, attemptBase: 0 }, row.priority, delay);
        const queued = byQueue.get(placed.queue);
        if (queued) queued.push(entry);
        else byQueue.set(placed.queue, [entry]);
      }
      for (const [queue, entries] of byQueue) await boss.insert(queue, entries, { db: toBossDb(db) });
      if (jobs.some((j) => j.placed.route === 'fetcher' && written.has(j.row.id))) await db.query(`SELECT pg_notify('${ledger.forwardChannel}', '')`);
      await batches.seal(db, spawned.seal);
      return written;
    };
    try {
      // the caller's transaction, or one of ours (on the caller's pool, if that is what `db` is)
      const written = isPool(opts.db) ? await withTransaction(opts.db, write) : opts.db ? await write(opts.db) : await withTransaction(pool, write);
      for (const j of jobs) if (written.has(j.row.id)) deps.metrics?.enqueued(j.def.name, j.placed.route);
      return written;
    } catch (err) {
      if (!(err instanceof JobgateError) && isDatabaseUnavailable(err)) {
        throw new JobgateError(ErrorCode.databaseUnavailable, 'The database is unreachable; the jobs were not accepted.', { cause: err });
      }
      throw err;
    }
  }

  return { definition, performLater, spawn };
}

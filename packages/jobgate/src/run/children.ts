// Fan-out from a running job: ctx.performLater, ctx.performManyLater, ctx.batch and
// ctx.transaction. Children are held until the attempt succeeds (or until ctx.transaction
// commits) and written then, so a handler that throws leaves none behind. Each child's id is
// derived from the parent's id and the child's key (its place among the attempt's children unless
// given), so a retried parent that enqueues them again writes nothing new. Both sides use it: main
// writes children in its own database, the fetcher sends them to main (signed, in chunks).
import { ErrorCode, JobgateError, fieldErrorsFromZod } from '../support/index.ts';
import type { JobDefinition } from '../define/define-job.ts';
import type { Queryable } from '../store/index.ts';
import { MAX_SPAWN_JOBS, chunksByBytes, type Spawn, type SpawnBatch, type SpawnJob } from '../protocol/wire.ts';
import { SignedRoutes } from '../protocol/routes.ts';
import { batchSpec, derivedId, type BatchOptions } from '../enqueue/batch.ts';

export interface ChildOptions {
  /** What makes this child the same across the parent's attempts (default: its place among them, so a handler that enqueues in a stable order needs none). */
  key?: string;
  priority?: number;
  delaySeconds?: number;
  /** Run a `runsOnFetcher` child on main. */
  runOnMain?: boolean;
  /** The batch it joins (ctx.batch's, or the id of one that exists). */
  batch?: ChildBatch | string;
}

/** A batch a handler opens: written with its children when the attempt succeeds. */
export interface ChildBatch {
  readonly id: string;
  add<Input>(job: JobDefinition<unknown, Input> | string, payload: NoInfer<Input>, options?: Omit<ChildOptions, 'batch'>): Promise<{ id: string }>;
  addMany<Input>(job: JobDefinition<unknown, Input> | string, payloads: readonly NoInfer<Input>[], options?: Omit<ChildOptions, 'batch' | 'key'>): Promise<{ ids: string[] }>;
}

/** What a handler's context offers for fan-out (part of JobContext). */
export interface FanOut {
  /** Enqueues a job when this attempt succeeds (or in ctx.transaction, when it commits). Resolves with the child's id once its payload is checked. */
  performLater<Input>(job: JobDefinition<unknown, Input> | string, payload: NoInfer<Input>, options?: ChildOptions): Promise<{ id: string }>;
  /** The same for many jobs of one kind, written in one statement. */
  performManyLater<Input>(job: JobDefinition<unknown, Input> | string, payloads: readonly NoInfer<Input>[], options?: Omit<ChildOptions, 'key'>): Promise<{ ids: string[] }>;
  /** Opens a batch whose callbacks run once every job added to it has ended. */
  batch(options: BatchOptions): ChildBatch;
  /**
   * Runs `fn` in a transaction of this side's database; the children enqueued so far commit with
   * it (on the fetcher, they are sent to main before it commits).
   */
  transaction<T>(fn: (db: Queryable) => Promise<T>): Promise<T>;
}

export interface ChildrenDeps {
  /** A child's definition here, to check its payload when it is enqueued; absent, the side that writes it checks. */
  lookup(name: string): JobDefinition | undefined;
  /** Writes children and batches: main's enqueuer (in `db`'s transaction when given), or main over the signed API. */
  write(spawn: Spawn, db?: Queryable): Promise<void>;
  transaction<T>(fn: (db: Queryable) => Promise<T>): Promise<T>;
  /** Whether `write` in a transaction rolls back with it (main: one database); false when it goes elsewhere (the fetcher: to main). */
  writesInTransaction: boolean;
}

/** One attempt's children: the context's fan-out, and `flush` for the runner once the handler succeeded. */
export function attemptChildren(deps: ChildrenDeps, parent: { id: string; requestId?: string; traceparent?: string }) {
  let pending: SpawnJob[] = [];
  let pendingBatches: SpawnBatch[] = [];
  /** Every batch this attempt opened: sealed when it succeeds. */
  const opened: string[] = [];
  let children = 0;
  let batchCount = 0;

  function check(job: JobDefinition | string, payload: unknown, path: string): string {
    const name = typeof job === 'string' ? job : job.name;
    const def = typeof job === 'string' ? deps.lookup(job) : job;
    const parsed = def?.payload.safeParse(payload);
    if (parsed && !parsed.success) throw new JobgateError(ErrorCode.payloadInvalid, `The payload of ${name} is invalid.`, { errors: fieldErrorsFromZod(parsed.error.issues, [path]) });
    return name;
  }
  const ids = new Set<string>();
  function add(name: string, payload: unknown, options: ChildOptions, key: string): string {
    const id = derivedId(parent.id, key);
    // two children with one key would be one job: say so rather than drop the second
    if (ids.has(id)) throw new JobgateError(ErrorCode.requestInvalid, `Two children of this job have the key ${JSON.stringify(key.replace(/^key:/, ''))}.`, { errors: [{ path: 'key', message: 'each child of an attempt needs a key of its own' }] });
    ids.add(id);
    const batch = typeof options.batch === 'string' ? options.batch : options.batch?.id;
    pending.push({
      id, name, payload,
      ...(options.priority !== undefined ? { priority: options.priority } : {}),
      ...(options.delaySeconds ? { delaySeconds: options.delaySeconds } : {}),
      ...(options.runOnMain ? { runOnMain: true } : {}),
      ...(batch ? { batchId: batch } : {}),
    });
    return id;
  }
  const nextKey = (given?: string) => (given !== undefined ? `key:${given}` : `#${children++}`);
  const spawn = (seal: string[]): Spawn => ({
    parentId: parent.id,
    ...(parent.requestId ? { requestId: parent.requestId } : {}),
    ...(parent.traceparent ? { traceparent: parent.traceparent } : {}),
    jobs: pending,
    batches: pendingBatches,
    seal,
  });

  const fanOut: FanOut = {
    async performLater(job, payload, options = {}) {
      const name = check(job, payload, 'payload');
      return { id: add(name, payload, options, nextKey(options.key)) };
    },
    async performManyLater(job, payloads, options = {}) {
      const name = typeof job === 'string' ? job : job.name;
      payloads.forEach((p, i) => check(job, p, `payloads.${i}`));
      return { ids: payloads.map((p) => add(name, p, options, nextKey())) };
    },
    batch(options) {
      const id = derivedId(parent.id, `batch#${batchCount++}`);
      pendingBatches.push(batchSpec(id, options));
      opened.push(id);
      const batch: ChildBatch = {
        id,
        add: (job, payload, o = {}) => fanOut.performLater(job, payload, { ...o, batch }),
        addMany: (job, payloads, o = {}) => fanOut.performManyLater(job, payloads, { ...o, batch }),
      };
      return batch;
    },
    async transaction(fn) {
      const before = { jobs: pending.length, batches: pendingBatches.length, opened: opened.length, children, batchCount };
      let sent = false;
      try {
        const result = await deps.transaction(async (db) => {
          const value = await fn(db);
          if (pending.length > 0 || pendingBatches.length > 0) await deps.write(spawn([]), db);
          sent = true;
          return value;
        });
        // written: what comes later is new
        pending = [];
        pendingBatches = [];
        return result;
      } catch (err) {
        if (sent && !deps.writesInTransaction) {
          // the commit failed after the children went to main: they are written there, keep their places
          pending = [];
          pendingBatches = [];
          throw err;
        }
        // rolled back: what was enqueued inside it goes too (what came before waits for the next
        // write), and the places it took are free again, so the same children enqueued again (here,
        // or by a retry of the attempt) get the same ids
        for (const dropped of pending.splice(before.jobs)) ids.delete(dropped.id);
        pendingBatches.length = before.batches;
        opened.length = before.opened;
        children = before.children;
        batchCount = before.batchCount;
        throw err;
      }
    },
  };

  return {
    fanOut,
    /** Writes what is held and seals the attempt's batches: the attempt succeeded. */
    async flush(): Promise<void> {
      if (pending.length === 0 && pendingBatches.length === 0 && opened.length === 0) return;
      await deps.write(spawn(opened));
      pending = [];
      pendingBatches = [];
    },
  };
}

/** The fan-out of a context that cannot enqueue (an isolated handler; a side with no main to send to): each call says why. */
export function noFanOut(why: string): FanOut {
  const refuse = (): never => {
    throw new JobgateError(ErrorCode.stateConflict, why);
  };
  return { performLater: async () => refuse(), performManyLater: async () => refuse(), batch: refuse, transaction: async () => refuse() };
}

/**
 * The fetcher's `write`: children go to main over the signed API, cut into requests that fit; the
 * batches are opened by the first and sealed by the last, so none finishes before all its members
 * are there.
 */
export function childrenToMain(send: (spawn: Spawn) => Promise<unknown>): ChildrenDeps['write'] {
  return async (spawn) => {
    const chunks = chunksByBytes(spawn.jobs, SignedRoutes.spawnJobs.batchBytes).flatMap((chunk) =>
      Array.from({ length: Math.ceil(chunk.length / MAX_SPAWN_JOBS) }, (_, i) => chunk.slice(i * MAX_SPAWN_JOBS, (i + 1) * MAX_SPAWN_JOBS)),
    );
    if (chunks.length === 0) chunks.push([]);
    for (const [i, jobs] of chunks.entries()) {
      await send({ ...spawn, jobs, batches: i === 0 ? spawn.batches : [], seal: i === chunks.length - 1 ? spawn.seal : [] });
    }
  };
}

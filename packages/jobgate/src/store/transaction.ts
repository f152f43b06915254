import { createHash } from 'node:crypto';
import pg, { type Pool, type PoolClient } from 'pg';
import { setTimeout as sleep } from 'node:timers/promises';
import pRetry from 'p-retry';
import { isConnectionLost, isTransientDatabaseError } from '../support/errors.ts';

/** A statement's name by its text's hash, so two runtimes sharing a pool (or two copies of jobgate) never give one name two texts. */
const hashedName = (text: string, kind: string) => `jobgate_${kind}_${createHash('sha256').update(text).digest('hex').slice(0, 32)}`;

/** Our own prepared statements' names by kind and text: a text per queue and a few per schema, as small as the catalogue. */
const names = new Map<string, string>();

/**
 * The name under which node-postgres prepares a statement (once per connection, then runs it by
 * name): for the statements a job runs every time whose planning costs as much as running them
 * (an enqueue, an attempt's end).
 */
export function statementName(text: string, kind: string): string {
  const key = `${kind}\u0000${text}`;
  let name = names.get(key);
  if (name === undefined) names.set(key, (name = hashedName(text, kind)));
  return name;
}

/** A query node-postgres prepares on each connection the first time and runs by name after (statementName). */
export function prepared(text: string, values: unknown[], kind = 'ledger'): pg.QueryConfig {
  return { name: statementName(text, kind), text, values };
}

/** The connection's error is heard elsewhere (see guardConnections); this listener only keeps it from ending the process. */
const heardElsewhere = () => {};

const guarded = new WeakSet<Pool>();

/**
 * Keeps a connection of `pool` that dies at the wrong moment from ending the process. pg-pool
 * takes its own 'error' listener off a client it hands out, and hands a released client to a
 * waiting checkout at once, inside the read that released it: a FATAL that came in the same read
 * (pg_terminate_backend, PostgreSQL stopping, just after a statement ended) is then emitted before
 * the new holder can listen, with no one listening, which Node turns into an uncaught exception.
 * A listener for each connection's whole life closes that gap: the error itself still fails the
 * holder's next statement (the client is no longer queryable) and the pool drops the connection
 * when it comes back. Covers the connections open now and every later one; a pool is guarded once.
 */
export function guardConnections(pool: Pool): void {
  if (guarded.has(pool)) return;
  guarded.add(pool);
  pool.on('connect', (client) => client.on('error', heardElsewhere));
  // the ones the host opened before handing the pool over (pg-pool's list of its clients)
  for (const client of (pool as unknown as { _clients?: pg.Client[] })._clients ?? []) client.on('error', heardElsewhere);
}

/** Texts with values run through a PreparingClient, by how often they ran (see recurring). */
const runs = new Map<string, { count: number; generation: number; name: string | null }>();
/** A text is prepared once it ran this often: pg-boss's fetch and settle of a queue, not a one-off. */
const PREPARE_AFTER = 3;
/** Texts remembered at most; past that, the least recently counted goes (a text made per call never recurs). */
const MAX_TEXTS = 500;

/** The statement name a recurring text runs under, or null while it has not recurred. */
function recurring(text: string): string | null {
  let r = runs.get(text);
  if (r) runs.delete(text);
  else {
    r = { count: 0, generation: 0, name: null };
    if (runs.size >= MAX_TEXTS) runs.delete(runs.keys().next().value!);
  }
  r.count++;
  runs.set(text, r);
  if (r.count < PREPARE_AFTER) return null;
  // (named here, not through statementName: what these texts are is pg-boss's, and they come and go)
  return (r.name ??= hashedName(`${r.generation}\u0000${text}`, 'boss'));
}

/**
 * A statement prepared before a migration changed what it returns fails ("cached plan must not
 * change result type") on every connection that prepared it: the text gets a new name, prepared
 * afresh at its next run.
 */
function forgetIfStale(text: string, err: unknown): void {
  if ((err as { code?: string }).code === '0A000' && /cached plan must not change result type/.test((err as Error).message)) {
    const r = runs.get(text);
    if (r) {
      r.generation++;
      r.name = null;
    }
  }
}

/** A pg Client guarded the same way from its start: the Client of the pools we hand to pg-boss, where no 'connect' event of ours can reach. */
export class GuardedClient extends pg.Client {
  constructor(config?: string | pg.ClientConfig) {
    super(config);
    this.on('error', heardElsewhere);
  }
}

/**
 * A GuardedClient that also prepares the statements pg-boss runs again and again (a text with
 * values, run PREPARE_AFTER times: a queue's fetch, its settle), once per connection, as ours are
 * (statementName): planning pg-boss's fetch and settle anew for every job cost about as much as
 * running them.
 */
export class PreparingClient extends GuardedClient {
  constructor(config?: string | pg.ClientConfig) {
    super(config);
    const query = this.query.bind(this) as (...args: unknown[]) => unknown;
    this.query = ((...args: unknown[]) => {
      const [text, values, callback] = args;
      if (typeof text !== 'string' || !Array.isArray(values) || values.length === 0) return query(...args);
      const name = recurring(text);
      if (name === null) return query(...args);
      if (typeof callback === 'function') {
        return query({ name, text, values }, (err: unknown, res: unknown) => {
          if (err) forgetIfStale(text, err);
          (callback as (e: unknown, r: unknown) => void)(err, res);
        });
      }
      return (query({ name, text, values }) as Promise<unknown>).catch((err: unknown) => {
        forgetIfStale(text, err);
        throw err;
      });
    }) as typeof this.query;
  }
}

/**
 * Runs `fn` inside BEGIN … COMMIT on one pooled connection (ROLLBACK on a throw).
 */
export async function withTransaction<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  const tx = await openTransaction(pool);
  let result: T;
  try {
    result = await fn(tx.client);
  } catch (err) {
    await tx.rollback();
    throw err;
  }
  await tx.commit();
  return result;
}

/** A transaction left open on a connection of its own (openTransaction). */
export interface OpenTransaction {
  client: PoolClient;
  /** The rows of the first statement it was opened with, if any. */
  opened: any[];
  /** The rows of each statement it was opened with, in order (`opened` is the first's). */
  openedAll: any[][];
  /** Runs `last` (if given) in it, then commits; rolls back should either fail. Ends it either way. */
  commit(last?: { text: string; values: unknown[] }): Promise<void>;
  /** Rolls back and ends it; a no-op once it has ended. */
  rollback(): Promise<void>;
}

/**
 * BEGIN on one pooled connection, for a caller that keeps the transaction open across other work
 * (withTransaction, the forwarder's hold on the jobs it delivers). The connection goes back to the
 * pool when the transaction ends, dropped if it broke. A checked-out pg client that loses its
 * connection between two queries emits 'error', and an unheard 'error' kills the process (seen
 * when PostgreSQL stops mid-transaction): listen while the client is out, and let the failed query
 * report the error instead.
 *
 * `opening`: statements without parameters sent with the BEGIN in one round trip (PostgreSQL's
 * simple query protocol runs them all), whose rows are `openedAll` (the first's also `opened`):
 * the forwarder's take starts the delivery of a job one round trip sooner, and the intake's probe
 * and inserts go with their BEGIN.
 */
export async function openTransaction(pool: Pool, opening?: string): Promise<OpenTransaction> {
  const client = await pool.connect();
  let broken: Error | undefined;
  const onError = (err: Error) => {
    broken = err;
  };
  client.on('error', onError);
  let ended = false;
  const end = async (statements: Array<{ text: string; values?: unknown[] }>) => {
    if (ended) throw new Error('this transaction has ended already');
    ended = true;
    try {
      for (const st of statements) await client.query(st.text, st.values);
    } catch (err) {
      // (a connection whose ROLLBACK failed may still be inside the transaction: it is dropped, not pooled)
      if (!broken) await client.query('ROLLBACK').catch((rollbackErr: Error) => (broken = rollbackErr));
      throw err;
    } finally {
      client.off('error', onError);
      // A broken connection must not go back into the pool.
      client.release(broken ?? false);
    }
  };
  let openedAll: any[][] = [];
  try {
    if (opening === undefined) await client.query('BEGIN');
    else openedAll = ((await client.query(`BEGIN; ${opening}`)) as unknown as Array<{ rows: any[] }>).slice(1).map((r) => r.rows);
  } catch (err) {
    // (the BEGIN may have run before its statement failed: ended, so the connection is not pooled inside it)
    await end(opening === undefined ? [] : [{ text: 'ROLLBACK' }]).catch(() => {});
    throw err;
  }
  return {
    client,
    opened: openedAll[0] ?? [],
    openedAll,
    commit: (last) => end([...(last ? [last] : []), { text: 'COMMIT' }]),
    rollback: async () => {
      if (!ended) await end([{ text: 'ROLLBACK' }]).catch(() => {});
    },
  };
}

/**
 * Ledger writes that outlive a short database outage (a restart takes seconds) and a broken
 * deadlock: retried, so they must be idempotent. Seven tries in all, the first outside p-retry
 * (which costs more to set up than a short job's write: it is only needed once a try failed).
 */
export async function durably<T>(write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (err) {
    if (!isTransientDatabaseError(err)) throw err;
    // a killed connection is tried again at once (the pool opens a fresh one); the rest after a pause
    if (!isConnectionLost(err)) await sleep(200);
    return pRetry(write, { retries: 5, minTimeout: 200, maxTimeout: 3_000, shouldRetry: ({ error }) => isTransientDatabaseError(error) });
  }
}

/**
 * Database work that a request or a delivery waits for, tried again at once (twice at most) when
 * the connection under it was lost (killed, reset): the pool drops a broken connection, so the
 * next try runs on a fresh one. One killed connection no longer turns into a 503 that the other
 * side backs off from; a database that is really away fails the next try too (refused), and the
 * caller answers as before. `work` must be idempotent, as durably's writes are: a COMMIT whose
 * answer was lost may have happened.
 */
export async function onFreshConnection<T>(work: () => Promise<T>): Promise<T> {
  for (let tries = 1; ; tries++) {
    try {
      return await work();
    } catch (err) {
      if (tries >= 3 || !isConnectionLost(err)) throw err;
    }
  }
}

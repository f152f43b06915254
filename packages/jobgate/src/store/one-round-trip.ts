import pg from 'pg';
import type { Queryable } from './ledger.ts';

/** What pg-boss calls when a write is given `{ db }`: the caller's connection, or here a recorder. */
export interface BossDb {
  executeSql(text: string, values?: unknown[]): Promise<{ rows: any[] }>;
}

/** A connection (the caller's transaction, or a pooled client) as pg-boss's `{ db }` option wants it. */
export const toBossDb = (db: Queryable): BossDb => ({ executeSql: (text: string, values?: unknown[]) => db.query(text, values) });

/** A value written into SQL text as a literal (the simple protocol that runs several statements takes no parameters). */
function literal(value: unknown): string {
  if (value === null || value === undefined) return 'NULL';
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value === 'boolean') return value ? 'TRUE' : 'FALSE';
  if (typeof value === 'string') return pg.escapeLiteral(value);
  if (value instanceof Date) return pg.escapeLiteral(value.toISOString());
  return pg.escapeLiteral(JSON.stringify(value));
}

/** A `$n` statement with its values written in. Only for statements whose own text holds no `$` but parameters. */
export function inlineParams(text: string, values: readonly unknown[]): string {
  return text.replace(/\$(\d+)\b/g, (_, n: string) => {
    const i = Number(n) - 1;
    if (i >= values.length) throw new Error(`statement refers to $${n}, only ${values.length} values given`);
    return literal(values[i]);
  });
}

/** A pg-boss write's one statement, recorded instead of run: its text, and its values (at most one, the jobs as JSON). */
export interface RecordedWrite {
  text: string;
  values: unknown[];
}

/**
 * The one statement a pg-boss write would run, recorded instead of run. pg-boss writes a job with
 * one statement and one JSON parameter (plans.insertJobs) and inlines the same way itself for
 * flows (plans.insertFlowJobs); a pg-boss whose write looks otherwise is refused loudly rather
 * than half-recorded.
 */
export async function recordBossStatement(write: (db: BossDb) => Promise<unknown>, id: string): Promise<RecordedWrite> {
  const recorded: RecordedWrite[] = [];
  await write({
    async executeSql(text, values = []) {
      recorded.push({ text, values });
      return { rows: [{ id }] };
    },
  });
  if (recorded.length !== 1 || recorded[0]!.values.length > 1) {
    throw new Error(`pg-boss wrote a job with ${recorded.length} statements (${recorded.map((r) => `${r.values.length} values`).join(', ')}); jobgate expects one statement with one value`);
  }
  return recorded[0]!;
}

/** The one statement a pg-boss write would run (recordBossStatement), with its values written in, for a round trip of several statements. */
export async function recordBossWrite(write: (db: BossDb) => Promise<unknown>, id: string): Promise<string> {
  const { text, values } = await recordBossStatement(write, id);
  return inlineParams(text, values);
}

/**
 * Runs `statements` in ONE round trip and one transaction: the simple protocol runs a
 * multi-statement string as a single implicit transaction (or inside the caller's open one), so
 * the ledger row and the queue entry of a new job commit together or not at all, without the
 * BEGIN and COMMIT round trips (../shared/PERF.md: enqueue is CPU- and round-trip-bound).
 * Returns each statement's rows.
 */
export async function runTogether(db: Queryable, statements: string[]): Promise<any[][]> {
  const result = (await db.query(statements.join(';\n'))) as unknown;
  const results = Array.isArray(result) ? result : [result];
  return results.map((r: { rows: any[] }) => r.rows);
}

/**
 * A condition that holds once the recorded pg-boss write `bossSql` has queued job `id` in `queue`,
 * for the ledger insert that follows it in the same round trip: pg-boss's insert ends in ON
 * CONFLICT DO NOTHING, and a ledger row must never commit without its queue entry (nor the other
 * way round: no ledger row back means nothing was written). It reads the very table the write
 * inserts into (one queue's partition), by primary key.
 */
export function queuedCondition(bossSql: string, queue: string, id: string): string {
  return `EXISTS (${queuedRow(bossSql, queue, id, '1')})`;
}

/**
 * The recorded pg-boss write `bossSql` as one statement that answers `columns` of the row it
 * inserted (as `j`; none when its ON CONFLICT skipped it). pg-boss ends its insert in `RETURNING id`
 * (with `start_after` when it notifies its workers, and then selects the id from that insert as
 * `ins`): that is widened to the whole row and read by the SELECT that ends the statement. A
 * volatile function among `columns` sees the inserted row (a function sees the changes of the
 * statement that calls it), so it may update it.
 */
export function insertedRow(bossSql: string, columns: string): string {
  const returning = /\bRETURNING id(, start_after)?\s*(\)|$)/;
  const wrapped = /^\s*WITH ins AS \(/.test(bossSql);
  const selectId = /\bSELECT id FROM ins\b/;
  if (!returning.test(bossSql) || (wrapped && !selectId.test(bossSql))) throw new Error('pg-boss wrote a job otherwise than INSERT … RETURNING id; jobgate cannot read it back');
  const whole = bossSql.replace(returning, (_, _startAfter, end: string) => `RETURNING *${end}`);
  return wrapped ? whole.replace(selectId, `SELECT ${columns} FROM ins j`) : `WITH j AS (${whole}) SELECT ${columns} FROM j`;
}

/**
 * A SELECT of `columns` of the job `id` that the recorded pg-boss write `bossSql` queued in
 * `queue` (as `j`), read by primary key from the table the write inserts into.
 */
export function queuedRow(bossSql: string, queue: string, id: string, columns: string): string {
  const table = /INSERT INTO\s+([\w."]+)\s*\(/.exec(bossSql)?.[1];
  if (!table) throw new Error('pg-boss wrote a job without an INSERT INTO <table> (…); jobgate cannot check it');
  return `SELECT ${columns} FROM ${table} j WHERE j.name = ${literal(queue)} AND j.id = ${literal(id)}`;
}

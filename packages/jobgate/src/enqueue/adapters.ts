// `db` for performLater from a query builder's transaction, the way pg-boss's adapters do it: the
// builder is not a dependency of jobgate, only the shape of its transaction object is used.
import type { Queryable } from '../store/index.ts';

/** What a Kysely transaction (or Kysely instance) offers: executeQuery of a compiled query. */
interface KyselyLike {
  // (typed loosely: Kysely's own CompiledQuery type is not a dependency here)
  executeQuery(query: never): Promise<{ rows: unknown[]; numAffectedRows?: bigint }>;
}

/**
 * A Kysely transaction as performLater's `db`: the job commits or rolls back with it.
 * @example
 * await db.transaction().execute(async (trx) => {
 *   const order = await trx.insertInto('orders').values({ total }).returning('id').executeTakeFirstOrThrow();
 *   await jobgate.performLater(importOrder, { orderId: order.id }, { db: fromKysely(trx) });
 * });
 */
export function fromKysely(trx: KyselyLike): Queryable {
  return {
    async query(text, values) {
      // a compiled raw query, as Kysely's CompiledQuery.raw() makes one
      const compiled = { sql: text, parameters: values ?? [], query: { kind: 'RawNode', sqlFragments: [text], parameters: [] }, queryId: { queryId: 'jobgate' } };
      const result = await trx.executeQuery(compiled as never);
      return { rows: [...result.rows], rowCount: result.numAffectedRows === undefined ? result.rows.length : Number(result.numAffectedRows) };
    },
  };
}

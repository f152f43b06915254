// The forward stage under the emergency override: fetcher jobs not yet delivered (or whose
// delivery is in doubt) become main's and are queued on main, in one transaction. A job the
// fetcher has already claimed stays there.
import type { Pool } from 'pg';
import type { PgBoss } from 'pg-boss';
import { toBossDb, withTransaction, type MainLedger, type QueueTimings } from '../store/index.ts';
import { SystemQueue, type Catalogue } from '../define/catalogue.ts';
import { onMainInsert } from '../define/queue-policy.ts';

/** Moves up to `limit` undelivered fetcher jobs (or exactly `ids`) to main; returns how many moved. */
export function createTakeOver(deps: { pool: Pool; boss: PgBoss; ledger: MainLedger; catalogue: Catalogue; timings: QueueTimings }) {
  const { pool, boss, ledger, catalogue, timings } = deps;
  return async function takeOverUndelivered(limit: number, ids: string[] | null = null): Promise<number> {
    return withTransaction(pool, async (client) => {
      // Only jobs this process defines: one it does not know (a rename in a deploy) stays with the fetcher.
      const fetcherJobs = [...catalogue.values()].filter((d) => d.runsOnFetcher).map((d) => d.name);
      const taken = await ledger.takeOverUndelivered(client, limit, 'override', fetcherJobs, ids);
      const inserts = taken.map((t) => onMainInsert(catalogue.get(t.name)!, timings, t.id, { payload: t.payload, name: t.name, attemptBase: t.attempts, ...(t.traceparent ? { traceparent: t.traceparent } : {}) }, t.priority, t.runAt));
      if (inserts.length > 0) await boss.insert(SystemQueue.onMain, inserts, { db: toBossDb(client) });
      return inserts.length;
    });
  };
}

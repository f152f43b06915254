// The intake stage (the fetcher): jobs main forwarded are taken under main's ids, all or none in
// one transaction, idempotent on id.
import type { Pool } from 'pg';
import type { PgBoss } from 'pg-boss';
import { ErrorCode, JobgateError, fieldErrorsFromZod, isDatabaseUnavailable, type FieldError } from '../support/index.ts';
import { toBossDb, withTransaction, type FetcherLedger } from '../store/index.ts';
import type { Catalogue } from '../define/catalogue.ts';
import type { QueuedData } from '../define/queue-policy.ts';
import type { JobMetrics } from '../run/metrics.ts';

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

export function createIntake(deps: { pool: Pool; boss: PgBoss; ledger: FetcherLedger; catalogue: Catalogue; metrics?: JobMetrics }) {
  const { pool, boss, ledger, catalogue } = deps;
  /**
   * Takes over jobs main handed to this side, under main's ids, all or none in one transaction.
   * Idempotent on id: a job already here answers `duplicate: true` and is not queued twice; an id
   * reused for another name or payload is refused (409) naming it.
   */
  async function accept(items: AcceptedJob[]): Promise<Array<{ id: string; duplicate: boolean }>> {
    const errors: FieldError[] = [];
    const parsed = items.map((item, i) => {
      const def = catalogue.get(item.name);
      if (!def || !def.runsOnFetcher) {
        errors.push({ path: `jobs.${i}.name`, message: `no job named ${JSON.stringify(item.name)} runs on the fetcher` });
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
            { db: toBossDb(client) },
          );
        }
        return valid.map(({ item }) => ({ id: item.id, duplicate: !inserted.has(item.id) }));
      }).then((answers) => {
        const fresh = new Set(answers.filter((a) => !a.duplicate).map((a) => a.id));
        for (const [name, group] of Map.groupBy(valid.filter((v) => fresh.has(v.item.id)), (v) => v.def.name)) deps.metrics?.accepted(name, group.length);
        return answers;
      });
    } catch (err) {
      if (!(err instanceof JobgateError) && isDatabaseUnavailable(err)) {
        throw new JobgateError(ErrorCode.databaseUnavailable, 'The database is unreachable; no job was accepted.', { cause: err });
      }
      throw err;
    }
  }

  /** FetcherLedger writes after a handler ran outlive a short database outage (a restart takes seconds). */

  return accept;
}

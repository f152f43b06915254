import type { JobDefinition } from './define-job.ts';

/** Queue names the library keeps for itself; no job may take them. */
export const SystemQueue = {
  /**
   * Where jobs routed to the fetcher waited before migration 017 (the ledger is the outbox now):
   * no longer written; kept reserved, so no job takes a name an older main may still use.
   */
  outbox: 'jobgate.outbox',
  /**
   * Where pg-boss's timekeeper sent schedule firings before main's own scheduler: no longer
   * written (its pg-boss schedules are removed at start); kept reserved like `outbox`.
   */
  cron: 'jobgate.cron',
  /**
   * Fetcher jobs that run on main (the emergency override, or a per-run `runOnMain`): one queue,
   * so a small worker concurrency bounds them all together.
   */
  onMain: 'jobgate.on-main',
  /** Where pg-boss puts jobs it gave up on, so the ledger learns of them. */
  deadLetter: 'jobgate.dead-letter',
} as const;

export type Catalogue = ReadonlyMap<string, JobDefinition>;

/** The set of known jobs, by name. Throws on a duplicate or reserved name. */
export function createCatalogue(definitions: Iterable<JobDefinition>): Catalogue {
  const byName = new Map<string, JobDefinition>();
  for (const def of definitions) {
    if (def.name.startsWith('jobgate.')) throw new TypeError(`job name ${def.name}: the "jobgate." prefix is reserved`);
    if (byName.has(def.name)) throw new TypeError(`job name ${def.name} is defined twice`);
    byName.set(def.name, def);
  }
  return byName;
}

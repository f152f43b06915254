import type { JobDefinition } from './define-job.ts';

/** Queue names the library keeps for itself; no job may take them. */
export const SystemQueue = {
  /** Jobs routed to the fetcher wait here until delivered. */
  outbox: 'jobgate.outbox',
  /** pg-boss cron fires here; a worker turns each firing into a performLater. */
  cron: 'jobgate.cron',
  /**
   * Fetcher jobs that run on main (the emergency override, or a per-run `runOnMain`): one queue,
   * so a small worker concurrency bounds them all together.
   */
  onMain: 'jobgate.on-main',
  /** Where pg-boss puts jobs it gave up on, so the ledger learns of them. */
  deadLetter: 'jobgate.dead-letter',
} as const;

/**
 * The outbox's delivery attempts are retried until they succeed: not the job's own retries (those
 * apply where it runs). pg-boss backs off between attempts, up to a minute apart (main's
 * FETCHER_FORWARD_RETRY_MAX_SECONDS). Set when the queue is created, so even the first job in it gets them.
 */
export const OUTBOX_QUEUE_OPTIONS = {
  notify: true,
  retryLimit: 1_000_000,
  retryDelay: 1,
  retryBackoff: true,
  retryDelayMax: 60,
  expireInSeconds: 300,
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

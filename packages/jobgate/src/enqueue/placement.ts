// Where a new job goes, decided before anything is written. Pure: unit-tested without PostgreSQL.
import { SystemQueue } from '../define/catalogue.ts';
import type { JobDefinition } from '../define/define-job.ts';
import type { Route, RouteReason } from '../store/index.ts';

export interface Placement {
  route: Route;
  routeReason: RouteReason;
  /** The queue the job is written to: its own (main runs it), the shared on-main queue, or none (the fetcher's: the ledger row is the outbox). */
  queue: string | null;
}

/**
 * A job runs where its definition says, unless main runs a fetcher job: for one run
 * (`runOnMain`), or for every new one while the emergency override is on.
 */
export function placementOf(def: JobDefinition, runOnMain: boolean, overrideOn: boolean): Placement {
  if (!def.runsOnFetcher) return { route: 'main', routeReason: 'definition', queue: def.name };
  if (runOnMain) return { route: 'main', routeReason: 'run-on-main', queue: SystemQueue.onMain };
  if (overrideOn) return { route: 'main', routeReason: 'override', queue: SystemQueue.onMain };
  // kept in the ledger for the fetcher until the forwarder delivers it; never run on main from there
  return { route: 'fetcher', routeReason: 'definition', queue: null };
}

/** The same, reading the override only when it matters (a fetcher job not sent to main for this run). */
export async function place(def: JobDefinition, runOnMain: boolean, overrideOn: () => Promise<boolean>): Promise<Placement> {
  return placementOf(def, runOnMain, def.runsOnFetcher && !runOnMain ? await overrideOn() : false);
}

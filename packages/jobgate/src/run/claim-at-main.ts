// The fetcher's second claim, in main's ledger: main's ledger is the source of truth, so an
// attempt starts only once main granted it, and main (under the emergency override) and the
// fetcher never run one job at once. Fetcher-only.
import { setTimeout as sleep } from 'node:timers/promises';
import { coalesce, type Logger } from '../support/index.ts';
import type { ClaimAnswer } from '../protocol/index.ts';
import type { MainClient } from '../client/index.ts';
import type { ClaimResult, Ledger } from '../store/index.ts';
import type { ConfirmClaim } from './runner.ts';

/**
 * Claims at main over the signed API. Once the fetcher has claimed a job, main never takes it over,
 * so the claim needs no refresh there. `unknown`: main has no such job (never had it, or deleted it
 * after it finished): the fetcher does not run it.
 */
export interface RemoteClaims {
  claim(id: string, attempt: number, claimSeconds: number, traceparent?: string): Promise<ClaimResult | { outcome: 'unknown' }>;
}

/** The confirmClaim step of the fetcher's runner. */
export function claimAtMain(remote: RemoteClaims, deps: { ledger: Ledger; claimSeconds: number; ranOn: 'fetcher' }): ConfirmClaim {
  const { ledger, claimSeconds, ranOn } = deps;
  /**
   * The fetcher's second claim, in main's ledger: until main grants it the attempt does not start.
   * Main may be away (redeploying): the local claim is kept alive meanwhile, and we retry. gone:
   * main owns or finished the job; paused: an operator paused it (the attempt does not start).
   */
  return async function confirm(id: string, attempt: number, signal: AbortSignal, log: Logger, traceparent?: string): Promise<'claimed' | 'gone' | 'paused'> {
    for (let failures = 0; ; ) {
      let result: Awaited<ReturnType<RemoteClaims['claim']>>;
      try {
        result = await remote.claim(id, attempt, claimSeconds, traceparent);
        failures = 0;
      } catch (err) {
        failures++;
        // Unreachable main waits; so does a refusal (401 half-rotated secret, 404 main older than
        // the fetcher): running unclaimed could run a job twice, failing it would lose it.
        const refused = (err as { code?: string }).code === 'JG_FETCHER_REJECTED';
        if (failures === 1 || failures % 10 === 0) log[refused ? 'error' : 'warn']({ err, failures }, refused ? claimRefusal((err as { status?: number }).status) : 'cannot reach main to claim the job; waiting');
        await ledger.refreshClaim(id, attempt, claimSeconds, ranOn).catch(() => {});
        await sleep(Math.min(5_000, 200 * 2 ** Math.min(failures, 5)), undefined, { signal });
        continue;
      }
      if (result.outcome === 'paused') return 'paused';
      if (result.outcome === 'wait') {
        await ledger.refreshClaim(id, attempt, claimSeconds, ranOn).catch(() => {});
        await sleep(result.waitMs, undefined, { signal });
        continue;
      }
      if (result.outcome === 'gone' || result.outcome === 'unknown') {
        // Main ran it (the emergency override took it over), finished or cancelled it, or no longer
        // has it at all (deleted after it finished): either way it is not ours to run (the runner
        // ends the local claim as taken over).
        log.warn({ mainSays: result.outcome }, 'main owns this job now (taken over, finished, cancelled or purged there); not running it here');
        return 'gone';
      }
      return 'claimed';
    }
  };
}

/** What a refused claim most likely means, by status: the log line an operator acts on. */
function claimRefusal(status: number | undefined): string {
  if (status === 401) return 'main refuses our claims (401): the shared secret differs; waiting';
  if (status === 404) return "main has no claims route (404): check the fetcher's main URL names where main's router is mounted, and that main is not older than the fetcher; waiting";
  return `main refuses our claims (${status ?? 'no status'}); waiting`;
}

/**
 * The claims at main: one request each while few are under way, and those asked for meanwhile in
 * one request (SignedRoutes.claimJobs). A main older than the batch route (404) gets them
 * one by one for the next 5 minutes, then the batch route is tried again.
 */
export function remoteClaimsAt(main: Pick<MainClient, 'claim' | 'claimMany'>, logger: Logger): RemoteClaims {
  type Claim = { jobId: string; attempt: number; claimSeconds: number; traceparent?: string };
  // a wait for a pause (`paused`, from a main that knows pauses) is not waited out here: see the runner
  const toResult = (a: ClaimAnswer): ClaimResult | { outcome: 'unknown' } =>
    a.outcome === 'wait' ? (a.paused ? { outcome: 'paused' } : { outcome: 'wait', waitMs: a.waitMs ?? 500 }) : { outcome: a.outcome };
  const one = (c: Claim) => main.claim(c.jobId, c.attempt, c.claimSeconds, c.traceparent).then(toResult);
  // after a 404, the batch route is tried again this much later (main may have been upgraded meanwhile)
  const RETRY_BATCH_ROUTE_MS = 5 * 60_000;
  let batchRouteAfter = 0;
  const claim = coalesce(
    async (claims: Claim[]) => {
      if (claims.length === 1 || Date.now() < batchRouteAfter) return Promise.all(claims.map(one));
      try {
        return (await main.claimMany(claims)).map(toResult);
      } catch (err) {
        const e = err as { code?: string; status?: number };
        if (e.code !== 'JG_FETCHER_REJECTED' || e.status !== 404) throw err;
        batchRouteAfter = Date.now() + RETRY_BATCH_ROUTE_MS;
        logger.warn('main has no batch claims route (older than this fetcher): claiming one attempt per request for 5 minutes');
        return Promise.all(claims.map(one));
      }
    },
    { maxItems: 500, maxInFlight: 1 },
  );
  return { claim: (jobId, attempt, claimSeconds, traceparent) => claim({ jobId, attempt, claimSeconds, ...(traceparent ? { traceparent } : {}) }) };
}

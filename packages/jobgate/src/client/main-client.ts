// The fetcher's client for main: job events back, the claim of each attempt, children, pauses.
import { SignedRoutes, type ClaimBatch, type JobEvent, type Spawn } from '../protocol/index.ts';
import { createPeer, type PeerOptions } from './peer.ts';

/** What the fetcher uses to talk to main: job events back. */
export function createMainClient(options: PeerOptions) {
  const { once, call, close } = createPeer({ peer: 'main', ...options });
  return {
    /** Delivers events (≤ 500), signed; main applies them idempotently, in per-job order. */
    sendEvents: (events: JobEvent[]) => call(SignedRoutes.jobEvents, { body: { events } }),
    /** Claims an attempt of a job in main's ledger before the fetcher runs it (no retries: the caller loops). */
    claim: (jobId: string, attempt: number, claimSeconds: number, traceparent?: string) =>
      // the job's trace rides in the W3C header, so main logs the claim under it
      once(SignedRoutes.claimJob, { body: { jobId, attempt, claimSeconds } }, traceparent ? { headers: { traceparent } } : {}),
    /** Claims several attempts in one request, answered in order (a main older than this answers 404). */
    claimMany: (claims: ClaimBatch['claims']) =>
      once(SignedRoutes.claimJobs, { body: { claims } }).then(({ answers }) => {
        if (answers.length !== claims.length) throw new Error(`main answered ${answers.length} of ${claims.length} claims`);
        return answers;
      }),
    /** Enqueues a fetcher job's children (and their batches) at main; ids are ours, so sending again writes nothing new. */
    spawn: (spawn: Spawn) => once(SignedRoutes.spawnJobs, { body: spawn }, spawn.traceparent ? { headers: { traceparent: spawn.traceparent } } : {}),
    /** The jobs main has paused (the fetcher stops fetching them). */
    pauses: () => once(SignedRoutes.readPauses, {}).then((a) => a.pauses),
    close,
  };
}

export type MainClient = ReturnType<typeof createMainClient>;

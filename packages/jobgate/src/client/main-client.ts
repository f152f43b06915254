// The fetcher's client for main: job events back, and the claim of each attempt.
import { z } from 'zod';
import { ClaimAnswer, ClaimAnswers, PausesAnswer, Purpose, SpawnAnswer, type ClaimBatch, type JobEvent, type Spawn } from '../protocol/index.ts';
import { createPeer, type PeerOptions } from './peer.ts';

/** What the fetcher uses to talk to main: job events back. */
export function createMainClient(options: PeerOptions) {
  const { once, call, close } = createPeer({ peer: 'main', ...options });
  return {
    /** Delivers events (≤ 500), signed; main applies them idempotently, in per-job order. */
    sendEvents: (events: JobEvent[]) =>
      call('POST', '/internal/v1/job-events', Purpose.jobEvents, JSON.stringify({ events }), EventsReceipt),
    /** Claims an attempt of a job in main's ledger before the fetcher runs it (no retries: the caller loops). */
    claim: (jobId: string, attempt: number, claimSeconds: number, traceparent?: string) =>
      // the job's trace rides in the W3C header, so main logs the claim under it
      once('POST', '/internal/v1/claims', Purpose.claimJob, JSON.stringify({ jobId, attempt, claimSeconds }), ClaimAnswer, {}, traceparent ? { traceparent } : {}),
    /** Claims several attempts in one request, answered in order (a main older than this answers 404). */
    claimMany: (claims: ClaimBatch['claims']) =>
      once('POST', '/internal/v1/claims/batch', Purpose.claimJob, JSON.stringify({ claims }), ClaimAnswers).then(({ answers }) => {
        if (answers.length !== claims.length) throw new Error(`main answered ${answers.length} of ${claims.length} claims`);
        return answers;
      }),
    /** Enqueues a fetcher job's children (and their batches) at main; ids are ours, so sending again writes nothing new. */
    spawn: (spawn: Spawn) => once('POST', '/internal/v1/children', Purpose.spawnJobs, JSON.stringify(spawn), SpawnAnswer, {}, spawn.traceparent ? { traceparent: spawn.traceparent } : {}),
    /** The jobs main has paused (the fetcher stops fetching them). */
    pauses: () => once('GET', '/internal/v1/pauses', Purpose.readPauses, undefined, PausesAnswer).then((a) => a.pauses),
    close,
  };
}

export type MainClient = ReturnType<typeof createMainClient>;
const EventsReceipt = z.object({ applied: z.number(), ignored: z.number() });


// The fetcher's client for main: job events back, and the claim of each attempt.
import { z } from 'zod';
import { ClaimAnswer, Purpose, type JobEvent } from '../protocol/index.ts';
import { createPeer, type PeerOptions } from './peer.ts';

/** What the fetcher uses to talk to main: job events back. */
export function createMainClient(options: PeerOptions) {
  const { once, call, close } = createPeer(options);
  return {
    /** Delivers events (≤ 500), signed; main applies them idempotently, in per-job order. */
    sendEvents: (events: JobEvent[]) =>
      call('POST', '/internal/v1/job-events', Purpose.jobEvents, JSON.stringify({ events }), EventsReceipt),
    /** Claims an attempt of a job in main's ledger before the fetcher runs it (no retries: the caller loops). */
    claim: (jobId: string, attempt: number, claimSeconds: number, traceparent?: string) =>
      // the job's trace rides in the W3C header, so main logs the claim under it
      once('POST', '/internal/v1/claims', Purpose.claimJob, JSON.stringify({ jobId, attempt, claimSeconds }), ClaimAnswer, {}, traceparent ? { traceparent } : {}),
    close,
  };
}

export type MainClient = ReturnType<typeof createMainClient>;
const EventsReceipt = z.object({ applied: z.number(), ignored: z.number() });


// main's client for the fetcher: submit, status, read a job, resend events, and a single-flight wake-up.
import { setTimeout as sleep } from 'node:timers/promises';
import { SignedRoutes, type SubmitJob } from '../protocol/index.ts';
import { FetcherClientError, FetcherErrorCode } from './errors.ts';
import { createPeer, type PeerOptions, type WakeResult } from './peer.ts';

export type FetcherClientOptions = PeerOptions & {
  /** Told when a wake-up begins (not when a caller joins one in flight), with its deadline. */
  onWakeStart?: (since: Date, deadlineMs: number) => void;
  /** Told of every wake-up's end: awake, or timeout (for metrics). */
  onWake?: (outcome: 'awake' | 'timeout', ms: number) => void;
};

/**
 * The one client every caller uses to talk to the fetcher: submit, status, getJob, and a
 * single-flight wake-up.
 * @example
 * const fetcher = createFetcherClient({ baseUrl: config.FETCHER_SERVICE_URL, keys: parseSecrets(secret) });
 * const { accepted } = await fetcher.submit([{ id, name: 'movies.fetch', payload }]);
 */
export function createFetcherClient(options: FetcherClientOptions) {
  const { once, call, health, timeouts, close } = createPeer(options);
  let waking: Promise<WakeResult> | null = null;

  /** Polls /healthz until it answers 200 or the deadline passes; one wake-up however many callers. */
  function wake(wakeOptions: { deadlineMs?: number; signal?: AbortSignal } = {}): Promise<WakeResult> {
    const wakeStarted = Date.now();
    if (!waking) options.onWakeStart?.(new Date(wakeStarted), wakeOptions.deadlineMs ?? 90_000);
    waking ??= (async () => {
      const started = Date.now();
      const deadline = started + (wakeOptions.deadlineMs ?? 90_000);
      let probes = 0;
      let lastError: unknown;
      while (Date.now() < deadline && !wakeOptions.signal?.aborted) {
        probes++;
        const remaining = deadline - Date.now();
        try {
          await health({ headersMs: Math.min(timeouts.wakeProbeMs, remaining), bodyMs: Math.min(timeouts.wakeProbeMs, remaining) });
          return { state: 'awake' as const, waitedMs: Date.now() - started, probes };
        } catch (err) {
          lastError = err;
          // Refused or 502/503 from a proxy: the instance is still booting. Try again shortly.
          await sleep(Math.max(0, Math.min(1_000, deadline - Date.now())), undefined, { signal: wakeOptions.signal }).catch(() => {});
        }
      }
      throw new FetcherClientError(FetcherErrorCode.wakeTimeout, `fetcher did not wake within ${wakeOptions.deadlineMs ?? 90_000} ms`, { cause: lastError });
    })()
      .then(
        (woke) => (options.onWake?.('awake', woke.waitedMs), woke),
        (err: unknown) => {
          options.onWake?.('timeout', Date.now() - wakeStarted);
          throw err;
        },
      )
      .finally(() => {
        waking = null;
      });
    return waking;
  }

  return {
    /** Submits up to 500 jobs; idempotent on job id (a repeat answers `duplicate: true`). */
    submit: (jobs: SubmitJob[]) => call(SignedRoutes.submitJobs, { body: { jobs } }),
    status: () => call(SignedRoutes.readStatus, {}),
    /** One status request, no retries, answered within `timeoutMs` or failed (for status pages). */
    probeStatus: (timeoutMs: number) => once(SignedRoutes.readStatus, {}, { timeouts: { headersMs: timeoutMs, bodyMs: timeoutMs } }),
    /** Asks the fetcher to send again the job events main refused before (they were set aside). */
    resendEvents: () => call(SignedRoutes.resendEvents, {}),
    /** The signature names the job (`get_<id>_…`), so it cannot be replayed to read another. */
    getJob: (id: string) => call(SignedRoutes.readJob, { params: { id } }),
    /** Unsigned and cheap: is the fetcher up right now? No retries. */
    health: () => health(),
    wake,
    close,
  };
}

export type FetcherClient = ReturnType<typeof createFetcherClient>;

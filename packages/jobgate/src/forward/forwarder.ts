import { setTimeout as sleep } from 'node:timers/promises';
import { ErrorCode, JobgateError, isTransientDatabaseError, traceFields, type Logger } from '../support/index.ts';
import { durably, onFreshConnection, type HeldToForward, type MainLedger, type ToForward } from '../store/index.ts';
import { FetcherClientError, FetcherErrorCode, answeredNotNow, isRetryable, type FetcherClient } from '../client/index.ts';
import { SignedRoutes, chunksByBytes, type SubmitJob } from '../protocol/index.ts';

export interface ForwarderOptions {
  ledger: MainLedger;
  /** Calls `wake` whenever a routed job is committed (LISTEN on ledger.forwardChannel); `close` ends it. */
  listen: (wake: () => void) => { close(): Promise<void> };
  fetcher: FetcherClient;
  logger: Logger;
  /** Jobs per submission to the fetcher (SignedRoutes.submitJobs, ≤ 500). */
  batchSize?: number;
  /** Batches in flight at once. */
  inFlight?: number;
  wakeTimeoutMs: number;
  /** How often the ledger is looked at without a NOTIFY (delayed jobs, backoffs, a lost LISTEN). */
  pollIntervalSeconds: number;
  /**
   * A delivery's lease on its jobs, renewed while it lasts: the jobs of a main that died
   * mid-delivery go out again once it lapses (the heartbeat).
   */
  leaseSeconds: number;
  /** A failed delivery is tried again after 1, 2, 4 … seconds, at most this far apart (default 60). */
  retryDelayMaxSeconds?: number;
  /** The emergency override: while on, the batch runs on main instead of going out. */
  overrideEnabled: () => Promise<boolean>;
  /** Moves these undelivered jobs to main (those the fetcher has not claimed). */
  takeOver: (ids: string[]) => Promise<number>;
  /** Counts each submission by outcome (jobgate_forward_requests_total). */
  onForward?: (outcome: 'delivered' | 'failed' | 'refused', jobs: number) => void;
}

/** Options a fetcher may go without: what it may be too old to know. */
const OPTIONAL_OPTIONS = new Set(['traceparent', 'requestId']);

/** The job options an older fetcher named as unknown, if that is all it refused, and all of them optional. */
function unknownOptions(err: unknown): Set<string> | null {
  const e = err as FetcherClientError;
  if (e.code !== FetcherErrorCode.rejected || e.status !== 422 || !e.fieldErrors?.length) return null;
  const keys = new Set<string>();
  for (const f of e.fieldErrors) {
    if (!/^jobs\.\d+\.options$/.test(f.path) || !/^Unrecognized keys?:/.test(f.message)) return null;
    for (const m of f.message.matchAll(/"([^"]+)"/g)) keys.add(m[1]!);
  }
  return keys.size > 0 && [...keys].every((k) => OPTIONAL_OPTIONS.has(k)) ? keys : null;
}

/**
 * How long a delivery holds its jobs by row locks alone (no write) waiting for the fetcher's answer;
 * past that they go under a lease, so a slow fetcher never keeps them locked (nor a transaction open).
 */
const HOLD_MS = 1_000;

/** A submission already sent, and when: a delivery that outlasts its hold goes on with it (deliverHeld). */
type UnderWay = { promise: Promise<void>; sentAt: number };

/** The requests a batch goes in: the fetcher takes each by size (8 MiB), so a big batch is never refused whole. */
const requestsOf = (jobs: SubmitJob[]) => chunksByBytes(jobs, SignedRoutes.submitJobs.limitBytes - 64 * 1024);

/** Statuses by which the fetcher refuses jobs themselves (unknown name, bad payload, reused id). */
const REFUSES_JOBS = new Set([409, 422]);

/**
 * Drains main's outbox (the ledger's undelivered routed jobs) into the fetcher: batches of up to
 * 500 per signed submission (SignedRoutes.submitJobs), several in flight, each taken from the ledger with one UPDATE. A
 * fetcher that cannot be reached (refused, 502/503 from the platform's proxy, timeout) is woken
 * (single-flight) and the batch is retried; a job is never dropped or failed because the
 * fetcher was away. Jobs the fetcher refuses themselves (422, 409) are set apart and the rest go on
 * (see `refused`); a batch too large (413) is halved until the parts fit; any other 4xx keeps the
 * whole batch for a retry.
 */
export async function startForwarder(options: ForwarderOptions): Promise<{ stop(): Promise<void> }> {
  const { ledger, fetcher } = options;
  const logger = options.logger.child({ component: 'forwarder' });
  // Shutdown cuts a wake-up short: the batch waiting on it stays in the outbox.
  const stopping = new AbortController();

  const toSubmit = (batch: ToForward[]): SubmitJob[] =>
    batch.map((j) => ({
      id: j.id,
      name: j.name,
      payload: j.payload,
      options: { priority: j.priority, ...(j.requestId ? { requestId: j.requestId } : {}), ...(j.traceparent ? { traceparent: j.traceparent } : {}) },
    }));

  async function deliver(batch: ToForward[], afterWake = false): Promise<void> {
    const overrideOn = await options.overrideEnabled();
    if (overrideOn) {
      // The rest (a job main does not define, or one a concurrent takeover holds) goes out as usual.
      const moved = await options.takeOver(batch.map((j) => j.id));
      if (moved > 0) logger.warn({ jobs: moved }, 'emergency override: jobs run on main instead of the fetcher');
    }
    // which still go: after the override's takeover, or a wake-up long enough for jobs to be cancelled meanwhile
    const going = overrideOn || afterWake ? await ledger.markForwarding(batch.map((j) => j.id)) : null;
    const jobs = toSubmit(batch.filter((j) => !going || going.has(j.id)));
    if (jobs.length === 0) return;
    // each request goes on its own, and a failure of one does not hold back the others
    let firstError: unknown;
    for (const part of requestsOf(jobs)) {
      try {
        const sent = await send(part, afterWake);
        // the fetcher was asleep and is awake now: from the top (the override may have been switched on meanwhile)
        if (sent === 'woken') return deliver(batch, true);
      } catch (err) {
        firstError ??= err;
      }
    }
    if (firstError !== undefined) throw firstError;
  }

  /**
   * Sends jobs taken for delivery (or takes over a submission of them already `underWay`). Answers
   * 'woken' when the fetcher did not answer and a wake-up brought it back (the caller starts over);
   * throws to leave the jobs in the outbox for a retry.
   */
  async function send(jobs: SubmitJob[], afterWake: boolean, underWay?: UnderWay): Promise<'sent' | 'woken'> {
    const sentAt = underWay?.sentAt ?? performance.now();
    try {
      await (underWay?.promise ?? submit(jobs));
    } catch (err) {
      const e = err as FetcherClientError;
      const ms = Math.round(performance.now() - sentAt);
      options.onForward?.(e.code === FetcherErrorCode.rejected ? 'refused' : 'failed', jobs.length);
      // awake, and it said when to come back (its database away, stopping, its intake paused):
      // nothing to wake; the batch waits as long as it asked (deliverLeased)
      if (answeredNotNow(err)) throw err;
      if (isRetryable(err) && afterWake) {
        logger.warn({ err, jobs: jobs.length, ms }, 'fetcher unreachable after waking; the batch stays in the outbox');
        throw err;
      }
      if (isRetryable(err)) {
        // Asleep or restarting: wake it (one wake-up however many batches wait), then try once more;
        // failing that, the outbox retries the batch with backoff. Meanwhile the jobs show
        // `forwarding` (a delivery under way that the fetcher has not taken yet).
        logger.warn({ err, jobs: jobs.length, ms }, 'fetcher unreachable; waking it');
        await ledger.markForwarding(jobs.map((j) => j.id)).catch((e: unknown) => logger.warn({ err: e }, 'could not mark the jobs forwarding'));
        const woke = await fetcher.wake({ deadlineMs: options.wakeTimeoutMs, signal: stopping.signal }).then(
          (w) => {
            logger.info({ waitedMs: w.waitedMs }, 'fetcher awake');
            return true;
          },
          (wakeErr: unknown) => {
            logger.warn({ err: wakeErr }, 'fetcher did not wake');
            return false;
          },
        );
        if (!woke) throw err;
        return 'woken';
      }
      if (e.code === FetcherErrorCode.rejected && e.status === 413) {
        // Too big for one request: halve until each part fits; a single job that does not fit
        // cannot be delivered at all, and must not hold up the others.
        if (jobs.length > 1) {
          const half = Math.ceil(jobs.length / 2);
          logger.warn({ jobs: jobs.length, into: [half, jobs.length - half] }, 'the fetcher refused the batch as too large (413); splitting it');
          // both halves go, whatever the first one meets; then the first failure is the batch's
          const first = await send(jobs.slice(0, half), true).then(() => undefined, (e: unknown) => e);
          await send(jobs.slice(half), true);
          if (first !== undefined) throw first;
          return 'sent';
        }
        await ledger.failJobs([jobs[0]!.id], { code: ErrorCode.bodyTooLarge, message: `the job is too large for the fetcher: it takes at most ${SignedRoutes.submitJobs.limitBytes} bytes per request (${e.message})` });
        logger.error({ err, jobId: jobs[0]!.id, jobName: jobs[0]!.name }, 'job too large for the fetcher; marked failed');
        return 'sent';
      }
      if (e.code === FetcherErrorCode.rejected && !REFUSES_JOBS.has(e.status ?? 0)) {
        // 401/403/404/…: the request, not the jobs, is wrong (secret rotation half done, clock skew,
        // a wrong URL, a fetcher deployed behind main). Keep the jobs; retry with backoff.
        logger.error({ err, jobs: jobs.length }, 'fetcher refused the request itself; the batch stays in the outbox');
        throw err;
      }
      if (e.code === FetcherErrorCode.rejected) {
        await refused(jobs, e);
        return 'sent';
      }
      throw err;
    }
    // (delivered: a database blip here must not send the batch again after its lease)
    await durably(() => ledger.markForwarded(jobs.map((j) => j.id)));
    forwarded(jobs);
    return 'sent';
  }

  function forwarded(jobs: SubmitJob[]): void {
    options.onForward?.('delivered', jobs.length);
    logger.info({ jobs: jobs.length }, 'jobs forwarded');
    for (const job of jobs) logger.debug({ jobId: job.id, jobName: job.name, ...traceFields(job.options?.traceparent) }, 'job forwarded');
  }

  /**
   * Sends one submission. A fetcher older than main refuses job options it does not know yet (its schema
   * was strict: 422 "Unrecognized key" at jobs.N.options). Those are extras (a job's trace), so the
   * batch goes again without them rather than failing or waiting for the fetcher's upgrade.
   */
  async function submit(jobs: SubmitJob[]): Promise<void> {
    try {
      await fetcher.submit(jobs);
    } catch (err) {
      const unknown = unknownOptions(err);
      if (!unknown) throw err;
      logger.warn({ options: [...unknown] }, 'the fetcher is older than main and refuses some job options; sending the jobs without them (upgrade the fetcher)');
      await fetcher.submit(jobs.map((j) => ({ ...j, options: Object.fromEntries(Object.entries(j.options ?? {}).filter(([k]) => !unknown.has(k))) })));
    }
  }

  /**
   * The fetcher refused jobs themselves (409/422). Those its answer names are set apart and the rest
   * go again; when it names none, each job goes alone to find them. A 422 (a name or payload it
   * does not know: a fetcher deployed behind main) never fails a job main accepted: it waits, with
   * the reason on show, and is tried again with the outbox's backoff (the admin can cancel it or
   * use the override). A 409 (the id is taken) after a lost answer is settled by asking the fetcher.
   */
  async function refused(jobs: SubmitJob[], e: FetcherClientError): Promise<void> {
    const named = new Map<number, string>();
    for (const f of e.fieldErrors) {
      const at = /^jobs\.(\d+)(?:\.|$)/.exec(f.path);
      if (at && Number(at[1]) < jobs.length && !named.has(Number(at[1]))) named.set(Number(at[1]), `${f.message} (${f.path.replace(/^jobs\.\d+\.?/, '') || 'job'})`);
    }
    if (named.size === 0 && jobs.length > 1) {
      let waiting = 0;
      for (const job of jobs) {
        try {
          await send([job], true);
        } catch (err) {
          if ((err as JobgateError).code !== ErrorCode.fetcherRefuses) throw err;
          waiting++;
        }
      }
      if (waiting > 0) throw new JobgateError(ErrorCode.fetcherRefuses, `the fetcher refuses ${waiting} of ${jobs.length} jobs for now; they wait`);
      return;
    }
    const bad = named.size === 0 ? new Map([[0, e.message]]) : named;
    const rest = jobs.filter((_, i) => !bad.has(i));
    const waiting: SubmitJob[] = [];
    for (const [i, why] of bad) {
      const job = jobs[i]!;
      if (e.status === 409 && (await deliveredBefore(job))) continue;
      if (e.status === 409) {
        await ledger.failJobs([job.id], { code: ErrorCode.idConflict, message: `the fetcher holds another job under this id: ${why}` });
        logger.error({ jobId: job.id, jobName: job.name, reason: why }, 'the fetcher holds another job under this id; marked failed');
        continue;
      }
      await ledger.noteRefused([job.id], `fetcher refuses: ${why}`);
      waiting.push(job);
    }
    if (waiting.length > 0) logger.warn({ jobs: waiting.length, names: [...new Set(waiting.map((j) => j.name))], reason: e.message }, 'the fetcher refuses jobs for now (is it older than main?); they wait and are tried again');
    // the others go now (the refused ones are noted first, whatever happens to these)
    if (rest.length > 0) await send(rest, true);
    if (waiting.length > 0) throw new JobgateError(ErrorCode.fetcherRefuses, `the fetcher refuses ${waiting.length} jobs for now; they wait`);
  }

  /**
   * Whether the fetcher already holds `job` (an earlier delivery whose answer was lost); marks it
   * forwarded if so. Only a definite answer counts: a fetcher that cannot say now (a timeout, a 503)
   * makes this throw, and the job stays in the outbox.
   */
  async function deliveredBefore(job: SubmitJob): Promise<boolean> {
    const seen = await fetcher.getJob(job.id).catch((err: unknown) => {
      const e = err as FetcherClientError;
      if (e.code === FetcherErrorCode.rejected && e.status === 404) return null;
      throw err;
    });
    if (seen?.name !== job.name) return false;
    await ledger.markForwarded([job.id]);
    logger.info({ jobId: job.id, jobName: job.name }, 'the fetcher already had the job (an earlier answer was lost): forwarded');
    return true;
  }

  const batchSize = options.batchSize ?? 500;
  const pollMs = options.pollIntervalSeconds * 1000;
  const maxDelaySeconds = options.retryDelayMaxSeconds ?? 60;
  // NOTIFYs seen so far: a loop that finds nothing waits for the next one (or the poll)
  let notifies = 0;
  const waiters = new Set<() => void>();
  const listener = options.listen(() => {
    notifies++;
    for (const w of waiters) w();
  });
  /** Resolves at the next NOTIFY after `seen`, at the poll interval, or at stop. */
  function idle(seen: number): Promise<void> {
    if (notifies !== seen || stopping.signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        waiters.delete(done);
        stopping.signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, pollMs);
      waiters.add(done);
      stopping.signal.addEventListener('abort', done, { once: true });
    });
  }

  // "The fetcher cannot take jobs now", once a minute however many deliveries it refuses
  let notNowLoggedAt = 0;
  function notNow(err: FetcherClientError, jobs: number, retryAfterSeconds: number): void {
    if (Date.now() - notNowLoggedAt < 60_000) return;
    notNowLoggedAt = Date.now();
    logger.warn({ code: err.problemCode, status: err.status, jobs, retryAfterSeconds, reason: err.message }, 'the fetcher cannot take jobs now (it answered, so it is awake); the jobs wait as long as it asked');
  }

  /**
   * One delivery of jobs held for it (HeldToForward; taken only while the override is off, read
   * before the take so that nothing waits for a second connection while the rows are held). The
   * common case, sent as one request that the fetcher answers within HOLD_MS, ends the hold by
   * marking the jobs forwarded: one write per job for the whole delivery. Anything else puts them
   * under a lease and goes on as deliverLeased, with the request already under way.
   */
  async function deliverHeld(held: HeldToForward): Promise<boolean> {
    const jobs = toSubmit(held.jobs);
    const ids = held.jobs.map((j) => j.id);
    let underWay: UnderWay | undefined;
    try {
      if (requestsOf(jobs).length === 1) {
        underWay = { promise: submit(jobs), sentAt: performance.now() };
        // (its failure is read below or by send, never left unheard)
        underWay.promise.catch(() => {});
        let timer: NodeJS.Timeout | undefined;
        const inTime = await Promise.race([
          underWay.promise.then(() => true, () => false),
          new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), HOLD_MS))),
        ]).finally(() => clearTimeout(timer));
        if (inTime) {
          // the hold ends with the jobs marked forwarded; should that fail (a connection lost),
          // they are let go unmarked, and marked again as any delivered ones are
          await held.delivered().catch(() => durably(() => ledger.markForwarded(ids)));
          forwarded(jobs);
          return true;
        }
      }
      // (a hold lost with its connection has let go of them: the lease is written on another)
      await held.lease(options.leaseSeconds).catch(() => durably(() => ledger.renewForwardLease(ids, options.leaseSeconds)));
    } catch (err) {
      // main's database failed: the jobs are let go with no lease, so they may go again at once
      // (should the fetcher have taken them meanwhile, it answers that delivery as one it has)
      await held.release().catch(() => {});
      if (!underWay) {
        logger.warn({ err, jobs: jobs.length }, "main's database failed while taking jobs to deliver; they go again");
        return false;
      }
      logger.warn({ err, jobs: jobs.length }, "main's database failed during a delivery; its jobs may go twice (the fetcher takes them once)");
    }
    return deliverLeased(held.jobs, underWay);
  }

  /** One delivery under its lease: renewed while it lasts, a backoff for every job still waiting when it fails. */
  async function deliverLeased(batch: ToForward[], underWay?: UnderWay): Promise<boolean> {
    const ids = batch.map((j) => j.id);
    // one renewal at a time, and none left in flight to overwrite the backoff below
    let renewing: Promise<void> = Promise.resolve();
    const renew = setInterval(() => {
      renewing = renewing.then(() => ledger.renewForwardLease(ids, options.leaseSeconds)).catch((err: unknown) => logger.warn({ err }, 'could not renew the lease of a delivery'));
    }, (options.leaseSeconds * 1000) / 3);
    try {
      // (a submission under way is of the whole batch, in one request: see deliverHeld)
      if (!underWay || (await send(toSubmit(batch), false, underWay)) === 'woken') await deliver(batch, underWay !== undefined);
      return true;
    } catch (err) {
      clearInterval(renew);
      await renewing;
      // The fetcher said when to come back: the jobs wait that long, and no failure counts towards
      // their backoff (a database blip on its side must not push them minutes out); nor does one on
      // main's side (its database away, a connection killed): they wait a second. Anything else (the
      // fetcher away) backs off 1, 2, 4 … seconds.
      const fetcherAsked = answeredNotNow(err);
      // (an answer or a silence of the fetcher is never main's database, whatever its message says)
      const ours = !fetcherAsked && !(err instanceof FetcherClientError) && isTransientDatabaseError(err);
      const asked = fetcherAsked ? Math.min(maxDelaySeconds, (err.retryAfterMs ?? 1_000) / 1000) : ours ? 1 : null;
      if (fetcherAsked) notNow(err, ids.length, asked!);
      else if (ours) logger.warn({ err, jobs: ids.length }, "main's database failed during a delivery; the jobs go again in a second");
      else logger.warn({ err, jobs: ids.length }, 'delivery failed; the jobs wait and are tried again with backoff');
      await onFreshConnection(() => ledger.deferForward(ids, maxDelaySeconds, asked)).catch((e: unknown) => logger.warn({ err: e }, 'could not record the failed delivery; the jobs go again when their lease lapses'));
      return false;
    } finally {
      clearInterval(renew);
    }
  }

  /**
   * One of `inFlight` loops: take a batch, deliver it, and again while batches come back full. A
   * delivery holds its jobs (a pooled connection, for up to HOLD_MS) only while main's pool has a
   * connection to spare beside it and the override is off; otherwise it takes them under a lease
   * at once, as a delivery that takes longer does, so the app's own queries never wait behind
   * deliveries (and the override's takeover finds them unlocked).
   */
  async function loop(): Promise<void> {
    let failures = 0;
    while (!stopping.signal.aborted) {
      const seen = notifies;
      let batch: ToForward[] | null = null;
      let delivered = false;
      try {
        const hold = ledger.spareConnection() && !(await options.overrideEnabled());
        const held = hold ? await onFreshConnection(() => ledger.holdToForward(batchSize)) : null;
        batch = held ? held.jobs : await onFreshConnection(() => ledger.takeToForward(batchSize, options.leaseSeconds));
        failures = 0;
        // (neither delivery throws: a failed one leaves its jobs in the outbox and answers false)
        if (batch.length > 0) delivered = held ? await deliverHeld(held) : await deliverLeased(batch);
      } catch (err) {
        failures++;
        if (failures === 1 || failures % 10 === 0) logger.warn({ err, failures }, 'cannot read the outbox; retrying');
      }
      if (batch === null) {
        await sleep(pollMs, undefined, { signal: stopping.signal }).catch(() => {});
        continue;
      }
      if (batch.length === 0) {
        await idle(seen);
        continue;
      }
      if (delivered) notNowLoggedAt = 0;
      // a failed delivery waits a poll before the next (the fetcher is away: no hot loop)
      if (!delivered) await sleep(pollMs, undefined, { signal: stopping.signal }).catch(() => {});
      else if (batch.length < batchSize) await idle(seen);
    }
  }

  const loops = Array.from({ length: options.inFlight ?? 2 }, () => loop());
  return {
    /** Stops taking jobs; a delivery under way ends (or is cut short when the client closes, and its jobs go again after the lease). */
    async stop(): Promise<void> {
      stopping.abort();
      await listener.close();
      await Promise.all(loops);
    },
  };
}

// The schedule stage's clock (main): each main sleeps until the next occurrence of any enabled
// schedule, by PostgreSQL's clock, and fires it then. Every main fires every occurrence; the firing
// is keyed by (schedule, occurrence) in the database (store/schedules.ts claimOccurrence), so one
// of them enqueues the job and the others find it done. pg-boss's timekeeper is not used: it checks
// every 30 s from whenever the first process started and sends through a polled queue, so a
// `* * * * *` schedule fired up to a minute late, in an arbitrary second.
import type { Logger } from '../support/index.ts';
import type { StoredSchedule } from '../store/index.ts';

/**
 * How late an occurrence may still fire. A running main that was held up, or could not reach
 * PostgreSQL, fires each occurrence it owes under it; after downtime (no main running) a main
 * that starts fires the latest occurrence under it once. Older ones are skipped.
 */
export const LATE_LIMIT_MS = 60_000;
/** How soon a firing that failed (PostgreSQL unreachable) is tried again, while it is under the limit. */
const RETRY_MS = 1_000;

/** The occurrences of `s` strictly after `after` (ms), at most `count`, in ms: what nextRuns lists is what fires. */
export type Occurrences = (s: Pick<StoredSchedule, 'schedule' | 'timeZone'>, after: number, count: number) => number[];

interface Entry {
  s: StoredSchedule;
  /** What the next occurrence was read from: a change of any of it reads it again. */
  version: string;
  /** The next occurrence to fire (ms, PostgreSQL's clock); null: none (an expression that cannot be read, a finished RRULE). */
  next: number | null;
  /** After a failed firing: not tried again before this (ms, this process's clock). */
  retryAt?: number;
}

export interface SchedulerDeps {
  /** Every schedule (disabled ones are skipped), and PostgreSQL's clock in ms. */
  read: () => Promise<StoredSchedule[]>;
  databaseNow: () => Promise<number>;
  occurrences: Occurrences;
  /** Fires occurrence `dueAt` of `s` (once across all mains: the caller's claim sees to that); throws to be tried again. */
  fire: (s: StoredSchedule, dueAt: Date) => Promise<void>;
  /** LISTENs for changes of the schedules; calls `wake` for each (and after each reconnect). */
  listen?: (wake: () => void) => { close(): Promise<void> };
  /** How often the schedules are read again without being told of a change (a lost LISTEN, a change made by hand). */
  rereadMs: number;
  logger: Logger;
}

/**
 * Starts main's scheduler loop. `changed()` makes it read the schedules again now (a change made
 * in this process; other processes' changes arrive through `listen`).
 */
export function startScheduler(deps: SchedulerDeps): { changed(): void; stop(): Promise<void> } {
  const { logger } = deps;
  const entries = new Map<string, Entry>();
  /** PostgreSQL's clock minus this process's, measured at each read. */
  let skewMs = 0;
  let stale = true;
  let lastRead = 0;
  let wake: (() => void) | null = null;
  const stopping = new AbortController();
  const unreadable = new Set<string>();
  const clock = () => Date.now() + skewMs;

  const nextOf = (e: Pick<Entry, 's' | 'version'>, after: number): number | null => {
    try {
      return deps.occurrences(e.s, after, 1)[0] ?? null;
    } catch (err) {
      // a row written by hand or by an older release: say so once, the others go on
      if (!unreadable.has(e.version)) logger.error({ err, scheduleId: e.s.id, jobName: e.s.name, schedule: e.s.schedule, timeZone: e.s.timeZone }, 'schedule cannot be read; it does not fire');
      unreadable.add(e.version);
      return null;
    }
  };

  async function read(): Promise<void> {
    // The database read its clock somewhere inside the round trip; taking the end of it as the
    // moment can only put our idea of its clock behind, never ahead: an occurrence then fires up
    // to one round trip late, never early (a midpoint fired a busy machine's schedule ~100 ms
    // before its time, seen as a firing recorded before its occurrence).
    const db = await deps.databaseNow();
    skewMs = db - Date.now();
    const rows = await deps.read();
    lastRead = Date.now();
    const now = clock();
    const seen = new Set<string>();
    for (const s of rows) {
      if (!s.enabled) continue;
      seen.add(s.id);
      const version = JSON.stringify([s.schedule, s.timeZone, s.updatedAt]);
      const had = entries.get(s.id);
      if (had?.version === version) {
        had.s = s;
        continue;
      }
      // New or changed (or this process just started): the latest occurrence since the later of its
      // last change and the late limit is owed, if any. One another main fired already is found claimed.
      const e: Entry = { s, version, next: null };
      e.next = latestDue(e, nextOf(e, Math.max(Date.parse(s.updatedAt), now - LATE_LIMIT_MS)), now);
      entries.set(s.id, e);
    }
    for (const id of [...entries.keys()]) if (!seen.has(id)) entries.delete(id);
  }

  /**
   * The latest occurrence of `e` due by `now` from `first` on, or the first not yet due; never one
   * past the late limit. Where a main starts reading a schedule (it starts, or the schedule is new
   * or changed): after downtime a schedule fires once to catch up, not once per occurrence missed.
   */
  function latestDue(e: Entry, first: number | null, now: number): number | null {
    let due = first !== null && first < now - LATE_LIMIT_MS ? nextOf(e, now - LATE_LIMIT_MS) : first;
    for (let later = due === null || due > now ? null : nextOf(e, due); later !== null && later <= now; later = nextOf(e, later)) due = later;
    return due;
  }

  /**
   * Fires what is due by now, each occurrence once, oldest first (a main held up, or PostgreSQL
   * unreachable for a while, catches up on every occurrence under the late limit; those past it
   * are skipped). One that fails stays due, to be tried again RETRY_MS later.
   */
  async function fireDue(): Promise<void> {
    const now = clock();
    await Promise.all(
      [...entries.values()].map(async (e) => {
        if (e.retryAt !== undefined && e.retryAt > Date.now()) return;
        if (e.next !== null && e.next < now - LATE_LIMIT_MS) {
          logger.warn({ scheduleId: e.s.id, jobName: e.s.name, from: new Date(e.next).toISOString(), lateLimitMs: LATE_LIMIT_MS }, 'schedule occurrences past the late limit skipped');
          e.next = nextOf(e, now - LATE_LIMIT_MS);
        }
        while (e.next !== null && e.next <= now) {
          try {
            await deps.fire(e.s, new Date(e.next));
          } catch (err) {
            logger.error({ err, scheduleId: e.s.id, jobName: e.s.name, dueAt: new Date(e.next).toISOString() }, 'schedule occurrence could not be fired; trying again');
            e.retryAt = Date.now() + RETRY_MS;
            return;
          }
          delete e.retryAt;
          e.next = nextOf(e, e.next);
        }
      }),
    );
  }

  const listening = deps.listen?.(() => changed());

  const loop = (async () => {
    while (!stopping.signal.aborted) {
      let readFailed = false;
      try {
        if (stale || Date.now() - lastRead >= deps.rereadMs) {
          stale = false;
          await read();
        }
        await fireDue();
      } catch (err) {
        logger.error({ err }, 'could not read the schedules; trying again');
        readFailed = true;
      }
      if (stopping.signal.aborted) break;
      // until the next occurrence (or a failed one's retry), the next read, or a change
      const untilDue = Math.min(...[...entries.values()].map((e) => (e.next === null ? Infinity : Math.max(e.next - clock(), (e.retryAt ?? 0) - Date.now()))));
      const untilRead = readFailed ? RETRY_MS : lastRead + deps.rereadMs - Date.now();
      const waitMs = stale ? 0 : Math.max(0, Math.min(untilDue, untilRead));
      if (readFailed) stale = true;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, waitMs);
        function done() {
          clearTimeout(timer);
          stopping.signal.removeEventListener('abort', done);
          wake = null;
          resolve();
        }
        wake = done;
        stopping.signal.addEventListener('abort', done, { once: true });
      });
    }
  })();

  function changed(): void {
    stale = true;
    wake?.();
  }

  return {
    changed,
    async stop(): Promise<void> {
      stopping.abort();
      await loop;
      await listening?.close();
    },
  };
}

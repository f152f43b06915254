import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../support/index.ts';
import type { OverrideChange, OverrideState, OverrideStore, Queryable } from '../store/index.ts';

/** On and not past its expiry (an expiry the loop has not written yet still counts). */
export const isOverrideOn = (state: OverrideState) => state.enabled && !(state.expiresAt && Date.parse(state.expiresAt) <= Date.now());

/** How many jobs one takeover transaction moves. */
const TAKE_OVER_BATCH = 500;

/**
 * The emergency override as main uses it: a cached reading for routing new jobs (re-read at least
 * every `checkMs`), changes through the audited store, and a loop that switches an expired override
 * off and, while it is on, moves the fetcher jobs not yet delivered to main.
 */
export function createOverrideControl(deps: {
  store: OverrideStore;
  logger: Logger;
  checkMs: number;
  /** Moves up to `limit` undelivered fetcher jobs to main; returns how many moved. */
  takeOver: (limit: number) => Promise<number>;
}) {
  const logger = deps.logger.child({ component: 'override' });
  let current: OverrideState | null = null;
  let readAt = 0;
  let reading: Promise<OverrideState> | null = null;
  /** Bumped by each set(): a read that began before it must not put the old state back. */
  let generation = 0;
  const stopping = new AbortController();

  /** One read in flight however many enqueues ask at once. */
  function read(): Promise<OverrideState> {
    const began = generation;
    reading ??= deps.store
      .get()
      .then((state) => {
        // a change made here while this read was under way is newer than what it read
        if (began !== generation && current) return current;
        current = state;
        readAt = performance.now();
        return state;
      })
      .finally(() => (reading = null));
    return reading;
  }

  async function takeOverAll(): Promise<number> {
    let total = 0;
    for (;;) {
      const moved = await deps.takeOver(TAKE_OVER_BATCH);
      total += moved;
      if (moved < TAKE_OVER_BATCH) break;
    }
    if (total > 0) logger.warn({ jobs: total }, 'emergency override: fetcher jobs not yet delivered will run on main');
    return total;
  }

  async function tick(): Promise<void> {
    if (await deps.store.expireDue()) logger.warn('emergency override expired; fetcher jobs go to the fetcher again');
    const state = await read();
    // an expiry passed since the last tick is applied here, not trusted from the cache
    if (isOverrideOn(state)) await takeOverAll();
  }

  let loop: Promise<void> | null = null;

  return {
    /**
     * For routing: a reading at most `checkMs` old. An expired override counts as off. Inside a
     * caller's transaction (`db`), a stale reading is refreshed through that connection: taking a
     * second one from the pool could wait on connections the same callers hold.
     */
    async enabled(db?: Queryable): Promise<boolean> {
      const fresh = current && performance.now() - readAt < deps.checkMs;
      const state = fresh ? current! : db ? await deps.store.get(db) : await read();
      return isOverrideOn(state);
    },
    get: read,
    audit: (limit?: number) => deps.store.audit(limit),
    /** Changes the override (audited) and, when it goes on, moves undelivered jobs at once. */
    async set(change: OverrideChange): Promise<OverrideState> {
      const state = await deps.store.set(change);
      generation++;
      current = state;
      readAt = performance.now();
      logger.warn({ enabled: state.enabled, reason: change.reason, actor: change.actor, expiresAt: state.expiresAt }, state.enabled ? 'emergency override switched on' : 'emergency override switched off');
      if (state.enabled) await takeOverAll().catch((err: unknown) => logger.error({ err }, 'could not take over undelivered jobs; the next check retries'));
      return state;
    },
    start(): void {
      loop ??= (async () => {
        while (!stopping.signal.aborted) {
          await tick().catch((err: unknown) => logger.warn({ err }, 'override check failed'));
          await sleep(deps.checkMs, undefined, { signal: stopping.signal }).catch(() => {});
        }
      })();
    },
    async stop(): Promise<void> {
      stopping.abort();
      await loop;
    },
  };
}

export type OverrideControl = ReturnType<typeof createOverrideControl>;

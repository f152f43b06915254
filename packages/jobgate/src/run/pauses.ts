// Which job names are paused, as this process knows it: read every poll interval (main from its
// database, the fetcher from main), and handed to the workers, which stop fetching a paused name
// and start again once it is resumed. The runner asks it too before claiming, for a job fetched
// just before the pause was heard (claim_attempt is the last word, on main).
import { startLoop, type Logger } from '../support/index.ts';
import { EVERY_JOB, type Pause } from '../store/index.ts';

export interface PauseWatch {
  /** Whether `name` (or every job) is paused, as last read. */
  isPaused(name: string): boolean;
  /** Reads now (after a change made in this process). */
  refresh(): Promise<void>;
  stop(): Promise<void>;
}

export function watchPauses(deps: {
  read: () => Promise<Array<Pick<Pause, 'name'>>>;
  /** Called with the paused names whenever they change (and once at the first read). */
  apply: (isPaused: (name: string) => boolean) => Promise<void>;
  intervalMs: number;
  logger: Logger;
  /** Runs before each read (main: ends the pauses that expired). */
  beforeRead?: () => Promise<unknown>;
  /** A read that failed (default: logged at warn); the last known pauses stay in force. */
  onError?: (err: unknown) => void;
}): PauseWatch {
  const onError = deps.onError ?? ((err: unknown) => deps.logger.warn({ err }, 'could not read the paused jobs; keeping the last known'));
  let paused = new Set<string>();
  let first = true;
  const isPaused = (name: string) => paused.has(name) || paused.has(EVERY_JOB);
  async function tick(): Promise<void> {
    await deps.beforeRead?.();
    const next = new Set((await deps.read()).map((p) => p.name));
    if (!first && next.size === paused.size && [...next].every((n) => paused.has(n))) return;
    const [added, removed] = [[...next].filter((n) => !paused.has(n)), [...paused].filter((n) => !next.has(n))];
    const before = paused;
    paused = next;
    try {
      await deps.apply(isPaused);
    } catch (err) {
      // applied in part at most: the next read tries again
      paused = before;
      throw err;
    }
    first = false;
    if (added.length || removed.length) deps.logger.info({ paused: [...next], added, removed }, 'paused jobs changed');
  }
  // one read at a time, so an older read never lands after a newer one
  let reading = Promise.resolve();
  const serialized = () => (reading = reading.catch(() => {}).then(tick));
  const loop = startLoop(serialized, { intervalMs: deps.intervalMs, onError });
  return { isPaused, refresh: serialized, stop: () => loop.stop() };
}

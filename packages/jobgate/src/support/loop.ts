import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Runs `tick` at once and then every `intervalMs` until `stop()`: the shape of every background
 * loop of the apps (keep-awake, the reconciler, the fetcher's pruner). A tick that throws is
 * handed to `onError` and the loop goes on; `stop()` resolves once the tick in flight has ended.
 */
export function startLoop(tick: (signal: AbortSignal) => Promise<void>, options: { intervalMs: number; onError: (err: unknown) => void }) {
  const stopping = new AbortController();
  const loop = (async () => {
    while (!stopping.signal.aborted) {
      await tick(stopping.signal).catch(options.onError);
      await sleep(options.intervalMs, undefined, { signal: stopping.signal }).catch(() => {});
    }
  })();
  return {
    async stop(): Promise<void> {
      stopping.abort();
      await loop;
    },
  };
}

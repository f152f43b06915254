// The peak resident memory of each running attempt, sampled once for all of them: reading RSS is a
// system call (about 30 µs on a small VM, measured by `npm run bench -- --only local`), which two
// reads and a one-second interval per attempt made the largest part of a short job's Node time.

/** How old a sample may be and still stand for "now". */
const FRESH_MS = 100;
/** How often running attempts' peaks are sampled. */
const SAMPLE_MS = 1_000;

let sampledAt = -Infinity;
let sampled = 0;

/** This process's RSS in bytes, as sampled within the last FRESH_MS (read now if older). */
export function recentRss(): number {
  const now = performance.now();
  if (now - sampledAt >= FRESH_MS) {
    sampled = process.memoryUsage.rss();
    sampledAt = now;
  }
  return sampled;
}

const running = new Set<{ peak: number }>();
let timer: NodeJS.Timeout | undefined;

/**
 * Tracks the peak RSS while an attempt runs: seeded now, sampled every second with every other
 * running attempt's, and read once more (if the last sample is stale) by `peakMb()` at its end.
 * `stop()` when the attempt ends.
 */
export function trackPeakRss(): { peakMb(): number; stop(): void } {
  const tracked = { peak: recentRss() };
  running.add(tracked);
  timer ??= setInterval(() => {
    const rss = recentRss();
    for (const t of running) t.peak = Math.max(t.peak, rss);
  }, SAMPLE_MS).unref();
  return {
    peakMb: () => Math.round((tracked.peak = Math.max(tracked.peak, recentRss())) / 2 ** 20),
    stop() {
      running.delete(tracked);
      if (running.size === 0 && timer) {
        clearInterval(timer);
        timer = undefined;
      }
    },
  };
}

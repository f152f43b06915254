import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Logger } from '../support/index.ts';

export interface MemorySnapshot {
  rssMb: number;
  heapUsedMb: number;
  limitMb: number;
  peakRssMb: number;
}

export interface MemoryGuardOptions {
  limitMb: number;
  /** Above this share of the limit no new job starts (intake paused)... */
  softRatio?: number;
  /** ...and above this one the process drains and exits, so the platform restarts a clean one. */
  hardRatio?: number;
  /** 0: no timer; the caller calls check() (tests). */
  intervalMs?: number;
  logger: Logger;
  onPause(): Promise<void>;
  onResume(): Promise<void>;
  /** Over the hard limit, or paused and idle with memory that will not come back: recycle. */
  onHardLimit(rssMb: number, reason: 'hard-limit' | 'not-returned'): void;
  /** Paused with nothing running and RSS still over the soft limit after a GC for this long: recycle. */
  stuckMs?: number;
  /** Running handlers: a GC is only forced when none runs. */
  running(): number;
  sampleRss?: () => number;
}

const MB = 2 ** 20;

/** A process's resident set in bytes, from /proc (0 when it is gone or /proc is not there). */
export function rssOfPid(pid: number): number {
  try {
    const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb ? Number(kb) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * Large Buffers are freed only when the GC collects their owners, and an idle process may not
 * collect for a long while: with intake paused that would keep it paused. Force one then.
 */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/**
 * Samples RSS about once a second against the memory budget. Soft limit: pause intake, resume once
 * RSS is back under the soft limit (with 5% of hysteresis). Hard limit: hand over to onHardLimit
 * (drain and exit non-zero) before the platform's OOM killer takes the process down mid-write.
 */
export function createMemoryGuard(options: MemoryGuardOptions) {
  const soft = options.limitMb * (options.softRatio ?? 0.8);
  const hard = options.limitMb * (options.hardRatio ?? 0.95);
  const resumeBelow = soft * 0.95;
  const sampleRss = options.sampleRss ?? (() => process.memoryUsage.rss());
  const logger = options.logger.child({ component: 'memory-guard' });
  let peak = sampleRss();
  let paused = false;
  let tripped = false;
  let busy = false;
  /** Since when RSS has stayed high with intake paused and nothing running. */
  let stuckSince: number | null = null;
  const stuckMs = options.stuckMs ?? 10_000;

  async function check(): Promise<void> {
    if (busy || tripped) return;
    busy = true;
    try {
      let rssMb = sampleRss() / MB;
      peak = Math.max(peak, rssMb * MB);
      if (rssMb >= hard) {
        tripped = true;
        logger.error({ rssMb: Math.round(rssMb), hardLimitMb: Math.round(hard), limitMb: options.limitMb }, 'memory above the hard limit: draining and exiting for a clean restart');
        options.onHardLimit(rssMb, 'hard-limit');
        return;
      }
      if (!paused && rssMb >= soft) {
        paused = true;
        logger.warn({ rssMb: Math.round(rssMb), softLimitMb: Math.round(soft) }, 'memory above the soft limit: intake paused');
        await options.onPause();
      } else if (paused) {
        const idle = options.running() === 0;
        if (rssMb >= resumeBelow && idle) {
          collectGarbage();
          rssMb = sampleRss() / MB;
        }
        if (rssMb < resumeBelow) {
          paused = false;
          stuckSince = null;
          logger.info({ rssMb: Math.round(rssMb) }, 'memory back under the soft limit: intake resumed');
          await options.onResume();
        } else if (idle) {
          // The allocator may keep freed memory for good: a paused, idle process that stays over
          // the soft limit would never take a job again. Nothing runs, so recycling loses nothing.
          stuckSince ??= Date.now();
          if (Date.now() - stuckSince >= stuckMs) {
            tripped = true;
            logger.error({ rssMb: Math.round(rssMb), softLimitMb: Math.round(soft) }, 'memory not returned while idle: exiting for a clean restart');
            options.onHardLimit(rssMb, 'not-returned');
          }
        } else {
          stuckSince = null;
        }
      }
    } catch (err) {
      logger.error({ err }, 'memory check failed');
    } finally {
      busy = false;
    }
  }

  let timer: NodeJS.Timeout | null = null;

  return {
    check,
    /** Samples every `intervalMs` (1 s) from now on: once the jobs it guards can start. */
    start(): void {
      if (timer || options.intervalMs === 0) return;
      timer = setInterval(() => void check(), options.intervalMs ?? 1_000);
      timer.unref();
    },
    get intake(): 'open' | 'paused' {
      return paused || tripped ? 'paused' : 'open';
    },
    snapshot(): MemorySnapshot {
      const rss = sampleRss();
      peak = Math.max(peak, rss);
      return { rssMb: Math.round(rss / MB), heapUsedMb: Math.round(process.memoryUsage().heapUsed / MB), limitMb: options.limitMb, peakRssMb: Math.round(peak / MB) };
    },
    stop: () => {
      if (timer) clearInterval(timer);
      timer = null;
    },
  };
}

// The e2e tier's share of the machine. Each e2e file starts apps, PostgreSQL clients and sometimes
// a browser; one suite runs four such files at once (vitest.config.ts), which two cores carry.
// Two checkouts testing at once on one machine would run eight, and their waits for processes,
// timeouts and retries then stretch past any sane ceiling (seen: load average 20, a 39-minute run,
// tests timed out at 180 s). So every e2e file, whatever checkout it belongs to, first takes one of
// JOBGATE_E2E_SLOTS (default 4) machine-wide slots: files in os.tmpdir() created exclusively, each
// naming the process that holds it. A slot whose process is gone (a killed run) is taken over.
// One suite alone never waits; two suites share the slots and both run to the end.
import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll } from 'vitest';

const DIR = join(tmpdir(), 'jobgate-e2e-slots');
const SLOTS = Math.max(1, Number(process.env.JOBGATE_E2E_SLOTS ?? 4));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes a slot if one is free (or held by a process that is gone); answers its path, or null. */
function tryTake(): string | null {
  mkdirSync(DIR, { recursive: true });
  for (let slot = 0; slot < SLOTS; slot++) {
    const path = join(DIR, String(slot));
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return path;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let holder = NaN;
      try {
        holder = Number(readFileSync(path, 'utf8'));
      } catch {}
      // a holder still writing its pid reads as empty: only a named, gone process loses its slot
      if (Number.isInteger(holder) && holder > 0 && !alive(holder)) {
        try {
          unlinkSync(path);
        } catch {}
      }
    }
  }
  return null;
}

let held: string | null = null;

beforeAll(async () => {
  let waitedSince: number | null = null;
  while (!(held = tryTake())) {
    if (waitedSince === null) {
      waitedSince = Date.now();
      console.log(`waiting for one of ${SLOTS} e2e slots of this machine (${DIR}): another test run holds them`);
    }
    await sleep(250);
  }
  if (waitedSince !== null) console.log(`took an e2e slot after ${((Date.now() - waitedSince) / 1000).toFixed(1)} s`);
}, 60 * 60_000);

afterAll(() => {
  if (!held) return;
  try {
    unlinkSync(held);
  } catch {}
  held = null;
});

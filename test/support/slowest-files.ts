// Prints the slowest test files after vitest's summary, so whoever runs `npm test` sees where the
// time goes (most of it is cross-process tests waiting on timings; see test/support/apps.ts FAST_ENV).
import type { Reporter, TestModule, Vitest } from 'vitest/node';

/** How many files the list shows. */
const SHOWN = 8;

/** A vitest reporter listed after 'default' in vitest.config.ts: the ~8 slowest files, in seconds. */
export default class SlowestFiles implements Reporter {
  private vitest: Vitest | undefined;

  onInit(vitest: Vitest): void {
    this.vitest = vitest;
  }

  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    // a file's time from its import to its last hook (what a worker spent on it)
    const files = testModules
      .map((m) => {
        const d = m.diagnostic();
        return { file: m.relativeModuleId, seconds: (d.collectDuration + d.setupDuration + d.duration) / 1000, ok: m.ok() };
      })
      .filter((f) => f.seconds > 0)
      .sort((a, b) => b.seconds - a.seconds);
    if (files.length === 0) return;
    const total = files.reduce((sum, f) => sum + f.seconds, 0);
    const width = Math.max(...files.slice(0, SHOWN).map((f) => f.file.length));
    const lines = files.slice(0, SHOWN).map((f) => `  ${f.seconds.toFixed(1).padStart(6)} s  ${f.file.padEnd(width)}${f.ok ? '' : '  (failed)'}`);
    const log = (text: string) => (this.vitest ? this.vitest.logger.log(text) : console.log(text));
    log(`\n Slowest test files (${files.length} files, ${total.toFixed(0)} s in all, spread over the workers):\n${lines.join('\n')}\n`);
  }
}

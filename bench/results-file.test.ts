// What `npm run bench` appends to bench/RESULTS.md (bench/results-file.ts), checked without running
// the bench: the writer on a scratch file, and the committed file against the writer's header.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { appendResults, HEADER, type BenchResults } from './results-file.ts';

const dir = mkdtempSync(join(tmpdir(), 'jobgate-bench-results-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const run = (over: Partial<BenchResults> = {}): BenchResults => ({
  at: '2031-05-04T10:20:30.456Z',
  quick: true,
  seconds: 75,
  args: ['--quick', '--only', 'routed'],
  commit: 'abc1234',
  versions: { node: 'v24.21.0', pgBoss: '12.38.0' },
  machine: { cpus: 2, cpuModel: 'Some CPU ', memoryGb: 8, loadAverage: { atStart: [0.12, 0.5, 1], atEnd: [1.98, 0.7, 1.01] } },
  rows: [
    { figure: 'enqueue p50, sequential', jobgate: 1.3, baseline: 1, unit: 'ms', ratio: 1.3, target: '≤ 1.15×', pass: false },
    { figure: 'main idle RSS', jobgate: 107, baseline: 130, unit: 'MB', ratio: 0.82, target: '≤ 110 MB built', pass: true },
    { figure: 'routed latency hops', jobgate: 9, baseline: 1, unit: 'ms', ratio: 9, target: 'reported', pass: null },
  ],
  ...over,
});

describe('bench/RESULTS.md', () => {
  it('a new file gets the header once, then one section per run: date, cores, load, versions, arguments, table', () => {
    const file = join(dir, 'RESULTS.md');
    appendResults(file, run());
    appendResults(file, run({ at: '2031-05-05T08:00:00.000Z', quick: false, args: [], failed: true, rows: [] }));
    const text = readFileSync(file, 'utf8');
    expect(text.startsWith(HEADER)).toBe(true);
    expect(text.split('# Bench results').length).toBe(2);
    const [first, second] = text.slice(HEADER.length).split(/\n(?=## )/).filter((s) => s.trim());
    expect(first).toBe(`## 2031-05-04 10:20:30Z

- 2 cores (Some CPU), 8 GB
- load average (1 / 5 / 15 min) 0.12 / 0.50 / 1.00 at the start, 1.98 / 0.70 / 1.01 at the end
- Node v24.21.0, pg-boss 12.38.0
- quick run, \`npm run bench -- --quick --only routed\`, 75 s
- commit abc1234

| figure | jobgate | baseline | ratio | target | result |
|---|---|---|---|---|---|
| enqueue p50, sequential | 1.3 ms | 1 ms | 1.3 | ≤ 1.15× | **miss** |
| main idle RSS | 107 MB | 130 MB | 0.82 | ≤ 110 MB built | pass |
| routed latency hops | 9 ms | 1 ms | 9 | reported | — |
`);
    expect(second).toContain('## 2031-05-05 08:00:00Z');
    expect(second).toContain('- full run, 75 s');
    expect(second).toContain('**the run failed**');
    expect(second).toContain('(no rows: the run failed before its first figure)');
  });

  it('the committed file starts with the header the writer would write', () => {
    expect(readFileSync(join(import.meta.dirname, 'RESULTS.md'), 'utf8').startsWith(HEADER)).toBe(true);
  });
});

// The bench's history: every `npm run bench` appends its run to bench/RESULTS.md (when, on what
// machine under what load, the table), so figures can be compared across runs and machines. The
// user documentation (docs/performance.md) keeps today's ratios only.
import { appendFileSync, existsSync, writeFileSync } from 'node:fs';

export interface BenchRow {
  figure: string;
  jobgate: number;
  baseline: number;
  unit: string;
  ratio: number;
  target: string;
  pass: boolean | null;
  note?: string;
}

/** What run.ts writes to bench-results.json, and the part of it RESULTS.md shows. */
export interface BenchResults {
  /** ISO time the run ended. */
  at: string;
  quick: boolean;
  /** A section threw: the table has the rows measured before it. */
  failed?: boolean;
  seconds: number;
  /** The command line's arguments after `npm run bench --` (`--only routed`, …). */
  args?: string[];
  /** The checkout's commit, when git can tell. */
  commit?: string;
  versions: { node: string; pgBoss: string };
  machine: { cpus: number; cpuModel?: string; memoryGb: number; loadAverage?: { atStart: number[]; atEnd: number[] } };
  rows: BenchRow[];
}

export const HEADER = `# Bench results

Every \`npm run bench\` appends its run here: when, on what machine and under what load, and its
table (ratios to raw pg-boss measured in the same run). What the figures mean, and today's ratios,
are in [docs/performance.md](../docs/performance.md). A run on a busy machine (load average near or
above the core count) is not comparable with a quiet one.
`;

/** The markdown table of a run's rows, as the bench prints it. */
export function resultsTable(rows: readonly BenchRow[]): string {
  const lines = ['| figure | jobgate | baseline | ratio | target | result |', '|---|---|---|---|---|---|'];
  for (const r of rows) lines.push(`| ${r.figure} | ${r.jobgate} ${r.unit} | ${r.baseline} ${r.unit} | ${r.ratio} | ${r.target} | ${r.pass === null ? '—' : r.pass ? 'pass' : '**miss**'} |`);
  return lines.join('\n');
}

const load = (l: readonly number[]) => l.map((x) => x.toFixed(2)).join(' / ');

/** One run as a section of RESULTS.md. */
export function resultsSection(results: BenchResults): string {
  const { machine } = results;
  const facts = [
    `${machine.cpus} cores${machine.cpuModel ? ` (${machine.cpuModel.trim()})` : ''}, ${machine.memoryGb} GB`,
    machine.loadAverage ? `load average (1 / 5 / 15 min) ${load(machine.loadAverage.atStart)} at the start, ${load(machine.loadAverage.atEnd)} at the end` : null,
    `Node ${results.versions.node}, pg-boss ${results.versions.pgBoss}`,
    `${results.quick ? 'quick run' : 'full run'}${results.args?.length ? `, \`npm run bench -- ${results.args.join(' ')}\`` : ''}, ${results.seconds} s`,
    results.commit ? `commit ${results.commit}` : null,
    results.failed ? '**the run failed** part-way (its output says why): the table has the rows measured before' : null,
  ].filter((f): f is string => f !== null);
  const rows = results.rows.length ? resultsTable(results.rows) : '(no rows: the run failed before its first figure)';
  return `\n## ${results.at.replace('T', ' ').replace(/\.\d+Z$/, 'Z')}\n\n${facts.map((f) => `- ${f}`).join('\n')}\n\n${rows}\n`;
}

/** Appends the run to `file` (RESULTS.md), writing its header first when the file is new. */
export function appendResults(file: string, results: BenchResults): void {
  if (!existsSync(file)) writeFileSync(file, HEADER);
  appendFileSync(file, resultsSection(results));
}

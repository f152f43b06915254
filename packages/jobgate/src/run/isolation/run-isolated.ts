import { fork, type ChildProcess } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { ConfigError, ErrorCode, JobgateError, PermanentJobError } from '../../support/index.ts';
import type { JobContext } from '../../define/define-job.ts';
import type { FromIsolated, IsolatedInput, ToIsolated } from './messages.ts';

// built JavaScript runs beside a .js entry, the sources in the repo beside a .ts one
const ENTRY = new URL(import.meta.url.endsWith('.ts') ? './isolated-entry.ts' : './isolated-entry.js', import.meta.url);

/** The per-thread heap limit cannot hold if the process was started with a heap flag (FAULTS.md M7). */
export function heapFlagOverride(nodeOptions: string | undefined, execArgv: readonly string[]): string | null {
  const flag = [...(nodeOptions ?? '').split(/\s+/), ...execArgv].find((a) => /^--max-old-space-size(=|$)/.test(a));
  return flag ?? null;
}

/** The parent's `--conditions` flags: the child must resolve `jobgate` (and a job module's imports) the same way. */
function resolutionFlags(): string[] {
  return process.execArgv.filter((a, i, all) => a.startsWith('--conditions') || all[i - 1] === '--conditions' || all[i - 1] === '-C' || a === '-C' || a.startsWith('-C='));
}

/** One side of the boundary, whichever kind it is. */
interface Isolate {
  post(message: ToIsolated): void;
  kill(): void;
  on(event: 'message', fn: (message: FromIsolated) => void): void;
  /** `outOfMemory` when the heap cap ended it. */
  onEnd(fn: (outcome: { outOfMemory: boolean; detail: string }) => void): void;
}

function threadIsolate(input: IsolatedInput, maxHeapMb: number): Isolate {
  const worker = new Worker(ENTRY, {
    workerData: input,
    resourceLimits: { maxOldGenerationSizeMb: maxHeapMb, maxYoungGenerationSizeMb: Math.max(4, Math.min(32, Math.floor(maxHeapMb / 4))) },
  });
  return {
    post: (m) => worker.postMessage(m),
    kill: () => void worker.terminate(),
    on: (_e, fn) => worker.on('message', fn),
    onEnd: (fn) => {
      worker.on('error', (err: Error & { code?: string }) => fn({ outOfMemory: err.code === 'ERR_WORKER_OUT_OF_MEMORY', detail: err.message }));
      worker.on('exit', (code) => fn({ outOfMemory: false, detail: `the job's thread exited with code ${code}` }));
    },
  };
}

/** Live isolated child processes: killed with their parent, counted by the memory guard. */
const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/** PIDs of the isolated child processes running now. */
export function isolatedChildPids(): number[] {
  return [...children].flatMap((c) => (c.pid ? [c.pid] : []));
}

function processIsolate(input: IsolatedInput, maxHeapMb: number): Isolate {
  // execArgv replaces the parent's flags; a command-line heap flag also beats one in NODE_OPTIONS.
  const child = fork(ENTRY, [], { execArgv: [...resolutionFlags(), `--max-old-space-size=${maxHeapMb}`], serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  child.send({ type: 'start', input } satisfies ToIsolated);
  return {
    post: (m) => {
      if (child.connected) child.send(m);
    },
    kill: () => void child.kill('SIGKILL'),
    on: (_e, fn) => child.on('message', fn as (m: unknown) => void),
    onEnd: (fn) => {
      child.on('error', (err) => fn({ outOfMemory: false, detail: err.message }));
      // V8 aborts a process whose heap is full ("Reached heap limit"): SIGABRT (FAULTS.md M9).
      child.on('exit', (code, signal) => fn({ outOfMemory: signal === 'SIGABRT', detail: `the job's process exited with ${signal ?? `code ${code}`}` }));
    },
  };
}

/**
 * Runs a job's handler with its heap capped at `maxHeapMb`: in a worker thread (`resourceLimits`)
 * or a child process (`--max-old-space-size`). A heap blow-up ends only that thread or process and
 * becomes a JG_HEAP_OUT_OF_MEMORY failure of this attempt; the app and its other jobs carry on.
 */
export function runIsolated(kind: 'thread' | 'process', input: Omit<IsolatedInput, 'job'>, ctx: JobContext, maxHeapMb: number, abortGraceMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const full: IsolatedInput = { ...input, job: ctx.job };
    const isolate = kind === 'thread' ? threadIsolate(full, maxHeapMb) : processIsolate(full, maxHeapMb);
    let settled = false;
    const settle = (err?: Error) => {
      if (settled) return;
      settled = true;
      ctx.signal.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve();
    };
    const onAbort = () => {
      const reason = ctx.signal.reason as { code?: string; message?: string } | undefined;
      isolate.post({ type: 'abort', code: reason?.code ?? ErrorCode.jobAborted, message: reason?.message ?? 'aborted' });
      // A handler that ignores its signal is stopped the hard way: a thread or a process can be.
      setTimeout(() => isolate.kill(), abortGraceMs).unref();
    };
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    if (ctx.signal.aborted) onAbort();
    isolate.on('message', (message) => {
      if (message.type === 'progress') {
        ctx.progress(message.percent, message.message).catch((err: unknown) => ctx.logger.warn({ err }, 'progress from an isolated job not recorded'));
        return;
      }
      if (message.type === 'done') settle();
      else if (message.permanent) settle(new PermanentJobError(message.message));
      else if (Object.values(ErrorCode).includes(message.code as ErrorCode)) settle(new JobgateError(message.code as ErrorCode, message.message));
      else settle(Object.assign(new Error(message.message), { name: message.name }));
      isolate.kill();
    });
    isolate.onEnd(({ outOfMemory, detail }) => {
      if (outOfMemory) settle(new JobgateError(ErrorCode.heapOutOfMemory, `the job's heap passed its ${maxHeapMb} MB limit (isolation: ${kind})`));
      else settle(new JobgateError(ErrorCode.jobFailed, `${detail} before finishing`));
    });
  });
}

/** A handler that runs isolated is imported by its thread or process: it must come from a module of jobModules. */
export function assertIsolatedPlaced(defs: Iterable<{ name: string; isolation: string }>, moduleOf: ((name: string) => string | undefined) | undefined): void {
  const unplaced = [...defs].filter((d) => d.isolation !== 'none' && !moduleOf?.(d.name));
  if (unplaced.length > 0) {
    throw new ConfigError([`jobModules: isolation 'thread' or 'process' needs a job defined in a module listed in jobModules (JOBGATE_JOB_MODULES), which the thread or process imports: ${unplaced.map((d) => d.name).join(', ')}`]);
  }
}

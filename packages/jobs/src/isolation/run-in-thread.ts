import { Worker } from 'node:worker_threads';
import { ErrorCode, JobgateError, PermanentJobError } from '@jobgate/runtime';
import type { JobContext } from '../define-job.ts';
import type { FromThread, ThreadInput, ToThread } from './messages.ts';

const ENTRY = new URL('./thread-entry.ts', import.meta.url);

/** The per-thread heap limit cannot hold if the process was started with a heap flag (FAULTS.md M7). */
export function heapFlagOverride(nodeOptions: string | undefined, execArgv: readonly string[]): string | null {
  const flag = [...(nodeOptions ?? '').split(/\s+/), ...execArgv].find((a) => /^--max-old-space-size(=|$)/.test(a));
  return flag ?? null;
}

/**
 * Runs a job's handler in a worker thread with its old-generation heap capped at `maxHeapMb`
 * (`resourceLimits`). A heap blow-up ends the thread with ERR_WORKER_OUT_OF_MEMORY, which becomes a
 * JG_HEAP_OUT_OF_MEMORY failure of this attempt; the process and its other jobs carry on.
 */
export function runInThread(input: Omit<ThreadInput, 'job'>, ctx: JobContext, maxHeapMb: number, abortGraceMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const worker = new Worker(ENTRY, {
      workerData: { ...input, job: ctx.job } satisfies ThreadInput,
      resourceLimits: { maxOldGenerationSizeMb: maxHeapMb, maxYoungGenerationSizeMb: Math.max(4, Math.min(32, Math.floor(maxHeapMb / 4))) },
    });
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
      worker.postMessage({ type: 'abort', code: reason?.code ?? ErrorCode.jobAborted, message: reason?.message ?? 'aborted' } satisfies ToThread);
      // A handler that ignores its signal is stopped the hard way: a thread can be.
      setTimeout(() => void worker.terminate(), abortGraceMs).unref();
    };
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    if (ctx.signal.aborted) onAbort();
    worker.on('message', (message: FromThread) => {
      if (message.type === 'progress') {
        ctx.progress(message.percent, message.message).catch((err: unknown) => ctx.logger.warn({ err }, 'progress from thread not recorded'));
      } else if (message.type === 'done') {
        settle();
        void worker.terminate();
      } else {
        const err = message.permanent
          ? new PermanentJobError(message.message)
          : Object.values(ErrorCode).includes(message.code as ErrorCode)
            ? new JobgateError(message.code as ErrorCode, message.message)
            : Object.assign(new Error(message.message), { name: message.name });
        settle(err);
        void worker.terminate();
      }
    });
    worker.on('error', (err: Error & { code?: string }) => {
      if (err.code === 'ERR_WORKER_OUT_OF_MEMORY') {
        settle(new JobgateError(ErrorCode.heapOutOfMemory, `the job's heap passed its ${maxHeapMb} MB limit (isolation: thread)`, { cause: err }));
      } else {
        settle(err);
      }
    });
    worker.on('exit', (code) => {
      if (!settled) settle(new JobgateError(ErrorCode.jobFailed, `the job's thread exited with code ${code} before finishing`));
    });
  });
}

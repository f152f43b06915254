// Runs one job handler inside a worker thread (isolation: 'thread'): imports the module that
// defines the job, runs it with a context whose progress and abort cross the thread boundary.
import { parentPort, workerData } from 'node:worker_threads';
import { ErrorCode, JobgateError, PermanentJobError, createLogger } from '@jobgate/runtime';
import { isJobDefinition } from '../define-job.ts';
import type { FromThread, ThreadInput, ToThread } from './messages.ts';

const input = workerData as ThreadInput;
const port = parentPort!;
const send = (message: FromThread) => port.postMessage(message);
const controller = new AbortController();
port.on('message', (message: ToThread) => {
  if (message.type === 'abort') controller.abort(new JobgateError(message.code as ErrorCode, message.message));
});

try {
  const mod = (await import(input.moduleUrl)) as Record<string, unknown>;
  const def = Object.values(mod).flatMap((v) => (Array.isArray(v) ? v : [v])).find((v) => isJobDefinition(v) && v.name === input.name);
  if (!def || !isJobDefinition(def)) throw new JobgateError(ErrorCode.unknownJob, `${input.moduleUrl} does not export the job ${input.name}`);
  let peak = process.memoryUsage.rss();
  await def.run(def.payload.parse(input.payload), {
    job: input.job,
    logger: createLogger({ level: input.logLevel, name: 'fetcher' }).child({ ...input.logBindings, thread: true }),
    signal: controller.signal,
    progress: async (percent, message) => send({ type: 'progress', percent, ...(message ? { message } : {}) }),
    memory: {
      rssMb: () => Math.round(process.memoryUsage.rss() / 2 ** 20),
      peakRssMb: () => Math.round((peak = Math.max(peak, process.memoryUsage.rss())) / 2 ** 20),
    },
  });
  send({ type: 'done' });
} catch (err) {
  const e = err as Error & { code?: string };
  send({ type: 'error', name: e?.name ?? 'Error', message: e?.message ?? String(err), ...(typeof e?.code === 'string' ? { code: e.code } : {}), permanent: err instanceof PermanentJobError });
}

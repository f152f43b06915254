// Runs one job handler away from the process's own heap: in a worker thread (isolation 'thread')
// or a child process (isolation 'process'). Imports the module that defines the job and runs it
// with a context whose progress and abort cross the boundary.
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { ErrorCode, JobgateError, PermanentJobError, createLogger } from '../../support/index.ts';
import { isJobDefinition } from '../../define/define-job.ts';
import { noFanOut } from '../children.ts';
import type { FromIsolated, IsolatedInput, ToIsolated } from './messages.ts';

const inThread = !isMainThread;
const controller = new AbortController();
// A child whose parent died (kill -9, crash) must not go on running the job: the queue will give
// it to another runner.
if (!inThread) process.on('disconnect', () => process.exit(1));

function send(message: FromIsolated): Promise<void> {
  if (inThread) {
    parentPort!.postMessage(message);
    return Promise.resolve();
  }
  return new Promise((resolve) => process.send!(message, () => resolve()));
}

const input = await new Promise<IsolatedInput>((resolve) => {
  const onMessage = (message: ToIsolated) => {
    if (message.type === 'start') resolve(message.input);
    else if (message.type === 'abort') controller.abort(new JobgateError(message.code as ErrorCode, message.message));
  };
  if (inThread) {
    parentPort!.on('message', onMessage);
    resolve(workerData as IsolatedInput);
  } else {
    process.on('message', onMessage);
  }
});

try {
  const mod = (await import(input.moduleUrl)) as Record<string, unknown>;
  const def = Object.values(mod).flatMap((v) => (Array.isArray(v) ? v : [v])).find((v) => isJobDefinition(v) && v.name === input.name);
  if (!def || !isJobDefinition(def)) throw new JobgateError(ErrorCode.unknownJob, `${input.moduleUrl} does not export the job ${input.name}`);
  let peak = process.memoryUsage.rss();
  await def.run(def.payload.parse(input.payload), {
    job: input.job,
    logger: createLogger({ level: input.logLevel, name: 'fetcher' }).child({ ...input.logBindings, isolated: inThread ? 'thread' : 'process' }),
    signal: controller.signal,
    ...noFanOut(`ctx.performLater and the rest of fan-out are not available to an isolated handler (isolation: '${inThread ? 'thread' : 'process'}'): enqueue from a job without isolation`),
    progress: (percent, message) => send({ type: 'progress', percent, ...(message ? { message } : {}) }),
    memory: {
      rssMb: () => Math.round(process.memoryUsage.rss() / 2 ** 20),
      peakRssMb: () => Math.round((peak = Math.max(peak, process.memoryUsage.rss())) / 2 ** 20),
    },
  });
  await send({ type: 'done' });
} catch (err) {
  const e = err as Error & { code?: string };
  await send({ type: 'error', name: e?.name ?? 'Error', message: e?.message ?? String(err), ...(typeof e?.code === 'string' ? { code: e.code } : {}), permanent: err instanceof PermanentJobError });
}
// A child process ends here; a thread is terminated by its parent.
if (!inThread) process.exit(0);

import type { Logger } from './logger.ts';

/**
 * Runs `stop` once on SIGTERM or SIGINT and exits with its result (0, or 1 if it failed); past the
 * hard deadline it exits at once. Returns a trigger for the same drain from inside the process. A repeated signal is ignored: a terminal's Ctrl-C and a supervisor both signal the same
 * process. Render sends SIGKILL 30 s after SIGTERM, so the deadline is 25 s.
 */
export function onShutdownSignal(logger: Logger, stop: (signal: string) => Promise<void>, hardDeadlineMs = 25_000): (reason: string, exitCode: number) => void {
  let stopping = false;
  const handle = (signal: string, exitCode: number) => {
    if (stopping) {
      logger.info({ signal }, 'already shutting down');
      return;
    }
    stopping = true;
    const started = Date.now();
    logger.info({ signal }, 'shutting down');
    const deadline = setTimeout(() => {
      logger.error({ signal, ms: Date.now() - started }, 'shutdown deadline passed, exiting');
      process.exit(1);
    }, hardDeadlineMs);
    deadline.unref();
    stop(signal).then(
      () => {
        logger.info({ ms: Date.now() - started, exitCode }, 'shutdown complete');
        process.exit(exitCode);
      },
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  // Node passes the signal's number as a second argument: not an exit code.
  process.on('SIGTERM', (signal) => handle(signal, 0));
  process.on('SIGINT', (signal) => handle(signal, 0));
  /** The same drain, started from inside (e.g. the memory guard), ending with `exitCode`. */
  return (reason, exitCode) => handle(reason, exitCode);
}

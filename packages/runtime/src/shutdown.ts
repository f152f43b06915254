import type { Logger } from './logger.ts';

/**
 * Runs `stop` once on SIGTERM or SIGINT and exits with its result; past the hard deadline it exits
 * at once. A repeated signal is ignored: a terminal's Ctrl-C and a supervisor both signal the same
 * process. Render sends SIGKILL 30 s after SIGTERM, so the deadline is 25 s.
 */
export function onShutdownSignal(logger: Logger, stop: (signal: string) => Promise<void>, hardDeadlineMs = 25_000): void {
  let stopping = false;
  const handle = (signal: NodeJS.Signals) => {
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
        logger.info({ ms: Date.now() - started }, 'shutdown complete');
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handle);
  process.on('SIGINT', handle);
}

import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

/** Log lines to stderr (a CLI, whose stdout is its output). */
export const stderrDestination = (): DestinationStream => pino.destination({ fd: 2, sync: true });

/**
 * One JSON line per event on stdout. Variables go in the object, the message stays fixed:
 * `logger.child({ jobId, jobName, requestId }).info('job completed')`.
 */
export function createLogger(options: { level: string; name: string; destination?: DestinationStream }): Logger {
  return pino(
    {
      level: options.level,
      base: { app: options.name, pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: ['req.headers.authorization', 'req.headers.cookie', '*.password', '*.secret'], censor: '[redacted]' },
    },
    options.destination ?? pino.destination({ fd: 1, sync: true }),
  );
}

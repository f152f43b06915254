/**
 * Every error the product raises on purpose carries a stable `code`; callers branch on the code,
 * never on the message. One table (`httpStatusFor`) maps codes to HTTP statuses.
 */
export const ErrorCode = {
  payloadInvalid: 'JG_PAYLOAD_INVALID',
  requestInvalid: 'JG_REQUEST_INVALID',
  bodyMalformed: 'JG_BODY_MALFORMED',
  bodyTooLarge: 'JG_BODY_TOO_LARGE',
  unsupportedMediaType: 'JG_UNSUPPORTED_MEDIA_TYPE',
  methodNotAllowed: 'JG_METHOD_NOT_ALLOWED',
  notFound: 'JG_NOT_FOUND',
  unknownJob: 'JG_UNKNOWN_JOB',
  jobNotFound: 'JG_JOB_NOT_FOUND',
  idConflict: 'JG_ID_CONFLICT',
  invalidSignature: 'JG_INVALID_SIGNATURE',
  databaseUnavailable: 'JG_DATABASE_UNAVAILABLE',
  shuttingDown: 'JG_SHUTTING_DOWN',
  jobTimeout: 'JG_JOB_TIMEOUT',
  jobAborted: 'JG_JOB_ABORTED',
  jobFailed: 'JG_JOB_FAILED',
  jobLost: 'JG_JOB_LOST',
  /** Cancelled (from the admin) while it ran: not retried. */
  jobCancelled: 'JG_CANCELLED',
  /** The other side owns the job now (the emergency override moved it to main). */
  takenOver: 'JG_TAKEN_OVER',
  unauthorized: 'JG_UNAUTHORIZED',
  forbidden: 'JG_FORBIDDEN',
  adminDisabled: 'JG_ADMIN_DISABLED',
  tooManyRequests: 'JG_TOO_MANY_REQUESTS',
  /** The body came slower than the floor rate, or not at all: cut off. */
  requestTimeout: 'JG_REQUEST_TIMEOUT',
  /** Too many request bodies are being read at once; retry shortly. */
  busy: 'JG_BUSY',
  /** The fetcher refuses a job for now (a name or payload it does not know yet): it waits. */
  fetcherRefuses: 'JG_FETCHER_REFUSES',
  /** A signed message's id was already used for another body (a replay or a broken sender). */
  replayConflict: 'JG_REPLAY_CONFLICT',
  /** The job is not in a state that allows this (retrying a completed job, cancelling a finished one). */
  stateConflict: 'JG_STATE_CONFLICT',
  memoryLimit: 'JG_MEMORY_LIMIT',
  heapOutOfMemory: 'JG_HEAP_OUT_OF_MEMORY',
  permanentFailure: 'JG_PERMANENT_FAILURE',
  configInvalid: 'JG_CONFIG_INVALID',
  internal: 'JG_INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** One invalid field: `path` is dotted from the request body root, e.g. `payload.sleepMs`. */
export interface FieldError {
  path: string;
  message: string;
}

export class JobgateError extends Error {
  readonly code: ErrorCode;
  readonly errors: FieldError[];
  constructor(code: ErrorCode, message: string, options?: ErrorOptions & { errors?: FieldError[] }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.errors = options?.errors ?? [];
  }
}

/**
 * Thrown by a handler to fail its job at once, without the remaining retries
 * (p-retry's `AbortError` plays the same part).
 * @example throw new PermanentJobError('movie provider rejected the API token');
 */
export class PermanentJobError extends JobgateError {
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCode.permanentFailure, message, options);
  }
}

const statusByCode: Record<ErrorCode, number> = {
  JG_PAYLOAD_INVALID: 422,
  JG_REQUEST_INVALID: 422,
  JG_BODY_MALFORMED: 400,
  JG_BODY_TOO_LARGE: 413,
  JG_UNSUPPORTED_MEDIA_TYPE: 415,
  JG_METHOD_NOT_ALLOWED: 405,
  JG_NOT_FOUND: 404,
  JG_UNKNOWN_JOB: 404,
  JG_JOB_NOT_FOUND: 404,
  JG_ID_CONFLICT: 409,
  JG_INVALID_SIGNATURE: 401,
  JG_DATABASE_UNAVAILABLE: 503,
  JG_SHUTTING_DOWN: 503,
  JG_JOB_TIMEOUT: 500,
  JG_JOB_ABORTED: 500,
  JG_JOB_FAILED: 500,
  JG_JOB_LOST: 500,
  JG_CANCELLED: 409,
  JG_TAKEN_OVER: 409,
  JG_UNAUTHORIZED: 401,
  JG_FORBIDDEN: 403,
  JG_ADMIN_DISABLED: 503,
  JG_TOO_MANY_REQUESTS: 429,
  JG_REQUEST_TIMEOUT: 408,
  JG_BUSY: 503,
  JG_REPLAY_CONFLICT: 409,
  JG_FETCHER_REFUSES: 502,
  JG_STATE_CONFLICT: 409,
  JG_MEMORY_LIMIT: 500,
  JG_HEAP_OUT_OF_MEMORY: 500,
  JG_PERMANENT_FAILURE: 500,
  JG_CONFIG_INVALID: 500,
  JG_INTERNAL: 500,
};

export function httpStatusFor(code: ErrorCode): number {
  return statusByCode[code];
}

/** Turns zod issues into our field errors; `prefix` places them inside the request body. */
export function fieldErrorsFromZod(issues: ReadonlyArray<{ path: ReadonlyArray<PropertyKey>; message: string }>, prefix: string[] = []): FieldError[] {
  return issues.map((issue) => ({
    path: [...prefix, ...issue.path.map(String)].join('.') || '(root)',
    message: issue.message,
  }));
}

/**
 * The connection under a statement was lost while the database itself is up: killed by an
 * administrator or a pooler (57P01), reset, or ended under the client. A new connection works.
 */
export function isConnectionLost(err: unknown): boolean {
  // (an Error, or what pg-boss's 'error' event carries: the error's own fields copied into an object)
  if (typeof err !== 'object' || err === null) return false;
  const { code, message } = err as { code?: unknown; message?: unknown };
  if (code === '57P01' || code === 'ECONNRESET' || code === 'EPIPE') return true;
  return typeof message === 'string' && /Connection terminated|Client has encountered a connection error|Connection ended/i.test(message);
}

/**
 * PostgreSQL (or the pool in front of it) cannot be reached: the connection was lost
 * (isConnectionLost), refused, terminated by a server shutdown, or the pool could not hand out a
 * connection in time.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (isConnectionLost(err)) return true;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (['ECONNREFUSED', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH'].includes(code)) return true;
    // 57P02 crash_shutdown, 57P03 cannot_connect_now, 08xxx connection exceptions
    if (code.startsWith('57P') || code.startsWith('08')) return true;
  }
  return /timeout exceeded when trying to connect|the database system is (shutting down|starting up|in recovery mode)/i.test(err.message);
}

/**
 * Worth trying again as it is: the database was away, or it broke a deadlock or a serialization
 * conflict by cancelling this transaction (40P01, 40001).
 */
export function isTransientDatabaseError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return isDatabaseUnavailable(err) || code === '40P01' || code === '40001';
}

import type { Route } from '@jobgate/queue';

/** What the parent hands a job's worker thread. */
export interface ThreadInput {
  moduleUrl: string;
  name: string;
  payload: unknown;
  job: { id: string; name: string; attempt: number; maxAttempts: number; ranOn: Route };
  logBindings: Record<string, unknown>;
  logLevel: string;
}

export type ToThread = { type: 'abort'; code: string; message: string };

export type FromThread =
  | { type: 'progress'; percent: number; message?: string }
  | { type: 'done' }
  | { type: 'error'; name: string; message: string; code?: string; permanent: boolean };

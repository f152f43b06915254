import type { Route } from '../../store/index.ts';

/** What the parent hands an isolated job handler. */
export interface IsolatedInput {
  moduleUrl: string;
  name: string;
  payload: unknown;
  job: { id: string; name: string; attempt: number; maxAttempts: number; ranOn: Route };
  logBindings: Record<string, unknown>;
  logLevel: string;
}

export type ToIsolated = { type: 'start'; input: IsolatedInput } | { type: 'abort'; code: string; message: string };

export type FromIsolated =
  | { type: 'progress'; percent: number; message?: string }
  | { type: 'done' }
  | { type: 'error'; name: string; message: string; code?: string; permanent: boolean };

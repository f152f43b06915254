// What every admin page renders with: escaping, times, badges, table rows, the live-region mark
// and the action attributes the browser script (assets/admin.js) acts on. No state and no I/O here.
import type { ErrorInfo, JobState, Pause } from '../../store/index.ts';

/** Every value a page shows goes through this: a job's payload or error is text, never markup. */
export const esc = (value: unknown): string => String(value ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const pad = (n: number) => String(n).padStart(2, '0');
/** A time the same for every reader: UTC, to the second. */
export const when = (iso: string | null | undefined): string => {
  if (!iso) return '–';
  const d = new Date(iso);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
};
export const time = (iso: string | null | undefined): string => (iso ? `<time datetime="${esc(iso)}">${esc(when(iso))}</time>` : '–');
export const ago = (iso: string | null | undefined, now = Date.now()): string => {
  if (!iso) return '–';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  return s < 60 ? `${s} s ago` : s < 3600 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`;
};
export const seconds = (s: number): string => (s < 60 ? `${Math.round(s)} s` : s < 3600 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`);
export const badge = (state: string): string => `<span class="badge ${esc(state)}">${esc(state)}</span>`;
/** A table row of cells that are already HTML. */
export const row = (...cells: string[]): string => `<tr>${cells.map((c) => `<td>${c}</td>`).join('')}</tr>`;
export const emptyRow = (columns: number, text: string): string => `<tr><td colspan="${columns}" class="muted">${esc(text)}</td></tr>`;
/** An error as `CODE: message` (a job's, an attempt's, or one the fetcher reported). */
export const errorText = (e: Pick<ErrorInfo, 'message'> & { code: string } | null | undefined): string => (e ? `${e.code}: ${e.message}` : '');

/** Job states in which a retry or a cancel makes sense (the buttons the lists and the job page show). */
export const RETRYABLE: readonly JobState[] = ['failed', 'cancelled'];
export const CANCELLABLE: readonly JobState[] = ['queued', 'forwarding', 'forwarded', 'active'];

/** What a waiting job waits for when a pause holds it: the pause's name, who, why, until when. */
export const pausedText = (p: Pause | null | undefined): string =>
  p ? `paused (${p.name === '*' ? 'every job: *' : esc(p.name)}) by ${esc(p.by)}: ${esc(p.reason)}${p.expiresAt ? `, until ${time(p.expiresAt)}` : ''}` : '';

/**
 * Marks an element as a live region named `name` (unique in its page): every 2 s the browser
 * fetches the page again and puts each region whose HTML changed in place of the old one. Keep
 * inputs a user types into out of regions that change while they type (a form may sit in a region
 * that changes only when the state it acts on changes).
 */
export const live = (name: string): string => ` data-live="${esc(name)}"`;

/**
 * What a button or form does when used, as attributes for the browser script. `api` is
 * `METHOD path` relative to the admin's root (`api/jobs/…`); a form fills `{field}` in the path
 * from its own fields, and `A | B` takes the first whose fields are all filled. `done` is the
 * message shown after, with `{field}` from the JSON answer (`{field?text}`: text when it is set).
 */
export interface Action {
  api: string;
  /** Sent as the JSON body (a form's fields are added to it). */
  body?: unknown;
  /** A confirm step before anything is sent. */
  confirm?: string;
  /** Asks for one field of the body first, with a suggested answer: nothing is sent without one. */
  prompt?: { field: string; question: string; suggest?: string };
  /** Shown while the request runs. */
  pending?: string;
  done?: string;
  /** Where to go after, with `{field}` from the answer (`jobs/{id}`); otherwise the live regions refresh. */
  go?: string;
}

export function act(a: Action): string {
  const attrs: Record<string, string | undefined> = {
    'data-api': a.api,
    'data-body': a.body === undefined ? undefined : JSON.stringify(a.body),
    'data-confirm': a.confirm,
    'data-prompt': a.prompt?.question,
    'data-prompt-field': a.prompt?.field,
    'data-prompt-suggest': a.prompt?.suggest,
    'data-pending': a.pending,
    'data-done': a.done,
    'data-go': a.go,
  };
  return Object.entries(attrs).map(([k, v]) => (v === undefined ? '' : ` ${k}="${esc(v)}"`)).join('');
}

/** A button that runs an action; its label is HTML-escaped. */
export const actionButton = (label: string, a: Action, attrs = ''): string => `<button type="button"${attrs}${act(a)}>${esc(label)}</button>`;

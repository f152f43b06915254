// An admin page as one unit: its path, its menu entry, what it loads and how it looks. The router
// (dashboard.ts) mounts every page of the registry (pages/index.ts) the same way; the browser keeps
// a page live by fetching it again and swapping its live regions (html.ts `live`), so the view
// below is the only renderer there is.
import type { Request } from 'express';
import type { AdminReads } from './reads.ts';
import { ErrorCode } from '../../support/index.ts';
import { esc } from './html.ts';

/** What a page's loader gets: the admin's reads and the request's path parameters and query. */
export interface PageInput {
  reads: AdminReads;
  params: Record<string, string>;
  query: Request['query'];
}

/**
 * What a loader answers: the data to render (with the status and a flash message for a page shown
 * despite a bad address), a redirect (relative to the admin's root), or a 404 saying what is missing.
 */
export type Loaded<D> =
  | { data: D; status?: number; flash?: string }
  | { redirect: string }
  | { missing: { title: string; html: string } };

export interface AdminPage<D> {
  /** The express path under the admin's root: `/jobs/:id`. */
  path: string;
  /** Its entry in the header's menu; absent for pages reached by links (a job, a batch). */
  menu?: string;
  /** The menu entry shown as current: its own path by default (`/jobs` for a job's page). */
  section?: string;
  load(input: PageInput): Promise<Loaded<D>>;
  title(data: D): string;
  /** The page's body (inside <main>), live regions marked with `live(name)`. */
  view(data: D): string;
}

/** A page rendered: HTML with its status, or a redirect. */
export type Rendered = { status: number; title: string; section: string; body: string; flash?: string } | { redirect: string };

/** What the router mounts: a page with the type of its data closed over. */
export interface PageUnit {
  path: string;
  menu?: string;
  section: string;
  render(input: PageInput): Promise<Rendered>;
}

/**
 * Declares a page (one module per page, one line in pages/index.ts).
 * @example
 * export const cronPage = definePage({
 *   path: '/cron', menu: 'Cron',
 *   load: async ({ reads }) => ({ data: await reads.cron() }),
 *   title: () => 'Cron',
 *   view: (c) => `<h1>Scheduled jobs</h1><table${live('schedules')}>…</table>`,
 * });
 */
export function definePage<D>(page: AdminPage<D>): PageUnit {
  const section = page.section ?? page.path;
  return {
    path: page.path,
    ...(page.menu ? { menu: page.menu } : {}),
    section,
    async render(input) {
      const loaded = await page.load(input);
      if ('redirect' in loaded) return loaded;
      if ('missing' in loaded) {
        const { title, html } = loaded.missing;
        return { status: 404, title, section, body: `<p><a href="jobs">← Jobs</a></p><h1>${esc(title)}</h1>${html}` };
      }
      return { status: loaded.status ?? 200, title: page.title(loaded.data), section, body: page.view(loaded.data), ...(loaded.flash ? { flash: loaded.flash } : {}) };
    },
  };
}

/** A record a page shows by its id (a job, a batch), or the 404 saying none has that id (a malformed id names none either). */
export async function loadById<D>(what: string, id: string, read: (id: string) => Promise<D>): Promise<Loaded<D>> {
  try {
    return { data: await read(id) };
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code !== ErrorCode.jobNotFound && code !== ErrorCode.notFound && code !== ErrorCode.requestInvalid) throw err;
    return { missing: { title: `No such ${what}`, html: `<p>No ${what} has id <code>${esc(id)}</code>.</p>` } };
  }
}

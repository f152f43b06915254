import { readFileSync } from 'node:fs';
import express, { type Request, type Response } from 'express';
import { methodNotAllowed, mountOf } from '../../support/index.ts';
import type { AdminAuth } from './auth.ts';
import type { AdminReads } from './reads.ts';
import { esc } from './html.ts';
import type { PageUnit } from './page.ts';
import { ADMIN_PAGES } from './pages/index.ts';

/** Every admin answer: no caching, no framing, scripts and styles only from here. */
export function adminHeaders(_req: Request, res: Response, next: () => void): void {
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Referrer-Policy', 'same-origin');
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader(
    'Content-Security-Policy',
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'self'; object-src 'none'",
  );
  next();
}

const asset = (name: string) => readFileSync(new URL(`./assets/${name}`, import.meta.url), 'utf8');
const ASSETS: Record<string, { type: string; body: string }> = {
  'admin.js': { type: 'text/javascript; charset=utf-8', body: asset('admin.js') },
  'admin.css': { type: 'text/css; charset=utf-8', body: asset('admin.css') },
};

/** The admin's root path under the host app's mount point: every page's <base>, so its links are relative. */
const adminRoot = (res: Response) => `${mountOf(res)}/admin`;

function layout(pages: readonly PageUnit[], page: { title: string; section: string; body: string; flash?: string }, req: Request, res: Response): string {
  const nav = pages
    .filter((p) => p.menu)
    .map((p) => `<a href="${esc(p.path.slice(1))}"${p.section === page.section ? ' aria-current="page"' : ''}>${esc(p.menu)}</a>`)
    .join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<base href="${esc(adminRoot(res))}/">
<meta name="csrf-token" content="${esc(req.admin?.csrfToken ?? '')}">
<title>${esc(page.title)} · jobgate</title><link rel="stylesheet" href="assets/admin.css"><script type="module" src="assets/admin.js"></script></head>
<body>
<header><strong class="brand">jobgate</strong><nav>${nav}</nav>${req.admin?.via === 'session' ? `<button type="button" id="logout" class="link" data-api="POST logout" data-go="login">Log out</button>` : ''}</header>
<main><div id="flash" role="status" aria-live="polite"${page.flash ? ' class="error"' : ''}>${esc(page.flash ?? '')}</div>${page.body}</main>
</body></html>`;
}

const LOGIN = (root: string, error: string | null, next: string) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<base href="${esc(root)}/">
<title>Log in · jobgate</title><link rel="stylesheet" href="assets/admin.css"></head>
<body data-page="login"><main class="login"><h1>jobgate admin</h1>
${error ? `<p class="error" role="alert">${esc(error)}</p>` : ''}
<form method="post" action="login"><input type="hidden" name="next" value="${esc(next)}">
<label>Password <input type="password" name="password" autocomplete="current-password" required autofocus></label>
<button type="submit">Log in</button></form></main></body></html>`;

/** Where to go after the login: a page of this admin (under its root), nothing else. */
const safeNext = (root: string, next: unknown) =>
  typeof next === 'string' && next.startsWith(`${root}/`) && /^[A-Za-z0-9_\-/?=&%.]*$/.test(next.slice(root.length + 1)) && !next.includes('//') ? next : `${root}/overview`;

/**
 * The dashboard: its login, its static files, and every page of the registry (pages/index.ts),
 * each rendered on the server with the state it shows, so its first paint is the truth without any
 * script. The browser keeps a page live by fetching it again and swapping its live regions.
 */
export function adminDashboard(auth: AdminAuth, reads: AdminReads, pages: readonly PageUnit[] = ADMIN_PAGES): express.Router {
  const router = express.Router();
  router.get('/assets/:file', (req: Request<{ file: string }>, res, next) => {
    if (!Object.hasOwn(ASSETS, req.params.file)) return next();
    const file = ASSETS[req.params.file]!;
    res.type(file.type).send(file.body);
  });
  // under the host app's own sign-in (authorize), there is no login of jobgate's
  const ownLogin = (_req: Request, _res: Response, next: (err?: unknown) => void) => (auth.ownLogin ? next() : next('router'));
  router.get('/login', ownLogin, (req, res) => {
    res.type('html').send(LOGIN(adminRoot(res), null, safeNext(adminRoot(res), req.query.next)));
  });
  router.post('/login', ownLogin, express.urlencoded({ extended: false, limit: '4kb' }), async (req: Request, res: Response) => {
    try {
      if (await auth.login(req, res)) {
        req.log.info('admin logged in');
        return res.redirect(303, safeNext(adminRoot(res), req.body?.next));
      }
      req.log.warn('admin login failed');
      res.status(401).type('html').send(LOGIN(adminRoot(res), 'Wrong password.', safeNext(adminRoot(res), req.body?.next)));
    } catch (err) {
      const status = (err as { code?: string }).code === 'JG_TOO_MANY_REQUESTS' ? 429 : (err as { code?: string }).code === 'JG_FORBIDDEN' ? 403 : 0;
      if (!status) throw err;
      res.status(status).type('html').send(LOGIN(adminRoot(res), status === 429 ? 'Too many wrong passwords; wait a minute.' : 'Log in from the dashboard itself.', `${adminRoot(res)}/fetcher_service`));
    }
  });
  router.all('/login', ownLogin, methodNotAllowed(['GET', 'POST']));
  router.post('/logout', ownLogin, auth.page, async (req, res) => {
    await auth.logout(req, res);
    res.status(204).end();
  });
  router.all('/logout', ownLogin, methodNotAllowed(['POST']));
  router.get('/', (_req, res) => res.redirect(303, `${adminRoot(res)}/overview`));

  for (const page of pages) {
    router.get(page.path, auth.page, async (req: Request<Record<string, string>>, res) => {
      const out = await page.render({ reads, params: req.params, query: req.query });
      if ('redirect' in out) return res.redirect(303, `${adminRoot(res)}/${out.redirect}`);
      res.status(out.status).type('html').send(layout(pages, out, req, res));
    });
  }
  return router;
}

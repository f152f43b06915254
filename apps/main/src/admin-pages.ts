import { readFileSync } from 'node:fs';
import express, { type Request, type Response } from 'express';
import { methodNotAllowed } from '@jobgate/runtime';
import type { AdminAuth } from './admin-auth.ts';

/** Every admin answer: no caching, no framing, scripts and styles only from here. */
export function adminHeaders(_req: Request, res: Response, next: () => void): void {
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Referrer-Policy', 'same-origin');
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader(
    'Content-Security-Policy',
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'",
  );
  next();
}

const asset = (name: string) => readFileSync(new URL(`./admin-assets/${name}`, import.meta.url), 'utf8');
const ASSETS: Record<string, { type: string; body: string }> = {
  'admin.js': { type: 'text/javascript; charset=utf-8', body: asset('admin.js') },
  'admin.css': { type: 'text/css; charset=utf-8', body: asset('admin.css') },
};

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function layout(title: string, page: string, body: string, req: Request, attrs: Record<string, string> = {}): string {
  const data = Object.entries({ page, ...attrs }).map(([k, v]) => ` data-${k}="${esc(v)}"`).join('');
  const nav = [['fetcher_service', 'Fetcher'], ['jobs', 'Jobs'], ['cron', 'Cron']]
    .map(([p, label]) => `<a href="/admin/${p}"${p === page || (page === 'job' && p === 'jobs') ? ' aria-current="page"' : ''}>${label}</a>`)
    .join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="${esc(req.admin?.csrfToken ?? '')}">
<title>${esc(title)} · jobgate</title><link rel="stylesheet" href="/admin/assets/admin.css"><script src="/admin/assets/admin.js" defer></script></head>
<body${data}>
<header><strong class="brand">jobgate</strong><nav>${nav}</nav><button type="button" id="logout" class="link">Log out</button></header>
<main><div id="flash" role="status" aria-live="polite"></div>${body}</main>
</body></html>`;
}

const PAGES: Record<string, { title: string; body: string }> = {
  fetcher_service: {
    title: 'Fetcher service',
    body: `
<h1>Fetcher service</h1>
<div class="grid">
<section class="card" id="state-card"><h2>State</h2>
  <p><span id="fetcher-state" class="badge">…</span> <span id="override-badge" class="badge warn" hidden>override on</span></p>
  <dl><dt>Last check</dt><dd id="checked-at">–</dd><dt>Latency</dt><dd id="latency">–</dd><dt>Version</dt><dd id="version">–</dd>
  <dt>Uptime</dt><dd id="uptime">–</dd><dt>Intake</dt><dd id="intake">–</dd></dl>
  <p class="muted" id="fetcher-error"></p>
  <button type="button" id="wake">Wake up</button></section>
<section class="card"><h2>Memory</h2>
  <meter id="memory-gauge" min="0" max="1" value="0" low="0.8" high="0.95" optimum="0.2"></meter>
  <p id="memory-text">–</p>
  <svg id="rss-chart" viewBox="0 0 300 80" preserveAspectRatio="none" role="img" aria-label="RSS over the last hour"></svg>
  <p class="muted">RSS over the last hour (samples while main watches the fetcher)</p></section>
<section class="card"><h2>Waiting</h2>
  <dl><dt>Outbox pending</dt><dd id="outbox-pending">–</dd><dt>Oldest waiting</dt><dd id="outbox-age">–</dd></dl>
  <div class="scroll"><table id="queues"><thead><tr><th>job</th><th>side</th><th>queued</th><th>active</th><th>failed 24 h</th></tr></thead><tbody></tbody></table></div></section>
<section class="card"><h2>Emergency override</h2>
  <p id="override-state">–</p>
  <form id="override-form">
    <p class="warning">While the override is on, heavy fetcher jobs run on the main app (one at a time). Use it only while the fetcher is down.</p>
    <label>Reason <input name="reason" required maxlength="500" placeholder="fetcher deploy failing"></label>
    <label>Expires after (minutes, optional) <input name="expiresInMinutes" type="number" min="1" max="10080"></label>
    <button type="submit" class="danger">Switch override on</button>
  </form>
  <button type="button" id="override-off" hidden>Switch override off</button></section>
</div>
<section><h2>Override audit log</h2>
<table id="override-audit"><thead><tr><th>when</th><th>who</th><th>action</th><th>reason</th><th>change</th></tr></thead><tbody></tbody></table></section>`,
  },
  jobs: {
    title: 'Jobs',
    body: `
<h1>Jobs</h1>
<form id="filters" method="get" action="/admin/jobs" class="filters">
  <label>State <select name="state"><option value="">any</option>${['queued', 'forwarding', 'forwarded', 'active', 'completed', 'failed', 'cancelled'].map((s) => `<option>${s}</option>`).join('')}</select></label>
  <label>Name <input name="name" placeholder="demo.heavy"></label>
  <label>Route <select name="route"><option value="">any</option><option>main</option><option>fetcher</option></select></label>
  <label>Payload <input name="payload" placeholder="barcode=737628064502"></label>
  <button type="submit">Filter</button>
</form>
<p class="actions"><button type="button" id="bulk-retry">Retry all matching (failed or cancelled)</button> <button type="button" id="bulk-cancel" class="danger">Cancel all matching</button></p>
<div class="scroll"><table id="jobs"><thead><tr><th>job</th><th>state</th><th>route</th><th>progress</th><th>attempts</th><th>created</th><th></th></tr></thead><tbody></tbody></table></div>
<p><a id="next-page" hidden>Next page →</a></p>
<section class="card"><h2>Run job</h2>
<form id="run-form">
  <label>Job <select id="run-name" name="name"></select></label>
  <label>Payload (JSON) <textarea id="run-payload" name="payload" rows="4">{}</textarea></label>
  <label class="check"><input type="checkbox" id="run-on-main" name="runOnMain"> Emergency override: allow this fetcher job to run on the main app</label>
  <button type="submit">Run</button>
</form></section>`,
  },
  job: {
    title: 'Job',
    body: `
<p><a href="/admin/jobs">← Jobs</a></p>
<h1 id="job-title">Job</h1>
<div class="grid">
<section class="card"><h2>State</h2>
  <p><span id="job-state" class="badge">…</span></p>
  <div class="progress"><div id="progress-bar"></div></div><p id="progress-text">–</p>
  <dl><dt>Route</dt><dd id="job-route">–</dd><dt>Why there</dt><dd id="route-reason">–</dd><dt>Attempts</dt><dd id="job-attempts">–</dd>
  <dt>Created</dt><dd id="job-created">–</dd><dt>Finished</dt><dd id="job-finished">–</dd><dt>Error</dt><dd id="job-error">–</dd></dl>
  <p class="actions"><button type="button" id="job-retry">Retry</button> <button type="button" id="job-cancel" class="danger">Cancel</button></p></section>
<section class="card"><h2>Payload</h2><pre id="job-payload"></pre></section>
</div>
<section><h2>Executions</h2>
<table id="executions"><thead><tr><th>attempt</th><th>ran on</th><th>started</th><th>duration</th><th>peak memory</th><th>outcome</th><th>error</th></tr></thead><tbody></tbody></table></section>`,
  },
  cron: {
    title: 'Cron',
    body: `
<h1>Scheduled jobs</h1>
<div class="scroll"><table id="cron"><thead><tr><th>job</th><th>schedule</th><th>next run</th><th>last run</th><th></th></tr></thead><tbody></tbody></table></div>`,
  },
};

const LOGIN = (error: string | null, next: string) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Log in · jobgate</title><link rel="stylesheet" href="/admin/assets/admin.css"></head>
<body data-page="login"><main class="login"><h1>jobgate admin</h1>
${error ? `<p class="error" role="alert">${esc(error)}</p>` : ''}
<form method="post" action="/admin/login"><input type="hidden" name="next" value="${esc(next)}">
<label>Password <input type="password" name="password" autocomplete="current-password" required autofocus></label>
<button type="submit">Log in</button></form></main></body></html>`;

const safeNext = (next: unknown) => (typeof next === 'string' && /^\/admin\/[A-Za-z0-9_\-/?=&%.]*$/.test(next) ? next : '/admin/fetcher_service');

/** The dashboard's HTML pages, its login, and its two static files. */
export function adminPages(auth: AdminAuth): express.Router {
  const router = express.Router();
  router.get('/assets/:file', (req: Request<{ file: string }>, res, next) => {
    const file = ASSETS[req.params.file];
    if (!file) return next();
    res.type(file.type).send(file.body);
  });
  router.get('/login', (req, res) => {
    res.type('html').send(LOGIN(null, safeNext(req.query.next)));
  });
  router.post('/login', express.urlencoded({ extended: false, limit: '4kb' }), async (req: Request, res: Response) => {
    try {
      if (await auth.login(req, res)) {
        req.log.info('admin logged in');
        return res.redirect(303, safeNext(req.body?.next));
      }
      req.log.warn('admin login failed');
      res.status(401).type('html').send(LOGIN('Wrong password.', safeNext(req.body?.next)));
    } catch (err) {
      const status = (err as { code?: string }).code === 'JG_TOO_MANY_REQUESTS' ? 429 : (err as { code?: string }).code === 'JG_FORBIDDEN' ? 403 : 0;
      if (!status) throw err;
      res.status(status).type('html').send(LOGIN(status === 429 ? 'Too many wrong passwords; wait a minute.' : 'Log in from the dashboard itself.', '/admin/fetcher_service'));
    }
  });
  router.all('/login', methodNotAllowed(['GET', 'POST']));
  router.post('/logout', auth.page, async (req, res) => {
    await auth.logout(req, res);
    res.status(204).end();
  });
  router.all('/logout', methodNotAllowed(['POST']));
  router.get('/', (_req, res) => res.redirect(303, '/admin/fetcher_service'));
  router.get('/:page', (req: Request<{ page: string }>, res, next) => {
    // only the pages: anything else (the API, a typo) is not this router's
    if (!Object.hasOwn(PAGES, req.params.page) || req.params.page === 'job') return next('router');
    return auth.page(req, res, next);
  }, (req: Request<{ page: string }>, res) => {
    const page = PAGES[req.params.page]!;
    res.type('html').send(layout(page.title, req.params.page, page.body, req));
  });
  router.get('/jobs/:id', auth.page, (req: Request<{ id: string }>, res) => {
    res.type('html').send(layout(PAGES.job!.title, 'job', PAGES.job!.body, req, { 'job-id': req.params.id }));
  });
  return router;
}

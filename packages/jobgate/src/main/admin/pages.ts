import { readFileSync } from 'node:fs';
import express, { type Request, type Response } from 'express';
import { ErrorCode, JobgateError, methodNotAllowed, mountOf } from '../../support/index.ts';
import type { AdminAuth } from './auth.ts';
import type { AdminReads } from './reads.ts';
import { batchView, catalogueOptions, cronView, esc, fetcherView, jobsView, jobView, overviewView, type View } from './assets/views.js';

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
  'views.js': { type: 'text/javascript; charset=utf-8', body: asset('views.js') },
  'admin.css': { type: 'text/css; charset=utf-8', body: asset('admin.css') },
};

/** An element whose content, attributes and visibility come from a view (the script later sets the same). */
function el(v: View, tag: string, id: string, attrs = ''): string {
  const extra = Object.entries(v.attrs[id] ?? {}).map(([k, value]) => ` ${k}="${esc(value)}"`).join('');
  return `<${tag} id="${id}"${attrs}${extra}${v.hidden[id] ? ' hidden' : ''}>${v.html[id] ?? ''}</${tag}>`;
}
const hidden = (v: View, id: string) => (v.hidden[id] ? ' hidden' : '');

/** The admin's root path under the host app's mount point: every page's <base>, so its links are relative. */
const adminRoot = (res: Response) => `${mountOf(res)}/admin`;

function layout(title: string, page: string, body: string, req: Request, res: Response, options: { attrs?: Record<string, string>; flash?: string } = {}): string {
  const data = Object.entries({ page, ...options.attrs }).map(([k, v]) => ` data-${k}="${esc(v)}"`).join('');
  const nav = [['overview', 'Overview'], ['fetcher_service', 'Fetcher'], ['jobs', 'Jobs'], ['cron', 'Cron']]
    .map(([p, label]) => `<a href="${p}"${p === page || ((page === 'job' || page === 'batch') && p === 'jobs') ? ' aria-current="page"' : ''}>${label}</a>`)
    .join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<base href="${esc(adminRoot(res))}/">
<meta name="csrf-token" content="${esc(req.admin?.csrfToken ?? '')}">
<title>${esc(title)} · jobgate</title><link rel="stylesheet" href="assets/admin.css"><script type="module" src="assets/admin.js"></script></head>
<body${data}>
<header><strong class="brand">jobgate</strong><nav>${nav}</nav>${req.admin?.via === 'session' ? '<button type="button" id="logout" class="link">Log out</button>' : ''}</header>
<main><div id="flash" role="status" aria-live="polite"${options.flash ? ' class="error"' : ''}>${esc(options.flash ?? '')}</div>${body}</main>
</body></html>`;
}

const fetcherPage = (v: View) => `
<h1>Fetcher service</h1>
<div class="grid">
<section class="card" id="state-card"><h2>State</h2>
  <p>${el(v, 'span', 'fetcher-state')} ${el(v, 'span', 'fetcher-waking', ' class="badge waking"')} <span id="override-badge" class="badge warn"${hidden(v, 'override-badge')}>override on</span></p>
  <dl><dt>Last check</dt>${el(v, 'dd', 'checked-at')}<dt>Latency</dt>${el(v, 'dd', 'latency')}<dt>Version</dt>${el(v, 'dd', 'version')}
  <dt>Uptime</dt>${el(v, 'dd', 'uptime')}<dt>Intake</dt>${el(v, 'dd', 'intake')}</dl>
  ${el(v, 'p', 'fetcher-error', ' class="muted"')}
  <button type="button" id="wake">Wake up</button></section>
<section class="card"><h2>Memory</h2>
  ${el(v, 'div', 'memory')}
  ${el(v, 'svg', 'rss-chart', ' viewBox="0 0 300 80" preserveAspectRatio="none" role="img" aria-label="RSS over the last hour"')}
  <p class="muted">RSS over the last hour (samples while main watches the fetcher)</p></section>
<section class="card"><h2>Emergency override</h2>
  ${el(v, 'p', 'override-state')}
  <form id="override-form"${hidden(v, 'override-form')}>
    <p class="warning">While the override is on, heavy fetcher jobs run on the main app (one at a time). Use it only while the fetcher is down.</p>
    <label>Reason <input name="reason" required maxlength="500" placeholder="fetcher deploy failing"></label>
    <label>Expires after (minutes, optional) <input name="expiresInMinutes" type="number" min="1" max="10080"></label>
    <button type="submit" class="danger">Switch override on</button>
  </form>
  <button type="button" id="override-off"${hidden(v, 'override-off')}>Switch override off</button></section>
<section class="card wide"><h2>Waiting</h2>
  <dl><dt>Outbox pending</dt>${el(v, 'dd', 'outbox-pending')}<dt>Oldest waiting</dt>${el(v, 'dd', 'outbox-age')}</dl>
  ${el(v, 'ul', 'outbox-refused', ' class="warning" aria-label="jobs the fetcher refuses for now"')}
  ${el(v, 'p', 'events-set-aside', ' class="warning"')}
  <div class="scroll"><table id="queues"><thead><tr><th>job</th><th>side</th><th>queued</th><th>active</th><th>failed 24 h</th></tr></thead>${el(v, 'tbody', 'queues-body')}</table></div></section>
</div>
<section><h2>Override audit log</h2>
<div class="scroll"><table id="override-audit"><thead><tr><th>when</th><th>who</th><th>action</th><th>reason</th><th>change</th></tr></thead>${el(v, 'tbody', 'audit-body')}</table></div></section>`;

const STATES = ['queued', 'forwarding', 'forwarded', 'active', 'completed', 'failed', 'cancelled'];
const option = (value: string, label: string, chosen: string | undefined) => `<option value="${esc(value)}"${value === chosen ? ' selected' : ''}>${esc(label)}</option>`;

const jobsPage = (v: View, filter: Record<string, string>, catalogue: string) => `
<h1>Jobs</h1>
<form id="filters" method="get" action="jobs" class="filters">
  <label>State <select name="state">${option('', 'any', filter.state ?? '')}${STATES.map((s) => option(s, s, filter.state)).join('')}</select></label>
  <label>Name <input name="name" placeholder="demo.heavy" value="${esc(filter.name ?? '')}"></label>
  <label>Route <select name="route">${option('', 'any', filter.route ?? '')}${option('main', 'main', filter.route)}${option('fetcher', 'fetcher', filter.route)}</select></label>
  <label>Payload <input name="payload" placeholder="barcode=737628064502" value="${esc(filter.payload ?? '')}"></label>
  <button type="submit">Filter</button>
</form>
<p class="actions"><button type="button" id="bulk-retry">Retry all matching (failed or cancelled)</button> <button type="button" id="bulk-cancel" class="danger">Cancel all matching</button></p>
<div class="scroll"><table id="jobs"><thead><tr><th>job</th><th>state</th><th>route</th><th>progress</th><th>attempts</th><th>created</th><th></th></tr></thead>${el(v, 'tbody', 'jobs-body')}</table></div>
<p>${el(v, 'a', 'next-page')}</p>
<section class="card"><h2>Run job</h2>
<form id="run-form">
  <label>Job <select id="run-name" name="name">${catalogue}</select></label>
  <label>Payload (JSON) <textarea id="run-payload" name="payload" rows="4">{}</textarea></label>
  <label class="check"><input type="checkbox" id="run-on-main" name="runOnMain"> Emergency override: allow this fetcher job to run on the main app</label>
  <button type="submit">Run</button>
</form></section>`;

const jobPage = (v: View) => `
<p><a href="jobs">← Jobs</a></p>
${el(v, 'h1', 'job-title')}
<div class="grid">
<section class="card"><h2>State</h2>
  <p>${el(v, 'span', 'job-state')} ${el(v, 'span', 'job-paused', ' class="muted"')}</p>
  ${el(v, 'progress', 'progress-bar', ' max="100" aria-label="progress"')}${el(v, 'p', 'progress-text')}
  <dl><dt>Route</dt>${el(v, 'dd', 'job-route')}<dt>Why there</dt>${el(v, 'dd', 'route-reason')}<dt>Attempts</dt>${el(v, 'dd', 'job-attempts')}
  <dt>Created</dt>${el(v, 'dd', 'job-created')}<dt>Finished</dt>${el(v, 'dd', 'job-finished')}<dt>Error</dt>${el(v, 'dd', 'job-error')}<dt>Batch</dt>${el(v, 'dd', 'job-batch')}</dl>
  <p class="actions"><button type="button" id="job-retry"${hidden(v, 'job-retry')}>Retry</button> <button type="button" id="job-cancel" class="danger"${hidden(v, 'job-cancel')}>Cancel</button></p></section>
<section class="card"><h2>Payload</h2>${el(v, 'pre', 'job-payload')}</section>
</div>
<section><h2>Executions</h2>
<div class="scroll"><table id="executions"><thead><tr><th>attempt</th><th>ran on</th><th>started</th><th>duration</th><th>peak memory</th><th>outcome</th><th>error</th></tr></thead>${el(v, 'tbody', 'executions-body')}</table></div></section>`;

const cronPage = (v: View, catalogue: string) => `
<h1>Scheduled jobs</h1>
<div class="scroll"><table id="cron"><thead><tr><th>job</th><th>schedule</th><th>next runs</th><th>last runs</th><th></th></tr></thead>${el(v, 'tbody', 'cron-body')}</table></div>
<section class="card"><h2 id="schedule-form-title">New schedule</h2>
<form id="schedule-form">
  <input type="hidden" name="id" value="">
  <label>Job <select name="name" id="schedule-name">${catalogue}</select></label>
  <label>Schedule <input name="schedule" required maxlength="200" placeholder="0 6 * * 1-5"></label>
  <label>Time zone <input name="timeZone" maxlength="64" value="UTC" placeholder="Europe/Berlin"></label>
  <label>Payload (JSON) <textarea name="payload" rows="3">{}</textarea></label>
  <label class="check"><input type="checkbox" name="enabled" checked> Enabled</label>
  <button type="submit" id="schedule-save">Save schedule</button> <button type="button" id="schedule-new">New instead</button>
</form></section>`;

const overviewPage = (v: View) => `
<h1>Overview</h1>
<div class="grid">
<section class="card"><h2>Fetcher</h2><p>${el(v, 'span', 'ov-fetcher')}</p><p>${el(v, 'span', 'ov-memory')}</p></section>
<section class="card"><h2>Emergency override</h2><p>${el(v, 'span', 'ov-override')}</p></section>
<section class="card wide"><h2>Paused</h2>${el(v, 'ul', 'ov-pauses', ' class="plain"')}
<form id="pause-form" class="filters">
  <label>Job <select name="name" id="pause-name"><option value="*">every job (*)</option>${v.html['pause-options'] ?? ''}</select></label>
  <label>Reason <input name="reason" required maxlength="500" placeholder="provider API is down"></label>
  <label>For (minutes, optional) <input name="expiresInMinutes" type="number" min="1" max="43200"></label>
  <button type="submit" class="danger">Pause</button>
</form></section>
</div>
<section><h2>Jobs <span class="window"><a id="window-hour" href="overview?window=hour">last hour</a> · <a id="window-day" href="overview?window=day">last day</a></span></h2>
<p class="muted">${el(v, 'span', 'ov-window')} · as of ${el(v, 'span', 'ov-generated')}</p>
<div class="scroll"><table id="overview"><thead><tr><th>job</th><th>side</th><th>finished</th><th>completed</th><th>failed</th><th>wait p50 / p95</th><th>waiting</th><th>running</th></tr></thead>${el(v, 'tbody', 'overview-body')}</table></div></section>`;

const batchPage = (v: View) => `
<p><a href="jobs">← Jobs</a></p>
<h1>Batch</h1>
<div class="grid">
<section class="card"><h2>Progress</h2>
  <p>${el(v, 'span', 'batch-state')}</p>
  ${el(v, 'progress', 'batch-progress', ' aria-label="jobs ended"')}${el(v, 'p', 'batch-progress-text')}
  <dl><dt>Opened by</dt>${el(v, 'dd', 'batch-parent')}<dt>Created</dt>${el(v, 'dd', 'batch-created')}<dt>Finished</dt>${el(v, 'dd', 'batch-finished')}</dl>
  <p class="actions"><button type="button" id="batch-retry"${hidden(v, 'batch-retry')}>Retry the failed jobs</button></p></section>
<section class="card"><h2>Properties</h2>${el(v, 'pre', 'batch-properties')}</section>
</div>
<section><h2>Callbacks</h2><div class="scroll"><table id="batch-callbacks-table"><thead><tr><th>on</th><th>job</th><th>state</th></tr></thead>${el(v, 'tbody', 'batch-callbacks')}</table></div></section>
<section><h2>Failed jobs</h2><div class="scroll"><table id="batch-failed-table"><thead><tr><th>job</th><th>name</th><th>failed</th><th>error</th></tr></thead>${el(v, 'tbody', 'batch-failed')}</table></div></section>`;

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

/** The filter fields the jobs page keeps in its links (raw strings; the reads check them). */
const filterOf = (query: Request['query']) =>
  Object.fromEntries(['state', 'name', 'route', 'payload'].flatMap((k) => (typeof query[k] === 'string' && query[k] ? [[k, query[k] as string]] : [])));

/**
 * The dashboard's HTML pages, its login, and its static files. Each page is rendered with the
 * state it shows (the same reads the admin API answers, through the same views the script
 * refreshes with), so its first paint is the truth without any script.
 */
export function adminPages(auth: AdminAuth, reads: AdminReads): express.Router {
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

  const html = (res: Response, body: string, status = 200) => res.status(status).type('html').send(body);
  router.get('/fetcher_service', auth.page, async (req, res) => {
    const [status, { audit }] = await Promise.all([reads.fetcherService(), reads.override()]);
    html(res, layout('Fetcher service', 'fetcher_service', fetcherPage(fetcherView(status, audit)), req, res));
  });
  router.get('/jobs', auth.page, async (req, res) => {
    const filter = filterOf(req.query);
    const catalogue = catalogueOptions(reads.catalogue().jobs);
    try {
      const page = await reads.listJobs(req.query);
      html(res, layout('Jobs', 'jobs', jobsPage(jobsView(page, filter), filter, catalogue), req, res));
    } catch (err) {
      if (!(err instanceof JobgateError) || err.code !== ErrorCode.requestInvalid) throw err;
      // a hand-edited address: show the page with what is wrong, not a JSON problem
      const why = (err.errors ?? []).map((e) => `${e.path}: ${e.message}`).join('; ');
      html(res, layout('Jobs', 'jobs', jobsPage(jobsView({ jobs: [], nextCursor: null }, filter), filter, catalogue), req, res, { flash: `The filter is invalid: ${why}` }), 422);
    }
  });
  router.get('/jobs/:id', auth.page, async (req: Request<{ id: string }>, res) => {
    try {
      const job = await reads.job(req.params.id);
      html(res, layout(`Job ${job.name}`, 'job', jobPage(jobView(job)), req, res, { attrs: { 'job-id': job.id } }));
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code !== ErrorCode.jobNotFound && code !== ErrorCode.requestInvalid) throw err;
      html(res, layout('Job', 'missing', `<p><a href="jobs">← Jobs</a></p><h1>No such job</h1><p>No job has id <code>${esc(req.params.id)}</code>.</p>`, req, res), 404);
    }
  });
  router.get('/cron', auth.page, async (req, res) => {
    html(res, layout('Cron', 'cron', cronPage(cronView((await reads.cron()).schedules), catalogueOptions(reads.catalogue().jobs)), req, res));
  });
  router.get('/overview', auth.page, async (req, res) => {
    try {
      const o = await reads.overview(req.query);
      const v = overviewView(o);
      v.html['pause-options'] = reads.catalogue().jobs.map((j) => `<option value="${esc(j.name)}">${esc(j.name)}</option>`).join('');
      html(res, layout('Overview', 'overview', overviewPage(v), req, res, { attrs: { window: o.window } }));
    } catch (err) {
      if (!(err instanceof JobgateError) || err.code !== ErrorCode.requestInvalid) throw err;
      res.redirect(303, `${adminRoot(res)}/overview`);
    }
  });
  router.get('/batches/:id', auth.page, async (req: Request<{ id: string }>, res) => {
    try {
      const batch = await reads.batch(req.params.id);
      html(res, layout('Batch', 'batch', batchPage(batchView(batch)), req, res, { attrs: { 'batch-id': batch.id } }));
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code !== ErrorCode.notFound && code !== ErrorCode.requestInvalid) throw err;
      html(res, layout('Batch', 'missing', `<p><a href="jobs">← Jobs</a></p><h1>No such batch</h1><p>No batch has id <code>${esc(req.params.id)}</code>.</p>`, req, res), 404);
    }
  });
  return router;
}

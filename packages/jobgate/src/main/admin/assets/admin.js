// The dashboard's only script (an ES module, no build step, no dependencies). The server renders
// each page's first paint with views.js; this script keeps the page live with the same views
// (polling the admin API every 2 s) and sends state changes as JSON with the session's CSRF token.
import { cronView, fetcherView, jobsView, jobView } from './views.js';

const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? '';
const $ = (sel) => document.querySelector(sel);
const POLL_MS = 2000;

async function api(method, path, body) {
  const res = await fetch(`api${path}`, {
    method,
    headers: { accept: 'application/json', ...(body !== undefined ? { 'content-type': 'application/json' } : {}), 'x-csrf-token': csrf },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  if (res.status === 401) {
    location.href = `login?next=${encodeURIComponent(location.pathname + location.search)}`;
    throw new Error('logged out');
  }
  const json = res.status === 204 ? null : await res.json();
  if (!res.ok) throw new Error(json?.errors?.map((e) => `${e.path}: ${e.message}`).join('; ') || json?.detail || json?.title || res.statusText);
  return json;
}

function flash(message, isError = false) {
  const el = $('#flash');
  el.textContent = message;
  el.className = isError ? 'error' : '';
}

/** What each element was last set to, so a refresh that changes nothing touches nothing (focus, selection). */
const shown = new Map();
/** Puts a view (see views.js) on the page: the same HTML, attributes and visibility the server rendered. */
function apply(view) {
  for (const [id, html] of Object.entries(view.html)) {
    const el = document.getElementById(id);
    if (!el || shown.get(id) === html) continue;
    el.innerHTML = html;
    shown.set(id, html);
  }
  for (const [id, attrs] of Object.entries(view.attrs)) {
    const el = document.getElementById(id);
    for (const [k, v] of Object.entries(attrs)) if (el && el.getAttribute(k) !== v) el.setAttribute(k, v);
  }
  for (const [id, hidden] of Object.entries(view.hidden)) {
    const el = document.getElementById(id);
    if (el) el.hidden = hidden;
  }
}

/** Refreshes every POLL_MS, the first time after one interval: the server already painted the page. */
function poll(refresh) {
  const tick = async () => {
    try {
      await refresh();
    } catch (err) {
      if (err.message !== 'logged out') flash(`Could not refresh: ${err.message}`, true);
    }
    setTimeout(tick, POLL_MS);
  };
  setTimeout(tick, POLL_MS);
}

/** Runs an action from a button, shows what happened, and refreshes. */
function action(button, run, refresh) {
  button?.addEventListener('click', async () => {
    button.disabled = true;
    try {
      const message = await run();
      if (message) flash(message);
      await refresh?.();
    } catch (err) {
      flash(err.message, true);
    } finally {
      button.disabled = false;
    }
  });
}

/** Clicks on buttons that views render (rows come and go with each refresh): `data-action` names the handler. */
function onAction(handlers) {
  document.addEventListener('click', (e) => {
    const button = e.target.closest?.('button[data-action]');
    const handler = button && handlers[button.dataset.action];
    if (handler) handler(button.dataset, button);
  });
}

// ---------------------------------------------------------------- fetcher service

function fetcherPage() {
  async function refresh() {
    const [s, { audit }] = await Promise.all([api('GET', '/fetcher_service'), api('GET', '/override')]);
    apply(fetcherView(s, audit));
  }
  onAction({
    'resend-events': async (_data, button) => {
      button.disabled = true;
      try {
        const r = await api('POST', '/fetcher_service/resend-events');
        flash(`${r.resent} set-aside job events sent again.`);
        await refresh();
      } catch (err) {
        flash(err.message, true);
      } finally {
        button.disabled = false;
      }
    },
  });
  action($('#wake'), async () => {
    flash('Waking the fetcher…');
    const r = await api('POST', '/fetcher_service/wake');
    return r.state === 'awake' ? `Fetcher awake after ${r.waitedMs} ms.` : `Fetcher still ${r.state}: ${r.error ?? ''}`;
  }, refresh);
  $('#override-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const form = new FormData(e.target);
    const minutes = form.get('expiresInMinutes');
    if (!confirm('Switch the emergency override on? Heavy fetcher jobs will run on the main app until you switch it off.')) return;
    try {
      await api('PUT', '/override', { enabled: true, reason: form.get('reason'), ...(minutes ? { expiresInMinutes: Number(minutes) } : {}) });
      flash('Emergency override is on.');
      e.target.reset();
      await refresh();
    } catch (err) {
      flash(err.message, true);
    }
  });
  action($('#override-off'), async () => {
    const reason = prompt('Why switch the override off?', 'fetcher is back');
    if (!reason) return null;
    await api('PUT', '/override', { enabled: false, reason });
    return 'Emergency override is off.';
  }, refresh);
  poll(refresh);
}

// ---------------------------------------------------------------- jobs

function filterFromQuery() {
  const q = new URLSearchParams(location.search);
  const f = {};
  for (const k of ['state', 'name', 'route', 'payload']) if (q.get(k)) f[k] = q.get(k);
  return f;
}

function jobsPage() {
  const filter = filterFromQuery();
  const cursor = new URLSearchParams(location.search).get('cursor');
  async function refresh() {
    const q = new URLSearchParams({ ...filter, limit: '50', ...(cursor ? { cursor } : {}) });
    apply(jobsView(await api('GET', `/jobs?${q}`), filter));
  }
  async function rowAction(kind, { jobId, jobName }, button) {
    button.disabled = true;
    try {
      const r = await api('POST', `/jobs/${jobId}/${kind}`);
      flash(kind === 'retry' ? `Retried ${jobName} as a new job ${r.id}.` : `Cancelled ${jobName}.`);
      await refresh();
    } catch (err) {
      flash(err.message, true);
    } finally {
      button.disabled = false;
    }
  }
  onAction({ retry: (data, button) => rowAction('retry', data, button), cancel: (data, button) => rowAction('cancel', data, button) });
  for (const kind of ['retry', 'cancel']) {
    action($(`#bulk-${kind}`), async () => {
      if (!confirm(`${kind === 'retry' ? 'Retry' : 'Cancel'} every job matching the filter?`)) return null;
      const r = await api('POST', '/jobs/bulk', { action: kind, filter });
      return `${kind === 'retry' ? 'Retried' : 'Cancelled'} ${r.done} of ${r.matched} matching jobs${r.truncated ? ' (stopped at the limit; run it again)' : ''}.`;
    }, refresh);
  }
  $('#run-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    let payload;
    try {
      payload = JSON.parse($('#run-payload').value || '{}');
    } catch (err) {
      return flash(`The payload is not JSON: ${err.message}`, true);
    }
    try {
      const job = await api('POST', `/jobs/${encodeURIComponent($('#run-name').value)}/run`, { payload, runOnMain: $('#run-on-main').checked });
      flash(`Enqueued ${job.name} (${job.route}${job.routeReason !== 'definition' ? `, ${job.routeReason}` : ''}).`);
      location.href = `jobs/${job.id}`;
    } catch (err) {
      flash(err.message, true);
    }
  });
  poll(refresh);
}

// ---------------------------------------------------------------- one job

function jobPage() {
  const id = document.body.dataset.jobId;
  async function refresh() {
    apply(jobView(await api('GET', `/jobs/${id}`)));
  }
  action($('#job-retry'), async () => {
    const again = await api('POST', `/jobs/${id}/retry`);
    location.href = `jobs/${again.id}`;
  });
  action($('#job-cancel'), async () => {
    await api('POST', `/jobs/${id}/cancel`);
    return 'Cancelled.';
  }, refresh);
  poll(refresh);
}

// ---------------------------------------------------------------- cron

function cronPage() {
  async function refresh() {
    apply(cronView((await api('GET', '/schedules')).schedules));
  }
  onAction({
    'run-schedule': async ({ scheduleId }) => {
      try {
        const job = await api('POST', `/schedules/${encodeURIComponent(scheduleId)}/run`);
        flash(`Enqueued ${job.name}.`);
        await refresh();
      } catch (err) {
        flash(err.message, true);
      }
    },
  });
  poll(refresh);
}

// a module script runs once the document is parsed
{
  $('#logout')?.addEventListener('click', async () => {
    await fetch('logout', { method: 'POST', headers: { 'x-csrf-token': csrf } });
    location.href = 'login';
  });
  ({ fetcher_service: fetcherPage, jobs: jobsPage, job: jobPage, cron: cronPage })[document.body.dataset.page]?.();
}

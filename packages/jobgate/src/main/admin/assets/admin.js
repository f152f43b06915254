// The dashboard's only script (an ES module, no build step, no dependencies). The server renders
// each page's first paint with views.js; this script keeps the page live with the same views
// (polling the admin API every 2 s) and sends state changes as JSON with the session's CSRF token.
import { batchView, cronView, fetcherView, jobsView, jobView, overviewView } from './views.js';

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
  const form = $('#schedule-form');
  const editing = (schedule) => {
    form.elements.id.value = schedule?.id ?? '';
    form.elements.name.disabled = Boolean(schedule);
    if (schedule) {
      form.elements.name.value = schedule.name;
      form.elements.schedule.value = schedule.schedule;
      form.elements.timeZone.value = schedule.timeZone;
      form.elements.payload.value = JSON.stringify(schedule.payload);
      form.elements.enabled.checked = schedule.enabled;
    } else form.reset();
    $('#schedule-form-title').textContent = schedule ? `Edit the schedule of ${schedule.name}` : 'New schedule';
  };
  const run = (what) => async (data) => {
    try {
      flash(await what(data));
      await refresh();
    } catch (err) {
      flash(err.message, true);
    }
  };
  onAction({
    'run-schedule': run(async ({ scheduleId }) => `Enqueued ${(await api('POST', `/schedules/${encodeURIComponent(scheduleId)}/run`)).name}.`),
    'toggle-schedule': run(async ({ scheduleId, enabled }) => {
      const s = await api('PATCH', `/schedules/${encodeURIComponent(scheduleId)}`, { enabled: enabled !== 'true' });
      return `${s.name}: ${s.enabled ? 'enabled' : 'disabled'}.`;
    }),
    'delete-schedule': run(async ({ scheduleId }) => {
      await api('DELETE', `/schedules/${encodeURIComponent(scheduleId)}`);
      editing(null);
      return 'Schedule deleted.';
    }),
    'edit-schedule': ({ schedule }) => editing(JSON.parse(schedule)),
  });
  $('#schedule-new').addEventListener('click', () => editing(null));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    let payload;
    try {
      payload = JSON.parse(form.elements.payload.value || '{}');
    } catch (err) {
      return flash(`The payload is not JSON: ${err.message}`, true);
    }
    const fields = { schedule: form.elements.schedule.value, timeZone: form.elements.timeZone.value || 'UTC', payload, enabled: form.elements.enabled.checked };
    const id = form.elements.id.value;
    await run(async () => {
      const s = id ? await api('PATCH', `/schedules/${encodeURIComponent(id)}`, fields) : await api('POST', '/schedules', { name: form.elements.name.value, ...fields });
      editing(null);
      return `Saved: ${s.name} at ${s.schedule} (${s.timeZone}); next ${s.nextRuns[0] ?? 'never'}.`;
    })();
  });
  poll(refresh);
}

// ---------------------------------------------------------------- overview

function overviewPage() {
  const window = document.body.dataset.window ?? 'hour';
  async function refresh() {
    apply(overviewView(await api('GET', `/overview?window=${window}`)));
  }
  onAction({
    resume: async ({ jobName }) => {
      try {
        await api('POST', `/jobs/${encodeURIComponent(jobName)}/resume`, {});
        flash(`Resumed ${jobName === '*' ? 'every job' : jobName}.`);
        await refresh();
      } catch (err) {
        flash(err.message, true);
      }
    },
  });
  $('#pause-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = e.target.elements;
    try {
      const p = await api('POST', `/jobs/${encodeURIComponent(f.name.value)}/pause`, { reason: f.reason.value, ...(f.expiresInMinutes.value ? { expiresInMinutes: Number(f.expiresInMinutes.value) } : {}) });
      flash(`Paused ${p.name === '*' ? 'every job' : p.name}: no new attempt starts until it is resumed.`);
      e.target.reset();
      await refresh();
    } catch (err) {
      flash(err.message, true);
    }
  });
  poll(refresh);
}

// ---------------------------------------------------------------- batch

function batchPage() {
  const id = document.body.dataset.batchId;
  const refresh = async () => apply(batchView(await api('GET', `/batches/${id}`)));
  action($('#batch-retry'), async () => {
    const r = await api('POST', `/batches/${id}/retry-failed`);
    return `Retried ${r.retried.length} failed job${r.retried.length === 1 ? '' : 's'}${r.failures.length ? `; ${r.failures.length} could not be retried` : ''}.`;
  }, refresh);
  poll(refresh);
}

// a module script runs once the document is parsed
{
  $('#logout')?.addEventListener('click', async () => {
    await fetch('logout', { method: 'POST', headers: { 'x-csrf-token': csrf } });
    location.href = 'login';
  });
  ({ overview: overviewPage, fetcher_service: fetcherPage, jobs: jobsPage, job: jobPage, cron: cronPage, batch: batchPage })[document.body.dataset.page]?.();
}

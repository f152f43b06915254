// The dashboard's only script: reads the admin API, fills the page, polls every 2 s, and sends
// state changes as JSON with the session's CSRF token. No build step, no dependencies.
'use strict';

const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? '';
const $ = (sel) => document.querySelector(sel);
const POLL_MS = 2000;

async function api(method, path, body) {
  const res = await fetch(`/admin/api${path}`, {
    method,
    headers: { accept: 'application/json', ...(body !== undefined ? { 'content-type': 'application/json' } : {}), 'x-csrf-token': csrf },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  if (res.status === 401) {
    location.href = `/admin/login?next=${encodeURIComponent(location.pathname + location.search)}`;
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

/** A DOM element from a tag, attributes and children (strings become text: never HTML). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : String(c));
  return el;
}

const when = (iso) => (iso ? new Date(iso).toLocaleString() : '–');
const ago = (iso) => {
  if (!iso) return '–';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 60 ? `${s} s ago` : s < 3600 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`;
};
const seconds = (s) => (s < 60 ? `${Math.round(s)} s` : s < 3600 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`);
const badge = (state) => h('span', { class: `badge ${state}` }, state);
const setText = (sel, text) => {
  const el = $(sel);
  if (el) el.textContent = text;
};

function poll(refresh) {
  let stopped = false;
  const tick = async () => {
    if (stopped) return;
    try {
      await refresh();
    } catch (err) {
      if (err.message !== 'logged out') flash(`Could not refresh: ${err.message}`, true);
    }
    setTimeout(tick, POLL_MS);
  };
  tick();
  return () => (stopped = true);
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

// ---------------------------------------------------------------- fetcher service

function fetcherPage() {
  async function refresh() {
    const s = await api('GET', '/fetcher_service');
    const f = s.fetcher;
    const stateEl = $('#fetcher-state');
    stateEl.textContent = f.state;
    stateEl.className = `badge ${f.state}`;
    setText('#checked-at', f.checkedAt ? `${when(f.checkedAt)} (${ago(f.checkedAt)})` : '–');
    setText('#latency', f.latencyMs !== null ? `${f.latencyMs} ms` : '–');
    setText('#version', f.status?.version ?? '–');
    setText('#uptime', f.status ? seconds(f.status.uptimeSeconds) : '–');
    setText('#intake', f.status?.intake ?? '–');
    setText('#fetcher-error', f.state === 'awake' ? '' : (f.error ?? ''));
    const mem = f.status?.memory;
    const gauge = $('#memory-gauge');
    if (mem) {
      gauge.max = mem.limitMb;
      gauge.low = mem.limitMb * 0.8;
      gauge.high = mem.limitMb * 0.95;
      gauge.optimum = 0;
      gauge.value = mem.rssMb;
      setText('#memory-text', `RSS ${mem.rssMb} MB of ${mem.limitMb} MB (${Math.round((mem.rssMb / mem.limitMb) * 100)} %), heap ${mem.heapUsedMb} MB, peak ${mem.peakRssMb} MB`);
    } else setText('#memory-text', 'no figures: the fetcher is not answering');
    drawChart(s.history);
    setText('#outbox-pending', String(s.outbox.pending));
    setText('#outbox-age', s.outbox.pending ? seconds(s.outbox.oldestAgeSeconds) : '–');
    const rows = [];
    for (const [side, queues] of [['main', s.queues.main], ['fetcher', s.queues.fetcher]]) {
      for (const [name, q] of Object.entries(queues ?? {})) rows.push(h('tr', {}, h('td', {}, name), h('td', {}, side), h('td', {}, q.queued), h('td', {}, q.active), h('td', {}, q.failed)));
    }
    $('#queues tbody').replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'nothing waiting'))]));
    const o = s.override;
    $('#override-badge').hidden = !o.enabled;
    setText('#override-state', o.enabled ? `ON since ${when(o.since)} by ${o.by}: “${o.reason}”${o.expiresAt ? `; expires ${when(o.expiresAt)}` : ''}` : 'Off: fetcher jobs go to the fetcher.');
    $('#override-form').hidden = o.enabled;
    $('#override-off').hidden = !o.enabled;
    const { audit } = await api('GET', '/override');
    $('#override-audit tbody').replaceChildren(
      ...audit.map((a) => h('tr', {}, h('td', {}, when(a.at)), h('td', {}, a.actor), h('td', {}, a.action), h('td', {}, a.reason ?? ''), h('td', {}, `${a.oldValue.enabled ? 'on' : 'off'} → ${a.newValue.enabled ? 'on' : 'off'}`))),
    );
  }
  function drawChart(history) {
    const svg = $('#rss-chart');
    if (!history.length) return svg.replaceChildren();
    const limit = history.at(-1).limitMb;
    const t0 = Date.now() - 3600_000;
    const x = (iso) => ((Date.parse(iso) - t0) / 3600_000) * 300;
    const y = (mb) => 80 - (Math.min(mb, limit) / limit) * 78;
    const ns = 'http://www.w3.org/2000/svg';
    const line = document.createElementNS(ns, 'polyline');
    line.setAttribute('points', history.map((p) => `${x(p.at).toFixed(1)},${y(p.rssMb).toFixed(1)}`).join(' '));
    const soft = document.createElementNS(ns, 'line');
    Object.entries({ x1: 0, x2: 300, y1: y(limit * 0.8), y2: y(limit * 0.8) }).forEach(([k, v]) => soft.setAttribute(k, v));
    const last = document.createElementNS(ns, 'circle');
    Object.entries({ cx: x(history.at(-1).at), cy: y(history.at(-1).rssMb), r: 2.5 }).forEach(([k, v]) => last.setAttribute(k, v));
    svg.replaceChildren(soft, line, last);
  }
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
  const form = $('#filters');
  for (const [k, v] of Object.entries(filter)) form.elements[k].value = v;
  const cursor = new URLSearchParams(location.search).get('cursor');
  async function refresh() {
    const q = new URLSearchParams({ ...filter, limit: '50', ...(cursor ? { cursor } : {}) });
    const page = await api('GET', `/jobs?${q}`);
    $('#jobs tbody').replaceChildren(
      ...(page.jobs.length ? page.jobs : [null]).map((j) =>
        j === null
          ? h('tr', {}, h('td', { colspan: 7, class: 'muted' }, 'no job matches'))
          : h(
              'tr',
              { 'data-job-id': j.id },
              h('td', {}, h('a', { href: `/admin/jobs/${j.id}` }, j.name), h('div', { class: 'muted' }, j.id.slice(0, 8))),
              h('td', {}, badge(j.state), j.error && j.state !== 'completed' ? h('div', { class: 'muted' }, `${j.error.code}: ${j.error.message}`) : null),
              h('td', {}, j.route, j.routeReason !== 'definition' ? h('div', { class: 'muted' }, j.routeReason) : null),
              h('td', {}, `${j.progress} %`),
              h('td', {}, `${j.attempts}/${j.maxAttempts}`),
              h('td', {}, when(j.createdAt)),
              h(
                'td',
                {},
                ['failed', 'cancelled'].includes(j.state) ? h('button', { type: 'button', class: 'retry', onclick: () => rowAction('retry', j) }, 'Retry') : null,
                ['queued', 'forwarding', 'forwarded', 'active'].includes(j.state) ? h('button', { type: 'button', class: 'cancel danger', onclick: () => rowAction('cancel', j) }, 'Cancel') : null,
              ),
            ),
      ),
    );
    const next = $('#next-page');
    next.hidden = !page.nextCursor;
    if (page.nextCursor) next.href = `/admin/jobs?${new URLSearchParams({ ...filter, cursor: page.nextCursor })}`;
  }
  async function rowAction(kind, job) {
    try {
      const r = await api('POST', `/jobs/${job.id}/${kind}`);
      flash(kind === 'retry' ? `Retried ${job.name} as a new job ${r.id}.` : `Cancelled ${job.name}.`);
      await refresh();
    } catch (err) {
      flash(err.message, true);
    }
  }
  for (const kind of ['retry', 'cancel']) {
    action($(`#bulk-${kind}`), async () => {
      if (!confirm(`${kind === 'retry' ? 'Retry' : 'Cancel'} every job matching the filter?`)) return null;
      const r = await api('POST', '/jobs/bulk', { action: kind, filter });
      return `${kind === 'retry' ? 'Retried' : 'Cancelled'} ${r.done} of ${r.matched} matching jobs${r.truncated ? ' (stopped at the limit; run it again)' : ''}.`;
    }, refresh);
  }
  api('GET', '/catalogue').then(({ jobs }) => {
    $('#run-name').replaceChildren(...jobs.map((j) => h('option', { value: j.name }, `${j.name}${j.runsOnFetcher ? ' (fetcher)' : ''}`)));
  });
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
      location.href = `/admin/jobs/${job.id}`;
    } catch (err) {
      flash(err.message, true);
    }
  });
  poll(refresh);
}

// ---------------------------------------------------------------- one job

function jobPage() {
  const id = document.body.dataset.jobId;
  const REASONS = { definition: 'its definition', override: 'the emergency override', 'run-on-main': 'a per-run override (run on main)' };
  async function refresh() {
    const j = await api('GET', `/jobs/${id}`);
    setText('#job-title', j.name);
    const st = $('#job-state');
    st.textContent = j.state;
    st.className = `badge ${j.state}`;
    $('#progress-bar').style.width = `${j.progress}%`;
    setText('#progress-text', `${j.progress} %${j.progressMessage ? `: ${j.progressMessage}` : ''}`);
    setText('#job-route', j.route);
    setText('#route-reason', `${j.route === 'fetcher' ? 'sent to the fetcher' : 'runs on main'} because of ${REASONS[j.routeReason] ?? j.routeReason}`);
    setText('#job-attempts', `${j.attempts} of ${j.maxAttempts}`);
    setText('#job-created', when(j.createdAt));
    setText('#job-finished', when(j.finishedAt));
    setText('#job-error', j.error ? `${j.error.code}: ${j.error.message}` : '–');
    setText('#job-payload', JSON.stringify(j.payload, null, 2));
    $('#job-retry').hidden = !['failed', 'cancelled'].includes(j.state);
    $('#job-cancel').hidden = !['queued', 'forwarding', 'forwarded', 'active'].includes(j.state);
    $('#executions tbody').replaceChildren(
      ...j.executions.map((e) =>
        h(
          'tr',
          {},
          h('td', {}, e.attempt),
          h('td', {}, e.ranOn),
          h('td', {}, when(e.startedAt)),
          h('td', {}, e.finishedAt ? `${((Date.parse(e.finishedAt) - Date.parse(e.startedAt)) / 1000).toFixed(1)} s` : 'running'),
          h('td', {}, e.peakRssMb !== undefined ? `${e.peakRssMb} MB` : '–'),
          h('td', {}, badge(e.outcome)),
          h('td', {}, e.error ? `${e.error.code}: ${e.error.message}` : ''),
        ),
      ),
    );
  }
  action($('#job-retry'), async () => {
    const again = await api('POST', `/jobs/${id}/retry`);
    location.href = `/admin/jobs/${again.id}`;
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
    const { schedules } = await api('GET', '/cron');
    $('#cron tbody').replaceChildren(
      ...(schedules.length ? schedules : [null]).map((c) =>
        c === null
          ? h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'no job has a cron schedule'))
          : h(
              'tr',
              {},
              h('td', {}, c.name),
              h('td', {}, h('code', {}, c.schedule), h('div', { class: 'muted' }, c.timeZone)),
              h('td', {}, when(c.nextRunAt)),
              h('td', {}, c.last ? [badge(c.last.state), ' ', h('a', { href: `/admin/jobs/${c.last.id}` }, when(c.last.createdAt))] : 'never'),
              h('td', {}, h('button', { type: 'button', onclick: () => runNow(c) }, 'Run now')),
            ),
      ),
    );
  }
  async function runNow(c) {
    try {
      const job = await api('POST', `/jobs/${encodeURIComponent(c.name)}/run`, { payload: c.payload });
      flash(`Enqueued ${c.name}.`);
      await refresh();
      return job;
    } catch (err) {
      flash(err.message, true);
    }
  }
  poll(refresh);
}

document.addEventListener('DOMContentLoaded', () => {
  $('#logout')?.addEventListener('click', async () => {
    await fetch('/admin/logout', { method: 'POST', headers: { 'x-csrf-token': csrf } });
    location.href = '/admin/login';
  });
  ({ fetcher_service: fetcherPage, jobs: jobsPage, job: jobPage, cron: cronPage })[document.body.dataset.page]?.();
});

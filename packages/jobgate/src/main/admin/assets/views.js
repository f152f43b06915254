// What the dashboard's pages show, as HTML, from the admin API's own answers. One module for both
// sides: the server renders a page's first paint with it (so curl, a screen reader or a browser
// without scripts sees the real state), and the page's script renders every refresh with it.
// No DOM and no Node APIs here. Every value goes through esc(): a job's payload or error is text.
//
// A view is { html: { [elementId]: innerHTML }, hidden: { [elementId]: boolean } }.

export const esc = (value) => String(value ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const pad = (n) => String(n).padStart(2, '0');
/** A time the same on the server and in every browser: UTC, to the second. */
export const when = (iso) => {
  if (!iso) return '–';
  const d = new Date(iso);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
};
const time = (iso) => (iso ? `<time datetime="${esc(iso)}">${esc(when(iso))}</time>` : '–');
export const ago = (iso, now = Date.now()) => {
  if (!iso) return '–';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  return s < 60 ? `${s} s ago` : s < 3600 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`;
};
export const seconds = (s) => (s < 60 ? `${Math.round(s)} s` : s < 3600 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`);
const badge = (state) => `<span class="badge ${esc(state)}">${esc(state)}</span>`;
const row = (...cells) => `<tr>${cells.map((c) => `<td>${c}</td>`).join('')}</tr>`;
const emptyRow = (columns, text) => `<tr><td colspan="${columns}" class="muted">${esc(text)}</td></tr>`;
const errorText = (e) => (e ? `${e.code}: ${e.message}` : '');

/** Job states in which a retry or a cancel makes sense (the buttons the lists and the job page show). */
export const RETRYABLE = ['failed', 'cancelled'];
export const CANCELLABLE = ['queued', 'forwarding', 'forwarded', 'active'];

// ---------------------------------------------------------------- fetcher service

function rssChart(history) {
  if (!history.length) return '';
  const limit = history.at(-1).limitMb;
  const t0 = Date.parse(history.at(-1).at) - 3600_000;
  const x = (iso) => (((Date.parse(iso) - t0) / 3600_000) * 300).toFixed(1);
  const y = (mb) => (80 - (Math.min(mb, limit) / limit) * 78).toFixed(1);
  const last = history.at(-1);
  return `<line x1="0" x2="300" y1="${y(limit * 0.8)}" y2="${y(limit * 0.8)}"></line>` +
    `<polyline points="${history.map((p) => `${x(p.at)},${y(p.rssMb)}`).join(' ')}"></polyline>` +
    `<circle cx="${x(last.at)}" cy="${y(last.rssMb)}" r="2.5"></circle>`;
}

/**
 * The fetcher page from GET /admin/api/fetcher_service and the override's audit entries.
 * @param {any} s @param {any[]} audit
 */
export function fetcherView(s, audit) {
  const f = s.fetcher;
  // figures from a status read while it answered; once it stops answering they are only "last seen"
  const live = f.state === 'awake' ? f.status : undefined;
  const mem = f.status?.memory;
  const memText = mem ? `RSS ${esc(mem.rssMb)} MB of ${esc(mem.limitMb)} MB (${Math.round((mem.rssMb / mem.limitMb) * 100)} %), heap ${esc(mem.heapUsedMb)} MB, peak ${esc(mem.peakRssMb)} MB` : '';
  const queues = [];
  for (const [side, byName] of [['main', s.queues.main], ['fetcher', s.queues.fetcher]]) {
    for (const [name, q] of Object.entries(byName ?? {})) queues.push(row(esc(name), side, esc(q.queued), esc(q.active), esc(q.failed)));
  }
  const o = s.override;
  return {
    html: {
      'fetcher-state': esc(f.state),
      'fetcher-waking': f.waking ? `waking since ${esc(when(f.wakingSince).slice(11))}` : '',
      'checked-at': f.checkedAt ? `${time(f.checkedAt)} (${esc(ago(f.checkedAt))})` : '–',
      latency: f.latencyMs !== null && f.latencyMs !== undefined ? `${esc(f.latencyMs)} ms` : '–',
      version: esc(f.status?.version ?? '–'),
      uptime: live ? esc(seconds(live.uptimeSeconds)) : '–',
      intake: esc(live?.intake ?? '–'),
      'fetcher-error': f.state === 'awake' ? '' : esc(f.error ?? ''),
      memory: live
        ? `<meter id="memory-gauge" min="0" max="${esc(mem.limitMb)}" low="${esc(mem.limitMb * 0.8)}" high="${esc(mem.limitMb * 0.95)}" optimum="0" value="${esc(mem.rssMb)}">${esc(mem.rssMb)} MB</meter><p id="memory-text">${memText}</p>`
        : `<p id="memory-text">no figures: the fetcher is not answering${mem ? ` (last seen ${esc(when(f.seenAt))}: ${memText})` : ''}</p>`,
      'rss-chart': rssChart(s.history ?? []),
      'outbox-pending': esc(s.outbox.pending),
      'outbox-age': s.outbox.pending ? esc(seconds(s.outbox.oldestAgeSeconds)) : '–',
      'events-set-aside': f.status?.events?.setAside
        ? `${esc(f.status.events.setAside)} job events from the fetcher that main refused are set aside there, since ${time(f.status.events.setAsideSince)} (the fetcher's log says why). The reconciler repairs the jobs they belong to; send them again once main takes them (an event older than what main has already applied for its job is skipped). <button type="button" data-action="resend-events">Send them again</button>`
        : '',
      'outbox-refused': (s.outbox.refusedByFetcher ?? [])
        .map((r) => `<li><strong>${esc(r.jobs)} × ${esc(r.name)}</strong>: ${esc(r.reason)}, since ${time(r.since)}</li>`)
        .join(''),
      'queues-body': queues.length ? queues.join('') : emptyRow(5, 'nothing waiting'),
      'override-state': o.enabled
        ? `ON since ${esc(when(o.since))} by ${esc(o.by)}: “${esc(o.reason)}”${o.expiresAt ? `; expires ${esc(when(o.expiresAt))}` : ''}`
        : 'Off: fetcher jobs go to the fetcher.',
      'audit-body': audit.length
        ? audit.map((a) => row(time(a.at), esc(a.actor), esc(a.action), esc(a.reason ?? ''), `${a.oldValue.enabled ? 'on' : 'off'} → ${a.newValue.enabled ? 'on' : 'off'}`)).join('')
        : emptyRow(5, 'the override has never been switched'),
    },
    attrs: { 'fetcher-state': { class: `badge ${f.state}` } },
    hidden: { 'events-set-aside': !f.status?.events?.setAside, 'outbox-refused': !(s.outbox.refusedByFetcher ?? []).length, 'fetcher-waking': !f.waking, 'override-badge': !o.enabled, 'override-form': o.enabled, 'override-off': !o.enabled },
  };
}

// ---------------------------------------------------------------- jobs

/** The link to the next page of the jobs list, keeping the filter. */
export const nextPageHref = (filter, cursor) => `jobs?${new URLSearchParams({ ...filter, cursor })}`;

/**
 * The jobs list from GET /admin/api/jobs and the filter it was asked with.
 * @param {{ jobs: any[], nextCursor: string | null }} page @param {Record<string, string>} filter
 */
export function jobsView(page, filter) {
  const rows = page.jobs.map((j) =>
    `<tr data-job-id="${esc(j.id)}">` +
    `<td><a href="jobs/${esc(j.id)}">${esc(j.name)}</a><div class="muted">${esc(j.id.slice(0, 8))}</div></td>` +
    `<td>${badge(j.state)}${j.error && j.state !== 'completed' ? `<div class="muted">${esc(errorText(j.error))}</div>` : ''}</td>` +
    `<td>${esc(j.route)}${j.routeReason !== 'definition' ? `<div class="muted">${esc(j.routeReason)}</div>` : ''}</td>` +
    `<td>${esc(j.progress)} %</td><td>${esc(j.attempts)}/${esc(j.maxAttempts)}</td><td>${time(j.createdAt)}</td>` +
    `<td>${RETRYABLE.includes(j.state) ? `<button type="button" class="retry" data-action="retry" data-job-id="${esc(j.id)}" data-job-name="${esc(j.name)}">Retry</button>` : ''}` +
    `${CANCELLABLE.includes(j.state) ? `<button type="button" class="cancel danger" data-action="cancel" data-job-id="${esc(j.id)}" data-job-name="${esc(j.name)}">Cancel</button>` : ''}</td></tr>`,
  );
  return {
    html: { 'jobs-body': rows.length ? rows.join('') : emptyRow(7, 'no job matches') },
    attrs: { 'next-page': { href: page.nextCursor ? nextPageHref(filter, page.nextCursor) : '' } },
    hidden: { 'next-page': !page.nextCursor },
  };
}

/** The run form's job choices, from GET /admin/api/catalogue. */
export const catalogueOptions = (jobs) => jobs.map((j) => `<option value="${esc(j.name)}">${esc(j.name)}${j.runsOnFetcher ? ' (fetcher)' : ''}</option>`).join('');

// ---------------------------------------------------------------- one job

const REASONS = { definition: 'its definition', override: 'the emergency override', 'run-on-main': 'a per-run override (run on main)' };

/** One job with its executions, from GET /admin/api/jobs/:id. */
export function jobView(j) {
  return {
    html: {
      'job-title': esc(j.name),
      'job-state': esc(j.state),
      'progress-text': `${esc(j.progress)} %${j.progressMessage ? `: ${esc(j.progressMessage)}` : ''}`,
      'job-route': esc(j.route),
      'route-reason': `${j.route === 'fetcher' ? 'sent to the fetcher' : 'runs on main'} because of ${esc(REASONS[j.routeReason] ?? j.routeReason)}`,
      'job-attempts': `${esc(j.attempts)} of ${esc(j.maxAttempts)}`,
      'job-created': time(j.createdAt),
      'job-finished': time(j.finishedAt),
      'job-error': j.error ? esc(errorText(j.error)) : '–',
      'job-payload': esc(JSON.stringify(j.payload, null, 2)),
      'executions-body': j.executions.length
        ? j.executions.map((e) => row(
          esc(e.attempt),
          esc(e.ranOn),
          time(e.startedAt),
          e.finishedAt ? `${((Date.parse(e.finishedAt) - Date.parse(e.startedAt)) / 1000).toFixed(1)} s` : 'running',
          e.peakRssMb !== undefined && e.peakRssMb !== null ? `${esc(e.peakRssMb)} MB` : '–',
          badge(e.outcome),
          esc(errorText(e.error)),
        )).join('')
        : emptyRow(7, 'not started yet'),
    },
    attrs: { 'job-state': { class: `badge ${j.state}` }, 'progress-bar': { value: String(j.progress) } },
    hidden: { 'job-retry': !RETRYABLE.includes(j.state), 'job-cancel': !CANCELLABLE.includes(j.state) },
  };
}

// ---------------------------------------------------------------- cron

/** The schedules, from GET /admin/api/schedules (the same as /admin/api/cron). */
export function cronView(schedules) {
  return {
    html: {
      'cron-body': schedules.length
        ? schedules.map((c) => row(
          `${esc(c.name)}<div class="muted">${c.source === 'code' ? 'in code' : `by ${esc(c.updatedBy)}`}</div>`,
          `<code>${esc(c.schedule)}</code><div class="muted">${esc(c.timeZone)}</div>`,
          c.enabled ? (c.nextRuns[0] ? time(c.nextRuns[0]) : '') : '<span class="badge">disabled</span>',
          c.lastRuns[0] ? `${c.lastRuns[0].state ? badge(c.lastRuns[0].state) : ''} ${c.lastRuns[0].jobId ? `<a href="jobs/${esc(c.lastRuns[0].jobId)}">${time(c.lastRuns[0].at)}</a>` : time(c.lastRuns[0].at)}` : 'never',
          `<button type="button" data-action="run-schedule" data-schedule-id="${esc(c.id)}">Run now</button>`,
        )).join('')
        : emptyRow(5, 'no schedules yet'),
    },
    attrs: {},
    hidden: {},
  };
}

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

/** What a waiting job waits for when a pause holds it (`pausedBy`): the pause's name, who, why, until when. */
const pausedText = (p) =>
  p ? `paused (${p.name === '*' ? 'every job: *' : esc(p.name)}) by ${esc(p.by)}: ${esc(p.reason)}${p.expiresAt ? `, until ${time(p.expiresAt)}` : ''}` : '';

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
    `<td>${badge(j.state)}${j.pausedBy ? `<div class="muted">${pausedText(j.pausedBy)}</div>` : ''}${j.error && j.state !== 'completed' ? `<div class="muted">${esc(errorText(j.error))}</div>` : ''}</td>` +
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
      'job-paused': pausedText(j.pausedBy),
      'progress-text': `${esc(j.progress)} %${j.progressMessage ? `: ${esc(j.progressMessage)}` : ''}`,
      'job-route': esc(j.route),
      'route-reason': `${j.route === 'fetcher' ? 'sent to the fetcher' : 'runs on main'} because of ${esc(REASONS[j.routeReason] ?? j.routeReason)}`,
      'job-attempts': `${esc(j.attempts)} of ${esc(j.maxAttempts)}`,
      'job-created': time(j.createdAt),
      'job-finished': time(j.finishedAt),
      'job-error': j.error ? esc(errorText(j.error)) : '–',
      'job-batch': [j.memberOf ? `member of <a href="batches/${esc(j.memberOf)}">batch ${esc(j.memberOf.slice(0, 8))}</a>` : '', j.batchId ? `opened <a href="batches/${esc(j.batchId)}">batch ${esc(j.batchId.slice(0, 8))}</a>` : '', j.parentId ? `child of <a href="jobs/${esc(j.parentId)}">${esc(j.parentId.slice(0, 8))}</a>` : ''].filter(Boolean).join('<br>') || '–',
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
        ? schedules.map((c) => `<tr data-schedule-id="${esc(c.id)}">${[
          `${esc(c.name)}<div class="muted">${c.source === 'code' ? 'in code' : `by ${esc(c.updatedBy)}`}</div>`,
          `<code>${esc(c.schedule)}</code><div class="muted">${esc(c.timeZone)}</div>${Object.keys(c.payload ?? {}).length ? `<div class="muted"><code>${esc(JSON.stringify(c.payload))}</code></div>` : ''}`,
          c.enabled ? `<ol class="plain runs">${c.nextRuns.map((r) => `<li>${time(r)}</li>`).join('')}</ol>` : '<span class="badge disabled">disabled</span>',
          c.lastRuns.length
            ? `<ol class="plain runs">${c.lastRuns.map((r) => `<li>${r.state ? badge(r.state) : ''} ${r.jobId ? `<a href="jobs/${esc(r.jobId)}">${time(r.at)}</a>` : time(r.at)}${r.manual ? ' <span class="muted">(run now)</span>' : ''}</li>`).join('')}</ol>`
            : 'never',
          `<button type="button" data-action="run-schedule" data-schedule-id="${esc(c.id)}">Run now</button> ` +
            `<button type="button" data-action="toggle-schedule" data-schedule-id="${esc(c.id)}" data-enabled="${c.enabled}">${c.enabled ? 'Disable' : 'Enable'}</button>` +
            (c.source === 'runtime'
              ? ` <button type="button" data-action="edit-schedule" data-schedule="${esc(JSON.stringify({ id: c.id, name: c.name, schedule: c.schedule, timeZone: c.timeZone, payload: c.payload, enabled: c.enabled }))}">Edit</button> <button type="button" data-action="delete-schedule" data-schedule-id="${esc(c.id)}" class="danger">Delete</button>`
              : ''),
        ].map((cell) => `<td>${cell}</td>`).join('')}</tr>`).join('')
        : emptyRow(5, 'no schedules yet'),
    },
    attrs: {},
    hidden: {},
  };
}

// ---------------------------------------------------------------- overview

const CHART = { w: 240, h: 36 };

/** Completed (and failed, on top) per bin, as bars scaled to the row's busiest bin. */
function barChart(bins, label) {
  const max = Math.max(1, ...bins.map((b) => b.completed + b.failed));
  const w = CHART.w / bins.length;
  const bars = bins.map((b, i) => {
    const x = (i * w).toFixed(2);
    const hc = (b.completed / max) * (CHART.h - 2);
    const hf = (b.failed / max) * (CHART.h - 2);
    return (b.completed ? `<rect class="ok" x="${x}" y="${(CHART.h - hc).toFixed(2)}" width="${Math.max(0.5, w - 0.4).toFixed(2)}" height="${hc.toFixed(2)}"><title>${esc(when(b.at))}: ${b.completed} completed</title></rect>` : '') +
      (b.failed ? `<rect class="bad" x="${x}" y="${(CHART.h - hc - hf).toFixed(2)}" width="${Math.max(0.5, w - 0.4).toFixed(2)}" height="${hf.toFixed(2)}"><title>${esc(when(b.at))}: ${b.failed} failed</title></rect>` : '');
  }).join('');
  return `<svg class="chart" viewBox="0 0 ${CHART.w} ${CHART.h}" preserveAspectRatio="none" role="img" aria-label="${esc(label)}"><line x1="0" x2="${CHART.w}" y1="${CHART.h - 0.5}" y2="${CHART.h - 0.5}"></line>${bars}</svg>`;
}

const ms = (v) => (v === null || v === undefined ? '–' : v < 1000 ? `≤ ${v} ms` : `≤ ${seconds(v / 1000)}`);

/** The overview (the dashboard's home), from GET /admin/api/overview. */
export function overviewView(o) {
  const span = o.window === 'day' ? 'day' : 'hour';
  const f = o.fetcher;
  const mem = f.status?.memory;
  return {
    html: {
      'ov-fetcher': `${badge(f.state)}${f.waking ? ' <span class="badge waking">waking</span>' : ''}`,
      'ov-memory': mem && f.state === 'awake'
        ? `<meter min="0" max="${esc(mem.limitMb)}" low="${esc(mem.limitMb * 0.8)}" high="${esc(mem.limitMb * 0.95)}" optimum="0" value="${esc(mem.rssMb)}">${esc(mem.rssMb)} MB</meter> ${esc(mem.rssMb)} of ${esc(mem.limitMb)} MB`
        : '<span class="muted">no figures (not answering)</span>',
      'ov-override': o.override.enabled ? `<span class="badge warn">on</span> ${esc(o.override.reason ?? '')}` : 'off',
      'ov-pauses': o.pauses.length
        ? o.pauses.map((p) => `<li><strong>${esc(p.name === '*' ? 'every job' : p.name)}</strong> by ${esc(p.by)} since ${time(p.since)}${p.expiresAt ? `, until ${time(p.expiresAt)}` : ''}: ${esc(p.reason)} <button type="button" data-action="resume" data-job-name="${esc(p.name)}">Resume</button></li>`).join('')
        : '<li class="muted">nothing is paused</li>',
      'ov-window': `completed and failed per ${span === 'day' ? '15 minutes over the last day' : 'minute over the last hour'}; queue wait of the jobs that finished in it`,
      'overview-body': o.names.length
        ? o.names.map((n) => row(
          `<a href="jobs?name=${esc(encodeURIComponent(n.name))}">${esc(n.name)}</a>${n.paused ? ' <span class="badge paused">paused</span>' : ''}`,
          esc(n.side),
          barChart(n.bins, `${n.name} on ${n.side}: ${n.completed} completed, ${n.failed} failed in the last ${span}`),
          esc(n.completed),
          n.failed ? `<span class="bad-text">${esc(n.failed)}</span>` : '0',
          `${ms(n.waitP50Ms)} / ${ms(n.waitP95Ms)}`,
          esc(n.queued),
          esc(n.running),
        )).join('')
        : emptyRow(8, 'no jobs yet'),
      'ov-generated': time(o.generatedAt),
    },
    attrs: { 'window-hour': { 'aria-current': span === 'hour' ? 'true' : 'false' }, 'window-day': { 'aria-current': span === 'day' ? 'true' : 'false' } },
    hidden: {},
  };
}

// ---------------------------------------------------------------- batch

/** A batch's page, from GET /admin/api/batches/:id. */
export function batchView(b) {
  const c = b.counts;
  const ended = c.completed + c.failed + c.cancelled;
  return {
    html: {
      'batch-state': esc(b.state),
      'batch-progress-text': `${esc(ended)} of ${esc(b.total)} ended: ${esc(c.completed)} completed, ${esc(c.failed)} failed, ${esc(c.cancelled)} cancelled, ${esc(c.active)} running, ${esc(c.queued)} waiting`,
      'batch-parent': b.parentId ? `<a href="jobs/${esc(b.parentId)}">${esc(b.parentId)}</a>` : '–',
      'batch-created': time(b.createdAt),
      'batch-finished': time(b.finishedAt),
      'batch-properties': esc(JSON.stringify(b.properties, null, 2)),
      'batch-callbacks': b.callbacks.length
        ? b.callbacks.map((cb) => row(esc(cb.on), `<a href="jobs/${esc(cb.jobId)}">${esc(cb.jobId)}</a>`, badge(cb.state))).join('')
        : emptyRow(3, b.state === 'finished' ? 'none ran' : 'they run once every job has ended'),
      'batch-failed': b.failed.length
        ? b.failed.map((j) => row(`<a href="jobs/${esc(j.id)}">${esc(j.id.slice(0, 8))}</a>`, esc(j.name), time(j.finishedAt), esc(errorText(j.error)))).join('')
        : emptyRow(4, 'none failed'),
    },
    attrs: { 'batch-state': { class: `badge ${b.state}` }, 'batch-progress': { value: String(ended), max: String(Math.max(1, b.total)) } },
    hidden: { 'batch-retry': b.failed.length === 0 },
  };
}

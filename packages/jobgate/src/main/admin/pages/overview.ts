// The dashboard's home: per job and side, finished jobs over the last hour or day, queue waits,
// what waits and runs now; the fetcher, the override, and pauses (made and ended here).
import { ErrorCode } from '../../../support/index.ts';
import type { AdminReads } from '../reads.ts';
import { act, actionButton, badge, emptyRow, esc, live, row, seconds, time, when } from '../html.ts';
import { definePage } from '../page.ts';

type Overview = Awaited<ReturnType<AdminReads['overview']>>;
interface OverviewData { overview: Overview; jobNames: string[] }

const CHART = { w: 240, h: 36 };

/** Completed (and failed, on top) per bin, as bars scaled to the row's busiest bin. */
function barChart(bins: Overview['names'][number]['bins'], label: string): string {
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

const ms = (v: number | null | undefined) => (v === null || v === undefined ? '–' : v < 1000 ? `≤ ${v} ms` : `≤ ${seconds(v / 1000)}`);

function view({ overview: o, jobNames }: OverviewData): string {
  const span = o.window === 'day' ? 'day' : 'hour';
  const f = o.fetcher;
  const mem = f.status?.memory;
  return `
<h1>Overview</h1>
<div class="grid">
<section class="card"${live('fetcher')}><h2>Fetcher</h2><p><span id="ov-fetcher">${badge(f.state)}${f.waking ? ' <span class="badge waking">waking</span>' : ''}</span></p><p><span id="ov-memory">${mem && f.state === 'awake'
    ? `<meter min="0" max="${esc(mem.limitMb)}" low="${esc(mem.limitMb * 0.8)}" high="${esc(mem.limitMb * 0.95)}" optimum="0" value="${esc(mem.rssMb)}">${esc(mem.rssMb)} MB</meter> ${esc(mem.rssMb)} of ${esc(mem.limitMb)} MB`
    : '<span class="muted">no figures (not answering)</span>'}</span></p></section>
<section class="card"${live('override')}><h2>Emergency override</h2><p><span id="ov-override">${o.override.enabled ? `<span class="badge warn">on</span> ${esc(o.override.reason ?? '')}` : 'off'}</span></p></section>
<section class="card wide"><h2>Paused</h2><ul id="ov-pauses" class="plain"${live('pauses')}>${o.pauses.length
    ? o.pauses.map((p) => `<li><strong>${esc(p.name === '*' ? 'every job' : p.name)}</strong> by ${esc(p.by)} since ${time(p.since)}${p.expiresAt ? `, until ${time(p.expiresAt)}` : ''}: ${esc(p.reason)} ${actionButton('Resume', { api: `POST api/jobs/${encodeURIComponent(p.name)}/resume`, body: {}, done: `Resumed ${p.name === '*' ? 'every job' : p.name}.` }, ' data-action="resume"')}</li>`).join('')
    : '<li class="muted">nothing is paused</li>'}</ul>
<form id="pause-form" class="filters"${act({ api: 'POST api/jobs/{name}/pause', done: 'Paused {name}: no new attempt starts until it is resumed.' })}>
  <label>Job <select name="name" id="pause-name"><option value="*">every job (*)</option>${jobNames.map((n) => `<option value="${esc(n)}">${esc(n)}</option>`).join('')}</select></label>
  <label>Reason <input name="reason" required maxlength="500" placeholder="provider API is down"></label>
  <label>For (minutes, optional) <input name="expiresInMinutes" type="number" min="1" max="43200"></label>
  <button type="submit" class="danger">Pause</button>
</form></section>
</div>
<section><h2>Jobs <span class="window"><a id="window-hour" href="overview?window=hour" aria-current="${span === 'hour'}">last hour</a> · <a id="window-day" href="overview?window=day" aria-current="${span === 'day'}">last day</a></span></h2>
<div${live('jobs')}>
<p class="muted"><span id="ov-window">completed and failed per ${span === 'day' ? '15 minutes over the last day' : 'minute over the last hour'}; queue wait of the jobs that finished in it</span> · as of <span id="ov-generated">${time(o.generatedAt)}</span></p>
<div class="scroll"><table id="overview"><thead><tr><th>job</th><th>side</th><th>finished</th><th>completed</th><th>failed</th><th>wait p50 / p95</th><th>waiting</th><th>running</th></tr></thead><tbody id="overview-body">${o.names.length
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
    : emptyRow(8, 'no jobs yet')}</tbody></table></div>
</div></section>`;
}

export const overviewPage = definePage<OverviewData>({
  path: '/overview',
  menu: 'Overview',
  async load({ reads, query }) {
    try {
      return { data: { overview: await reads.overview(query), jobNames: reads.catalogue().jobs.map((j) => j.name) } };
    } catch (err) {
      if ((err as { code?: string }).code !== ErrorCode.requestInvalid) throw err;
      return { redirect: 'overview' };
    }
  },
  title: () => 'Overview',
  view,
});

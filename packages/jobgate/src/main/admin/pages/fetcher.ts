// The fetcher service: its state, memory, the emergency override and what waits for it.
import type { OverrideAuditEntry } from '../../../store/index.ts';
import type { AdminReads } from '../reads.ts';
import { act, actionButton, ago, emptyRow, esc, live, row, seconds, time, when } from '../html.ts';
import { definePage } from '../page.ts';

type Status = Awaited<ReturnType<AdminReads['fetcherService']>>;
interface FetcherData { status: Status; audit: OverrideAuditEntry[] }

function rssChart(history: Status['history']): string {
  const last = history.at(-1);
  if (!last) return '';
  const limit = last.limitMb;
  const t0 = Date.parse(last.at) - 3600_000;
  const x = (iso: string) => (((Date.parse(iso) - t0) / 3600_000) * 300).toFixed(1);
  const y = (mb: number) => (80 - (Math.min(mb, limit) / limit) * 78).toFixed(1);
  return `<line x1="0" x2="300" y1="${y(limit * 0.8)}" y2="${y(limit * 0.8)}"></line>` +
    `<polyline points="${history.map((p) => `${x(p.at)},${y(p.rssMb)}`).join(' ')}"></polyline>` +
    `<circle cx="${x(last.at)}" cy="${y(last.rssMb)}" r="2.5"></circle>`;
}

const hidden = (yes: boolean) => (yes ? ' hidden' : '');

function view({ status: s, audit }: FetcherData): string {
  const f = s.fetcher;
  // figures from a status read while it answered; once it stops answering they are only "last seen"
  const answering = f.state === 'awake' ? f.status : undefined;
  const mem = f.status?.memory;
  const memText = mem ? `RSS ${esc(mem.rssMb)} MB of ${esc(mem.limitMb)} MB (${Math.round((mem.rssMb / mem.limitMb) * 100)} %), heap ${esc(mem.heapUsedMb)} MB, peak ${esc(mem.peakRssMb)} MB` : '';
  const queues: string[] = [];
  for (const [side, byName] of [['main', s.queues.main], ['fetcher', s.queues.fetcher]] as const) {
    for (const [name, q] of Object.entries(byName ?? {})) queues.push(row(esc(name), side, esc(q.queued), esc(q.active), esc(q.failed)));
  }
  const o = s.override;
  const refused = s.outbox.refusedByFetcher ?? [];
  const setAside = f.status?.events?.setAside;
  return `
<h1>Fetcher service</h1>
<div class="grid">
<section class="card" id="state-card"><h2>State</h2>
  <div${live('state')}>
  <p><span id="fetcher-state" class="badge ${esc(f.state)}">${esc(f.state)}</span> <span id="fetcher-waking" class="badge waking"${hidden(!f.waking)}>${f.waking ? `waking since ${esc(when(f.wakingSince).slice(11))}` : ''}</span> <span id="override-badge" class="badge warn"${hidden(!o.enabled)}>override on</span></p>
  <dl><dt>Last check</dt><dd id="checked-at">${f.checkedAt ? `${time(f.checkedAt)} (${esc(ago(f.checkedAt))})` : '–'}</dd>
  <dt>Latency</dt><dd id="latency">${f.latencyMs !== null && f.latencyMs !== undefined ? `${esc(f.latencyMs)} ms` : '–'}</dd>
  <dt>Version</dt><dd id="version">${esc(f.status?.version ?? '–')}</dd>
  <dt>Uptime</dt><dd id="uptime">${answering ? esc(seconds(answering.uptimeSeconds)) : '–'}</dd>
  <dt>Intake</dt><dd id="intake">${esc(answering?.intake ?? '–')}</dd></dl>
  <p id="fetcher-error" class="muted">${f.state === 'awake' ? '' : esc(f.error ?? '')}</p>
  </div>
  ${actionButton('Wake up', { api: 'POST api/fetcher_service/wake', pending: 'Waking the fetcher: this can take a while.', done: 'Fetcher {state} after {waitedMs} ms{error?: }{error}.' }, ' id="wake"')}</section>
<section class="card"${live('memory')}><h2>Memory</h2>
  <div id="memory">${answering && mem
    ? `<meter id="memory-gauge" min="0" max="${esc(mem.limitMb)}" low="${esc(mem.limitMb * 0.8)}" high="${esc(mem.limitMb * 0.95)}" optimum="0" value="${esc(mem.rssMb)}">${esc(mem.rssMb)} MB</meter><p id="memory-text">${memText}</p>`
    : `<p id="memory-text">no figures: the fetcher is not answering${mem ? ` (last seen ${esc(when(f.seenAt))}: ${memText})` : ''}</p>`}</div>
  <svg id="rss-chart" viewBox="0 0 300 80" preserveAspectRatio="none" role="img" aria-label="RSS over the last hour">${rssChart(s.history)}</svg>
  <p class="muted">RSS over the last hour (samples while main watches the fetcher)</p></section>
<section class="card"${live('override')}><h2>Emergency override</h2>
  <p id="override-state">${o.enabled
    ? `ON since ${esc(when(o.since))} by ${esc(o.by)}: “${esc(o.reason)}”${o.expiresAt ? `; expires ${esc(when(o.expiresAt))}` : ''}`
    : 'Off: fetcher jobs go to the fetcher.'}</p>
  <form id="override-form"${hidden(o.enabled)}${act({ api: 'PUT api/override', body: { enabled: true }, confirm: 'Switch the emergency override on? Heavy fetcher jobs will run on the main app until you switch it off.', done: 'Emergency override is on.' })}>
    <p class="warning">While the override is on, heavy fetcher jobs run on the main app (one at a time). Use it only while the fetcher is down.</p>
    <label>Reason <input name="reason" required maxlength="500" placeholder="fetcher deploy failing"></label>
    <label>Expires after (minutes, optional) <input name="expiresInMinutes" type="number" min="1" max="10080"></label>
    <button type="submit" class="danger">Switch override on</button>
  </form>
  ${actionButton('Switch override off', { api: 'PUT api/override', body: { enabled: false }, prompt: { field: 'reason', question: 'Why switch the override off?', suggest: 'fetcher is back' }, done: 'Emergency override is off.' }, ` id="override-off"${hidden(!o.enabled)}`)}</section>
<section class="card wide"${live('waiting')}><h2>Waiting</h2>
  <dl><dt>Outbox pending</dt><dd id="outbox-pending">${esc(s.outbox.pending)}</dd><dt>Oldest waiting</dt><dd id="outbox-age">${s.outbox.pending ? esc(seconds(s.outbox.oldestAgeSeconds)) : '–'}</dd></dl>
  <ul id="outbox-refused" class="warning" aria-label="jobs the fetcher refuses for now"${hidden(!refused.length)}>${refused.map((r) => `<li><strong>${esc(r.jobs)} × ${esc(r.name)}</strong>: ${esc(r.reason)}, since ${time(r.since)}</li>`).join('')}</ul>
  <p id="events-set-aside" class="warning"${hidden(!setAside)}>${setAside
    ? `${esc(setAside)} job events from the fetcher that main refused are set aside there, since ${time(f.status?.events?.setAsideSince)} (the fetcher's log says why). The reconciler repairs the jobs they belong to; send them again once main takes them (an event older than what main has already applied for its job is skipped). ${actionButton('Send them again', { api: 'POST api/fetcher_service/resend-events', done: '{resent} set-aside job events sent again.' })}`
    : ''}</p>
  <div class="scroll"><table id="queues"><thead><tr><th>job</th><th>side</th><th>queued</th><th>active</th><th>failed 24 h</th></tr></thead><tbody id="queues-body">${queues.length ? queues.join('') : emptyRow(5, 'nothing waiting')}</tbody></table></div></section>
</div>
<section${live('audit')}><h2>Override audit log</h2>
<div class="scroll"><table id="override-audit"><thead><tr><th>when</th><th>who</th><th>action</th><th>reason</th><th>change</th></tr></thead><tbody id="audit-body">${audit.length
    ? audit.map((a) => row(time(a.at), esc(a.actor), esc(a.action), esc(a.reason ?? ''), `${a.oldValue.enabled ? 'on' : 'off'} → ${a.newValue.enabled ? 'on' : 'off'}`)).join('')
    : emptyRow(5, 'the override has never been switched')}</tbody></table></div></section>`;
}

export const fetcherPage = definePage<FetcherData>({
  path: '/fetcher_service',
  menu: 'Fetcher',
  async load({ reads }) {
    const [status, { audit }] = await Promise.all([reads.fetcherService(), reads.override()]);
    return { data: { status, audit } };
  },
  title: () => 'Fetcher service',
  view,
});

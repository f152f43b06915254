// One job: its state and progress, where it runs and why, its payload and every attempt.
import type { JobRecord } from '../../../store/index.ts';
import { actionButton, badge, CANCELLABLE, emptyRow, errorText, esc, live, pausedText, RETRYABLE, row, time } from '../html.ts';
import { definePage, loadById } from '../page.ts';

const REASONS: Record<string, string> = { definition: 'its definition', override: 'the emergency override', 'run-on-main': 'a per-run override (run on main)' };

function related(j: JobRecord): string {
  return [
    j.memberOf ? `member of <a href="batches/${esc(j.memberOf)}">batch ${esc(j.memberOf.slice(0, 8))}</a>` : '',
    j.batchId ? `opened <a href="batches/${esc(j.batchId)}">batch ${esc(j.batchId.slice(0, 8))}</a>` : '',
    j.parentId ? `child of <a href="jobs/${esc(j.parentId)}">${esc(j.parentId.slice(0, 8))}</a>` : '',
  ].filter(Boolean).join('<br>') || '–';
}

function view(j: JobRecord): string {
  const executions = j.executions ?? [];
  return `
<p><a href="jobs">← Jobs</a></p>
<h1 id="job-title">${esc(j.name)}</h1>
<div class="grid">
<section class="card"${live('state')}><h2>State</h2>
  <p><span id="job-state" class="badge ${esc(j.state)}">${esc(j.state)}</span> <span id="job-paused" class="muted">${pausedText(j.pausedBy)}</span></p>
  <progress id="progress-bar" max="100" aria-label="progress" value="${esc(j.progress)}"></progress><p id="progress-text">${esc(j.progress)} %${j.progressMessage ? `: ${esc(j.progressMessage)}` : ''}</p>
  <dl><dt>Route</dt><dd id="job-route">${esc(j.route)}</dd>
  <dt>Why there</dt><dd id="route-reason">${j.route === 'fetcher' ? 'sent to the fetcher' : 'runs on main'} because of ${esc(REASONS[j.routeReason] ?? j.routeReason)}</dd>
  <dt>Attempts</dt><dd id="job-attempts">${esc(j.attempts)} of ${esc(j.maxAttempts)}</dd>
  <dt>Created</dt><dd id="job-created">${time(j.createdAt)}</dd><dt>Finished</dt><dd id="job-finished">${time(j.finishedAt)}</dd>
  <dt>Error</dt><dd id="job-error">${j.error ? esc(errorText(j.error)) : '–'}</dd><dt>Batch</dt><dd id="job-batch">${related(j)}</dd></dl>
  <p class="actions">${RETRYABLE.includes(j.state) ? actionButton('Retry', { api: `POST api/jobs/${j.id}/retry`, go: 'jobs/{id}' }, ' id="job-retry"') : ''} ${CANCELLABLE.includes(j.state) ? actionButton('Cancel', { api: `POST api/jobs/${j.id}/cancel`, done: 'Cancelled.' }, ' id="job-cancel" class="danger"') : ''}</p></section>
<section class="card"><h2>Payload</h2><pre id="job-payload">${esc(JSON.stringify(j.payload, null, 2))}</pre></section>
</div>
<section${live('executions')}><h2>Executions</h2>
<div class="scroll"><table id="executions"><thead><tr><th>attempt</th><th>ran on</th><th>started</th><th>duration</th><th>peak memory</th><th>outcome</th><th>error</th></tr></thead><tbody id="executions-body">${executions.length
    ? executions.map((e) => row(
      esc(e.attempt),
      esc(e.ranOn),
      time(e.startedAt),
      e.finishedAt ? `${((Date.parse(e.finishedAt) - Date.parse(e.startedAt)) / 1000).toFixed(1)} s` : 'running',
      e.peakRssMb !== undefined && e.peakRssMb !== null ? `${esc(e.peakRssMb)} MB` : '–',
      badge(e.outcome),
      esc(errorText(e.error)),
    )).join('')
    : emptyRow(7, 'not started yet')}</tbody></table></div></section>`;
}

export const jobPage = definePage<JobRecord>({
  path: '/jobs/:id',
  section: '/jobs',
  load: ({ reads, params }) => loadById('job', params.id ?? '', (id) => reads.job(id)),
  title: (j) => `Job ${j.name}`,
  view,
});

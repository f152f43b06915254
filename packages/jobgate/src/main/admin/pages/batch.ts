// A batch: how many of its jobs ended and how, its callbacks, its failed jobs (retried from here).
import type { AdminReads } from '../reads.ts';
import { actionButton, badge, emptyRow, errorText, esc, live, row, time } from '../html.ts';
import { definePage, loadById } from '../page.ts';

type Batch = Awaited<ReturnType<AdminReads['batch']>>;

function view(b: Batch): string {
  const c = b.counts;
  const ended = c.completed + c.failed + c.cancelled;
  return `
<p><a href="jobs">← Jobs</a></p>
<h1>Batch</h1>
<div class="grid">
<section class="card"${live('progress')}><h2>Progress</h2>
  <p><span id="batch-state" class="badge ${esc(b.state)}">${esc(b.state)}</span></p>
  <progress id="batch-progress" aria-label="jobs ended" value="${esc(ended)}" max="${esc(Math.max(1, b.total))}"></progress><p id="batch-progress-text">${esc(ended)} of ${esc(b.total)} ended: ${esc(c.completed)} completed, ${esc(c.failed)} failed, ${esc(c.cancelled)} cancelled, ${esc(c.active)} running, ${esc(c.queued)} waiting</p>
  <dl><dt>Opened by</dt><dd id="batch-parent">${b.parentId ? `<a href="jobs/${esc(b.parentId)}">${esc(b.parentId)}</a>` : '–'}</dd>
  <dt>Created</dt><dd id="batch-created">${time(b.createdAt)}</dd><dt>Finished</dt><dd id="batch-finished">${time(b.finishedAt)}</dd></dl>
  <p class="actions">${b.failed.length ? actionButton('Retry the failed jobs', { api: `POST api/batches/${b.id}/retry-failed`, done: 'Retried {retried.length} failed jobs{failures.length?; some could not be retried}.' }, ' id="batch-retry"') : ''}</p></section>
<section class="card"><h2>Properties</h2><pre id="batch-properties">${esc(JSON.stringify(b.properties, null, 2))}</pre></section>
</div>
<section${live('callbacks')}><h2>Callbacks</h2><div class="scroll"><table id="batch-callbacks-table"><thead><tr><th>on</th><th>job</th><th>state</th></tr></thead><tbody id="batch-callbacks">${b.callbacks.length
    ? b.callbacks.map((cb) => row(esc(cb.on), `<a href="jobs/${esc(cb.jobId)}">${esc(cb.jobId)}</a>`, badge(cb.state))).join('')
    : emptyRow(3, b.state === 'finished' ? 'none ran' : 'they run once every job has ended')}</tbody></table></div></section>
<section${live('failed')}><h2>Failed jobs</h2><div class="scroll"><table id="batch-failed-table"><thead><tr><th>job</th><th>name</th><th>failed</th><th>error</th></tr></thead><tbody id="batch-failed">${b.failed.length
    ? b.failed.map((j) => row(`<a href="jobs/${esc(j.id)}">${esc(j.id.slice(0, 8))}</a>`, esc(j.name), time(j.finishedAt), esc(errorText(j.error)))).join('')
    : emptyRow(4, 'none failed')}</tbody></table></div></section>`;
}

export const batchPage = definePage<Batch>({
  path: '/batches/:id',
  section: '/jobs',
  load: ({ reads, params }) => loadById('batch', params.id ?? '', (id) => reads.batch(id)),
  title: () => 'Batch',
  view,
});

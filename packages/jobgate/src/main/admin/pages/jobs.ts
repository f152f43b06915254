// The jobs list: filter, page through, retry or cancel (one or all matching), run a job.
import type { JobRecord } from '../../../store/index.ts';
import { ErrorCode, JobgateError } from '../../../support/index.ts';
import { act, actionButton, badge, CANCELLABLE, emptyRow, errorText, esc, live, pausedText, RETRYABLE, time } from '../html.ts';
import { definePage, type PageInput } from '../page.ts';

const STATES = ['queued', 'forwarding', 'forwarded', 'active', 'completed', 'failed', 'cancelled'];
const FILTER_FIELDS = ['state', 'name', 'route', 'payload'] as const;
type Filter = Partial<Record<(typeof FILTER_FIELDS)[number], string>>;

interface JobsData {
  page: { jobs: JobRecord[]; nextCursor: string | null };
  filter: Filter;
  catalogue: Array<{ name: string; runsOnFetcher: boolean }>;
}

/** The filter fields the page keeps in its links (raw strings; the reads check them). */
const filterOf = (query: PageInput['query']): Filter =>
  Object.fromEntries(FILTER_FIELDS.flatMap((k) => (typeof query[k] === 'string' && query[k] ? [[k, query[k]]] : [])));

const option = (value: string, label: string, chosen: string | undefined) => `<option value="${esc(value)}"${value === chosen ? ' selected' : ''}>${esc(label)}</option>`;

/** The run form's job choices. */
export const catalogueOptions = (jobs: JobsData['catalogue']): string =>
  jobs.map((j) => `<option value="${esc(j.name)}">${esc(j.name)}${j.runsOnFetcher ? ' (fetcher)' : ''}</option>`).join('');

const jobRow = (j: JobRecord) =>
  `<tr data-job-id="${esc(j.id)}">` +
  `<td><a href="jobs/${esc(j.id)}">${esc(j.name)}</a><div class="muted">${esc(j.id.slice(0, 8))}</div></td>` +
  `<td>${badge(j.state)}${j.pausedBy ? `<div class="muted">${pausedText(j.pausedBy)}</div>` : ''}${j.error && j.state !== 'completed' ? `<div class="muted">${esc(errorText(j.error))}</div>` : ''}</td>` +
  `<td>${esc(j.route)}${j.routeReason !== 'definition' ? `<div class="muted">${esc(j.routeReason)}</div>` : ''}</td>` +
  `<td>${esc(j.progress)} %</td><td>${esc(j.attempts)}/${esc(j.maxAttempts)}</td><td>${time(j.createdAt)}</td>` +
  `<td>${RETRYABLE.includes(j.state) ? actionButton('Retry', { api: `POST api/jobs/${j.id}/retry`, done: `Retried ${j.name} as a new job {id}.` }, ' class="retry"') : ''}` +
  `${CANCELLABLE.includes(j.state) ? actionButton('Cancel', { api: `POST api/jobs/${j.id}/cancel`, done: `Cancelled ${j.name}.` }, ' class="cancel danger"') : ''}</td></tr>`;

function bulk(kind: 'retry' | 'cancel', filter: Filter): string {
  const [verb, done] = kind === 'retry' ? ['Retry', 'Retried'] : ['Cancel', 'Cancelled'];
  return actionButton(kind === 'retry' ? 'Retry all matching (failed or cancelled)' : 'Cancel all matching', {
    api: 'POST api/jobs/bulk',
    body: { action: kind, filter },
    confirm: `${verb} every job matching the filter?`,
    done: `${done} {done} of {matched} matching jobs{truncated? (stopped at the limit; run it again)}.`,
  }, ` id="bulk-${kind}"${kind === 'cancel' ? ' class="danger"' : ''}`);
}

function view({ page, filter, catalogue }: JobsData): string {
  const next = page.nextCursor ? `jobs?${new URLSearchParams({ ...filter, cursor: page.nextCursor })}` : null;
  return `
<h1>Jobs</h1>
<form id="filters" method="get" action="jobs" class="filters">
  <label>State <select name="state">${option('', 'any', filter.state ?? '')}${STATES.map((s) => option(s, s, filter.state)).join('')}</select></label>
  <label>Name <input name="name" placeholder="demo.heavy" value="${esc(filter.name ?? '')}"></label>
  <label>Route <select name="route">${option('', 'any', filter.route ?? '')}${option('main', 'main', filter.route)}${option('fetcher', 'fetcher', filter.route)}</select></label>
  <label>Payload <input name="payload" placeholder="barcode=737628064502" value="${esc(filter.payload ?? '')}"></label>
  <button type="submit">Filter</button>
</form>
<p class="actions">${bulk('retry', filter)} ${bulk('cancel', filter)}</p>
<div${live('jobs')}>
<div class="scroll"><table id="jobs"><thead><tr><th>job</th><th>state</th><th>route</th><th>progress</th><th>attempts</th><th>created</th><th></th></tr></thead><tbody id="jobs-body">${page.jobs.length ? page.jobs.map(jobRow).join('') : emptyRow(7, 'no job matches')}</tbody></table></div>
<p>${next ? `<a id="next-page" href="${esc(next)}">Next page</a>` : ''}</p>
</div>
<section class="card"><h2>Run job</h2>
<form id="run-form"${act({ api: 'POST api/jobs/{name}/run', done: 'Enqueued {name} ({route}).', go: 'jobs/{id}' })}>
  <label>Job <select id="run-name" name="name">${catalogueOptions(catalogue)}</select></label>
  <label>Payload (JSON) <textarea id="run-payload" name="payload" rows="4" data-json>{}</textarea></label>
  <label class="check"><input type="checkbox" id="run-on-main" name="runOnMain"> Emergency override: allow this fetcher job to run on the main app</label>
  <button type="submit">Run</button>
</form></section>`;
}

export const jobsPage = definePage<JobsData>({
  path: '/jobs',
  menu: 'Jobs',
  async load({ reads, query }) {
    const filter = filterOf(query);
    const catalogue = reads.catalogue().jobs;
    try {
      // the filter form sends its empty fields too (`state=`): those filter nothing
      const given = Object.fromEntries(Object.entries(query).filter(([, v]) => v !== ''));
      return { data: { page: await reads.listJobs(given), filter, catalogue } };
    } catch (err) {
      if (!(err instanceof JobgateError) || err.code !== ErrorCode.requestInvalid) throw err;
      // a hand-edited address: show the page with what is wrong, not a JSON problem
      const why = (err.errors ?? []).map((e) => `${e.path}: ${e.message}`).join('; ');
      return { data: { page: { jobs: [], nextCursor: null }, filter, catalogue }, status: 422, flash: `The filter is invalid: ${why}` };
    }
  },
  title: () => 'Jobs',
  view,
});

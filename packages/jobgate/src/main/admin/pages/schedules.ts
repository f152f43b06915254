// Scheduled jobs: every schedule (in code or made here) with its next and last runs, and the editor.
import type { Schedule } from '../../../schedule/schedules.ts';
import { act, actionButton, badge, emptyRow, esc, live, time } from '../html.ts';
import { definePage } from '../page.ts';
import { catalogueOptions } from './jobs.ts';

interface SchedulesData { schedules: Schedule[]; catalogue: Array<{ name: string; runsOnFetcher: boolean }> }

const runs = (items: string[]) => `<ol class="plain runs">${items.map((i) => `<li>${i}</li>`).join('')}</ol>`;

function scheduleRow(c: Schedule): string {
  const edit = { id: c.id, name: c.name, schedule: c.schedule, timeZone: c.timeZone, payload: JSON.stringify(c.payload), enabled: c.enabled };
  const buttons = [
    actionButton('Run now', { api: `POST api/schedules/${encodeURIComponent(c.id)}/run`, done: 'Enqueued {name}.' }, ' data-action="run-schedule"'),
    actionButton(c.enabled ? 'Disable' : 'Enable', { api: `PATCH api/schedules/${encodeURIComponent(c.id)}`, body: { enabled: !c.enabled }, done: `${c.name}: ${c.enabled ? 'disabled' : 'enabled'}.` }, ' data-action="toggle-schedule"'),
    ...(c.source === 'runtime'
      ? [
        `<button type="button" data-action="edit-schedule" data-fill="schedule-form" data-values="${esc(JSON.stringify(edit))}" data-lock="name" data-title="${esc(`Edit the schedule of ${c.name}`)}">Edit</button>`,
        actionButton('Delete', { api: `DELETE api/schedules/${encodeURIComponent(c.id)}`, done: 'Schedule deleted.' }, ' data-action="delete-schedule" data-fill="schedule-form" class="danger"'),
      ]
      : []),
  ];
  return `<tr data-schedule-id="${esc(c.id)}">${[
    `${esc(c.name)}<div class="muted">${c.source === 'code' ? 'in code' : `by ${esc(c.updatedBy)}`}</div>`,
    `<code>${esc(c.schedule)}</code><div class="muted">${esc(c.timeZone)}</div>${Object.keys(c.payload ?? {}).length ? `<div class="muted"><code>${esc(JSON.stringify(c.payload))}</code></div>` : ''}`,
    c.enabled ? runs(c.nextRuns.map(time)) : '<span class="badge disabled">disabled</span>',
    c.lastRuns.length
      ? runs(c.lastRuns.map((r) => `${r.state ? badge(r.state) : ''} ${r.jobId ? `<a href="jobs/${esc(r.jobId)}">${time(r.at)}</a>` : time(r.at)}${r.manual ? ' <span class="muted">(run now)</span>' : ''}`))
      : 'never',
    buttons.join(' '),
  ].map((cell) => `<td>${cell}</td>`).join('')}</tr>`;
}

const view = ({ schedules, catalogue }: SchedulesData) => `
<h1>Scheduled jobs</h1>
<div class="scroll"${live('schedules')}><table id="cron"><thead><tr><th>job</th><th>schedule</th><th>next runs</th><th>last runs</th><th></th></tr></thead><tbody id="cron-body">${schedules.length ? schedules.map(scheduleRow).join('') : emptyRow(5, 'no schedules yet')}</tbody></table></div>
<section class="card"><h2 id="schedule-form-title">New schedule</h2>
<form id="schedule-form"${act({ api: 'PATCH api/schedules/{id} | POST api/schedules', done: 'Saved: {name} at {schedule} ({timeZone}){nextRuns.0?; next }{nextRuns.0}.' })}>
  <input type="hidden" name="id" value="">
  <label>Job <select name="name" id="schedule-name">${catalogueOptions(catalogue)}</select></label>
  <label>Schedule <input name="schedule" required maxlength="200" placeholder="0 6 * * 1-5"></label>
  <label>Time zone <input name="timeZone" maxlength="64" value="UTC" placeholder="Europe/Berlin"></label>
  <label>Payload (JSON) <textarea name="payload" rows="3" data-json>{}</textarea></label>
  <label class="check"><input type="checkbox" name="enabled" checked> Enabled</label>
  <button type="submit" id="schedule-save">Save schedule</button> <button type="button" id="schedule-new" data-fill="schedule-form">New instead</button>
</form></section>`;

export const schedulesPage = definePage<SchedulesData>({
  path: '/cron',
  menu: 'Cron',
  load: async ({ reads }) => ({ data: { schedules: (await reads.cron()).schedules, catalogue: reads.catalogue().jobs } }),
  title: () => 'Cron',
  view,
});

// Every page of the registry, rendered from a stub of the admin's reads (no PostgreSQL): each
// shows its state inside its live regions, which the browser swaps on every refresh.
import { describe, expect, it } from 'vitest';
import type { FetcherStatus } from '../../../protocol/wire.ts';
import type { JobRecord, OverrideState } from '../../../store/index.ts';
import type { Schedule } from '../../../schedule/schedules.ts';
import { ErrorCode, JobgateError } from '../../../support/index.ts';
import type { PageInput, Rendered } from '../page.ts';
import type { AdminReads } from '../reads.ts';
import { ADMIN_PAGES } from './index.ts';

type Read<K extends keyof AdminReads> = Awaited<ReturnType<AdminReads[K]>>;
const AT = '2025-03-04T05:06:07.000Z';
const JOB_ID = '11111111-1111-4111-8111-111111111111';
const BATCH_ID = '22222222-2222-4222-8222-222222222222';
const override: OverrideState = { enabled: true, reason: 'deploy <failing>', by: 'admin', since: AT, expiresAt: null };
const fetcherStatus: FetcherStatus = { status: 'ok', version: '9.9.9', uptimeSeconds: 90, memory: { rssMb: 120, heapUsedMb: 40, limitMb: 512, peakRssMb: 130 }, intake: 'open', queues: { 'demo.heavy': { queued: 3, active: 1, failed: 0 } } };
const fetcher = { state: 'awake' as const, checkedAt: AT, latencyMs: 12, status: fetcherStatus, seenAt: AT, waking: false, wakingSince: null };
const job: JobRecord = {
  id: JOB_ID, name: 'demo.heavy', route: 'fetcher', routeReason: 'definition', state: 'active', payload: { label: '<b>bold</b>' }, priority: 0,
  progress: 40, progressMessage: 'halfway-ish', attempts: 1, maxAttempts: 3, runAt: AT, createdAt: AT, updatedAt: AT, memberOf: BATCH_ID,
  executions: [{ attempt: 1, ranOn: 'fetcher', startedAt: AT, outcome: 'running' as never }],
};
const schedule: Schedule = { id: 'sched-1', name: 'maintenance.cleanup', schedule: '0 2 * * *', timeZone: 'UTC', payload: {}, enabled: true, source: 'runtime', createdBy: 'admin', updatedBy: 'admin', createdAt: AT, updatedAt: AT, nextRuns: [AT], lastRuns: [{ jobId: JOB_ID, dueAt: AT, state: 'completed', at: AT, manual: false }] };

/** The reads every page loads from, answering fixed data (a job or batch id other than these: not found). */
const stub = {
  async overview() {
    return {
      window: 'hour', generatedAt: AT, override, fetcher,
      pauses: [{ name: 'demo.light', reason: 'provider down', by: 'admin', since: AT, expiresAt: null }],
      names: [{ name: 'demo.light', side: 'main', bins: [{ at: AT, completed: 4, failed: 1 }], completed: 4, failed: 1, waitP50Ms: 20, waitP95Ms: 1500, queued: 2, running: 1, paused: true }],
    } satisfies Read<'overview'>;
  },
  async fetcherService() {
    return { fetcher, override, outbox: { pending: 2, oldestAgeSeconds: 75, refused: 0, refusedByFetcher: [] }, queues: { main: { 'demo.light': { queued: 1, active: 0, failed: 2 } }, fetcher: fetcherStatus.queues }, history: [{ at: AT, rssMb: 120, limitMb: 512 }] } satisfies Read<'fetcherService'>;
  },
  async override() {
    return { override, audit: [{ id: 1, at: AT, actor: 'admin (dashboard)', action: 'on', reason: 'deploy <failing>', oldValue: { ...override, enabled: false }, newValue: override }] } satisfies Read<'override'>;
  },
  async listJobs() {
    return { jobs: [{ ...job, state: 'failed', error: { code: ErrorCode.permanentFailure, message: 'boom' } }], nextCursor: 'next-cursor' } satisfies Read<'listJobs'>;
  },
  async job(id: string) {
    if (id !== JOB_ID) throw new JobgateError(ErrorCode.jobNotFound, `No job has id ${id}.`);
    return job;
  },
  async batch(id: string) {
    if (id !== BATCH_ID) throw new JobgateError(ErrorCode.notFound, `No batch has id ${id}.`);
    return {
      id: BATCH_ID, state: 'running', counts: { queued: 1, active: 1, completed: 9, failed: 1, cancelled: 0 }, total: 12, properties: { order: 7 }, callbacks: [], createdAt: AT,
      failed: [{ id: JOB_ID, name: 'demo.child', finishedAt: AT, error: { code: ErrorCode.permanentFailure, message: 'child broke' } }],
    } as Read<'batch'>;
  },
  catalogue: () => ({ jobs: [{ name: 'demo.heavy', runsOnFetcher: true, cron: null }, { name: 'demo.light', runsOnFetcher: false, cron: null }] }),
  async cron() {
    return { schedules: [schedule] } satisfies Read<'cron'>;
  },
} satisfies Partial<AdminReads>;
const reads = stub as AdminReads;

/** What each page must show, and in which of its regions: every registered page needs an entry. */
const CASES: Record<string, { params?: Record<string, string>; query?: Record<string, string>; regions: Record<string, string[]> }> = {
  '/overview': { regions: { fetcher: ['awake', 'value="120"'], override: ['deploy &#60;failing&#62;'], pauses: ['demo.light', 'provider down', 'api/jobs/demo.light/resume'], jobs: ['demo.light', 'rect class="ok"', 'rect class="bad"', '≤ 20 ms / ≤ 2 s'] } },
  '/fetcher_service': { regions: { state: ['class="badge awake">awake<', '12 ms', '9.9.9', '>open<'], memory: ['RSS 120 MB of 512 MB', '<polyline'], override: ['ON since', 'override-form" hidden'], waiting: ['demo.heavy', 'demo.light'], audit: ['admin (dashboard)', 'off → on'] } },
  '/jobs': { query: { state: 'failed' }, regions: { jobs: [`data-job-id="${JOB_ID}"`, 'JG_PERMANENT_FAILURE: boom', `api/jobs/${JOB_ID}/retry`, 'cursor=next-cursor'] } },
  '/jobs/:id': { params: { id: JOB_ID }, regions: { state: ['class="badge active">active<', '<progress id="progress-bar" max="100" aria-label="progress" value="40">', 'halfway-ish', `batches/${BATCH_ID}`, `api/jobs/${JOB_ID}/cancel`], executions: ['<td>1</td><td>fetcher</td>', 'running'] } },
  '/batches/:id': { params: { id: BATCH_ID }, regions: { progress: ['10 of 12 ended: 9 completed, 1 failed', 'value="10" max="12"', `api/batches/${BATCH_ID}/retry-failed`], callbacks: ['they run once every job has ended'], failed: ['demo.child', 'child broke'] } },
  '/cron': { regions: { schedules: ['maintenance.cleanup', '0 2 * * *', 'api/schedules/sched-1/run', 'data-fill="schedule-form"'] } },
};

/** The element marked `data-live="name"`, whole (tags balanced): what the browser swaps. */
function region(html: string, name: string): string {
  const start = html.search(new RegExp(`<[a-z0-9]+\\b[^>]*\\sdata-live="${name}"`));
  if (start < 0) throw new Error(`no region ${name}`);
  const tag = /^<([a-z0-9]+)/.exec(html.slice(start))![1]!;
  const tags = new RegExp(`<(/?)${tag}\\b[^>]*>`, 'g');
  tags.lastIndex = start;
  let depth = 0;
  for (let m = tags.exec(html); m; m = tags.exec(html)) {
    depth += m[1] ? -1 : 1;
    if (depth === 0) return html.slice(start, m.index + m[0].length);
  }
  throw new Error(`region ${name} is not closed`);
}

const render = (path: string, input: Partial<PageInput> = {}): Promise<Rendered> => {
  const page = ADMIN_PAGES.find((p) => p.path === path);
  if (!page) throw new Error(`no page ${path}`);
  return page.render({ reads, params: {}, query: {}, ...input });
};
const html = (r: Rendered) => {
  if ('redirect' in r) throw new Error(`redirected to ${r.redirect}`);
  return r;
};

describe('admin pages', () => {
  it('every registered page has a case here, and paths are unique', () => {
    expect(ADMIN_PAGES.map((p) => p.path).sort()).toEqual(Object.keys(CASES).sort());
    expect(ADMIN_PAGES.filter((p) => p.menu).map((p) => p.menu)).toEqual(['Overview', 'Fetcher', 'Jobs', 'Cron']);
  });

  for (const [path, c] of Object.entries(CASES)) {
    it(`${path} renders its state into its live regions`, async () => {
      const out = html(await render(path, { params: c.params ?? {}, query: c.query ?? {} }));
      expect(out.status).toBe(200);
      const names = [...out.body.matchAll(/data-live="([^"]+)"/g)].map((m) => m[1]);
      // the regions the page marks are exactly those it is expected to show, each once
      expect(names.sort()).toEqual(Object.keys(c.regions).sort());
      for (const [name, shows] of Object.entries(c.regions)) {
        const r = region(out.body, name);
        for (const s of shows) expect(r, `${path} region ${name}`).toContain(s);
      }
      // text from a job or an operator is escaped, never markup
      expect(out.body).not.toContain('<b>bold</b>');
      expect(out.body).not.toContain('<failing>');
    });
  }

  it('says what is missing with a 404, shows a bad filter with a 422, and sends a bad window home', async () => {
    const job = html(await render('/jobs/:id', { params: { id: '33333333-3333-4333-8333-333333333333' } }));
    expect([job.status, job.title, job.body]).toEqual([404, 'No such job', expect.stringContaining('No job has id <code>33333333-3333-4333-8333-333333333333</code>')]);
    expect(html(await render('/batches/:id', { params: { id: 'x<y' } }))).toMatchObject({ status: 404, body: expect.stringContaining('x&#60;y') });
    const invalid = { ...reads, listJobs: async () => { throw new JobgateError(ErrorCode.requestInvalid, 'bad', { errors: [{ path: 'state', message: 'not a state' }] }); } };
    const jobs = html(await ADMIN_PAGES.find((p) => p.path === '/jobs')!.render({ reads: invalid, params: {}, query: { state: 'nope' } }));
    expect([jobs.status, jobs.flash]).toEqual([422, 'The filter is invalid: state: not a state']);
    const badWindow = { ...reads, overview: async () => { throw new JobgateError(ErrorCode.requestInvalid, 'bad window'); } };
    expect(await ADMIN_PAGES.find((p) => p.path === '/overview')!.render({ reads: badWindow, params: {}, query: { window: 'week' } })).toEqual({ redirect: 'overview' });
  });
});

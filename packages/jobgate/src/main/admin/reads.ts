import { ErrorCode, JobgateError } from '../../support/index.ts';
import type { MainLedger, ListFilter } from '../../store/index.ts';
import type { MainRuntime as JobRuntime } from '../main-runtime.ts';
import type { AdminDeps } from './api.ts';
import { JobFilter } from '../job-actions.ts';
import { serviceStatus } from '../status.ts';
import { cursorOrThrow, JobId, PageFields, parseOrThrow } from '../validation.ts';

export const ListQuery = JobFilter.extend(PageFields);

/**
 * Everything the dashboard reads, in one place: the admin API answers these as JSON and the pages
 * render the same answers into their first paint (see assets/views.js).
 */
export function createAdminReads(deps: Pick<AdminDeps, 'jobs' | 'ledger' | 'override' | 'wakes' | 'fetcher'>) {
  const { jobs, ledger } = deps;
  return {
    /** The fetcher page: the service status (the fetcher asked unless checked in the last 2 s) and its RSS history. */
    async fetcherService() {
      const status = await serviceStatus({ ledger, override: () => deps.override.get(), wakes: () => deps.wakes.current(), monitor: deps.fetcher?.monitor ?? null, maxAgeMs: 2_000 });
      return { ...status, history: deps.fetcher?.monitor.history() ?? [] };
    },
    async override() {
      return { override: await deps.override.get(), audit: await deps.override.audit() };
    },
    /** A page of the jobs list; `query` is the raw query string (422 naming a bad field). */
    async listJobs(query: unknown) {
      const q = parseOrThrow(ListQuery, query);
      return ledger.listJobs({ ...(q as Omit<ListFilter, 'cursor'>), cursor: cursorOrThrow(q.cursor) });
    },
    /** One job with its executions, or 404. */
    async job(id: string) {
      const job = await jobs.getJob(parseOrThrow(JobId, id, ['id']));
      if (!job) throw new JobgateError(ErrorCode.jobNotFound, `No job has id ${id}.`);
      return job;
    },
    catalogue() {
      return { jobs: [...jobs.catalogue.values()].map((d) => ({ name: d.name, runsOnFetcher: d.runsOnFetcher, cron: d.cron?.schedule ?? null })) };
    },
    /** Every schedule (the code's and those made at run time) with its next and last runs. */
    async cron() {
      return { schedules: await jobs.schedules.list() };
    },
  };
}

export type AdminReads = ReturnType<typeof createAdminReads>;

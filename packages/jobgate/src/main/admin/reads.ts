import { z } from 'zod';
import { ErrorCode, JobgateError } from '../../support/index.ts';
import { createOverviewStore } from '../../store/index.ts';
import type { MainLedger, ListFilter } from '../../store/index.ts';
import type { MainRuntime as JobRuntime } from '../main-runtime.ts';
import type { AdminDeps } from './api.ts';
import { JobFilter } from '../job-actions.ts';
import { fetcherState, serviceStatus } from '../status.ts';
import { cursorOrThrow, JobId, PageFields, parseOrThrow } from '../validation.ts';

export const ListQuery = JobFilter.extend(PageFields);
export const OverviewQuery = z.strictObject({ window: z.enum(['hour', 'day']).default('hour') });

/**
 * Everything the dashboard reads, in one place: the admin API answers these as JSON and the pages
 * render the same answers (pages/*.ts).
 */
export function createAdminReads(deps: Pick<AdminDeps, 'jobs' | 'ledger' | 'override' | 'wakes' | 'fetcher' | 'pool'>) {
  const { jobs, ledger } = deps;
  const overview = createOverviewStore(deps.pool, ledger.schema, ledger.bossSchema);
  return {
    /**
     * The dashboard's home: per job name and side, finished jobs per bin over the window (the
     * rollup) with their queue waits, what waits and runs now, paused names, the fetcher's state and
     * memory, and the override.
     */
    async overview(query: Record<string, unknown>) {
      const { window } = parseOrThrow(OverviewQuery, query);
      const [series, live, pauses, fetcher, override] = await Promise.all([
        overview.series(window),
        overview.live(),
        jobs.listPauses(),
        fetcherState({ wakes: () => deps.wakes.current(), monitor: deps.fetcher?.monitor ?? null, maxAgeMs: 10_000 }),
        deps.override.get(),
      ]);
      const paused = new Set(pauses.map((p) => p.name));
      const rows = new Map<string, { name: string; side: 'main' | 'fetcher' }>();
      const key = (name: string, side: string) => `${name}\u0000${side}`;
      // every job on the side that runs it, and any other side it shows up on (the override)
      for (const d of jobs.catalogue.values()) rows.set(key(d.name, d.runsOnFetcher ? 'fetcher' : 'main'), { name: d.name, side: d.runsOnFetcher ? 'fetcher' : 'main' });
      for (const r of [...series, ...live]) rows.set(key(r.name, r.side), { name: r.name, side: r.side });
      const seriesOf = new Map(series.map((x) => [key(x.name, x.side), x]));
      const liveOf = new Map(live.map((x) => [key(x.name, x.side), x]));
      const emptyBins = series[0]?.bins.map((b) => ({ at: b.at, completed: 0, failed: 0 })) ?? [];
      const names = [...rows.entries()]
        .sort(([, a], [, b]) => a.name.localeCompare(b.name) || a.side.localeCompare(b.side))
        .map(([k, r]) => {
          const s = seriesOf.get(k);
          return {
            ...r,
            bins: s?.bins ?? emptyBins,
            completed: s?.completed ?? 0,
            failed: s?.failed ?? 0,
            waitP50Ms: s?.waitP50Ms ?? null,
            waitP95Ms: s?.waitP95Ms ?? null,
            queued: liveOf.get(k)?.queued ?? 0,
            running: liveOf.get(k)?.running ?? 0,
            paused: paused.has(r.name) || paused.has('*'),
          };
        });
      return { window, generatedAt: new Date().toISOString(), names, pauses, fetcher, override };
    },
    /** A batch with its failed jobs (the first 100), for its page. */
    async batch(id: string) {
      const batchId = parseOrThrow(JobId, id, ['id']);
      const batch = await jobs.batches.get(batchId);
      if (!batch) throw new JobgateError(ErrorCode.notFound, `No batch has id ${batchId}.`);
      return { ...batch, failed: await jobs.batches.failedMembers(batchId, 100) };
    },
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

import express from 'express';
import { ErrorCode, JobgateError, healthRoutes, notFound, problemErrorHandler, requestContext, type Logger } from '../support/index.ts';
import { JobId, mountSignedRoutes, type FetcherJob, type FetcherStatus, type ReplayGuard, type SigningKey } from '../protocol/index.ts';
import type { FetcherLedger } from '../store/index.ts';
import type { Registry } from 'prom-client';
import type { FetcherRuntime } from './fetcher-runtime.ts';

export interface FetcherRouterDeps {
  jobs: FetcherRuntime;
  ledger: FetcherLedger;
  keys: SigningKey[];
  /** Refuse main's requests without the header signature (createFetcher's main.requireHeaderSignature). */
  requireHeaderSignature?: boolean;
  logger: Logger;
  /** Where refused requests are counted (jobgate_http_refusals_total). */
  registry?: Registry;
  version: string;
  /** True once stop() began: submissions are refused (503) and the status says so. */
  isDraining(): boolean;
  /** Memory and intake as the memory guard sees them. */
  health(): Pick<FetcherStatus, 'memory' | 'intake'>;
  /** Accepted submissions by webhook-id: a replay gets the stored answer (createReplayStore). */
  replay: ReplayGuard;
}

/**
 * The fetcher's v1 API as an express router (mount it at the root of the fetcher's app, or under
 * the prefix main's `fetcher.url` names), with /healthz, the unsigned wake-up target. Everything
 * under /v1 is signed by main; other requests pass through untouched. Mount it before any body
 * parser: the signatures cover the raw bodies.
 */
export function createFetcherRouter(deps: FetcherRouterDeps): express.Router {
  const startedAt = Date.now();
  const app = express.Router();
  const requireHeaderSignature = deps.requireHeaderSignature ?? false;
  // /healthz is unsigned and cheap: the wake-up target main probes (503 while stopping)
  app.use(healthRoutes(deps.isDraining));
  app.use('/v1', requestContext(deps.logger, deps.registry ? { registry: deps.registry } : {}));

  mountSignedRoutes(app, 'fetcher', {
    submitJobs: async (req, _res, body) => {
      if (deps.isDraining() || deps.health().intake === 'paused') {
        throw new JobgateError(ErrorCode.shuttingDown, 'The fetcher is not taking jobs right now; retry shortly.');
      }
      const accepted = await deps.jobs.accept(body.jobs.map((j) => ({ id: j.id, name: j.name, payload: j.payload, ...j.options })));
      const fresh = accepted.filter((a) => !a.duplicate).length;
      req.log.info({ jobs: accepted.length, fresh, duplicates: accepted.length - fresh }, 'jobs accepted');
      return { accepted };
    },
    readJob: async (req) => {
      const id = JobId.safeParse(req.params.id);
      if (!id.success) throw new JobgateError(ErrorCode.requestInvalid, 'The job id is invalid.', { errors: [{ path: 'id', message: 'must be a UUID' }] });
      const job = await deps.ledger.getJob(id.data, { executions: true });
      if (!job) throw new JobgateError(ErrorCode.jobNotFound, `No job has id ${id.data} here.`);
      return {
        id: job.id,
        name: job.name,
        // a job on the fetcher is only ever in one of the fetcher's states
        state: job.state as FetcherJob['state'],
        progress: job.progress,
        ...(job.progressMessage ? { progressMessage: job.progressMessage } : {}),
        attempts: job.attempts,
        ...(job.error ? { error: job.error } : {}),
        executions: job.executions?.map(({ ranOn: _ranOn, ...e }) => e),
      };
    },
    // main's admin has the job events it refused before sent again (after a fix on its side)
    resendEvents: async (req) => {
      const resent = await deps.ledger.resendSetAsideEvents();
      req.log.info({ resent }, 'set-aside job events put back in line for main');
      return { resent };
    },
    readStatus: async () => ({
      status: deps.isDraining() ? 'stopping' : 'ok',
      version: deps.version,
      uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
      ...deps.health(),
      queues: await deps.ledger.countsByName(),
      events: await deps.ledger.eventsSetAside().then((a) => ({ setAside: a.count, setAsideSince: a.since })),
    }),
  }, { keys: deps.keys, replay: deps.replay, requireHeaderSignature });

  app.use('/v1', notFound(), problemErrorHandler());
  return app;
}

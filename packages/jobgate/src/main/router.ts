import express, { type Request } from 'express';
import { ErrorCode, JobgateError, methodNotAllowed, mountOf, notFound, problemErrorHandler, jsonBody, rejectUnstorable, requestContext, traceFields, type Logger } from '../support/index.ts';
import { onFreshConnection, type JobRecord, type MainLedger } from '../store/index.ts';
import type { Registry } from 'prom-client';
import { mountSignedRoutes, type ClaimAnswer, type ClaimRequest, type ReplayGuard, type SigningKey } from '../protocol/index.ts';
import type { MainRuntime as JobRuntime } from './main-runtime.ts';
import { adminApi, type AdminDeps } from './admin/api.ts';
import { adminDashboard, adminHeaders } from './admin/dashboard.ts';
import { createAdminReads } from './admin/reads.ts';
import { cursorOrThrow, EnqueueBody, JobId, JobsListQuery, parseOrThrow } from './validation.ts';
import type { ApiQuota } from './api-quota.ts';

export interface MainRouterDeps {
  jobs: JobRuntime;
  /** Signing keys shared with the fetcher; without them job events are not taken. */
  keys?: SigningKey[];
  /** Refuse the fetcher's requests without the header signature (FetcherOptions.requireHeaderSignature). */
  requireHeaderSignature?: boolean;
  /** The fetcher's accepted events and claims by webhook-id: a replay gets the stored answer (createReplayStore). */
  replay?: ReplayGuard;
  ledger?: MainLedger;
  logger: Logger;
  /** Where refused requests are counted (jobgate_http_refusals_total). */
  registry?: Registry;
  /** Who may use /api/* (AdminAuth.api). Required: the jobs API is never open to anyone. */
  apiAuth: express.RequestHandler;
  /** Each credential's request rate on /api/*, and the ceilings of an enqueue (createApiQuota); absent, none. */
  apiQuota?: ApiQuota;
  /** The admin API; absent, /admin/api/* is not served. */
  admin?: Omit<AdminDeps, 'jobs' | 'ledger'>;
}

/**
 * One of main's routers under `path`: it notes where it is mounted, sets up request ids, logs and
 * traces, refuses unstorable query text, and answers problem+json for what it does not know.
 * Requests outside `path` pass through untouched (the host app's own routes).
 */
function part(path: string, deps: Pick<MainRouterDeps, 'logger' | 'registry'>, routes: (router: express.Router) => void): express.Router {
  const router = express.Router();
  router.use((req, res, next) => {
    res.locals.jobgateMount = req.baseUrl;
    next();
  });
  router.use(path, requestContext(deps.logger, deps.registry ? { registry: deps.registry } : {}), rejectUnstorable('query'));
  routes(router);
  router.use(path, notFound(), problemErrorHandler());
  return router;
}

/** main's routers; `all` is the three in one. Mount them all under the same prefix. */
export interface MainRouters {
  /** /internal/v1/*: the fetcher's signed job events and claims. Never behind a user sign-in. */
  internal: express.Router;
  /** /admin/*: the dashboard's pages and /admin/api/*. */
  admin: express.Router;
  /** /api/*: the jobs API (bearer tokens, or the admin's credentials). */
  api: express.Router;
  all: express.Router;
}

/**
 * main's HTTP surface as express routers the host app mounts under a prefix of its choice.
 * `trust proxy` is the host app's setting.
 */
export function createMainRouters(deps: MainRouterDeps): MainRouters {
  const { jobs } = deps;
  const internal = part('/internal', deps, (app) => {
    // The fetcher's signed requests (SignedRoutes with side 'main'): each raw body is checked
    // against its signature before it is parsed.
    if (deps.keys && deps.ledger && deps.replay) {
      const { ledger } = deps;
      // Claims asked for at once (a request each, or one batch) go to the ledger together (ledger.claimAttempt):
      // main's ledger decides who runs a job.
      const claim = async (c: ClaimRequest, log: Logger): Promise<ClaimAnswer> => {
        // (a claim is idempotent per attempt: asked again, the same attempt is granted again)
        const result = await onFreshConnection(() => ledger.claimAttempt({ id: c.jobId, attempt: c.attempt, ranOn: 'fetcher', concurrency: null, perSecond: null, claimSeconds: c.claimSeconds }));
        const answer: ClaimAnswer =
          result.outcome === 'wait'
            ? { outcome: 'wait', waitMs: result.waitMs }
            : result.outcome === 'paused'
              ? { outcome: 'wait', waitMs: 1_000, paused: true }
              : result.outcome === 'gone' && !(await ledger.getJob(c.jobId))
                ? { outcome: 'unknown' }
                : { outcome: result.outcome };
        log.debug({ jobId: c.jobId, attempt: c.attempt, outcome: answer.outcome }, 'fetcher claim');
        return answer;
      };
      mountSignedRoutes(app, 'main', {
        jobEvents: async (req, _res, body) => {
          // (applied by sequence: a batch applied before is not applied twice)
          const result = await onFreshConnection(() => ledger.applyEvents(body.events));
          req.log.debug({ ...result }, 'job events applied');
          // a routed job's end, logged here under its own trace (as a main job's end is by its runner)
          for (const e of body.events) {
            if (e.type !== 'completed' && !(e.type === 'failed' && e.state === 'failed')) continue;
            deps.logger.info({ jobId: e.jobId, attempt: e.attempt, ranOn: 'fetcher', ...traceFields(e.traceparent), ...(e.error ? { error: e.error } : {}) }, e.type === 'completed' ? 'routed job completed' : 'routed job failed');
          }
          return result;
        },
        claimJob: (req, _res, body) => claim(body, req.log),
        // each claim is logged in its own job's trace
        claimJobs: async (req, _res, body) => ({ answers: await Promise.all(body.claims.map(({ traceparent, ...c }) => claim(c, traceparent ? req.log.child(traceFields(traceparent)) : req.log))) }),
        // written as main's own are: one transaction, ids the fetcher derived (so a retried request
        // or parent writes nothing new)
        spawnJobs: async (req, _res, body) => {
          const written = await jobs.spawn(body);
          req.log.info({ parentId: body.parentId, jobs: body.jobs.length, written: written.size, ...traceFields(body.traceparent) }, 'children enqueued for the fetcher');
          return { written: written.size };
        },
        readPauses: async (_req, res) => {
          // asked every poll interval: its request line goes at debug
          res.locals.jobgateQuiet = true;
          return { pauses: (await jobs.listPauses()).map((p) => ({ name: p.name, expiresAt: p.expiresAt })) };
        },
      }, { keys: deps.keys, replay: deps.replay, requireHeaderSignature: deps.requireHeaderSignature ?? false });
    }
  });

  const admin = deps.admin && deps.ledger ? { ...deps.admin, jobs, ledger: deps.ledger } : null;
  const reads = admin ? createAdminReads(admin) : null;
  const adminRouter = part('/admin', deps, (app) => {
    if (!admin || !reads) return;
    app.use('/admin', adminHeaders);
    // the dashboard's pages and login (a form post) come before the JSON-only API
    app.use('/admin', adminDashboard(admin.auth, reads));
    app.use('/admin/api', adminApi(admin, reads));
  });

  const api = part('/api', deps, (app) => {
    // Who is asking, and whether they are within their rate, come before any body is read.
    app.use('/api', deps.apiAuth, ...(deps.apiQuota ? [deps.apiQuota.limit] : []), ...jsonBody());

    app
      .route('/api/jobs')
      .get(async (req, res) => {
        const query = parseOrThrow(JobsListQuery, req.query);
        const cursor = cursorOrThrow(query.cursor);
        const page = await jobs.listJobs({ state: query.state as JobRecord['state'] | undefined, name: query.name, route: query.route, limit: query.limit, cursor });
        res.json({ jobs: page.jobs, nextCursor: page.nextCursor });
      })
      .all(methodNotAllowed(['GET']));

    app
      .route('/api/batches/:id')
      .get(async (req: Request<{ id: string }>, res) => {
        const id = parseOrThrow(JobId, req.params.id, ['id']);
        const batch = await jobs.batches.get(id);
        if (!batch) throw new JobgateError(ErrorCode.notFound, `No batch has id ${id}.`);
        res.json(batch);
      })
      .all(methodNotAllowed(['GET']));

    app
      .route('/api/jobs/:nameOrId')
      .post(async (req: Request<{ nameOrId: string }>, res) => {
        const def = jobs.definition(req.params.nameOrId);
        const body = parseOrThrow(EnqueueBody, req.body ?? {});
        deps.apiQuota?.checkEnqueue(body);
        const { job, duplicate } = await jobs.performLater(def, body.payload, {
          priority: body.priority,
          delaySeconds: body.delaySeconds,
          requestId: req.id,
          traceparent: req.traceparent,
        });
        req.log.info({ jobId: job.id, jobName: job.name, route: job.route, duplicate }, duplicate ? 'duplicate of a live unique job' : 'job enqueued');
        res
          .status(duplicate ? 200 : 202)
          .location(`${mountOf(res)}/api/jobs/${job.id}`)
          .json({ id: job.id, name: job.name, route: job.route, state: job.state, ...(duplicate ? { duplicate: true } : {}) });
      })
      .get(async (req: Request<{ nameOrId: string }>, res) => {
        const id = parseOrThrow(JobId, req.params.nameOrId, ['id']);
        const job = await jobs.getJob(id);
        if (!job) throw new JobgateError(ErrorCode.jobNotFound, `No job has id ${id}.`);
        res.json(job);
      })
      .all(methodNotAllowed(['GET', 'POST']));

  });

  return { internal, admin: adminRouter, api, all: express.Router().use(internal, adminRouter, api) };
}

// Every signed route between the apps, one entry each: who serves it, its method and path, what
// its messages are signed for, how large a body it reads and in which lane, what it takes and
// answers, and whether a replay is answered from the store. The routers mount these entries
// (protocol/express.ts's mountSignedRoutes) and the clients call through them (client/peer.ts),
// so a route's path, purpose and schemas are written here and nowhere else.
//
// The wire is a contract with peers of other versions: never change an existing entry's method,
// path, purpose, limit or status; add a route instead (and have the caller treat a 404 as an older
// peer).
import { z } from 'zod';
import { Purpose } from './signing.ts';
import { ClaimAnswer, ClaimAnswers, ClaimBatch, ClaimRequest, EventsReceipt, FetcherJob, FetcherStatus, JobEvents, PausesAnswer, ResendResult, Spawn, SpawnAnswer, SubmitJobs, SubmitResult } from './wire.ts';

/** Which app serves a route (the other one calls it). */
export type Side = 'main' | 'fetcher';

/**
 * The budget a route's body is read from once its header signature checked out (BodyBudgets):
 * `bulk` for the large submissions, `control` for everything else, so a claim never waits behind
 * a forward.
 */
export type Lane = 'bulk' | 'control';

export interface SignedRoute {
  side: Side;
  method: 'GET' | 'POST';
  /** Below the serving app's mount point; `:name` is a path parameter. */
  path: string;
  /** The webhook-id's prefix: a message signed for one purpose is refused by every other route. */
  purpose: Purpose;
  /** The largest body the route reads, in bytes (0: none): 413 past it. */
  limitBytes: number;
  lane: Lane;
  /** The body's schema (null: the route takes no body and ignores one). */
  request: z.ZodType | null;
  /** The detail of the 422 a body that fails `request` gets. */
  invalid?: string;
  /** The schema of a successful answer; the client refuses an answer that does not fit it. */
  answer: z.ZodType;
  /** The status of a successful answer. */
  status: 200 | 202;
  /** A replay of an accepted webhook-id gets the stored answer and does nothing again (state-changing routes). */
  replayGuarded: boolean;
  /** The path parameter the webhook-id names after its purpose (`get_<id>_<nonce>`), so a signature cannot be moved to another resource. */
  resource?: string;
  /** What a sender puts in one request, well inside `limitBytes` (batches are cut to it with chunksByBytes). */
  batchBytes?: number;
}

const MiB = 2 ** 20;

// Limits are matched to what a route carries: a submission is up to 500 jobs whose payloads main
// caps at 1 MiB each (the forwarder splits a batch that draws a 413); an events batch is 500 events
// with messages capped at 500 and 2,000 characters; a claim is about 100 bytes; a read has no body.
export const SignedRoutes = {
  /** main forwards jobs to the fetcher; idempotent on job id (a repeat answers `duplicate: true`). */
  submitJobs: {
    side: 'fetcher', method: 'POST', path: '/v1/jobs', purpose: Purpose.submitJobs,
    limitBytes: 8 * MiB, lane: 'bulk', request: SubmitJobs, invalid: 'The submission is invalid.', answer: SubmitResult, status: 202, replayGuarded: true,
  },
  /** main reads one job as the fetcher sees it. */
  readJob: {
    side: 'fetcher', method: 'GET', path: '/v1/jobs/:id', purpose: Purpose.readJob,
    limitBytes: 0, lane: 'control', request: null, answer: FetcherJob, status: 200, replayGuarded: false, resource: 'id',
  },
  /** main asks the fetcher to send again the job events it set aside (main refused them before a fix). */
  resendEvents: {
    side: 'fetcher', method: 'POST', path: '/v1/events/resend', purpose: Purpose.resendEvents,
    limitBytes: 0, lane: 'control', request: null, answer: ResendResult, status: 200, replayGuarded: true,
  },
  /** main reads the fetcher's status (memory, intake, queues, events set aside). */
  readStatus: {
    side: 'fetcher', method: 'GET', path: '/v1/status', purpose: Purpose.readStatus,
    limitBytes: 0, lane: 'control', request: null, answer: FetcherStatus, status: 200, replayGuarded: false,
  },
  /** The fetcher reports its jobs' state changes to main's ledger. */
  jobEvents: {
    side: 'main', method: 'POST', path: '/internal/v1/job-events', purpose: Purpose.jobEvents,
    limitBytes: 2 * MiB, lane: 'control', request: JobEvents, invalid: 'The events are invalid.', answer: EventsReceipt, status: 200, replayGuarded: true,
    batchBytes: MiB,
  },
  /** The fetcher claims an attempt in main's ledger before it runs it. */
  claimJob: {
    side: 'main', method: 'POST', path: '/internal/v1/claims', purpose: Purpose.claimJob,
    limitBytes: 4 * 1024, lane: 'control', request: ClaimRequest, invalid: 'The claim is invalid.', answer: ClaimAnswer, status: 200, replayGuarded: true,
  },
  /** Up to 500 claims sent together (each about 150 bytes with its trace), answered in order. */
  claimJobs: {
    side: 'main', method: 'POST', path: '/internal/v1/claims/batch', purpose: Purpose.claimJob,
    limitBytes: 128 * 1024, lane: 'control', request: ClaimBatch, invalid: 'The claims are invalid.', answer: ClaimAnswers, status: 200, replayGuarded: true,
  },
  /** A fetcher job's children (and the batches they open), enqueued at main: up to MAX_SPAWN_JOBS, 1 MiB payloads at most. */
  spawnJobs: {
    side: 'main', method: 'POST', path: '/internal/v1/children', purpose: Purpose.spawnJobs,
    limitBytes: 8 * MiB, lane: 'bulk', request: Spawn, invalid: 'The children are invalid.', answer: SpawnAnswer, status: 200, replayGuarded: true,
    batchBytes: 4 * MiB,
  },
  /** The fetcher asks which jobs main has paused (a read, asked every poll interval). */
  readPauses: {
    side: 'main', method: 'GET', path: '/internal/v1/pauses', purpose: Purpose.readPauses,
    limitBytes: 0, lane: 'control', request: null, answer: PausesAnswer, status: 200, replayGuarded: false,
  },
} as const satisfies Record<string, SignedRoute>;

export type SignedRouteName = keyof typeof SignedRoutes;

/** The names of the routes `side` serves. */
export type SignedRouteOf<S extends Side> = { [K in SignedRouteName]: (typeof SignedRoutes)[K]['side'] extends S ? K : never }[SignedRouteName];

/** The names of a path's parameters (`/v1/jobs/:id` → `id`). */
export type PathParams<P extends string> = P extends `${string}:${infer Name}/${infer Rest}` ? Name | PathParams<`/${Rest}`> : P extends `${string}:${infer Name}` ? Name : never;

/** What a route's body is, as its sender builds it. */
export type RouteBody<R extends SignedRoute> = R['request'] extends z.ZodType ? z.input<R['request']> : undefined;
/** What a successful answer is, once the client parsed it. */
export type RouteAnswer<R extends SignedRoute> = z.output<R['answer']>;

/**
 * A route's path with its parameters filled in (each URI-encoded), as a client sends it and as the
 * header signature covers it.
 * @example
 * routePath(SignedRoutes.readJob, { id }) // '/v1/jobs/0b5c…'
 */
export function routePath(route: SignedRoute, params: Record<string, string> = {}): string {
  return route.path.replace(/:(\w+)/g, (_, name: string) => {
    const value = params[name];
    if (value === undefined) throw new Error(`${route.method} ${route.path} needs its ${name}`);
    return encodeURIComponent(value);
  });
}

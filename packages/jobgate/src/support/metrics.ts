import { timingSafeEqual, createHash } from 'node:crypto';
import { Router } from 'express';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { ErrorCode, JobgateError } from './errors.ts';
import { methodNotAllowed } from './http.ts';

export { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** A registry with Node's process metrics (CPU, memory, event-loop lag, GC) already in it. */
export function createRegistry(app: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ app });
  collectDefaultMetrics({ register: registry });
  return registry;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/**
 * `GET /metrics` in Prometheus text format. With `token` (METRICS_TOKEN) it wants
 * `Authorization: Bearer <token>` (401 otherwise); without one it is open in development and
 * absent (404) in production, where metrics would otherwise be public.
 */
export function metricsRoute(registry: Registry, options: { token?: string; production: boolean }): Router {
  const router = Router();
  if (!options.token && options.production) return router;
  const expected = options.token ? digest(options.token) : null;
  router
    .route('/metrics')
    .get(async (req, res) => {
      if (expected) {
        const given = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
        if (!given || !timingSafeEqual(digest(given), expected)) {
          res.setHeader('WWW-Authenticate', 'Bearer realm="metrics"');
          throw new JobgateError(ErrorCode.unauthorized, 'Send Authorization: Bearer <METRICS_TOKEN>.');
        }
      }
      res.setHeader('Cache-Control', 'no-store');
      res.type(registry.contentType).send(await registry.metrics());
    })
    .all(methodNotAllowed(['GET']));
  return router;
}

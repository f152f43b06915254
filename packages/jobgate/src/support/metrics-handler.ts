// GET /metrics as one express handler the host app mounts: Prometheus text, behind a bearer token
// unless it is asked in so many words to be open.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import { parseOptions } from './config.ts';
import { ErrorCode } from './errors.ts';
import { sendProblem } from './http.ts';
import type { Logger } from './logger.ts';

/**
 * Who may scrape: `token`, a scraper's bearer token (or several, newest first, so it rotates), or
 * `open: true` for anyone who can reach the path (behind a private network only, as /healthz is).
 */
export type MetricsHandlerOptions = { token: string | readonly string[] } | { open: true };

const Token = z.string().min(16, 'at least 16 characters').max(500);
const Options = z
  .strictObject({ token: z.union([Token, z.array(Token).min(1)]).optional(), open: z.literal(true).optional() })
  // an unset environment variable must not turn into open metrics
  .refine((o) => (o.token === undefined) !== (o.open === undefined), { message: 'give either token (the scraper\'s bearer token) or open: true' });

const digest = (s: string) => createHash('sha256').update(s).digest();

/**
 * An express handler answering GET (and HEAD) with `registry` in Prometheus text: 401 with a
 * Bearer challenge without the right token, 405 for another method; both problem+json. `what`
 * names the option in a ConfigError.
 */
export function metricsHandler(registry: Registry, options: MetricsHandlerOptions, deps: { logger?: Logger; what?: string } = {}): RequestHandler {
  const o = parseOptions(Options, options, deps.what ?? 'metricsHandler');
  const expected = o.token === undefined ? null : (typeof o.token === 'string' ? [o.token] : o.token).map(digest);
  return async (req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return sendProblem(req, res, { status: 405, code: ErrorCode.methodNotAllowed, detail: 'Use GET or HEAD.' });
    }
    if (expected) {
      const given = digest(/^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '');
      let right = false;
      // every token compared, whichever matches
      for (const e of expected) right = timingSafeEqual(given, e) || right;
      if (!right) {
        res.setHeader('WWW-Authenticate', 'Bearer realm="metrics"');
        return sendProblem(req, res, { status: 401, code: ErrorCode.unauthorized, detail: 'Send Authorization: Bearer <the metrics token>.' });
      }
    }
    try {
      const text = await registry.metrics();
      res.type(registry.contentType).send(text);
    } catch (err) {
      (req.log ?? deps.logger)?.error({ err }, 'metrics could not be collected');
      sendProblem(req, res, { status: 500, code: ErrorCode.internal });
    }
  };
}

// The request log and the refusals metric, on a real express app on port 0, with jobgate's routers
// mounted under a prefix the way a host app mounts them.
import { Writable } from 'node:stream';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, JobgateError, createLogger, createRegistry, notFound, problemErrorHandler, requestContext } from './index.ts';

const lines: Array<Record<string, any>> = [];
const logger = createLogger({
  level: 'info',
  name: 'test',
  destination: new Writable({
    write(chunk, _enc, done) {
      for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      done();
    },
  }),
});
const registry = createRegistry('test');
let base = '';
let close = () => {};

beforeAll(async () => {
  // as main's routers are built: a router per part, set up under its own path, a nested router below
  const jobgate = express.Router();
  jobgate.use((req, res, next) => {
    res.locals.jobgateMount = req.baseUrl;
    next();
  });
  jobgate.use('/admin', requestContext(logger, { registry }));
  const adminApi = express.Router();
  adminApi.use((req, _res, next) => (req.headers.authorization ? next() : next(new JobgateError(ErrorCode.unauthorized, 'no'))));
  adminApi.route('/jobs/:id/retry').post((_req, _res, next) => next(new JobgateError(ErrorCode.tooManyRequests, 'slow down')));
  adminApi.route('/jobs/:id').get((_req, res) => void res.json({ ok: true }));
  jobgate.use('/admin/api', adminApi);
  jobgate.use('/admin', notFound(), problemErrorHandler());
  const app = express().use('/jobs-admin', jobgate);
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}/jobs-admin`;
  close = () => server.close();
});
afterAll(() => close());

const refusals = async () =>
  (await registry.getSingleMetricAsString('jobgate_http_refusals_total'))
    .split('\n')
    .filter((l) => !l.startsWith('#') && l.trim())
    .sort();

describe('requestContext', () => {
  it('logs the full path, mount prefix included', async () => {
    await fetch(`${base}/admin/api/jobs/0b7e3c1e-5a43-4a0e-9b8e-2d2f6c1d9a10?x=1`, { headers: { authorization: 'yes' } });
    const line = lines.findLast((l) => l.msg === 'request');
    expect(line).toMatchObject({ method: 'GET', path: '/jobs-admin/admin/api/jobs/0b7e3c1e-5a43-4a0e-9b8e-2d2f6c1d9a10', status: 200 });
  });

  it('counts refusals by route pattern, status and reason; made-up paths do not grow the labels', async () => {
    await fetch(`${base}/admin/api/jobs/1/retry`, { method: 'POST' });
    await fetch(`${base}/admin/api/jobs/2/retry`, { method: 'POST', headers: { authorization: 'yes' } });
    await fetch(`${base}/admin/api/jobs/3/retry`, { method: 'POST', headers: { authorization: 'yes' } });
    for (let i = 0; i < 5; i++) await fetch(`${base}/admin/api/made-up-${i}/x`);
    // a 404 is not a refusal
    await fetch(`${base}/admin/nothing-here`);
    expect(await refusals()).toEqual([
      'jobgate_http_refusals_total{route="/admin/*",status="401",reason="JG_UNAUTHORIZED",app="test"} 6',
      'jobgate_http_refusals_total{route="/admin/api/jobs/:id/retry",status="429",reason="JG_TOO_MANY_REQUESTS",app="test"} 2',
    ]);
  });
});

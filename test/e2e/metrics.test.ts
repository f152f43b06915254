// GET /metrics on both apps (issue 9): Prometheus text that a strict parser accepts, counters that
// move by exactly the jobs run, and the bearer token.
import express from 'express';
import { describe, expect, it } from 'vitest';
import { createRegistry, metricsHandler, metricsOptionsFromEnv, requestContext, createLogger, type MetricsHandlerOptions } from '../../packages/jobgate/src/support/index.ts';
import { parsePrometheusText, sampleValue } from '../support/prometheus.ts';
import { databasePerTest, enqueue, startPair } from '../support/gateway.ts';
import { TEST_API_TOKEN } from '../support/apps.ts';
import { waitFor } from '../support/wait.ts';

const TOKEN = 'metrics-token-for-tests-0123456789';
const t = databasePerTest();

async function scrape(base: string) {
  const r = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(r.status).toBe(200);
  expect(r.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheusText(await r.text());
}

describe('metrics', () => {
  it('counts exactly the jobs run, on both apps, in valid Prometheus text', async () => {
    const pair = (t.pair = await startPair(t.db, { mainEnv: { METRICS_TOKEN: TOKEN }, fetcherEnv: { METRICS_TOKEN: TOKEN } }));
    const { main, fetcher } = pair;
    const before = { main: await scrape(main.url), fetcher: await scrape(fetcher!.url) };

    const ids = [
      ...(await Promise.all(Array.from({ length: 6 }, () => enqueue(main, 'test.record', {})))),
      await enqueue(main, 'test.record', { failAttempts: 5 }), // 3 attempts (retry limit 2), then failed
      ...(await Promise.all(Array.from({ length: 4 }, () => enqueue(main, 'test.remote', {})))),
    ];
    await t.allCompleted(ids.filter((_, i) => i !== 6), 60_000);
    await waitFor('the failing job failed', async () => (await t.db.pool.query(`SELECT state FROM public.main_jobs WHERE id = $1`, [ids[6]])).rows[0].state === 'failed', { timeoutMs: 30_000 });
    const after = { main: await scrape(main.url), fetcher: await scrape(fetcher!.url) };
    const delta = (side: 'main' | 'fetcher', name: string, labels: Record<string, string> = {}) => sampleValue(after[side], name, labels) - sampleValue(before[side], name, labels);

    expect(delta('main', 'jobgate_jobs_enqueued_total', { name: 'test.record', route: 'main' })).toBe(7);
    expect(delta('main', 'jobgate_jobs_enqueued_total', { name: 'test.remote', route: 'fetcher' })).toBe(4);
    expect(delta('main', 'jobgate_jobs_completed_total', { name: 'test.record', route: 'main' })).toBe(6);
    expect(delta('main', 'jobgate_jobs_failed_total', { name: 'test.record', route: 'main' })).toBe(1);
    expect(delta('main', 'jobgate_job_attempts_retried_total', { name: 'test.record', route: 'main' })).toBe(2);
    expect(delta('main', 'jobgate_job_duration_seconds_count', { name: 'test.record', route: 'main' })).toBe(9);
    expect(delta('main', 'jobgate_job_queue_wait_seconds_count', { name: 'test.record', route: 'main' })).toBe(9);
    expect(delta('fetcher', 'jobgate_jobs_accepted_total', { name: 'test.remote' })).toBe(4);
    expect(delta('fetcher', 'jobgate_jobs_completed_total', { name: 'test.remote', route: 'fetcher' })).toBe(4);
    expect(delta('main', 'jobgate_forwarded_jobs_total', { outcome: 'delivered' })).toBe(4);
    expect(delta('main', 'jobgate_jobs_completed_total', { name: 'test.remote', route: 'main' })).toBe(0);

    // gauges read when scraped
    expect(sampleValue(after.main, 'jobgate_outbox_jobs')).toBe(0);
    expect(sampleValue(after.main, 'jobgate_override_enabled')).toBe(0);
    expect(after.main.get('jobgate_fetcher_state')!.samples.map((s) => s.labels.state).sort()).toEqual(['asleep', 'awake', 'down', 'unknown']);
    expect(after.main.get('jobgate_queue_jobs')!.samples.some((s) => s.labels.queue === 'test.record')).toBe(true);
    expect(sampleValue(after.fetcher, 'jobgate_fetcher_memory_bytes', { kind: 'limit' })).toBeGreaterThan(0);
    expect(sampleValue(after.fetcher, 'jobgate_fetcher_memory_bytes', { kind: 'rss' })).toBeGreaterThan(0);
    expect(sampleValue(after.fetcher, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
    console.log(`metrics: main ${after.main.size} families, fetcher ${after.fetcher.size}; deltas match the 11 jobs run`);

    // the token is required once set
    const anonymous = await fetch(`${main.url}/metrics`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(anonymous.headers.get('content-type')).toMatch(/problem\+json/);
    expect((await fetch(`${fetcher!.url}/metrics`, { headers: { authorization: 'Bearer wrong-token-wrong-token' } })).status).toBe(401);

    // refusals, by route, status and reason, on both apps
    expect((await fetch(`${main.url}/api/jobs`, { headers: { authorization: 'Bearer not-a-token-not-a-token' } })).status).toBe(401);
    expect((await fetch(`${main.url}/api/jobs/test.record`, { method: 'POST', headers: { authorization: `Bearer ${TEST_API_TOKEN}`, 'content-type': 'text/plain' }, body: 'x' })).status).toBe(415);
    expect((await fetch(`${fetcher!.url}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status).toBe(401);
    const refused = { main: await scrape(main.url), fetcher: await scrape(fetcher!.url) };
    expect(sampleValue(refused.main, 'jobgate_http_refusals_total', { route: '/api/*', status: '401', reason: 'JG_UNAUTHORIZED' })).toBeGreaterThanOrEqual(1);
    expect(sampleValue(refused.main, 'jobgate_http_refusals_total', { route: '/api/*', status: '415', reason: 'JG_UNSUPPORTED_MEDIA_TYPE' })).toBe(1);
    expect(sampleValue(refused.fetcher, 'jobgate_http_refusals_total', { route: '/v1/jobs', status: '401', reason: 'JG_INVALID_SIGNATURE' })).toBe(1);
  });

  it('is open in development without a token and absent in production without one', async () => {
    expect(metricsOptionsFromEnv({ NODE_ENV: 'development' })).toEqual({ open: true });
    expect(metricsOptionsFromEnv({ NODE_ENV: 'production' })).toBeNull();
    expect(metricsOptionsFromEnv({ NODE_ENV: 'production', METRICS_TOKEN: TOKEN })).toEqual({ token: TOKEN });
    const logger = createLogger({ level: 'silent', name: 'test' });
    const serve = async (options: MetricsHandlerOptions) => {
      const app = express();
      app.use(requestContext(logger));
      app.all('/metrics', metricsHandler(createRegistry('test'), options));
      const server = app.listen(0, '127.0.0.1');
      await new Promise((r) => server.once('listening', r));
      const { port } = server.address() as { port: number };
      const statuses = [(await fetch(`http://127.0.0.1:${port}/metrics`)).status, (await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'POST' })).status];
      server.close();
      return statuses;
    };
    expect(await serve({ open: true })).toEqual([200, 405]);
    expect(await serve({ token: TOKEN })).toEqual([401, 405]);
    // neither a token nor open: true (an unset variable) is refused at the door, never open
    expect(() => metricsHandler(createRegistry('test'), { token: undefined } as unknown as MetricsHandlerOptions)).toThrow(/metricsHandler\.\(options\): give either token/);
    expect(() => metricsHandler(createRegistry('test'), { token: 'short' })).toThrow(/metricsHandler\.token: /);
  });
});

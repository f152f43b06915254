// What main says of the fetcher is what the last probe saw (issue 14): `down` when nothing listens,
// `asleep` when a platform holds requests or answers 502/503/504, `awake` when it answers; a
// wake-up in flight shows beside the state (`waking`), never instead of it. The admin API, the
// CLI and the metrics say the same.
import { createServer } from 'node:http';
import { describe, expect, it } from 'vitest';
import { parsePrometheusText, sampleValue } from '../support/prometheus.ts';
import { runCli } from '../support/cli.ts';
import { admin, databasePerTest, enqueue, startPair } from '../support/gateway.ts';
import { freePort } from '../support/apps.ts';
import { waitFor } from '../support/wait.ts';

const TOKEN = 'metrics-token-for-tests-0123456789';
const t = databasePerTest();

const cliStatus = async (fetcherUrl: string) => {
  const r = await runCli(t.db.url, ['status', '--json'], { FETCHER_SERVICE_URL: fetcherUrl });
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { fetcher: { state: string; waking: boolean; wakingSince: string | null } };
};

describe('the fetcher state', () => {
  it('kill -9 with jobs waiting: down with waking: true in the admin API, the CLI and the metrics; awake again after a restart', async () => {
    const pair = (t.pair = await startPair(t.db, { mainEnv: { METRICS_TOKEN: TOKEN } }));
    const fetcherUrl = pair.fetcher!.url;
    expect((await admin(pair.main, 'GET', '/fetcher_service')).json.fetcher).toMatchObject({ state: 'awake', waking: false, wakingSince: null });

    pair.fetcher!.kill('SIGKILL');
    await pair.fetcher!.exited;
    const killedAt = Date.now();
    // jobs wait: the forwarder finds the fetcher refusing and starts a wake-up (60 s deadline here)
    const ids = await Promise.all(Array.from({ length: 5 }, () => enqueue(pair.main, 'test.remote', {})));
    const seen = await waitFor('the admin API to say down, waking', async () => {
      const f = (await admin(pair.main, 'GET', '/fetcher_service')).json.fetcher;
      return f.state === 'down' && f.waking && f;
    }, { timeoutMs: 30_000, intervalMs: 100 });
    const apiSeconds = (Date.now() - killedAt) / 1000;
    expect(Date.parse(seen.wakingSince)).toBeGreaterThanOrEqual(killedAt - 1_000);
    expect(seen.error).toMatch(/unreachable/);

    // another process (the CLI) probes for itself and learns of the wake-up from the database
    const cli = await cliStatus(fetcherUrl);
    expect(cli.fetcher).toMatchObject({ state: 'down', waking: true, wakingSince: seen.wakingSince });
    const text = await runCli(t.db.url, ['status'], { FETCHER_SERVICE_URL: fetcherUrl });
    expect(text.stdout).toMatch(/^fetcher\s+down \(waking since \S+\)/m);
    // how soon is a figure, not a bound: a busy machine stretches it (printed below)
    const cliSeconds = (Date.now() - killedAt) / 1000;

    const metrics = parsePrometheusText(await (await fetch(`${pair.main.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text());
    expect(sampleValue(metrics, 'jobgate_fetcher_state', { state: 'down' })).toBe(1);
    expect(sampleValue(metrics, 'jobgate_fetcher_state', { state: 'awake' })).toBe(0);
    expect(sampleValue(metrics, 'jobgate_fetcher_waking')).toBe(1);
    expect(metrics.get('jobgate_fetcher_state')!.samples.map((s) => s.labels.state).sort()).toEqual(['asleep', 'awake', 'down', 'unknown']);

    await pair.startFetcher();
    await t.allCompleted(ids);
    await waitFor('awake and no longer waking', async () => {
      const f = (await admin(pair.main, 'GET', '/fetcher_service')).json.fetcher;
      return f.state === 'awake' && !f.waking;
    }, { timeoutMs: 10_000, intervalMs: 200 });
    expect((await cliStatus(fetcherUrl)).fetcher).toMatchObject({ state: 'awake', waking: false });
    console.log(`fetcher state: down with waking=true ${apiSeconds.toFixed(1)} s after kill -9 in the admin API, ${cliSeconds.toFixed(1)} s in the CLI; awake after the restart`);
  });

  it('a platform that holds requests reads asleep, as does one answering 503; nothing listening reads down', async () => {
    const pair = (t.pair = await startPair(t.db, { proxyToFetcher: true }));
    pair.toFetcher!.setMode({ kind: 'hold', until: Date.now() + 60_000 });
    pair.toFetcher!.cut();
    const held = await waitFor('the admin API to say asleep', async () => {
      const f = (await admin(pair.main, 'GET', '/fetcher_service')).json.fetcher;
      return f.state === 'asleep' && f;
    }, { timeoutMs: 10_000, intervalMs: 200 });
    expect(held.error).toMatch(/timed out/);
    pair.toFetcher!.setMode({ kind: 'pass' });
    pair.toFetcher!.cut();

    // a platform's proxy in front of a booting instance: 503 (the CLI probes it)
    const platform = createServer((_req, res) => res.writeHead(503, { 'content-type': 'text/html' }).end('<h1>Service Unavailable</h1>'));
    await new Promise<void>((resolve) => platform.listen(0, '127.0.0.1', resolve));
    try {
      const port = (platform.address() as { port: number }).port;
      expect((await cliStatus(`http://127.0.0.1:${port}`)).fetcher).toMatchObject({ state: 'asleep', waking: false });
    } finally {
      platform.close();
    }
    expect((await cliStatus(`http://127.0.0.1:${await freePort()}`)).fetcher).toMatchObject({ state: 'down', waking: false });
  });

  it('counts a job on the side that runs it: a routed job that failed on the fetcher is not in main\'s row', async () => {
    const pair = (t.pair = await startPair(t.db));
    const routed = await enqueue(pair.main, 'test.remote-once', { failAttempts: 1 });
    const local = await enqueue(pair.main, 'test.record', { failAttempts: 5 });
    await waitFor('both failed', async () => (await t.db.pool.query(`SELECT count(*)::int AS n FROM public.main_jobs WHERE id = ANY($1::uuid[]) AND state = 'failed'`, [[routed, local]])).rows[0].n === 2, { timeoutMs: 60_000, intervalMs: 250 });
    const { queues } = (await admin(pair.main, 'GET', '/fetcher_service')).json;
    expect(queues.main['test.remote-once']).toBeUndefined();
    expect(queues.main['test.record']).toMatchObject({ failed: 1 });
    expect(queues.fetcher['test.remote-once']).toMatchObject({ failed: 1 });
  });
});

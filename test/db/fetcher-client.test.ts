// The fetcher client against real HTTP servers on port 0 and a loopback fault proxy.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Purpose, parseSecrets, verify } from '../../packages/jobgate/src/protocol/index.ts';
import { createFetcherClient, type FetcherClient } from '../../packages/jobgate/src/client/index.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';

const SECRET = 'whsec_' + Buffer.alloc(32, 3).toString('base64');
const keys = parseSecrets(SECRET);
const cleanup: Array<() => Promise<unknown> | void> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;
async function server(handler: Handler): Promise<{ url: string; port: number; hits: Array<{ method: string; url: string }> }> {
  const hits: Array<{ method: string; url: string }> = [];
  const s: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      hits.push({ method: req.method!, url: req.url! });
      handler(req, body, res);
    });
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  cleanup.push(() => new Promise((r) => { s.closeAllConnections(); s.close(r); }));
  const port = (s.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}`, port, hits };
}
const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
};
function client(baseUrl: string, extra: Partial<Parameters<typeof createFetcherClient>[0]> = {}): FetcherClient {
  const c = createFetcherClient({ baseUrl, keys, ...extra });
  cleanup.push(() => c.close());
  return c;
}
const header = (req: IncomingMessage, name: string) => req.headers[name] as string | undefined;

describe('fetcher client', () => {
  it('signs submissions for their route', async () => {
    const ids = ['0b7e3c1e-5a43-4a0e-9b8e-2d2f6c1d9a10'];
    const srv = await server((req, body, res) => {
      const check = verify({ keys, headers: { id: header(req, 'webhook-id'), timestamp: header(req, 'webhook-timestamp'), signature: header(req, 'webhook-signature') }, body, purpose: Purpose.submitJobs });
      if (!check.ok) return json(res, 401, { title: 'Invalid signature' });
      json(res, 202, { accepted: JSON.parse(body).jobs.map((j: { id: string }) => ({ id: j.id, duplicate: false })) });
    });
    const result = await client(srv.url).submit([{ id: ids[0]!, name: 'movies.fetch', payload: { provider: 'demo', batchSize: 10 } }]);
    expect(result).toEqual({ accepted: [{ id: ids[0], duplicate: false }] });
  });

  it('does not retry a 4xx', async () => {
    const srv = await server((_req, _body, res) => json(res, 422, { title: 'Validation failed', detail: 'jobs.0.name: unknown job' }));
    await expect(client(srv.url).submit([{ id: '0b7e3c1e-5a43-4a0e-9b8e-2d2f6c1d9a10', name: 'x', payload: {} }])).rejects.toMatchObject({ code: 'JG_FETCHER_REJECTED', status: 422, message: expect.stringContaining('unknown job') });
    expect(srv.hits).toHaveLength(1);
  });

  it('retries 503 and honours Retry-After', async () => {
    let n = 0;
    const srv = await server((_req, _body, res) => (++n === 1 ? json(res, 503, { title: 'busy' }, { 'retry-after': '1' }) : json(res, 200, { status: 'ok', version: '1', uptimeSeconds: 1, memory: { rssMb: 1, heapUsedMb: 1, limitMb: 512, peakRssMb: 1 }, intake: 'open', queues: {} })));
    const started = Date.now();
    const status = await client(srv.url).status();
    expect(status.intake).toBe('open');
    expect(srv.hits).toHaveLength(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
  });

  it('abandons a hanging fetcher at its own timeout, not undici\'s 300 s (FAULTS.md rows 19-20)', async () => {
    const srv = await server(() => {});
    const proxy: FaultProxy = await startFaultProxy({ host: '127.0.0.1', port: srv.port });
    cleanup.push(() => proxy.close());
    proxy.setMode({ kind: 'blackhole' });
    const started = Date.now();
    await expect(client(proxy.url(), { timeouts: { headersMs: 1_000 }, retries: 0 }).status()).rejects.toMatchObject({ code: 'JG_FETCHER_TIMEOUT' });
    const seconds = (Date.now() - started) / 1000;
    console.log(`blackholed fetcher: attempt abandoned after ${seconds.toFixed(2)} s (headers timeout 1 s)`);
    // its own 1 s, not undici's 300 s (a busy machine may stretch the 1 s)
    expect(seconds).toBeLessThan(20);
  });

  // long enough for several refused probes (one a second); a real cold start takes longer, the mechanism is the same
  const REFUSED_MS = 6_000;
  it(`wakes a fetcher that refuses connections for ${REFUSED_MS / 1000} s with one wake-up for 50 callers (FAULTS.md row 18)`, async () => {
    const srv = await server((_req, _body, res) => json(res, 200, { status: 'ok' }));
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: srv.port });
    cleanup.push(() => proxy.close());
    await proxy.refuse();
    const c = client(proxy.url());
    setTimeout(() => void proxy.resume(), REFUSED_MS);
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: 50 }, () => c.wake({ deadlineMs: 60_000 })));
    const healthHits = srv.hits.filter((h) => h.url === '/healthz').length;
    console.log(`wake: 50 callers, ${new Set(results).size} wake-up, ${results[0]!.probes} probes, awake after ${(results[0]!.waitedMs / 1000).toFixed(1)} s, /healthz hits ${healthHits}`);
    expect(new Set(results).size).toBe(1);
    expect(healthHits).toBe(1);
    expect(results[0]!.probes).toBeGreaterThanOrEqual(3); // several probes were refused before it answered
    expect(Date.now() - started).toBeGreaterThanOrEqual(REFUSED_MS - 500);
  });

  it('gives up waking at the deadline with its own code', async () => {
    const srv = await server(() => {});
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: srv.port });
    cleanup.push(() => proxy.close());
    await proxy.refuse();
    await expect(client(proxy.url()).wake({ deadlineMs: 1_500 })).rejects.toMatchObject({ code: 'JG_FETCHER_WAKE_TIMEOUT' });
  });
});

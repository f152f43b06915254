import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignedRoutes, parseSecrets } from '../protocol/index.ts';
import { createMainClient } from './main-client.ts';
import { createFetcherClient } from './fetcher-client.ts';

const keys = parseSecrets(`whsec_${Buffer.alloc(32, 3).toString('base64')}`);
const seen: string[] = [];
const server = createServer((req, res) => {
  seen.push(`${req.method} ${req.url}`);
  if (req.url?.endsWith(SignedRoutes.submitJobs.path) && req.url.startsWith('/busy')) {
    // the fetcher's answer while its database is away: 503 with Retry-After (5 s, or 1 s under /busy1)
    res.writeHead(503, { 'content-type': 'application/problem+json', 'retry-after': req.url.startsWith('/busy1') ? '1' : '5' });
    res.end(JSON.stringify({ type: 'about:blank', title: 'Service Unavailable', status: 503, code: 'JG_DATABASE_UNAVAILABLE', detail: 'The database is unreachable; no job was accepted.' }));
    return;
  }
  res.setHeader('content-type', 'application/json');
  res.end(req.url?.endsWith(SignedRoutes.claimJob.path) ? JSON.stringify({ outcome: 'claimed' }) : JSON.stringify({ status: 'ok' }));
});
let base = '';
beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise((r) => server.close(r)));

describe('a peer mounted under a path', () => {
  it("calls main's routes under the path its router is mounted at", async () => {
    const main = createMainClient({ baseUrl: `${base}/ops/jobs/`, keys, retries: 0 });
    expect(await main.claim('0f8a3c1e-0000-4000-8000-000000000001', 1, 30)).toEqual({ outcome: 'claimed' });
    await main.close();
    expect(seen.at(-1)).toBe(`POST /ops/jobs${SignedRoutes.claimJob.path}`);
  });

  it('calls the fetcher at its root, or under its own prefix', async () => {
    const root = createFetcherClient({ baseUrl: base, keys, retries: 0 });
    await root.health();
    const prefixed = createFetcherClient({ baseUrl: `${base}/fetcher`, keys, retries: 0 });
    await prefixed.health();
    await Promise.all([root.close(), prefixed.close()]);
    expect(seen.slice(-2)).toEqual(['GET /healthz', 'GET /fetcher/healthz']);
  });
});

describe('Retry-After', () => {
  it('is waited out before a retry, and not at all by a caller without retries (it gets the 503 at once)', async () => {
    const once = createFetcherClient({ baseUrl: `${base}/busy`, keys, retries: 0 });
    const started = performance.now();
    // the app's own code comes with it: it answered, so it is awake (the forwarder wakes nothing)
    await expect(once.submit([])).rejects.toMatchObject({ status: 503, retryAfterMs: 5_000, problemCode: 'JG_DATABASE_UNAVAILABLE' });
    // the 503 came back in milliseconds; a 5 s wait would be the Retry-After slept after the last attempt
    expect(performance.now() - started).toBeLessThan(4_000);
    const retrying = createFetcherClient({ baseUrl: `${base}/busy1`, keys, retries: 1 });
    const before = seen.length;
    const again = performance.now();
    await expect(retrying.submit([])).rejects.toMatchObject({ status: 503 });
    expect(seen.length - before).toBe(2);
    expect(performance.now() - again).toBeGreaterThanOrEqual(950);
    await Promise.all([once.close(), retrying.close()]);
  });
});

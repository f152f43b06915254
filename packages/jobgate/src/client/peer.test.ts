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

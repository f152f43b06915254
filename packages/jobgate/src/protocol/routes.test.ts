// Walks the table of signed routes: each entry is mounted by the router of the side that serves it
// (and only there), each is called by the other side's client as the entry says (method, path,
// purpose, signatures, answer schema), and no signed path is written anywhere else in the sources.
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Router } from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFetcherClient, createMainClient, FetcherErrorCode } from '../client/index.ts';
import { createFetcherRouter } from '../fetcher/router.ts';
import { createMainRouters } from '../main/router.ts';
import { createLogger } from '../support/index.ts';
import { HEADER_SIGNATURE, SignedRoutes, checkHeaderSignature, checkSignature, parseSecrets, precheck, type ReplayGuard, type Side, type SignedRoute } from './index.ts';

const keys = parseSecrets(`whsec_${Buffer.alloc(32, 7).toString('base64')}`);
const entries = Object.entries(SignedRoutes) as [string, SignedRoute][];
const logger = createLogger({ level: 'silent', name: 'routes-test' });
// the routers are only built, never asked: their other dependencies are never touched
const unused = <T>() => ({}) as T;
const replay: ReplayGuard = { check: async () => ({ seen: false }), record: async () => {}, release: async () => {} };

/** `METHOD path` of every route on a router's own stack (what express will match). */
function mounted(router: Router): string[] {
  return router.stack.flatMap((layer) => {
    const route = (layer as { route?: { path: string; methods: Record<string, boolean> } }).route;
    return route ? Object.keys(route.methods).filter((m) => m !== '_all').map((m) => `${m.toUpperCase()} ${route.path}`) : [];
  });
}

describe('every signed route is mounted by the side that serves it', () => {
  const routers: Record<Side, Router> = {
    main: createMainRouters({ jobs: unused(), keys, ledger: unused(), replay, logger, apiAuth: (_req, _res, next) => next() }).internal,
    fetcher: createFetcherRouter({ jobs: unused(), ledger: unused(), keys, logger, version: 'test', isDraining: () => false, health: unused(), replay }),
  };

  it.each(entries)('%s', (_name, route) => {
    const line = `${route.method} ${route.path}`;
    expect(mounted(routers[route.side])).toContain(line);
    expect(mounted(routers[route.side === 'main' ? 'fetcher' : 'main'])).not.toContain(line);
  });

  it('and the routers mount no signed route the table does not hold', () => {
    const inTable = new Set(entries.map(([, r]) => `${r.method} ${r.path}`));
    // (the fetcher's unsigned /healthz is a router of its own, mounted with use())
    expect(mounted(routers.main).filter((line) => !inTable.has(line))).toEqual([]);
    expect(mounted(routers.fetcher).filter((line) => !inTable.has(line))).toEqual([]);
  });
});

describe('every signed route is called by the other side’s client, as its entry says', () => {
  /** What the stand-in peer saw of each request: the entry it matched, and whether its signatures held for that entry's purpose. */
  const seen: Array<{ name: string | null; signed: boolean; contentType: string | undefined; body: string }> = [];
  const pattern = (route: SignedRoute) => new RegExp(`^${route.path.replace(/:\w+/g, '[^/]+')}$`);
  const entryOf = (req: IncomingMessage, path: string) => entries.find(([, r]) => r.method === req.method && pattern(r).test(path));
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c)).on('end', () => {
      const body = Buffer.concat(chunks);
      const path = req.url!.replace(/^\/peer/, '');
      const entry = entryOf(req, path);
      let signed = false;
      if (entry) {
        const [, route] = entry;
        const h = (name: string) => req.headers[name] as string | undefined;
        const pre = precheck({ headers: { id: h('webhook-id'), timestamp: h('webhook-timestamp'), signature: h('webhook-signature') }, purpose: route.purpose });
        const resource = route.resource ? decodeURIComponent(path.split('/').at(-1)!) : undefined;
        signed =
          pre.ok &&
          checkSignature(pre, keys, body).ok &&
          checkHeaderSignature(pre, keys, h(HEADER_SIGNATURE) ?? '', { method: req.method!, path }, Number(h('content-length') ?? 0)).ok &&
          (resource === undefined || pre.id.startsWith(`${route.purpose}_${resource}_`));
      }
      seen.push({ name: entry?.[0] ?? null, signed, contentType: req.headers['content-type'], body: body.toString('utf8') });
      // a 200 no answer schema accepts: the client must refuse it
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  let base = '';
  beforeAll(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/peer`;
  });
  afterAll(() => new Promise((r) => server.close(r)));

  const jobId = '0f8a3c1e-0000-4000-8000-000000000001';
  const clientOptions = () => ({ baseUrl: base, keys, retries: 0, timeouts: { headersMs: 5_000, bodyMs: 5_000 } });
  // Every signed call of both clients, by the client's own name for it. Their wake-ups and health
  // probes are unsigned, and close() is not a call.
  const unsigned = ['wake', 'health', 'close'];
  const fetcherCalls: Record<string, (c: ReturnType<typeof createFetcherClient>) => Promise<unknown>> = {
    submit: (c) => c.submit([{ id: jobId, name: 'test.job', payload: {} }]),
    status: (c) => c.status(),
    probeStatus: (c) => c.probeStatus(5_000),
    resendEvents: (c) => c.resendEvents(),
    getJob: (c) => c.getJob(jobId),
  };
  const mainCalls: Record<string, (c: ReturnType<typeof createMainClient>) => Promise<unknown>> = {
    sendEvents: (c) => c.sendEvents([{ jobId, seq: 1, type: 'active', attempt: 1, at: new Date().toISOString() }]),
    claim: (c) => c.claim(jobId, 1, 30),
    claimMany: (c) => c.claimMany([{ jobId, attempt: 1, claimSeconds: 30 }]),
    spawn: (c) => c.spawn({ jobs: [], batches: [], seal: [] }),
    pauses: (c) => c.pauses(),
  };

  it('each client call is listed here (a new one must be walked too)', async () => {
    const fetcher = createFetcherClient(clientOptions());
    const main = createMainClient(clientOptions());
    expect(Object.keys(fetcher).filter((k) => !unsigned.includes(k)).sort()).toEqual(Object.keys(fetcherCalls).sort());
    expect(Object.keys(main).filter((k) => !unsigned.includes(k)).sort()).toEqual(Object.keys(mainCalls).sort());
    await Promise.all([fetcher.close(), main.close()]);
  });

  it('each entry is called, signed for its purpose, with a JSON body exactly when it takes one, and its answer checked against its schema', async () => {
    const fetcher = createFetcherClient(clientOptions());
    const main = createMainClient({ ...clientOptions(), peer: 'main' });
    const calls = [...Object.values(fetcherCalls).map((call) => () => call(fetcher)), ...Object.values(mainCalls).map((call) => () => call(main))];
    for (const call of calls) {
      await expect(call()).rejects.toMatchObject({ code: FetcherErrorCode.failed, message: expect.stringContaining('cannot read') });
    }
    await Promise.all([fetcher.close(), main.close()]);

    expect(seen.filter((s) => s.name === null)).toEqual([]);
    expect(seen.filter((s) => !s.signed).map((s) => s.name)).toEqual([]);
    for (const [name, route] of entries) {
      const requests = seen.filter((s) => s.name === name);
      expect(requests.length, `${name} has a client call`).toBeGreaterThan(0);
      for (const r of requests) {
        if (route.request) {
          expect(r.contentType).toBe('application/json');
          expect(route.request.safeParse(JSON.parse(r.body)).success, `${name} sends a body its request schema takes`).toBe(true);
        } else {
          expect(r.body).toBe('');
        }
      }
    }
  });
});

describe('no signed path is written outside the table', () => {
  const src = fileURLToPath(new URL('..', import.meta.url));
  const table = fileURLToPath(new URL('./routes.ts', import.meta.url));
  const files = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)]));
  // a path's fixed part (up to its first parameter), not followed by more of a name
  const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const paths = [...new Set(entries.map(([, r]) => r.path.split(':')[0]!.replace(/\/$/, '')))].map((p) => new RegExp(`${escape(p)}(?![\\w-])`));

  it('in any file under src/ (code, comments, assets)', () => {
    const found = files(src)
      .filter((f) => f !== table)
      .flatMap((f) => readFileSync(f, 'utf8').split('\n').flatMap((text, i) => (paths.some((p) => p.test(text)) ? [`${relative(src, f)}:${i + 1}: ${text.trim()}`] : [])));
    expect(found, 'name the route by its SignedRoutes entry instead').toEqual([]);
  });

  it('finds one when there is one', () => {
    expect(paths.some((p) => p.test(`call('POST', '${SignedRoutes.jobEvents.path}', …)`))).toBe(true);
    expect(paths.some((p) => p.test(`GET ${SignedRoutes.readJob.path.replace(':id', 'abc')}`))).toBe(true);
  });
});

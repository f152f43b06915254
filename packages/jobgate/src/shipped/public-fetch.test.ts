import { createServer } from 'node:http';
import type { LookupFunction } from 'node:net';
import { describe, expect, it } from 'vitest';
import { publicFetch, type PublicFetchOptions } from './public-fetch.ts';
import { ownAddresses } from './special-addresses.ts';

describe('publicFetch', () => {
  it('resolves an allowed name once and connects to the address it checked (no DNS rebinding)', async () => {
    const server = createServer((_req, res) => res.writeHead(204).end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const answers = ['127.0.0.1', '10.9.9.9'];
    let lookups = 0;
    // the first answer is the checked one; a rebinding resolver would answer differently next time
    const lookup = ((_host: string, _opts: unknown, cb: (err: null, addresses: Array<{ address: string; family: number }>) => void) => {
      cb(null, [{ address: answers[Math.min(lookups++, 1)]!, family: 4 }]);
    }) as unknown as LookupFunction;
    try {
      const signal = new AbortController().signal;
      const r = await publicFetch(new URL(`http://hook.test:${port}/x`), { method: 'POST', headers: {}, body: '{}', signal }, { allowedHosts: new Set(['hook.test']), lookup });
      expect(r.status).toBe(204);
      expect(lookups).toBe(1);
      // the same name, not allowed: refused at the lookup, before any connection
      await expect(publicFetch(new URL(`http://other.test:${port}/x`), { method: 'POST', headers: {}, body: '{}', signal }, { allowedHosts: new Set(), lookup })).rejects.toThrow(/resolves to 10\.9\.9\.9, which is not a public address \(private-use, 10\.0\.0\.0\/8, RFC 1918\)/);
    } finally {
      server.close();
    }
  });
});

describe('publicFetch against a rebinding resolver', () => {
  it('resolves a host that is not allowed once, checks that answer, and connects to it: a second, private answer is never asked for', async () => {
    let lookups = 0;
    const request = new AbortController();
    // public first, private on any second lookup; the request is abandoned as soon as the public
    // answer is given (a test sends nothing to a public host)
    const lookup = ((_host: string, _opts: unknown, cb: (err: null, addresses: Array<{ address: string; family: number }>) => void) => {
      cb(null, [{ address: lookups++ === 0 ? '93.184.216.34' : '127.0.0.1', family: 4 }]);
      request.abort();
    }) as unknown as LookupFunction;
    const err = await publicFetch(new URL('http://rebind.test/x'), { method: 'POST', headers: {}, body: '{}', signal: request.signal }, { allowedHosts: new Set(), lookup }).then(
      () => null,
      (e: unknown) => e as Error,
    );
    // one lookup: the checked public answer is the one it connected to (whatever answered there);
    // with a second lookup it would have met the private answer and been refused
    expect(lookups).toBe(1);
    expect(String(err ?? '')).not.toMatch(/not a public address/);
  });
});

describe('publicFetch refuses before it connects', () => {
  /** A server on every interface that counts connections: a refused request must not make one. */
  async function counting() {
    let connections = 0;
    const server = createServer((_req, res) => res.writeHead(204).end());
    server.on('connection', () => connections++);
    await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve));
    return { port: (server.address() as { port: number }).port, connections: () => connections, close: () => server.close() };
  }
  const post = (url: string, options: Partial<PublicFetchOptions> = {}) =>
    publicFetch(new URL(url), { method: 'POST', headers: {}, body: '{}', signal: AbortSignal.timeout(5_000) }, { allowedHosts: new Set(), ...options }).then(
      (r) => `delivered ${r.status}`,
      (e: Error) => e.message,
    );

  it('every URL spelling of a loopback address, and names resolving to one', async () => {
    const s = await counting();
    try {
      const urls = [
        `http://127.0.0.1:${s.port}/`, `http://127.1:${s.port}/`, `http://0x7f000001:${s.port}/`, `http://2130706433:${s.port}/`, `http://0177.0.0.1:${s.port}/`,
        `http://[::1]:${s.port}/`, `http://[0:0:0:0:0:0:0:1]:${s.port}/`, `http://[::ffff:127.0.0.1]:${s.port}/`, `http://[::ffff:7f00:1]:${s.port}/`,
        `http://[0000:0000:0000:0000:0000:FFFF:7F00:0001]:${s.port}/`, `http://[64:ff9b::127.0.0.1]:${s.port}/`, `http://0.0.0.0:${s.port}/`, `http://[::]:${s.port}/`,
        `http://localhost:${s.port}/`,
      ];
      for (const url of urls) expect(await post(url), url).toMatch(/not a public address \(.*\); list the host in NOTIFY_ALLOWED_HOSTS/);
      expect(s.connections()).toBe(0);
    } finally {
      s.close();
    }
  });

  it("this host's own addresses, read from its interfaces when it checks", async () => {
    const s = await counting();
    // a public address standing in for this host's own, on a name that resolves to it
    const lookup = ((_host: string, _opts: unknown, cb: (err: null, addresses: Array<{ address: string; family: number }>) => void) => {
      cb(null, [{ address: '93.184.216.34', family: 4 }]);
    }) as unknown as LookupFunction;
    try {
      const own = () => ['127.0.0.1', '93.184.216.34'];
      expect(await post(`http://93.184.216.34:${s.port}/`, { ownAddresses: own })).toMatch(/is not a public address \(this host's own address\)/);
      expect(await post(`http://[::ffff:93.184.216.34]:${s.port}/`, { ownAddresses: own })).toMatch(/this host's own address/);
      expect(await post(`http://me.test:${s.port}/`, { ownAddresses: own, lookup })).toMatch(/me\.test resolves to 93\.184\.216\.34, which is not a public address \(this host's own address\)/);
      // the real interfaces: every one of them is refused
      for (const address of ownAddresses().filter((a) => !a.includes('%'))) {
        const host = address.includes(':') ? `[${address}]` : address;
        expect(await post(`http://${host}:${s.port}/`), address).toMatch(/not a public address/);
      }
      expect(s.connections()).toBe(0);
      // listed in NOTIFY_ALLOWED_HOSTS: reached
      expect(await post(`http://127.0.0.1:${s.port}/`, { allowedHosts: new Set(['127.0.0.1']) })).toBe('delivered 204');
      expect(s.connections()).toBe(1);
    } finally {
      s.close();
    }
  });
});

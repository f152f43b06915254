import { createServer } from 'node:http';
import type { LookupFunction } from 'node:net';
import { describe, expect, it } from 'vitest';
import { isPrivateAddress, publicFetch } from './public-fetch.ts';

describe('isPrivateAddress', () => {
  it.each([
    ['127.0.0.1', true], ['127.255.0.9', true], ['10.0.0.1', true], ['172.16.5.4', true], ['172.32.0.1', false], ['192.168.1.1', true],
    ['169.254.169.254', true], ['100.64.0.1', true], ['0.0.0.0', true], ['224.0.0.1', true], ['8.8.8.8', false], ['93.184.216.34', false],
    ['::1', true], ['::', true], ['fd00::1', true], ['fe80::1', true], ['::ffff:127.0.0.1', true], ['::ffff:8.8.8.8', false],
    ['2606:4700:4700::1111', false], ['not-an-ip', true],
  ])('%s → %s', (address, expected) => {
    expect(isPrivateAddress(address)).toBe(expected);
  });
});

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
      await expect(publicFetch(new URL(`http://other.test:${port}/x`), { method: 'POST', headers: {}, body: '{}', signal }, { allowedHosts: new Set(), lookup })).rejects.toThrow(/private address 10\.9\.9\.9/);
    } finally {
      server.close();
    }
  });
});

describe('publicFetch against a rebinding resolver', () => {
  it('resolves a host that is not allowed once, checks that answer, and connects to it: a second, private answer is never asked for', async () => {
    let lookups = 0;
    // public first (a documentation address nothing answers here), private on any second lookup
    const lookup = ((_host: string, _opts: unknown, cb: (err: null, addresses: Array<{ address: string; family: number }>) => void) => {
      cb(null, [{ address: lookups++ === 0 ? '203.0.113.7' : '127.0.0.1', family: 4 }]);
    }) as unknown as LookupFunction;
    const err = await publicFetch(new URL('http://rebind.test/x'), { method: 'POST', headers: {}, body: '{}', signal: AbortSignal.timeout(1_000) }, { allowedHosts: new Set(), lookup }).then(
      () => null,
      (e: unknown) => e as Error,
    );
    // one lookup: the checked public answer is the one it connected to (whatever answered there);
    // with a second lookup it would have met the private answer and been refused
    expect(lookups).toBe(1);
    expect(String(err ?? '')).not.toMatch(/private address/);
  });
});

import { lookup as dnsLookup } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { Agent, fetch } from 'undici';
import { PermanentJobError } from '../support/index.ts';

/**
 * Addresses a webhook may not reach unless its host is allowed by name: loopback, private,
 * link-local (cloud metadata at 169.254.169.254), unique-local, carrier-grade NAT, unspecified,
 * multicast and the IPv4 ranges mapped or embedded in IPv6.
 */
const PRIVATE = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) PRIVATE.addSubnet(net, prefix, 'ipv4');
for (const [net, prefix] of [
  ['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8], ['64:ff9b::', 96], ['2002::', 16],
] as const) PRIVATE.addSubnet(net, prefix, 'ipv6');

/** Whether `address` (an IP literal) is one a webhook may not reach. */
export function isPrivateAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return PRIVATE.check(address, 'ipv4');
  if (family !== 6) return true; // not an address at all: refuse
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return PRIVATE.check(mapped[1]!, 'ipv4');
  return PRIVATE.check(address, 'ipv6');
}

export interface PublicFetchOptions {
  /** Host names (lowercase) that may resolve to private addresses (NOTIFY_ALLOWED_HOSTS). */
  allowedHosts: ReadonlySet<string>;
  /** For tests: how names resolve (default: the OS resolver). */
  lookup?: LookupFunction;
}

const refused = (host: string, address: string) =>
  new PermanentJobError(`webhook host ${host} resolves to the private address ${address}; list the host in NOTIFY_ALLOWED_HOSTS to allow it`);

/**
 * POSTs to a URL an outsider may have named, without letting it reach private services (SSRF):
 * the host is resolved once, every address is checked, and the connection goes to the address
 * that was checked (a second, rebound answer is never asked for). Redirects are not followed.
 * A refused host is a PermanentJobError: retrying will not change the answer.
 */
export async function publicFetch(url: URL, init: { method: string; headers: Record<string, string>; body: string; signal: AbortSignal }, options: PublicFetchOptions) {
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  const allowed = options.allowedHosts.has(host);
  if (isIP(host)) {
    if (!allowed && isPrivateAddress(host)) throw refused(host, host);
  }
  const resolve = options.lookup ?? dnsLookup;
  // undici calls this when it connects (IP literals skip it): resolve, check, connect to what was checked
  const checkedLookup: LookupFunction = (hostname, lookupOptions, callback) => {
    resolve(hostname, { ...lookupOptions, all: true }, (err, addresses) => {
      if (err) return callback(err, '', 0);
      const list = (Array.isArray(addresses) ? addresses : [{ address: addresses as unknown as string, family: 4 }]) as Array<{ address: string; family: number }>;
      const bad = allowed ? undefined : list.find((a) => isPrivateAddress(a.address));
      if (bad || list.length === 0) return callback(bad ? refused(host, bad.address) : new Error(`${hostname} has no address`), '', 0);
      if (lookupOptions.all) return (callback as unknown as (e: null, a: typeof list) => void)(null, list);
      callback(null, list[0]!.address, list[0]!.family);
    });
  };
  const agent = new Agent({ connect: { lookup: checkedLookup, timeout: 10_000 }, headersTimeout: 30_000, bodyTimeout: 30_000 });
  try {
    return await fetch(url, { ...init, redirect: 'manual', dispatcher: agent });
  } catch (err) {
    // the refusal raised inside the lookup comes back as the fetch's cause
    const cause = (err as { cause?: unknown }).cause;
    if (cause instanceof PermanentJobError) throw cause;
    throw err;
  } finally {
    void agent.close();
  }
}

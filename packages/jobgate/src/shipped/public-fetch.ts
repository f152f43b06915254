import { lookup as dnsLookup } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import { Agent, fetch } from 'undici';
import { PermanentJobError } from '../support/index.ts';
import { ownAddresses, refusedAddress } from './special-addresses.ts';

/**
 * Whether `address` (an IP literal) is one a webhook may not reach: a special-purpose address
 * (SPECIAL_ADDRESSES), or not an address at all. This host's own addresses are refused too, but
 * by publicFetch, which reads them when it checks.
 */
export function isPrivateAddress(address: string): boolean {
  return refusedAddress(address) !== undefined;
}

export interface PublicFetchOptions {
  /** Host names or IP literals (lowercase) that may be reached whatever they resolve to (NOTIFY_ALLOWED_HOSTS). */
  allowedHosts: ReadonlySet<string>;
  /** For tests: how names resolve (default: the OS resolver). */
  lookup?: LookupFunction;
  /** For tests: this host's own addresses (default: every interface's, read at each check). */
  ownAddresses?: () => readonly string[];
}

/**
 * The same answer whatever listens at the address: it is refused before any connection, so the
 * job's failure cannot tell an open port from a closed one (the port is not even in the message).
 */
const refused = (host: string, address: string, why: string) =>
  new PermanentJobError(
    `webhook host ${host} ${host === address ? 'is' : `resolves to ${address}, which is`} not a public address (${why}); list the host in NOTIFY_ALLOWED_HOSTS to allow it`,
  );

/**
 * POSTs to a URL an outsider may have named, without letting it reach private services (SSRF):
 * the host is resolved once, every address is checked, and the connection goes to the address
 * that was checked (a second, rebound answer is never asked for). Redirects are not followed.
 * A refused host is a PermanentJobError: retrying will not change the answer.
 */
export async function publicFetch(url: URL, init: { method: string; headers: Record<string, string>; body: string; signal: AbortSignal }, options: PublicFetchOptions) {
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  const allowed = options.allowedHosts.has(host);
  const own = options.ownAddresses ?? ownAddresses;
  if (isIP(host) && !allowed) {
    const why = refusedAddress(host, own());
    if (why) throw refused(host, host, why);
  }
  const resolve = options.lookup ?? dnsLookup;
  // undici calls this when it connects (IP literals skip it): resolve, check, connect to what was checked
  const checkedLookup: LookupFunction = (hostname, lookupOptions, callback) => {
    resolve(hostname, { ...lookupOptions, all: true }, (err, addresses) => {
      if (err) return callback(err, '', 0);
      const list = (Array.isArray(addresses) ? addresses : [{ address: addresses as unknown as string, family: 4 }]) as Array<{ address: string; family: number }>;
      if (list.length === 0) return callback(new Error(`${hostname} has no address`), '', 0);
      if (!allowed) {
        const mine = own();
        for (const { address } of list) {
          const why = refusedAddress(address, mine);
          if (why) return callback(refused(host, address, why), '', 0);
        }
      }
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

import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';

/** One row of the table: a range an outbound request may not reach, and where it is defined. */
export interface SpecialRange {
  range: string;
  name: string;
  rfc: string;
  /**
   * Judged by the IPv4 address in its last 32 bits instead of refused whole: a connection to such an
   * address reaches that IPv4 address (IPv4-mapped: through this host's own IPv4 stack; the NAT64
   * well-known prefix: through the translator, and a DNS64 resolver answers it for every public
   * IPv4-only host on an IPv6-only network).
   */
  embedsIpv4?: true;
}

/**
 * Every address an outbound request to a URL an outsider named may not reach: the IANA IPv4 and IPv6
 * Special-Purpose Address Registries, multicast, and every IPv6 address outside 2000::/3 (the only
 * block IANA allocates as global unicast). The first row that holds an address decides, so the
 * narrower rows come before the wider ones they sit in.
 *
 * The other forms that embed an IPv4 address (IPv4-compatible ::/96, IPv4-translated, the local-use
 * NAT64 prefix, 6to4, Teredo) are refused whatever they embed: they are deprecated or the embedded
 * address cannot be read off the address alone, and no webhook needs them.
 */
export const SPECIAL_ADDRESSES: readonly SpecialRange[] = [
  { range: '0.0.0.0/8', name: 'this network', rfc: 'RFC 791' },
  { range: '10.0.0.0/8', name: 'private-use', rfc: 'RFC 1918' },
  { range: '100.64.0.0/10', name: 'shared address space (carrier-grade NAT)', rfc: 'RFC 6598' },
  { range: '127.0.0.0/8', name: 'loopback', rfc: 'RFC 1122' },
  { range: '169.254.0.0/16', name: 'link-local', rfc: 'RFC 3927' },
  { range: '172.16.0.0/12', name: 'private-use', rfc: 'RFC 1918' },
  { range: '192.0.0.0/24', name: 'IETF protocol assignments', rfc: 'RFC 6890' },
  { range: '192.0.2.0/24', name: 'documentation (TEST-NET-1)', rfc: 'RFC 5737' },
  { range: '192.31.196.0/24', name: 'AS112-v4', rfc: 'RFC 7535' },
  { range: '192.52.193.0/24', name: 'AMT', rfc: 'RFC 7450' },
  { range: '192.88.99.0/24', name: '6to4 relay anycast (deprecated)', rfc: 'RFC 7526' },
  { range: '192.168.0.0/16', name: 'private-use', rfc: 'RFC 1918' },
  { range: '192.175.48.0/24', name: 'AS112 direct delegation', rfc: 'RFC 7534' },
  { range: '198.18.0.0/15', name: 'benchmarking', rfc: 'RFC 2544' },
  { range: '198.51.100.0/24', name: 'documentation (TEST-NET-2)', rfc: 'RFC 5737' },
  { range: '203.0.113.0/24', name: 'documentation (TEST-NET-3)', rfc: 'RFC 5737' },
  { range: '224.0.0.0/4', name: 'multicast', rfc: 'RFC 5771' },
  { range: '255.255.255.255/32', name: 'limited broadcast', rfc: 'RFC 919' },
  { range: '240.0.0.0/4', name: 'reserved', rfc: 'RFC 1112' },

  { range: '::/128', name: 'unspecified', rfc: 'RFC 4291' },
  { range: '::1/128', name: 'loopback', rfc: 'RFC 4291' },
  { range: '::/96', name: 'IPv4-compatible (deprecated)', rfc: 'RFC 4291' },
  { range: '::ffff:0:0/96', name: 'IPv4-mapped', rfc: 'RFC 4291', embedsIpv4: true },
  { range: '::ffff:0:0:0/96', name: 'IPv4-translated', rfc: 'RFC 2765' },
  { range: '64:ff9b::/96', name: 'NAT64 well-known prefix', rfc: 'RFC 6052', embedsIpv4: true },
  { range: '64:ff9b:1::/48', name: 'NAT64 local-use prefix', rfc: 'RFC 8215' },
  { range: '100::/64', name: 'discard-only', rfc: 'RFC 6666' },
  { range: '100:0:0:1::/64', name: 'dummy IPv6 prefix', rfc: 'RFC 9780' },
  { range: '2001::/32', name: 'Teredo', rfc: 'RFC 4380' },
  { range: '2001:2::/48', name: 'benchmarking', rfc: 'RFC 5180' },
  { range: '2001:3::/32', name: 'AMT', rfc: 'RFC 7450' },
  { range: '2001:4:112::/48', name: 'AS112-v6', rfc: 'RFC 7535' },
  { range: '2001:10::/28', name: 'ORCHID (deprecated)', rfc: 'RFC 4843' },
  { range: '2001:20::/28', name: 'ORCHIDv2', rfc: 'RFC 7343' },
  { range: '2001:30::/28', name: 'DRIP DETs', rfc: 'RFC 9374' },
  { range: '2001::/23', name: 'IETF protocol assignments', rfc: 'RFC 2928' },
  { range: '2001:db8::/32', name: 'documentation', rfc: 'RFC 3849' },
  { range: '2002::/16', name: '6to4', rfc: 'RFC 3056' },
  { range: '2620:4f:8000::/48', name: 'AS112 direct delegation', rfc: 'RFC 7534' },
  { range: '3fff::/20', name: 'documentation', rfc: 'RFC 9637' },
  { range: '5f00::/16', name: 'SRv6 SIDs', rfc: 'RFC 9602' },
  { range: 'fc00::/7', name: 'unique-local', rfc: 'RFC 4193' },
  { range: 'fe80::/10', name: 'link-local', rfc: 'RFC 4291' },
  { range: 'fec0::/10', name: 'site-local (deprecated)', rfc: 'RFC 3879' },
  { range: 'ff00::/8', name: 'multicast', rfc: 'RFC 4291' },
  { range: '::/3', name: 'not global unicast (outside 2000::/3)', rfc: 'RFC 4291' },
  { range: '4000::/2', name: 'not global unicast (outside 2000::/3)', rfc: 'RFC 4291' },
  { range: '8000::/1', name: 'not global unicast (outside 2000::/3)', rfc: 'RFC 4291' },
];

/** An IP address as its bytes (4 or 16), or null when `address` is not one. A zone id (`%eth0`) is dropped. */
export function addressBytes(address: string): Uint8Array | null {
  const bare = address.includes(':') ? address.replace(/%.*$/, '') : address;
  const family = isIP(bare);
  if (family === 4) return Uint8Array.from(bare.split('.').map(Number));
  if (family !== 6) return null;
  let text = bare.toLowerCase();
  // a dotted IPv4 tail (::ffff:127.0.0.1) becomes its two hex groups
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = text.slice(0, dotted.index) + ((a << 8) | b).toString(16) + ':' + ((c << 8) | d).toString(16);
  }
  const [head, tail] = text.includes('::') ? text.split('::') as [string, string] : [text, undefined];
  const groups = (part: string | undefined) => (part ? part.split(':').map((g) => parseInt(g, 16)) : []);
  const left = groups(head);
  const right = groups(tail);
  const all = tail === undefined ? left : [...left, ...Array<number>(8 - left.length - right.length).fill(0), ...right];
  const bytes = new Uint8Array(16);
  all.forEach((g, i) => {
    bytes[2 * i] = g >> 8;
    bytes[2 * i + 1] = g & 0xff;
  });
  return bytes;
}

const TABLE = SPECIAL_ADDRESSES.map((row) => {
  const [net, prefix] = row.range.split('/') as [string, string];
  return { row, bytes: addressBytes(net)!, prefix: Number(prefix) };
});

function inRange(bytes: Uint8Array, range: { bytes: Uint8Array; prefix: number }): boolean {
  if (bytes.length !== range.bytes.length) return false;
  const whole = range.prefix >> 3;
  for (let i = 0; i < whole; i++) if (bytes[i] !== range.bytes[i]) return false;
  const bits = range.prefix & 7;
  if (bits === 0) return true;
  const mask = (0xff << (8 - bits)) & 0xff;
  return (bytes[whole]! & mask) === (range.bytes[whole]! & mask);
}

const sameAddress = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);

function judge(bytes: Uint8Array, own: readonly Uint8Array[]): string | undefined {
  const hit = TABLE.find((range) => inRange(bytes, range));
  if (hit?.row.embedsIpv4) {
    const embedded = bytes.subarray(12);
    const why = judge(embedded, own);
    return why && `${hit.row.name}, ${hit.row.range}, ${hit.row.rfc}, of ${embedded.join('.')}: ${why}`;
  }
  if (hit) return `${hit.row.name}, ${hit.row.range}, ${hit.row.rfc}`;
  if (own.some((o) => sameAddress(o, bytes))) return "this host's own address";
  return undefined;
}

/**
 * Why `address` may not be reached, or undefined when it may: a special-purpose address (the first
 * row of SPECIAL_ADDRESSES that holds it), one of `ownAddresses` (this host's interfaces), or not an
 * IP address at all. Any spelling of an address is judged alike (compressed, expanded, upper case,
 * dotted or hex IPv4 tail, with or without a zone id).
 *
 * @example
 * refusedAddress('192.0.2.2');                 // 'documentation (TEST-NET-1), 192.0.2.0/24, RFC 5737'
 * refusedAddress('::ffff:7f00:1');             // 'IPv4-mapped, ::ffff:0:0/96, RFC 4291, of 127.0.0.1: loopback, 127.0.0.0/8, RFC 1122'
 * refusedAddress('8.8.8.8');                   // undefined
 * refusedAddress('8.8.8.8', ['8.8.8.8']);      // "this host's own address"
 */
export function refusedAddress(address: string, ownAddresses: readonly string[] = []): string | undefined {
  const bytes = addressBytes(address);
  if (!bytes) return 'not an IP address';
  return judge(bytes, ownAddresses.map(addressBytes).filter((b): b is Uint8Array => b !== null));
}

/** This host's own addresses, on every interface, as the OS reports them now. */
export function ownAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((a) => a.address));
}

import { describe, expect, it } from 'vitest';
import { isPrivateAddress } from './public-fetch.ts';
import { addressBytes, refusedAddress, SPECIAL_ADDRESSES } from './special-addresses.ts';

/**
 * Every range of the table (public-fetch.ts), address by address: its first, an inside and its
 * last address, then its neighbours outside it, which must pass. Written out by hand, not derived
 * from the table, so a wrong prefix in the table shows here.
 */
const REFUSED: Array<[range: string, addresses: string[]]> = [
  ['0.0.0.0/8 this network', ['0.0.0.0', '0.1.2.3', '0.255.255.255']],
  ['10.0.0.0/8 private-use', ['10.0.0.0', '10.20.30.40', '10.255.255.255']],
  ['100.64.0.0/10 shared address space', ['100.64.0.0', '100.100.100.100', '100.127.255.255']],
  ['127.0.0.0/8 loopback', ['127.0.0.0', '127.0.0.1', '127.255.255.255']],
  ['169.254.0.0/16 link-local', ['169.254.0.0', '169.254.169.254', '169.254.255.255']],
  ['172.16.0.0/12 private-use', ['172.16.0.0', '172.20.1.1', '172.31.255.255']],
  ['192.0.0.0/24 IETF protocol assignments', ['192.0.0.0', '192.0.0.8', '192.0.0.170', '192.0.0.255']],
  ['192.0.2.0/24 documentation (TEST-NET-1)', ['192.0.2.0', '192.0.2.2', '192.0.2.255']],
  ['192.31.196.0/24 AS112-v4', ['192.31.196.0', '192.31.196.1', '192.31.196.255']],
  ['192.52.193.0/24 AMT', ['192.52.193.0', '192.52.193.7', '192.52.193.255']],
  ['192.88.99.0/24 6to4 relay anycast', ['192.88.99.0', '192.88.99.1', '192.88.99.255']],
  ['192.168.0.0/16 private-use', ['192.168.0.0', '192.168.1.1', '192.168.255.255']],
  ['192.175.48.0/24 AS112 direct delegation', ['192.175.48.0', '192.175.48.6', '192.175.48.255']],
  ['198.18.0.0/15 benchmarking', ['198.18.0.0', '198.19.1.1', '198.19.255.255']],
  ['198.51.100.0/24 documentation (TEST-NET-2)', ['198.51.100.0', '198.51.100.7', '198.51.100.255']],
  ['203.0.113.0/24 documentation (TEST-NET-3)', ['203.0.113.0', '203.0.113.7', '203.0.113.255']],
  ['224.0.0.0/4 multicast', ['224.0.0.0', '224.0.0.1', '239.255.255.250', '239.255.255.255']],
  ['240.0.0.0/4 reserved', ['240.0.0.0', '250.1.2.3', '255.255.255.254']],
  ['255.255.255.255/32 limited broadcast', ['255.255.255.255']],
  ['::/128 unspecified', ['::', '0:0:0:0:0:0:0:0', '0000:0000:0000:0000:0000:0000:0000:0000']],
  ['::1/128 loopback', ['::1', '0:0:0:0:0:0:0:1', '0000:0000:0000:0000:0000:0000:0000:0001', '::0001']],
  ['::/96 IPv4-compatible, whatever it embeds', ['::2', '::127.0.0.1', '::8.8.8.8', '::808:808', '::ffff:ffff']],
  ['::ffff:0:0/96 IPv4-mapped, of a special IPv4', ['::ffff:0.0.0.0', '::ffff:127.0.0.1', '::FFFF:7F00:1', '0:0:0:0:0:ffff:7f00:0001', '::ffff:10.0.0.1', '::ffff:192.0.2.2', '::ffff:c000:202', '::ffff:169.254.169.254', '::ffff:255.255.255.255']],
  ['::ffff:0:0:0/96 IPv4-translated (SIIT)', ['::ffff:0:0:0', '::ffff:0:808:808', '::ffff:0:ffff:ffff']],
  ['64:ff9b::/96 NAT64, of a special IPv4', ['64:ff9b::', '64:ff9b::127.0.0.1', '64:ff9b::7f00:1', '64:ff9b::a00:1', '64:ff9b::192.0.2.2', '64:ff9b::ffff:ffff']],
  ['64:ff9b:1::/48 local-use NAT64, whatever it embeds', ['64:ff9b:1::', '64:ff9b:1::808:808', '64:ff9b:1:ffff:ffff:ffff:ffff:ffff']],
  ['100::/64 discard-only', ['100::', '100::1', '100::ffff:ffff:ffff:ffff']],
  ['100:0:0:1::/64 dummy prefix', ['100:0:0:1::', '100:0:0:1:ffff:ffff:ffff:ffff']],
  ['2001::/32 Teredo', ['2001::', '2001:0:4136:e378:8000:63bf:3fff:fdd2', '2001:0:ffff:ffff:ffff:ffff:ffff:ffff']],
  ['2001::/23 IETF protocol assignments: PCP, TURN and DNS-SD SRP anycast', ['2001:1::1', '2001:1::2', '2001:1::3']],
  ['2001:2::/48 benchmarking', ['2001:2::', '2001:2::1', '2001:2:0:ffff:ffff:ffff:ffff:ffff']],
  ['2001:3::/32 AMT', ['2001:3::', '2001:3:ffff:ffff:ffff:ffff:ffff:ffff']],
  ['2001:4:112::/48 AS112-v6', ['2001:4:112::', '2001:4:112:ffff:ffff:ffff:ffff:ffff']],
  ['2001:10::/28 ORCHID (deprecated)', ['2001:10::', '2001:1f:ffff:ffff:ffff:ffff:ffff:ffff']],
  ['2001:20::/28 ORCHIDv2', ['2001:20::', '2001:2f:ffff:ffff:ffff:ffff:ffff:ffff']],
  ['2001:30::/28 DRIP DETs', ['2001:30::', '2001:3f:ffff:ffff:ffff:ffff:ffff:ffff']],
  ['2001::/23 IETF protocol assignments', ['2001:40::1', '2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff']],
  ['2001:db8::/32 documentation', ['2001:db8::', '2001:db8::1', '2001:0DB8:0000:0000:0000:0000:0000:0001', '2001:db8:ffff:ffff:ffff:ffff:ffff:ffff']],
  ['2002::/16 6to4, whatever it embeds', ['2002::', '2002:7f00:1::1', '2002:808:808::1', '2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff']],
  ['2620:4f:8000::/48 AS112 direct delegation', ['2620:4f:8000::', '2620:4f:8000:ffff:ffff:ffff:ffff:ffff']],
  ['3fff::/20 documentation', ['3fff::', '3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff']],
  ['5f00::/16 SRv6 SIDs', ['5f00::', '5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff']],
  ['fc00::/7 unique-local', ['fc00::', 'fd00::1', 'fd00::2', 'fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff']],
  ['fe80::/10 link-local, with and without a zone', ['fe80::', 'fe80::1', 'FE80::1', 'fe80::1%eth0', 'fe80::fc:ff:fe00:1%2', 'febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff']],
  ['fec0::/10 site-local (deprecated)', ['fec0::', 'fec0::1', 'feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff']],
  ['ff00::/8 multicast', ['ff00::', 'ff02::1', 'ff05::1:3', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff']],
  ['::/3 not global unicast', ['1::', '200::1', '1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff']],
  ['4000::/2 not global unicast', ['4000::', '4000::1', '7fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff']],
  ['8000::/1 not global unicast', ['8000::', 'e000::1', 'fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'fe00::1']],
  ['not an IP address', ['not-an-ip', '', '1.2.3', '256.1.1.1', '::ffff:1.2.3.256', '[::1]', 'localhost']],
];

/** Public addresses, many of them just outside a refused range. */
const PASSES = [
  '1.1.1.1', '8.8.8.8', '9.9.9.9', '93.184.216.34', '1.0.0.0', '9.255.255.255', '11.0.0.0', '100.63.255.255', '100.128.0.0',
  '126.255.255.255', '128.0.0.0', '169.253.255.255', '169.255.0.0', '172.15.255.255', '172.32.0.0', '191.255.255.255',
  '192.0.1.255', '192.0.3.0', '192.31.195.255', '192.31.197.0', '192.52.192.255', '192.52.194.0', '192.88.98.255', '192.88.100.0',
  '192.167.255.255', '192.169.0.0', '192.175.47.255', '192.175.49.0', '198.17.255.255', '198.20.0.0', '198.51.99.255',
  '198.51.101.0', '203.0.112.255', '203.0.114.0', '223.255.255.255',
  '2606:4700:4700::1111', '2001:4860:4860::8888', '2a00:1450:4001:80b::200e', '2001:200::1', '2001:db7:ffff:ffff:ffff:ffff:ffff:ffff',
  '2001:db9::', '2003::1', '2620:4f:7fff:ffff:ffff:ffff:ffff:ffff', '2620:4f:8001::', '3ffe::1', '3fff:1000::', '2000::1',
  '2606:4700:4700:0000:0000:0000:0000:1111', '2606:4700:4700:0:0:0:0:1111',
  // the two forms judged by the IPv4 address they embed: a public one passes
  '::ffff:8.8.8.8', '::ffff:808:808', '0:0:0:0:0:FFFF:0808:0808', '64:ff9b::8.8.8.8', '64:ff9b::808:808',
];

describe('refusedAddress', () => {
  it.each(REFUSED.flatMap(([range, addresses]) => addresses.map((a) => [a, range])))('refuses %s (%s)', (address, range) => {
    const cidr = range.split(' ')[0]!;
    expect(refusedAddress(address)).toContain(cidr.includes('/') ? `${cidr},` : 'not an IP address');
    expect(isPrivateAddress(address)).toBe(true);
  });

  it.each(PASSES)('lets %s pass', (address) => {
    expect(refusedAddress(address)).toBeUndefined();
    expect(isPrivateAddress(address)).toBe(false);
  });

  it('judges the mapped and NAT64 forms by the IPv4 address they embed, and names both', () => {
    expect(refusedAddress('::ffff:7f00:1')).toBe('IPv4-mapped, ::ffff:0:0/96, RFC 4291, of 127.0.0.1: loopback, 127.0.0.0/8, RFC 1122');
    expect(refusedAddress('64:ff9b::c000:202')).toBe('NAT64 well-known prefix, 64:ff9b::/96, RFC 6052, of 192.0.2.2: documentation (TEST-NET-1), 192.0.2.0/24, RFC 5737');
  });

  it("refuses this host's own addresses in any spelling, and only those", () => {
    const own = ['127.0.0.1', '93.184.216.34', '2606:4700:4700::1111', 'fe80::fc:ff:fe00:1'];
    for (const address of ['93.184.216.34', '::ffff:93.184.216.34', '::ffff:5db8:d822', '64:ff9b::5db8:d822', '2606:4700:4700:0:0:0:0:1111', '2606:4700:4700:0000:0000:0000:0000:1111', '2606:4700:4700::1111%eth0']) {
      expect(refusedAddress(address, own), address).toMatch(/this host's own address/);
    }
    expect(refusedAddress('93.184.216.35', own)).toBeUndefined();
    expect(refusedAddress('2606:4700:4700::1112', own)).toBeUndefined();
  });

  it('every range of the table is a network address with its prefix', () => {
    for (const { range } of SPECIAL_ADDRESSES) {
      const [net, prefix] = range.split('/') as [string, string];
      const bytes = addressBytes(net)!;
      expect(bytes, range).not.toBeNull();
      expect(Number(prefix), range).toBeLessThanOrEqual(bytes.length * 8);
      // no bit set past the prefix
      const bits = [...bytes].map((b) => b.toString(2).padStart(8, '0')).join('');
      expect(bits.slice(Number(prefix)), range).toMatch(/^0*$/);
    }
  });
});


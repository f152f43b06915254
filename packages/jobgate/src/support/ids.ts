import { randomFillSync } from 'node:crypto';

const bytes = new Uint8Array(16);

/**
 * A UUID of version 7 (RFC 9562): the Unix time in milliseconds in its first 48 bits, random bits
 * after. Jobs are keyed by it: ids made one after the other sort together, so a new job's entry in
 * a primary key (the ledger's, pg-boss's (name, id), the fetcher's) lands on the index's newest
 * pages, which the last jobs already wrote, instead of a random page of the whole index: fewer
 * pages read into memory, and fewer whole pages written to the WAL after each checkpoint.
 */
export function uuidv7(now = Date.now()): string {
  randomFillSync(bytes);
  // 48 bits of milliseconds, big-endian (above 2^32: divide, since bit operators work on 32 bits)
  const high = Math.floor(now / 2 ** 16);
  bytes[0] = (high >>> 24) & 0xff;
  bytes[1] = (high >>> 16) & 0xff;
  bytes[2] = (high >>> 8) & 0xff;
  bytes[3] = high & 0xff;
  bytes[4] = (now >>> 8) & 0xff;
  bytes[5] = now & 0xff;
  bytes[6] = 0x70 | (bytes[6]! & 0x0f);
  bytes[8] = 0x80 | (bytes[8]! & 0x3f);
  const hex = Buffer.from(bytes.buffer, bytes.byteOffset, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

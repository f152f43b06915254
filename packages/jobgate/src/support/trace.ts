import { randomBytes } from 'node:crypto';

/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): `00-<trace-id>-<parent-id>-<flags>`.
 * A job keeps the traceparent of the request that enqueued it (or a new one), carries it over the
 * hop and onto its events, and every log line about it says `traceId`: one grep of both services'
 * logs shows a job's whole life.
 */
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

/** The header's trace id and flags if it is a valid version-00 traceparent (all-zero ids are invalid). */
export function parseTraceparent(header: string | undefined | null): { traceId: string; spanId: string; flags: string } | null {
  const m = header ? TRACEPARENT.exec(header.trim()) : null;
  if (!m || m[1] === ZERO_TRACE || m[2] === ZERO_SPAN) return null;
  return { traceId: m[1]!, spanId: m[2]!, flags: m[3]! };
}

/** Random bytes as hex, drawn from a buffer filled 4 KiB at a time (one call into the CSPRNG per 170 new traces, not two per trace). */
let entropy = Buffer.alloc(0);
let drawn = 0;
function randomHex(bytes: number): string {
  if (drawn + bytes > entropy.length) {
    entropy = randomBytes(4096);
    drawn = 0;
  }
  drawn += bytes;
  return entropy.toString('hex', drawn - bytes, drawn);
}

/** A new span in trace `traceId` (a new trace when absent), sampled. */
export function newTraceparent(traceId?: string): string {
  return `00-${traceId ?? randomHex(16)}-${randomHex(8)}-01`;
}

/** The trace id of a traceparent this code wrote or checked. */
export const traceIdOf = (traceparent: string): string => traceparent.slice(3, 35);

/** A log line's `traceId` for a job's traceparent, or nothing when the job has none (an older job). */
export const traceFields = (traceparent: string | null | undefined): { traceId?: string } => (traceparent ? { traceId: traceIdOf(traceparent) } : {});

/** For a zod schema at a boundary. */
export const TRACEPARENT_PATTERN = TRACEPARENT;

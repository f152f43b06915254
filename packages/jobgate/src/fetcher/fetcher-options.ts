// The fetcher's options: what createFetcher takes (the public type), the schema that checks them
// once at the door with their defaults, and the memory budget they default to.
import { constrainedMemory } from 'node:process';
import { z } from 'zod';
import { parseOptions } from '../support/index.ts';
import { commonOptionsShape, type CommonOptions } from '../run/service-options.ts';

export interface FetcherServiceOptions extends CommonOptions {
  /**
   * main: `url` where its router is mounted (e.g. `https://app.example.com/jobgate`), `secret` the
   * shared secret(s). Without `url`, no job event reaches main and no attempt is claimed there
   * (then main must never use its emergency override with this fetcher). `requireHeaderSignature`:
   * refuse main's requests that carry no header signature (default false: a main of a version
   * before it is served in a lane of its own); switch on once every main is upgraded.
   */
  main: { url?: string; secret: string; eventsRetryMaxMs?: number; requireHeaderSignature?: boolean };
  /** The memory budget (default: the container's limit, else 512 MB) and the shares of it that pause intake and recycle. */
  memory?: { limitMb?: number; softRatio?: number; hardRatio?: number };
  /**
   * Over the hard memory limit: default, stop() with running jobs aborted (they are retried). A
   * service that a platform restarts should exit non-zero here instead (the reference fetcher does).
   */
  onMemoryHardLimit?: () => void;
  /** Finished jobs older than this are pruned (default 14 days), checked every pruneIntervalMs (default an hour). */
  retentionDays?: number;
  pruneIntervalMs?: number;
}

const Options = z.object({
  ...commonOptionsShape({ schema: 'jobgate_fetcher', bossSchema: 'pgboss_fetcher' }),
  main: z.strictObject({ url: z.url({ protocol: /^https?$/ }).optional(), secret: z.string().min(1), eventsRetryMaxMs: z.number().int().min(100).max(600_000).default(30_000), requireHeaderSignature: z.boolean().default(false) }),
  memory: z
    .strictObject({ limitMb: z.number().int().min(64).max(1_048_576).optional(), softRatio: z.number().gt(0).lt(1).default(0.8), hardRatio: z.number().gt(0).lt(1).default(0.95) })
    .refine((m) => m.softRatio < m.hardRatio, { path: ['softRatio'], message: 'must be below hardRatio' })
    .default({ softRatio: 0.8, hardRatio: 0.95 }),
  retentionDays: z.number().int().min(1).max(3650).default(14),
  pruneIntervalMs: z.number().int().min(100).max(86_400_000).default(3_600_000),
});

/** The container's memory limit when the process has a real one (0 or a huge number when not), else 512 MB (a Render free/starter instance). */
export function memoryBudgetMb(given?: number, constrained = constrainedMemory()): number {
  if (given) return given;
  const mb = Math.floor(constrained / 2 ** 20);
  return mb > 0 && mb < 1_048_576 ? mb : 512;
}

/** createFetcher's options as checked, defaults filled in. */
export type CheckedFetcherOptions = z.output<typeof Options>;

/** Checks createFetcher's options (a ConfigError naming every failing option) and fills in the defaults. */
export function parseFetcherOptions(options: FetcherServiceOptions): CheckedFetcherOptions {
  return parseOptions(Options, options, 'createFetcher');
}

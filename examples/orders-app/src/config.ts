// Settings from the environment, checked once at start: both services read this file.
import { z } from 'zod';

const Env = z.object({
  /** One PostgreSQL for everything: the app's tables in `public`, jobgate's in their own schemas. */
  DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, 'a postgres:// URL'),
  /** Shared by the server and the fetcher, who sign their requests to each other with it (several, space-separated and newest first, while it rotates). */
  SHARED_SECRET: z.string().regex(/^whsec_[A-Za-z0-9+/=]{32,}( whsec_[A-Za-z0-9+/=]{32,})*$/, 'whsec_ and the base64 of at least 24 random bytes'),
  HOST: z.string().default('127.0.0.1'),
  /** Each service's own port (default: server 3000, fetcher 3001; 0 picks a free one). */
  PORT: z.coerce.number().int().min(0).max(65_535).optional(),
  /** Where the server reaches the fetcher. */
  FETCHER_URL: z.url().default('http://127.0.0.1:3001'),
  /** Where the fetcher reaches the server's jobgate routes (mounted at /ops/jobs). */
  MAIN_URL: z.url().default('http://127.0.0.1:3000/ops/jobs'),
  /** jobgate's schemas: the server's and the fetcher's differ, so both can share one database. */
  MAIN_SCHEMA: z.string().default('jobgate'),
  MAIN_BOSS_SCHEMA: z.string().default('pgboss_main'),
  FETCHER_SCHEMA: z.string().default('jobgate_fetcher'),
  FETCHER_BOSS_SCHEMA: z.string().default('pgboss_fetcher'),
  /** The demo sign-in of /ops/jobs: user `ops` (staff, may use the jobs admin) and, if set, `clerk` (not staff). */
  OPS_PASSWORD: z.string().min(8).optional(),
  CLERK_PASSWORD: z.string().min(8).optional(),
});

function load(): z.infer<typeof Env> {
  const parsed = Env.safeParse(process.env);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) console.error(`orders-app: ${issue.path.join('.')}: ${issue.message}`);
    process.exit(1);
  }
  return parsed.data;
}

export const config = load();

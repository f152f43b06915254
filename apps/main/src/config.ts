import { z } from 'zod';
import { loadConfig, serviceEnvShape } from '@jobgate/runtime';

export { ConfigError } from '@jobgate/runtime';

/** Every environment variable the main app reads; `main.ts` passes `process.env` in. */
export const MainEnv = z.object({
  ...serviceEnvShape({ port: 3000, schema: 'jobgate', bossSchema: 'pgboss_main' }),
});

export type MainConfig = Readonly<z.output<typeof MainEnv>>;

export function loadMainConfig(env: Record<string, string | undefined>): MainConfig {
  return loadConfig(MainEnv, env);
}

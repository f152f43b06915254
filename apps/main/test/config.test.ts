import { describe, expect, it } from 'vitest';
import type pg from 'pg';
import { ConfigError, loadMainConfig, mainOptions } from '../src/config.ts';
import { createLogger } from 'jobgate/internal';

describe('loadMainConfig', () => {
  it('applies defaults and reads booleans as words', () => {
    const config = loadMainConfig({ DATABASE_URL: 'postgres://x@h/db', JOBGATE_DEMO_JOBS: 'false', JOBGATE_JOB_MODULES: 'a.ts, b.ts' });
    expect(config).toMatchObject({ PORT: 3000, JOBGATE_DEMO_JOBS: false, JOBGATE_SCHEMA: 'jobgate', JOBGATE_JOB_MODULES: ['a.ts', 'b.ts'], JOBGATE_HEARTBEAT_SECONDS: 30 });
    expect(loadMainConfig({ DATABASE_URL: 'postgres://x@h/db', JOBGATE_DEMO_JOBS: 'true' }).JOBGATE_DEMO_JOBS).toBe(true);
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('names every bad variable at once', () => {
    try {
      loadMainConfig({ PORT: 'eighty', JOBGATE_DEMO_JOBS: 'maybe', JOBGATE_HEARTBEAT_SECONDS: '5', DATABASE_URL: '' });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const names = (err as ConfigError).problems.map((p) => p.split(':')[0]).sort();
      expect(names).toEqual(['DATABASE_URL', 'JOBGATE_DEMO_JOBS', 'JOBGATE_HEARTBEAT_SECONDS', 'PORT']);
    }
  });

  it('in production names every missing variable at once, the production-only ones included', () => {
    try {
      loadMainConfig({ NODE_ENV: 'production', PORT: 'eighty' });
      expect.unreachable();
    } catch (err) {
      const names = (err as ConfigError).problems.map((p) => p.split(':')[0]).sort();
      expect(names).toEqual(['ADMIN_PASSWORD', 'API_TOKENS', 'DATABASE_URL', 'FETCHER_SERVICE_URL', 'FETCHER_SHARED_SECRET', 'PORT']);
    }
    // development fills them in (npm start generates secrets and knows the local URLs)
    expect(loadMainConfig({ DATABASE_URL: 'postgres://x@h/db' }).NODE_ENV).toBe('development');
  });

  it('gives the tokens of ADMIN_API_TOKENS the admin scope, after those of API_TOKENS', () => {
    const config = loadMainConfig({ DATABASE_URL: 'postgres://x@h/db', API_TOKENS: 'api-token-0123456789', ADMIN_API_TOKENS: ' admin-token-0123456789  admin-token-9876543210 ' });
    const { apiTokens } = mainOptions(config, { logger: createLogger({ level: 'silent', name: 'test' }), pool: {} as pg.Pool });
    expect(apiTokens).toEqual([
      'api-token-0123456789',
      { token: 'admin-token-0123456789', scope: 'admin', name: 'ADMIN_API_TOKENS #1' },
      { token: 'admin-token-9876543210', scope: 'admin', name: 'ADMIN_API_TOKENS #2' },
    ]);
    expect(() => loadMainConfig({ DATABASE_URL: 'postgres://x@h/db', ADMIN_API_TOKENS: 'short' })).toThrow(/ADMIN_API_TOKENS\.0: each token at least 16 characters/);
  });
});

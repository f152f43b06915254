// Boot-time configuration errors stop the app with one message naming every bad variable.
import { describe, expect, it } from 'vitest';
import { spawnApp } from '../support/apps.ts';

describe('main boot', () => {
  it('exits 1 naming every bad variable', async () => {
    const app = spawnApp('main', { PORT: 'eighty', JOBGATE_WORKER_CONCURRENCY: '0' });
    const { code } = await app.exited;
    const stderr = app.stderr.join('\n');
    expect(code).toBe(1);
    expect(stderr).toContain('invalid configuration');
    for (const name of ['DATABASE_URL', 'PORT', 'JOBGATE_WORKER_CONCURRENCY']) expect(stderr).toContain(name);
  });
});

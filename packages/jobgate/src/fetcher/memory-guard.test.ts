import { describe, expect, it } from 'vitest';
import { createLogger } from '../support/index.ts';
import { createMemoryGuard } from '../internal.ts';

const MB = 2 ** 20;

function guard(rss: { mb: number }, running = { n: 0 }, stuckMs = 50) {
  const calls: string[] = [];
  const g = createMemoryGuard({
    limitMb: 1_000,
    softRatio: 0.5,
    hardRatio: 0.9,
    intervalMs: 0,
    stuckMs,
    logger: createLogger({ level: 'silent', name: 'test' }),
    onPause: async () => void calls.push('pause'),
    onResume: async () => void calls.push('resume'),
    onHardLimit: (_mb, reason) => void calls.push(`recycle:${reason}`),
    running: () => running.n,
    sampleRss: () => rss.mb * MB,
  });
  return { g, calls };
}

describe('memory guard', () => {
  it('pauses at the soft limit and resumes only 5% below it', async () => {
    const rss = { mb: 400 };
    const { g, calls } = guard(rss, { n: 1 });
    await g.check();
    expect(g.intake).toBe('open');
    rss.mb = 510;
    await g.check();
    expect([g.intake, calls]).toEqual(['paused', ['pause']]);
    rss.mb = 490; // under the soft limit, but not 5% under
    await g.check();
    expect(g.intake).toBe('paused');
    rss.mb = 470;
    await g.check();
    expect([g.intake, calls]).toEqual(['open', ['pause', 'resume']]);
  });

  it('recycles at the hard limit, once', async () => {
    const { g, calls } = guard({ mb: 950 }, { n: 1 });
    await g.check();
    await g.check();
    expect(calls).toEqual(['recycle:hard-limit']);
    expect(g.intake).toBe('paused');
  });

  it('recycles a paused, idle process whose memory does not come back', async () => {
    const running = { n: 1 };
    const { g, calls } = guard({ mb: 600 }, running, 50);
    await g.check(); // paused while the job runs: no recycling
    await new Promise((r) => setTimeout(r, 80));
    await g.check();
    expect(calls).toEqual(['pause']);
    running.n = 0;
    await g.check(); // idle and still high: the clock starts
    expect(calls).toEqual(['pause']);
    await new Promise((r) => setTimeout(r, 80));
    await g.check();
    expect(calls).toEqual(['pause', 'recycle:not-returned']);
  });

  it('reports memory against the limit', () => {
    const { g } = guard({ mb: 100 });
    expect(g.snapshot()).toMatchObject({ limitMb: 1_000, rssMb: expect.any(Number), peakRssMb: expect.any(Number) });
  });
});

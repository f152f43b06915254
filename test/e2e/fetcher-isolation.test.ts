// Thread isolation on a real fetcher: a heap bomb fails its own job and nothing else (FAULTS.md
// rows 36 and 37).
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseSecrets } from '../../packages/jobgate/src/protocol/index.ts';
import { spawnApp, startFetcher, TEST_SHARED_SECRET, type AppProcess } from '../support/apps.ts';
import { createFetcherClient } from '../../packages/jobgate/src/client/index.ts';
import { fetcherPerFile } from '../support/gateway.ts';
import { waitFor } from '../support/wait.ts';
import { FETCHER_JOBS } from '../support/fetcher-jobs.ts';

const keys = parseSecrets(TEST_SHARED_SECRET);
const f = fetcherPerFile();

describe('isolation: thread', () => {
  it('runs a job in a thread, progress and all', async () => {
    const id = randomUUID();
    await f.client.submit([{ id, name: 'test.isolated', payload: { sleepMs: 100 } }]);
    await waitFor('completed', async () => (await f.client.getJob(id)).state === 'completed');
    const { rows } = await f.db.pool.query(`SELECT pid FROM public.test_events WHERE job_id = $1 AND event = 'end'`, [id]);
    expect(rows).toEqual([{ pid: f.fetcher.pid }]);
    const { rows: progress } = await f.db.pool.query(`SELECT 1 FROM ${FETCHER_JOBS} WHERE id = $1 AND progress = 100`, [id]);
    expect(progress).toHaveLength(1);
  });

  it('fails a heap bomb with its own code, retries then dead-letters it, while 100 other jobs complete (row 36)', async () => {
    const bomb = randomUUID();
    const others = Array.from({ length: 100 }, () => randomUUID());
    const before = (await f.client.status()).memory.rssMb;
    await f.client.submit([{ id: bomb, name: 'test.heap-bomb', payload: {} }, ...others.map((id) => ({ id, name: 'test.remote', payload: { sleepMs: 50 } }))]);
    await waitFor('bomb failed', async () => (await f.client.getJob(bomb)).state === 'failed', { timeoutMs: 60_000 });
    await waitFor('others completed', async () => (await f.db.pool.query(`SELECT count(*)::int AS n FROM ${FETCHER_JOBS} WHERE id = ANY($1) AND state = 'completed'`, [others])).rows[0].n === 100, { timeoutMs: 60_000 });
    const job = await f.client.getJob(bomb);
    expect(job.executions?.map((e) => [e.attempt, e.outcome, e.error?.code])).toEqual([[1, 'failed', 'JG_HEAP_OUT_OF_MEMORY'], [2, 'failed', 'JG_HEAP_OUT_OF_MEMORY']]);
    const { rows: dlq } = await f.db.pool.query(`SELECT count(*)::int AS n FROM pgboss_fetcher.job WHERE name = 'jobgate.dead-letter' AND source_id = $1`, [bomb]);
    expect(dlq[0].n).toBe(1);
    expect(f.fetcher.child.exitCode).toBeNull();
    const after = (await f.client.status()).memory.rssMb;
    console.log(`row 36: heap bomb failed twice with JG_HEAP_OUT_OF_MEMORY and was dead-lettered; 100/100 other jobs completed; process restarts 0; RSS ${before} → ${after} MB`);
  });

  it('fails a heap bomb in a child process (SIGABRT) with the same code, parent unaffected (row 39)', async () => {
    const bomb = randomUUID();
    const ok = randomUUID();
    const before = (await f.client.status()).memory.rssMb;
    await f.client.submit([{ id: bomb, name: 'test.heap-bomb-process', payload: {} }, { id: ok, name: 'test.remote', payload: {} }]);
    await waitFor('bomb failed', async () => (await f.client.getJob(bomb)).state === 'failed', { timeoutMs: 60_000 });
    const job = await f.client.getJob(bomb);
    const after = (await f.client.status()).memory.rssMb;
    console.log(`row 39: heap bomb in a child process failed twice (${job.executions?.map((e) => e.error?.code).join(', ')}); parent RSS ${before} → ${after} MB; parent alive`);
    expect(job.executions?.map((e) => e.error?.code)).toEqual(['JG_HEAP_OUT_OF_MEMORY', 'JG_HEAP_OUT_OF_MEMORY']);
    expect((await f.client.getJob(ok)).state).toBe('completed');
    expect(f.fetcher.child.exitCode).toBeNull();
    expect(after - before).toBeLessThan(50);
  });

  it('a child process does not outlive a fetcher killed with SIGKILL', async () => {
    const id = randomUUID();
    await f.client.submit([{ id, name: 'test.process-sleeper', payload: { sleepMs: 30_000 } }]);
    const started = await waitFor('child started', async () => (await f.db.pool.query(`SELECT detail FROM public.test_events WHERE job_id = $1 AND event = 'start'`, [id])).rows[0]);
    const childPid = started.detail.childPid as number;
    expect(childPid).not.toBe(f.fetcher.pid);
    f.fetcher.kill('SIGKILL');
    await f.fetcher.exited;
    const gone = await waitFor('child gone', () => {
      try {
        process.kill(childPid, 0);
        return false;
      } catch {
        return true;
      }
    }, { timeoutMs: 10_000 });
    expect(gone).toBe(true);
    f.fetcher = await startFetcher({ DATABASE_URL: f.db.url });
    await f.client.close();
    f.client = createFetcherClient({ baseUrl: f.fetcher.url, keys });
  });

  it('refuses to start when NODE_OPTIONS would override the thread heap limits (row 37)', async () => {
    const app = spawnApp('fetcher', { DATABASE_URL: f.db.url, FETCHER_SHARED_SECRET: TEST_SHARED_SECRET, NODE_OPTIONS: '--max-old-space-size=1024' });
    const { code } = await app.exited;
    const stderr = app.stderr.join('\n');
    console.log(`row 37: exit ${code}: ${stderr.split('\n')[0]}`);
    expect(code).toBe(1);
    expect(stderr).toContain('NODE_OPTIONS: --max-old-space-size=1024 overrides the per-thread heap limit');
    expect(stderr).toContain('test.heap-bomb');
  });
});

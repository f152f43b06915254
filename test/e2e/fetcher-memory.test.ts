// The fetcher's memory guard on a real process: soft limit pauses intake and resumes it; hard limit
// drains and exits non-zero, and after restarts every job is accounted for (FAULTS.md row 38).
import { randomUUID } from 'node:crypto';
import { afterEach, beforeAll, afterAll, describe, expect, it } from 'vitest';
import { parseSecrets, signedHeaders } from '../../packages/jobgate/src/protocol/index.ts';
import { createFetcherClient, type FetcherClient } from '../../packages/jobgate/src/client/index.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { startFetcher, TEST_SHARED_SECRET, type AppProcess } from '../support/apps.ts';
import { waitFor } from '../support/wait.ts';

const keys = parseSecrets(TEST_SHARED_SECRET);
let db: TestDatabase;
const started: Array<{ app: AppProcess; client: FetcherClient }> = [];

beforeAll(async () => {
  db = await createTestDatabase();
});
afterEach(async () => {
  for (const { app, client } of started.splice(0)) {
    await client.close();
    await app.stop();
  }
});
afterAll(async () => {
  await db?.drop();
});

/** Starts a fetcher whose soft and hard limits sit `softAboveMb` and `hardAboveMb` above its idle RSS. */
async function fetcherWithHeadroom(softAboveMb: number, hardAboveMb: number, idleMb: number) {
  const limitMb = 4_096;
  const app = await startFetcher({
    DATABASE_URL: db.url,
    FETCHER_MEMORY_LIMIT_MB: String(limitMb),
    FETCHER_MEMORY_SOFT_RATIO: ((idleMb + softAboveMb) / limitMb).toFixed(4),
    FETCHER_MEMORY_HARD_RATIO: ((idleMb + hardAboveMb) / limitMb).toFixed(4),
  });
  const client = createFetcherClient({ baseUrl: app.url, keys, retries: 0 });
  started.push({ app, client });
  return { app, client };
}

async function idleRss(): Promise<number> {
  const { app, client } = await fetcherWithHeadroom(1_000, 2_000, 0);
  const { memory } = await client.status();
  await client.close();
  await app.stop();
  started.length = 0;
  return memory.rssMb;
}

describe('memory guard', () => {
  it('pauses intake above the soft limit, then opens it again once the memory is back', async () => {
    const idle = await idleRss();
    let { client, app } = await fetcherWithHeadroom(100, 400, idle);
    const hog = randomUUID();
    const next = randomUUID();
    await client.submit([{ id: hog, name: 'test.hog', payload: { allocateMb: 150, sleepMs: 4_000 } }]);
    await waitFor('intake paused', async () => (await client.status()).intake === 'paused', { timeoutMs: 15_000, intervalMs: 200 });
    // Submissions are refused while paused (main keeps them and retries)...
    const body = JSON.stringify({ jobs: [{ id: next, name: 'test.hog', payload: {} }] });
    const refused = await fetch(`${app.url}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json', ...signedHeaders(keys, `fwd_${next}`, body) }, body });
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('5');
    const pausedStatus = await client.status();
    await waitFor('hog completed', async () => (await client.getJob(hog)).state === 'completed', { timeoutMs: 20_000 });
    const hogJob = await client.getJob(hog);
    // ...and once the hog is done, intake opens again: in place when the freed memory comes back
    // under the soft limit, or by a recycle when the allocator keeps it (the guard's idle rule).
    let recycled = false;
    await waitFor('intake open', async () => {
      if (app.child.exitCode !== null) {
        expect(app.child.exitCode).toBe(1);
        recycled = true;
        await client.close();
        started.length = 0;
        ({ app, client } = await fetcherWithHeadroom(100, 400, idle));
      }
      return (await client.status().catch(() => null))?.intake === 'open';
    }, { timeoutMs: 30_000, intervalMs: 250 });
    await client.submit([{ id: next, name: 'test.hog', payload: {} }]);
    await waitFor('next completed', async () => (await client.getJob(next)).state === 'completed', { timeoutMs: 20_000 });
    console.log(`soft limit: idle ${idle} MB, paused at ${pausedStatus.memory.rssMb} MB (soft ${idle + 100} MB); hog execution peak ${hogJob.executions?.[0]?.peakRssMb} MB; intake reopened ${recycled ? 'by a recycle (memory not returned)' : 'in place'}`);
    expect(hogJob.executions?.[0]?.peakRssMb).toBeGreaterThanOrEqual(idle + 130);
  });

  it('drains and exits non-zero above the hard limit; after restarts no job is lost (row 38)', async () => {
    const idle = await idleRss();
    let { app, client } = await fetcherWithHeadroom(150, 200, idle);
    const hog = randomUUID();
    const others = Array.from({ length: 5 }, () => randomUUID());
    await client.submit([
      ...others.map((id) => ({ id, name: 'test.hog', payload: { sleepMs: 300 } })),
      { id: hog, name: 'test.hog', payload: { allocateMb: 400, sleepMs: 10_000 } },
    ]);
    const exits: Array<number | null> = [];
    let peak = 0;
    // Play the platform: restart the fetcher whenever it exits (its last recycle may come just
    // after the hog is settled), and read from a live one.
    const restartIfExited = async () => {
      if (app.child.exitCode === null) return false;
      exits.push(app.child.exitCode);
      peak = Math.max(peak, ...app.logs.filter((l) => l.msg?.startsWith('memory above the hard limit')).map((l) => l.rssMb as number));
      await client.close();
      started.length = 0;
      ({ app, client } = await fetcherWithHeadroom(150, 200, idle));
      return true;
    };
    const getJob = (id: string) => waitFor(`job ${id} from a live fetcher`, async () => ((await restartIfExited()) ? null : client.getJob(id)), { timeoutMs: 60_000, intervalMs: 250 });
    await waitFor('hog settled', async () => {
      const state = (await getJob(hog)).state;
      return state === 'failed' || state === 'completed';
    }, { timeoutMs: 90_000, intervalMs: 250 });
    const hogJob = await getJob(hog);
    const settled = await Promise.all(others.map(async (id) => (await getJob(id)).state));
    console.log(`hard limit: ${exits.length} recycles (exit codes ${[...new Set(exits)]}), RSS at trip ${peak} MB vs hard ${idle + 200} MB; hog ${hogJob.state} after ${hogJob.attempts} attempts (${hogJob.executions?.map((e) => e.error?.code ?? e.outcome).join(', ')}); others ${settled.join(', ')}`);
    expect(exits.length).toBeGreaterThanOrEqual(1);
    expect(exits.every((c) => c === 1)).toBe(true);
    expect(hogJob.state).toBe('failed');
    expect(hogJob.executions?.some((e) => e.error?.code === 'JG_MEMORY_LIMIT')).toBe(true);
    // A job that happened to run beside the hog at each recycle used its retries up on the hog's
    // account: it is settled and says why, not lost.
    for (const id of others) {
      const job = await getJob(id);
      if (job.state !== 'completed') {
        expect(job.state).toBe('failed');
        expect(job.executions?.map((e) => e.error?.code)).toEqual(job.executions?.map(() => 'JG_MEMORY_LIMIT'));
      }
    }
    expect(settled.filter((s) => s === 'completed').length).toBeGreaterThanOrEqual(3);
  }, 240_000); // its own waits allow 90 s for the hog and 60 s per read; each recycle is a fetcher start, slow on a loaded machine
});

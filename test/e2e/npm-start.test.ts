// `npm start`'s supervisor (scripts/start.ts) on its embedded PostgreSQL: a job runs; a kill -9 of
// the whole app tree leaves the postmaster orphaned, and the next start recovers it and keeps the data.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/apps.ts';
import { waitFor } from '../support/wait.ts';

const ROOT = join(import.meta.dirname, '../..');
let dataDir = '';
const trees: ChildProcess[] = [];

interface Started { child: ChildProcess; logs: any[]; mainUrl: string; pids: number[]; api: Record<string, string> }

async function startSupervisor(): Promise<Started> {
  const child = spawn(process.execPath, [join(ROOT, 'scripts/start.ts')], {
    cwd: ROOT,
    // fixed free ports: each app must know the other's URL up front, as with :3000 and :3001
    env: { PATH: process.env.PATH, HOME: process.env.HOME, JOBGATE_DATA_DIR: dataDir, PORT: String(await freePort()), FETCHER_PORT: String(await freePort()), JOBGATE_POLL_INTERVAL_SECONDS: '0.5' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  trees.push(child);
  const logs: any[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      logs.push(JSON.parse(line));
    } catch {
      /* not a log line */
    }
  });
  const listening = await waitFor('main listening', () => logs.find((l) => l.app === 'main' && l.msg === 'listening'), { timeoutMs: 60_000 });
  await waitFor('fetcher listening', () => logs.find((l) => l.app === 'fetcher' && l.msg === 'listening'), { timeoutMs: 30_000 });
  const pids = [child.pid!, ...new Set(logs.filter((l) => l.msg === 'listening').map((l) => l.pid as number))];
  // the API token npm start printed, as the README's curl lines use it
  const token = logs.find((l) => l.msg === 'jobgate is starting').apiToken as string;
  const api = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
  return { child, logs, mainUrl: `http://127.0.0.1:${listening.port}`, pids, api };
}

const alive = (pid: number) => existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(readFileSyncSafe(`/proc/${pid}/status`));
function readFileSyncSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

afterAll(async () => {
  for (const t of trees) t.kill('SIGKILL');
  const pidFile = join(dataDir, 'pg/postmaster.pid');
  if (dataDir && existsSync(pidFile)) process.kill(Number((await readFile(pidFile, 'utf8')).split('\n')[0]), 'SIGINT');
  await new Promise((r) => setTimeout(r, 500));
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('npm start', () => {
  it('runs a job, survives kill -9 of the whole app tree with its data, and stops cleanly on SIGINT', async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'jobgate-start-'));
    await chmod(dataDir, 0o755); // the postgres OS user must be able to enter it
    const first = await startSupervisor();
    // without the printed token: 401
    expect((await fetch(`${first.mainUrl}/api/jobs`)).status).toBe(401);
    const res = await fetch(`${first.mainUrl}/api/jobs/demo.light`, { method: 'POST', headers: first.api, body: JSON.stringify({ payload: { sleepMs: 100 } }) });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    await waitFor('demo.light completed', async () => ((await (await fetch(`${first.mainUrl}/api/jobs/${id}`, { headers: first.api })).json()) as any).state === 'completed');

    // The README's quick start: a heavy job goes to the fetcher; the admin API answers with the printed password.
    const heavy = await fetch(`${first.mainUrl}/api/jobs/demo.heavy`, { method: 'POST', headers: first.api, body: JSON.stringify({ payload: { sleepMs: 500, progressSteps: 4 } }) });
    const heavyId = ((await heavy.json()) as { id: string }).id;
    const done = await waitFor('demo.heavy completed', async () => {
      const j = (await (await fetch(`${first.mainUrl}/api/jobs/${heavyId}`, { headers: first.api })).json()) as any;
      return j.state === 'completed' && j;
    }, { timeoutMs: 30_000 });
    expect(done).toMatchObject({ route: 'fetcher', progress: 100, executions: [expect.objectContaining({ attempt: 1, ranOn: 'fetcher', outcome: 'completed' })] });
    const banner = first.logs.find((l) => l.msg === 'jobgate is starting');
    const status = await fetch(`${first.mainUrl}/admin/api/fetcher_service`, { headers: { authorization: `Basic ${Buffer.from(`admin:${banner.adminPassword}`).toString('base64')}` } });
    expect(status.status).toBe(200);
    expect(((await status.json()) as any).fetcher.state).toBe('awake');

    // kill -9 the supervisor and both apps: the postmaster is orphaned and keeps its lock
    for (const pid of first.pids) process.kill(pid, 'SIGKILL');
    const postmaster = Number((await readFile(join(dataDir, 'pg/postmaster.pid'), 'utf8')).split('\n')[0]);
    await waitFor('apps gone', () => first.pids.every((p) => !existsSync(`/proc/${p}`) || readFileSyncSafe(`/proc/${p}/status`).includes('zombie')));
    expect(existsSync(`/proc/${postmaster}`)).toBe(true);

    const restartedAt = Date.now();
    const second = await startSupervisor();
    const seconds = (Date.now() - restartedAt) / 1000;
    const job = (await (await fetch(`${second.mainUrl}/api/jobs/${id}`, { headers: second.api })).json()) as any;
    expect(job).toMatchObject({ id, state: 'completed' });
    console.log(`npm start after kill -9: healthy again in ${seconds.toFixed(1)} s with the data kept (orphaned postmaster ${postmaster} stopped first)`);

    const exited = new Promise<number | null>((resolve) => second.child.on('exit', (code) => resolve(code)));
    second.child.kill('SIGINT');
    expect(await exited).toBe(0);
    const newPostmaster = second.logs.find((l) => l.msg === 'embedded PostgreSQL started');
    expect(newPostmaster).toBeDefined();
    await waitFor('no process of the tree left', () => second.pids.every((p) => !alive(p)) && !existsSync(join(dataDir, 'pg/postmaster.pid')), { timeoutMs: 10_000 });
  });
});

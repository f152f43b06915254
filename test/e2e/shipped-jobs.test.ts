// The shipped jobs are safe to expose through the jobs API (issue 15): notifications.send reaches
// only public addresses unless its host is allowed by name, and maintenance.cleanup keeps every
// finished job younger than JOBGATE_RETENTION_DAYS whatever its payload asks (FAULTS.md 41, 43).
import { createServer, type Server } from 'node:http';
import { networkInterfaces } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { randomUUID } from 'node:crypto';
import { freePort, startFetcher, startMain, type AppProcess } from '../support/apps.ts';
import { call } from '../support/gateway.ts';
import { waitFor } from '../support/wait.ts';

let db: TestDatabase;
let main: AppProcess;
let hook: Server;
let hookPort = 0;
const received: string[] = [];

beforeAll(async () => {
  hook = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      received.push(body);
      res.writeHead(204).end();
    });
  });
  // connections, not only requests: a refused webhook must not even connect
  hook.on('connection', () => received.push('<connection>'));
  // on every interface: reachable on loopback and on this host's own interface addresses
  await new Promise<void>((resolve) => hook.listen(0, '0.0.0.0', resolve));
  hookPort = (hook.address() as { port: number }).port;
  db = await createTestDatabase();
  main = await startMain({ DATABASE_URL: db.url, NOTIFY_ALLOWED_HOSTS: '127.0.0.1', JOBGATE_RETENTION_DAYS: '14', JOBGATE_DEMO_JOBS: 'true' });
});
afterAll(async () => {
  await main?.stop();
  await db?.drop();
  hook?.close();
});

const enqueue = async (name: string, payload: unknown) => {
  const r = await call(main.url, 'POST', `/api/jobs/${name}`, { payload });
  expect(r.status, JSON.stringify(r.json)).toBe(202);
  return r.json.id as string;
};
const finished = (id: string) =>
  waitFor(`job ${id} finished`, async () => {
    const j = (await call(main.url, 'GET', `/api/jobs/${id}`)).json;
    return ['completed', 'failed'].includes(j.state) && j;
  }, { timeoutMs: 20_000, intervalMs: 100 });

describe('notifications.send', () => {
  it('refuses loopback, private, link-local and names resolving to them, without connecting; reaches an allowed host', async () => {
    const refused = [
      `http://localhost:${hookPort}/hook`, // a name that resolves to loopback
      `http://10.1.2.3:${hookPort}/hook`,
      'http://169.254.169.254/latest/meta-data/',
      `http://[::1]:${hookPort}/hook`,
      `http://[::ffff:127.0.0.1]:${hookPort}/hook`,
      `http://0.0.0.0:${hookPort}/hook`,
      `http://127.0.0.2:${hookPort}/hook`, // loopback, but not the address allowed
    ];
    const ids = await Promise.all(refused.map((webhookUrl) => enqueue('notifications.send', { to: 'u@example.com', subject: 'hi', webhookUrl })));
    for (const [i, id] of ids.entries()) {
      const job = await finished(id);
      expect(job.state, refused[i]).toBe('failed');
      // permanent: one attempt, no retries against a private address
      expect(job.executions, refused[i]).toHaveLength(1);
      expect(job.error.message, refused[i]).toMatch(/not a public address .*NOTIFY_ALLOWED_HOSTS/);
    }
    expect(received).toEqual([]);

    // 127.0.0.1 is listed in NOTIFY_ALLOWED_HOSTS
    const allowed = await enqueue('notifications.send', { to: 'u@example.com', subject: 'allowed', webhookUrl: `http://127.0.0.1:${hookPort}/hook` });
    expect((await finished(allowed)).state).toBe('completed');
    expect(received.filter((r) => r !== '<connection>').map((r) => JSON.parse(r).subject)).toEqual(['allowed']);
    console.log(`notifications.send: ${refused.length} private targets refused with 0 connections; the allowed host reached once`);
  });
});

/** This host's own IPv4 address on a non-loopback interface (eth0's, typically). */
function ownInterfaceAddress(): string {
  const own = Object.values(networkInterfaces()).flat().find((a) => a && !a.internal && a.family === 'IPv4');
  if (!own) throw new Error('this test needs a non-loopback IPv4 interface (os.networkInterfaces() lists none)');
  return own.address;
}

describe("notifications.send to this host's own interface address", () => {
  it('is refused without connecting, and an open port there fails exactly like a closed one', async () => {
    const own = ownInterfaceAddress();
    const closedPort = await freePort();
    const before = received.length;
    // the hook listens on 0.0.0.0: before the fix the first was delivered to it (the finding)
    const urls = [`http://${own}:${hookPort}/hook`, `http://${own}:${closedPort}/hook`];
    const ids = await Promise.all(urls.map((webhookUrl) => enqueue('notifications.send', { to: 'u@example.com', subject: 'own address', webhookUrl })));
    const jobs = [];
    for (const [i, id] of ids.entries()) {
      const job = await finished(id);
      jobs.push(job);
      expect(job.state, urls[i]).toBe('failed');
      expect(job.executions, urls[i]).toHaveLength(1);
      expect(job.error.message, urls[i]).toMatch(/NOTIFY_ALLOWED_HOSTS/);
    }
    // the same answer whatever listens there: nothing tells the open port from the closed one
    expect(jobs[0].error).toEqual(jobs[1].error);
    expect(received.slice(before)).toEqual([]);
    console.log(`notifications.send to this host's own ${own}: refused, 0 connections; job error "${jobs[0].error.message}"`);
  });
});

describe('demo jobs', () => {
  it.each([
    ['demo.light', { allocateMb: 2_048 }, 'payload.allocateMb'],
    ['demo.heavy', { allocateMb: 16_384 }, 'payload.allocateMb'],
    ['demo.light', { sleepMs: 3_600_000 }, 'payload.sleepMs'],
    ['demo.fanout', { children: 100_000 }, 'payload.children'],
  ])('%s %j answers 422 naming the field', async (name, payload, field) => {
    const r = await call(main.url, 'POST', `/api/jobs/${name}`, { payload });
    expect(r.status, JSON.stringify(r.json)).toBe(422);
    expect(r.json.errors.map((e: { path: string }) => e.path)).toContain(field);
  });

  it('take what a demo needs', async () => {
    for (const [name, payload] of [
      ['demo.light', { allocateMb: 64, sleepMs: 10, progressSteps: 2 }],
      ['demo.fanout', { children: 3 }],
    ] as const) {
      const id = await enqueue(name, payload);
      expect((await finished(id)).state, name).toBe('completed');
    }
  });
});

describe('maintenance.cleanup', () => {
  it('keeps finished jobs younger than JOBGATE_RETENTION_DAYS even when asked for 0 days', async () => {
    // jobs the ledger records (routed here: their rows, as the fetcher's events left them), one finished 20 days ago
    const insert = async (finishedDaysAgo: number) => {
      const id = randomUUID();
      await db.pool.query(
        `INSERT INTO jobgate.jobs (id, name, route, state, payload, max_attempts, run_at, finished_at)
         VALUES ($1, 'demo.heavy', 'fetcher', 'completed', '{}', 1, now(), now() - $2::int * interval '1 day')`,
        [id, finishedDaysAgo],
      );
      return id;
    };
    const [old, recent] = [await insert(20), await insert(2)];
    // and jobs main ran, recorded by their pg-boss row: kept by pg-boss as long (its queue's deleteAfterSeconds)
    const ran = await Promise.all([1, 2].map(() => enqueue('notifications.send', { to: 'u@example.com', subject: 'log only' })));
    for (const id of ran) expect((await finished(id)).state).toBe('completed');
    const kept = await db.pool.query(`SELECT DISTINCT deletion_seconds FROM pgboss_main.job WHERE id = ANY($1::uuid[])`, [ran]);
    expect(kept.rows).toEqual([{ deletion_seconds: 14 * 86_400 }]);

    const cleanup = await enqueue('maintenance.cleanup', { olderThanDays: 0 });
    expect((await finished(cleanup)).state).toBe('completed');
    const { rows } = await db.pool.query(`SELECT id FROM jobgate.jobs WHERE id = ANY($1::uuid[])`, [[old, recent]]);
    expect(rows.map((r) => r.id)).toEqual([recent]);
    for (const id of ran) expect((await call(main.url, 'GET', `/api/jobs/${id}`)).status).toBe(200);
    const line = main.logs.find((l) => l.msg === 'finished jobs pruned')!;
    expect(line).toMatchObject({ olderThanDays: 14, asked: 0, minDays: 14 });
    expect(line.deleted).toBeGreaterThanOrEqual(1);
  });
});

describe('the fetcher prunes its own ledger', () => {
  it('deletes its finished jobs older than JOBGATE_RETENTION_DAYS and keeps the rest', async () => {
    const fetcher = await startFetcher({ DATABASE_URL: db.url, FETCHER_PRUNE_INTERVAL_MS: '200', JOBGATE_RETENTION_DAYS: '14' });
    try {
      const insert = (id: string, state: string, finishedDaysAgo: number | null) =>
        db.pool.query(
          `INSERT INTO jobgate_fetcher.jobs (id, name, route, state, payload, max_attempts, run_at, finished_at)
           VALUES ($1, 'test.remote', 'fetcher', $2, '{}', 1, now(), CASE WHEN $3::int IS NULL THEN NULL ELSE now() - $3::int * interval '1 day' END)`,
          [id, state, finishedDaysAgo],
        );
      const [old, recent, waiting] = [randomUUID(), randomUUID(), randomUUID()];
      await insert(old, 'completed', 20);
      await insert(recent, 'completed', 2);
      await insert(waiting, 'queued', null);
      await waitFor('the old job pruned', async () => (await db.pool.query('SELECT 1 FROM jobgate_fetcher.jobs WHERE id = $1', [old])).rowCount === 0, { timeoutMs: 10_000, intervalMs: 100 });
      const { rows } = await db.pool.query('SELECT id FROM jobgate_fetcher.jobs WHERE id = ANY($1::uuid[])', [[old, recent, waiting]]);
      expect(rows.map((r) => r.id).sort()).toEqual([recent, waiting].sort());
    } finally {
      await fetcher.stop();
    }
  });
});

// Strangers cannot starve the signed channel between the apps. Before a body is read, a signed
// request proves it holds the secret with its header signature (over its id, timestamp, method,
// path and Content-Length); one that cannot is refused without reserving any of the bytes of
// bodies being read. Attackers here send what passed before: a fresh, well-formed message that
// declares 8 MiB, a signature of 32 random bytes, and no body, reopened as soon as it is closed.
// Meanwhile the real peers' claims, events, pauses, forwards and a routed job must go through.
import { randomBytes, randomUUID } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFetcherClient, createMainClient, parseSecrets, type FetcherClientError } from '../packages/jobgate/src/internal.ts';
import { TEST_SHARED_SECRET } from './support/apps.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { enqueue, percentile, startPair, states, type Pair } from './support/gateway.ts';
import { waitFor } from './support/wait.ts';

const keys = parseSecrets(TEST_SHARED_SECRET);
/** How long each attack runs while the honest traffic is measured (JOBGATE_STALL_SECONDS=60 for the figures). */
const ATTACK_SECONDS = Number(process.env.JOBGATE_STALL_SECONDS ?? 8);

let db: TestDatabase;
let pair: Pair;
beforeAll(async () => {
  db = await createTestDatabase();
  pair = await startPair(db);
});
afterAll(async () => {
  await pair?.stop();
  await db?.drop();
});

interface Attack {
  /** Answers the attackers got, by whether they sent a header signature and status ("header 401"). */
  answers: Map<string, number>;
  stop(): Promise<void>;
}

/**
 * `sockets` connections that each send the headers of an 8 MiB signed request and no body, and are
 * opened again as soon as they close. Half also send a header signature of random bytes.
 */
function attack(port: number, path: string, purpose: string, sockets: number): Attack {
  const answers = new Map<string, number>();
  const open = new Set<Socket>();
  let stopped = false;
  const one = (withHeaderSignature: boolean) => {
    if (stopped) return;
    const socket = connect(port, '127.0.0.1');
    open.add(socket);
    let head = '';
    socket.on('connect', () => {
      const headers = [
        `POST ${path} HTTP/1.1`,
        'host: 127.0.0.1',
        'content-type: application/json',
        'content-length: 8388608',
        `webhook-id: ${purpose}_${randomUUID()}`,
        `webhook-timestamp: ${Math.floor(Date.now() / 1000)}`,
        `webhook-signature: v1,${randomBytes(32).toString('base64')}`,
        ...(withHeaderSignature ? [`jobgate-header-signature: v1,${randomBytes(32).toString('base64')}`] : []),
      ];
      socket.write(`${headers.join('\r\n')}\r\n\r\n`);
    });
    socket.on('data', (d) => {
      head += d;
      const m = /^HTTP\/1\.1 (\d{3})/.exec(head);
      if (m && head.includes('\r\n\r\n')) {
        const key = `${withHeaderSignature ? 'header' : 'body-only'} ${m[1]}`;
        answers.set(key, (answers.get(key) ?? 0) + 1);
        socket.destroy();
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      open.delete(socket);
      setTimeout(() => one(withHeaderSignature), 50);
    });
  };
  for (let i = 0; i < sockets; i++) one(i % 2 === 0);
  return {
    answers,
    async stop() {
      stopped = true;
      for (const s of open) s.destroy();
    },
  };
}

/** Statuses and latencies of the honest peers' requests (a client error's status, or 200). */
interface Honest {
  statuses: Map<string, number>;
  latencies: number[];
}

async function honestTraffic(seconds: number): Promise<Honest> {
  const main = createMainClient({ baseUrl: pair.main.url, keys, retries: 0 });
  const fetcher = createFetcherClient({ baseUrl: pair.fetcher!.url, keys, retries: 0 });
  const statuses = new Map<string, number>();
  const latencies: number[] = [];
  const timed = async (what: string, request: () => Promise<unknown>) => {
    const started = performance.now();
    let status = '200';
    try {
      await request();
    } catch (err) {
      status = String((err as FetcherClientError).status ?? (err as Error).message);
    }
    latencies.push(performance.now() - started);
    statuses.set(`${what} ${status}`, (statuses.get(`${what} ${status}`) ?? 0) + 1);
  };
  const deadline = Date.now() + seconds * 1000;
  try {
    while (Date.now() < deadline) {
      const id = randomUUID();
      await Promise.all([
        timed('claim', () => main.claim(id, 1, 30)),
        timed('events', () => main.sendEvents([{ jobId: id, seq: 1, type: 'active', attempt: 1, at: new Date().toISOString() }])),
        timed('pauses', () => main.pauses()),
        timed('forward', () => fetcher.submit([{ id: randomUUID(), name: 'test.remote', payload: {} }])),
        timed('status', () => fetcher.status()),
      ]);
    }
  } finally {
    await main.close();
    await fetcher.close();
  }
  return { statuses, latencies };
}

const summary = (m: Map<string, number>) => [...m.entries()].map(([k, v]) => `${k}×${v}`).join(', ');

describe('the signed channel under a flood of unsigned 8 MiB claims', () => {
  it('measures the honest traffic without an attack (the baseline of the figures)', async () => {
    const quiet = await honestTraffic(ATTACK_SECONDS);
    console.log(`no attack: ${quiet.latencies.length} signed requests, p50 ${percentile(quiet.latencies, 50).toFixed(1)} ms, p99 ${percentile(quiet.latencies, 99).toFixed(1)} ms (${summary(quiet.statuses)})`);
    expect([...quiet.statuses.keys()].every((k) => k.endsWith(' 200'))).toBe(true);
  }, (ATTACK_SECONDS + 30) * 1000);

  it.each([4, 64])('with %i attacker sockets on each app, every signed claim, event, pause read and forward gets through, and a routed job completes', async (sockets) => {
    const attacks = [
      attack(pair.main.port, '/internal/v1/children', 'spn', sockets),
      attack(pair.main.port, '/internal/v1/claims', 'clm', sockets),
      attack(pair.fetcher!.port, '/v1/jobs', 'fwd', sockets),
    ];
    try {
      const routed = await enqueue(pair.main, 'demo.heavy', { sleepMs: 100 });
      const honest = await honestTraffic(ATTACK_SECONDS);
      await waitFor('the routed job completed during the attack', async () => (await states(db, [routed])).completed === 1, { timeoutMs: 60_000, intervalMs: 250 });
      const refused = attacks.reduce((sum, a) => sum + [...a.answers.values()].reduce((x, y) => x + y, 0), 0);
      const attackerAnswers = new Map<string, number>();
      for (const a of attacks) for (const [k, v] of a.answers) attackerAnswers.set(k, (attackerAnswers.get(k) ?? 0) + v);
      console.log(
        `${sockets} sockets × 3 routes for ${ATTACK_SECONDS} s: attackers refused ${refused} times (${summary(attackerAnswers)}); ` +
          `${honest.latencies.length} signed requests, p50 ${percentile(honest.latencies, 50).toFixed(1)} ms, p99 ${percentile(honest.latencies, 99).toFixed(1)} ms (${summary(honest.statuses)})`,
      );
      // no honest request was turned away: in particular none got 503 for the attackers' bodies
      expect([...honest.statuses.keys()].filter((k) => !k.endsWith(' 200'))).toEqual([]);
      // the attackers got nothing but refusals: those with a (forged) header signature 401 before a
      // byte of their bodies was read (or 413 on the claims route, whose limit is 4 KiB); those
      // without it were served in the legacy lane, apart (503 or 408 there), which no honest peer
      // of this version uses
      const keysSeen = [...attackerAnswers.keys()];
      expect(keysSeen.filter((k) => k.startsWith('header ')).every((k) => /^header (401|413)$/.test(k))).toBe(true);
      expect(keysSeen.filter((k) => k.startsWith('body-only ')).every((k) => /^body-only (408|413|503)$/.test(k))).toBe(true);
      expect(attackerAnswers.get('header 401')).toBeGreaterThan(0);
    } finally {
      await Promise.all(attacks.map((a) => a.stop()));
    }
  }, (ATTACK_SECONDS + 90) * 1000);
});

// Strangers cannot starve the signed channel between the apps. Before a body is read, a signed
// request proves it holds the secret with its header signature (over its id, timestamp, method,
// path and Content-Length); one that cannot is refused without reserving any of the bytes of
// bodies being read. Attackers here send what passed before: a fresh, well-formed message that
// declares 8 MiB, a signature of 32 random bytes, and no body, reopened as soon as it is closed.
// Meanwhile the real peers' claims, events, pauses, forwards and a routed job must go through.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { createFetcherClient, createMainClient, parseSecrets, type FetcherClientError } from '../../packages/jobgate/src/internal.ts';
import { TEST_SHARED_SECRET } from '../support/apps.ts';
import { enqueue, percentile, pairPerFile, states } from '../support/gateway.ts';
import { waitFor } from '../support/wait.ts';

const keys = parseSecrets(TEST_SHARED_SECRET);
/** How long each attack runs while the honest traffic is measured (JOBGATE_STALL_SECONDS=60 for the figures). */
const ATTACK_SECONDS = Number(process.env.JOBGATE_STALL_SECONDS ?? 8);

const f = pairPerFile();

/** The flood (test/support/signed-flood.ts) in its own process, against `targets` (`host:port/path=purpose`). */
async function attack(sockets: number, targets: string[]): Promise<{ stop(): Promise<Map<string, number>> }> {
  const child = spawn(process.execPath, [join(import.meta.dirname, '../support/signed-flood.ts'), String(sockets), ...targets], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  expect((await lines.next()).value).toBe('ready');
  return {
    async stop() {
      child.kill('SIGTERM');
      const counts = JSON.parse((await lines.next()).value as string) as Record<string, number>;
      return new Map(Object.entries(counts));
    },
  };
}

/** Statuses and latencies of the honest peers' requests (a client error's status, or 200). */
interface Honest {
  statuses: Map<string, number>;
  latencies: number[];
}

async function honestTraffic(seconds: number): Promise<Honest> {
  // generous ceilings: on a loaded machine an answer may be slow; what must never happen is a refusal
  const timeouts = { headersMs: 60_000, bodyMs: 60_000 };
  const main = createMainClient({ baseUrl: f.pair.main.url, keys, retries: 0, timeouts });
  const fetcher = createFetcherClient({ baseUrl: f.pair.fetcher!.url, keys, retries: 0, timeouts });
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
  // what an app logged at error, shown when an honest request was refused (there should be none)
  const errorsLogged = () => [...f.pair.main.logs, ...f.pair.fetcher!.logs].filter((l) => l.level === 'error').map((l) => `${l.app}: ${l.msg} ${l.err?.message ?? ''}`);

  it('measures the honest traffic without an attack (the baseline of the figures)', async () => {
    const quiet = await honestTraffic(ATTACK_SECONDS);
    console.log(`no attack: ${quiet.latencies.length} signed requests, p50 ${percentile(quiet.latencies, 50).toFixed(1)} ms, p99 ${percentile(quiet.latencies, 99).toFixed(1)} ms (${summary(quiet.statuses)})`);
    expect([...quiet.statuses.keys()].filter((k) => !k.endsWith(' 200')), errorsLogged().join('\n')).toEqual([]);
  }, (ATTACK_SECONDS + 30) * 1000);

  it.each([4, 64])('with %i attacker sockets on each app, every signed claim, event, pause read and forward gets through, and a routed job completes', async (sockets) => {
    const flood = await attack(sockets, [
      `127.0.0.1:${f.pair.main.port}/internal/v1/children=spn`,
      `127.0.0.1:${f.pair.main.port}/internal/v1/claims=clm`,
      `127.0.0.1:${f.pair.fetcher!.port}/v1/jobs=fwd`,
    ]);
    let attackerAnswers = new Map<string, number>();
    try {
      const routed = await enqueue(f.pair.main, 'demo.heavy', { sleepMs: 100 });
      const honest = await honestTraffic(ATTACK_SECONDS);
      await waitFor('the routed job completed during the attack', async () => (await states(f.db, [routed])).completed === 1, { timeoutMs: 60_000, intervalMs: 250 });
      attackerAnswers = await flood.stop();
      const refused = [...attackerAnswers.values()].reduce((x, y) => x + y, 0);
      console.log(
        `${sockets} sockets × 3 routes for ${ATTACK_SECONDS} s: attackers refused ${refused} times (${summary(attackerAnswers)}); ` +
          `${honest.latencies.length} signed requests, p50 ${percentile(honest.latencies, 50).toFixed(1)} ms, p99 ${percentile(honest.latencies, 99).toFixed(1)} ms (${summary(honest.statuses)})`,
      );
      // no honest request was turned away: in particular none got 503 for the attackers' bodies
      expect([...honest.statuses.keys()].filter((k) => !k.endsWith(' 200')), errorsLogged().join('\n')).toEqual([]);
      // the attackers got nothing but refusals: those with a (forged) header signature 401 before a
      // byte of their bodies was read (or 413 on the claims route, whose limit is 4 KiB); those
      // without it were served in the legacy lane, apart (503 or 408 there), which no honest peer
      // of this version uses
      const keysSeen = [...attackerAnswers.keys()];
      expect(keysSeen.filter((k) => k.startsWith('header ')).every((k) => /^header (401|413)$/.test(k))).toBe(true);
      expect(keysSeen.filter((k) => k.startsWith('body-only ')).every((k) => /^body-only (408|413|503)$/.test(k))).toBe(true);
      expect(attackerAnswers.get('header 401')).toBeGreaterThan(0);
    } finally {
      await flood.stop().catch(() => {});
    }
  }, (ATTACK_SECONDS + 150) * 1000);
});

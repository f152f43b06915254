// The signed routes' bodies fed 10,000 generated values each: a peer's body is a client's input
// too (a 5xx there is retried forever), so each is refused with a 4xx naming the field, or gives
// what PostgreSQL takes (times it reads, integers inside int4). Never another error (a 500).
// Seeded: PROPERTY_SEED=<the seed printed> reruns a failure.
import { describe, expect, it } from 'vitest';
import { PROPERTY_SEED, jsonNumber, noise, plausibleTimestamp, timestamp, uuid } from '../../../../test/support/adversarial.ts';
import { RUNS, door, int4, json, messages, pgReadsTime, property } from '../../../../test/support/property.ts';
import { parseOrThrow } from '../main/validation.ts';
import { ClaimRequest, JobEvents, Spawn, SubmitJobs } from './index.ts';

describe(`the signed routes' bodies, ${RUNS} generated inputs each (seed ${PROPERTY_SEED})`, () => {
  it("the fetcher's job events (times, seq, attempt, progress, memory)", () => {
    const p = property(
      'events',
      (r) => `{"events": [{"jobId": "0b7e3c1e-5a43-4a0e-9b8e-2d2f6c1d9a10", "seq": ${jsonNumber(r)}, "type": "${r.pick(['active', 'progress', 'completed', 'failed'])}", "attempt": ${r.chance(0.5) ? '1' : jsonNumber(r)}, "at": ${JSON.stringify(r.chance(0.5) ? plausibleTimestamp(r) : r.chance(0.8) ? timestamp(r) : noise(r))}, "startedAt": ${JSON.stringify(r.chance(0.5) ? plausibleTimestamp(r) : timestamp(r))}, "progress": ${r.chance(0.5) ? '50' : jsonNumber(r)}, "peakRssMb": ${r.chance(0.5) ? '12' : jsonNumber(r)}, "maxAttempts": ${r.chance(0.5) ? '3' : jsonNumber(r)}}]}`,
      (text) => {
        const body = json(text);
        door('body', body);
        return parseOrThrow(JobEvents, body);
      },
      ({ events: [e] }) => {
        for (const t of [e!.at, e!.startedAt, e!.finishedAt]) if (t !== undefined && !pgReadsTime(t)) return `time ${t}`;
        for (const [k, v] of Object.entries({ seq: e!.seq, attempt: e!.attempt, progress: e!.progress, peakRssMb: e!.peakRssMb, maxAttempts: e!.maxAttempts })) if (v !== undefined && !int4(v)) return `${k} ${v}`;
        return e!.progress !== undefined && (e!.progress < 0 || e!.progress > 100) ? `progress ${e!.progress}` : null;
      },
    );
    expect(messages(p)).toEqual([]);
    expect(p.outcomes.accepted).toBeGreaterThan(20);
  });

  it("a submission's and a spawn's options, a claim", () => {
    const submit = property(
      'submit',
      (r) => `{"jobs": [{"id": "0b7e3c1e-5a43-4a0e-9b8e-2d2f6c1d9a10", "name": "demo.heavy", "payload": {}, "options": {"priority": ${jsonNumber(r)}, "delaySeconds": ${jsonNumber(r)}}}]}`,
      (text) => parseOrThrow(SubmitJobs, (door('body', json(text)), json(text))),
      ({ jobs: [j] }) => (j!.options?.priority !== undefined && !int4(j!.options.priority) ? `priority ${j!.options.priority}` : j!.options?.delaySeconds !== undefined && !int4(j!.options.delaySeconds) ? `delaySeconds ${j!.options.delaySeconds}` : null),
    );
    const spawn = property(
      'spawn',
      (r) => `{"jobs": [{"id": "0b7e3c1e-5a43-4a0e-9b8e-2d2f6c1d9a10", "name": "demo.light", "payload": {}, "priority": ${jsonNumber(r)}, "delaySeconds": ${jsonNumber(r)}}], "batches": [], "seal": []}`,
      (text) => parseOrThrow(Spawn, (door('body', json(text)), json(text))),
      ({ jobs: [j] }) => (j!.priority !== undefined && !int4(j!.priority) ? `priority ${j!.priority}` : null),
    );
    const claim = property(
      'claim',
      (r) => `{"jobId": ${JSON.stringify(r.chance(0.5) ? '0b7e3c1e-5a43-4a0e-9b8e-2d2f6c1d9a10' : uuid(r))}, "attempt": ${jsonNumber(r)}, "claimSeconds": ${jsonNumber(r)}}`,
      (text) => parseOrThrow(ClaimRequest, (door('body', json(text)), json(text))),
      (c) => (int4(c.attempt) && int4(c.claimSeconds) ? null : `attempt ${c.attempt}, claimSeconds ${c.claimSeconds}`),
    );
    expect([...messages(submit), ...messages(spawn), ...messages(claim)]).toEqual([]);
  });
});

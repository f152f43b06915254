import { describe, expect, it } from 'vitest';
import { HEADER_SIGNATURE, Purpose, SignedRoutes, checkHeaderSignature, parseSecrets, precheck, sign, signedHeaders, verify } from '../internal.ts';

// DESIGN.md §2
const VECTOR = {
  secret: 'whsec_BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=',
  id: 'fwd_0b7e3c1e-5a43-4a0e-9b8e-2d2f6c1d9a10',
  timestamp: 1767225600,
  body: '{"type":"job.forward","jobId":"0b7e3c1e-5a43-4a0e-9b8e-2d2f6c1d9a10","name":"import-csv","data":{"fileId":"f_1"}}',
  signature: 'v1,D5U6R5MoluT6CDxqINhkZE/+u2V98tjff+DQEAUrlTs=',
};
const keys = parseSecrets(VECTOR.secret);
const at = (seconds: number) => (VECTOR.timestamp + seconds) * 1000;
const check = (headers: { id?: string; timestamp?: string; signature?: string }, body = VECTOR.body, now = at(0), purpose: Purpose = Purpose.submitJobs) =>
  verify({ keys, headers, body, purpose, now });
const good = { id: VECTOR.id, timestamp: String(VECTOR.timestamp), signature: VECTOR.signature };

describe('Standard Webhooks signing', () => {
  it('matches the DESIGN.md test vector both ways', () => {
    expect(sign(keys[0]!, VECTOR.id, VECTOR.timestamp, VECTOR.body)).toBe(VECTOR.signature);
    expect(check(good)).toEqual({ ok: true, id: VECTOR.id });
  });

  it('accepts within ±300 s and refuses at ±301 s', () => {
    expect(check(good, VECTOR.body, at(300)).ok).toBe(true);
    expect(check(good, VECTOR.body, at(-300)).ok).toBe(true);
    expect(check(good, VECTOR.body, at(301))).toMatchObject({ ok: false, reason: expect.stringContaining('window') });
    expect(check(good, VECTOR.body, at(-301)).ok).toBe(false);
  });

  it.each([
    ['no headers', {}],
    ['missing signature', { ...good, signature: undefined }],
    ['wrong secret', { ...good, signature: sign(parseSecrets('whsec_' + Buffer.alloc(32, 9).toString('base64'))[0]!, VECTOR.id, VECTOR.timestamp, VECTOR.body) }],
    ['short signature', { ...good, signature: 'v1,AAAA' }],
    ['not base64 of 32 bytes', { ...good, signature: 'v1,' + 'A'.repeat(100) }],
    ['wrong version', { ...good, signature: VECTOR.signature.replace('v1,', 'v2,') }],
    ['six signatures', { ...good, signature: Array(6).fill(VECTOR.signature).join(' ') }],
    ['2 KB header', { ...good, signature: 'v1,' + 'A'.repeat(2048) }],
    ['bad id', { ...good, id: 'fwd_../../etc' }],
    ['bad timestamp', { ...good, timestamp: '1e9' }],
  ])('refuses %s', (_label, headers) => {
    expect(check(headers).ok).toBe(false);
  });

  it('refuses a tampered body', () => {
    expect(check(good, VECTOR.body.replace('f_1', 'f_2'))).toMatchObject({ ok: false, reason: 'no matching signature' });
  });

  it('binds a message to its route through the id prefix', () => {
    expect(check(good, VECTOR.body, at(0), Purpose.jobEvents)).toMatchObject({ ok: false, reason: expect.stringContaining('not for this route') });
  });

  it('accepts any of several secrets (rotation) and signs with the first', () => {
    const fresh = 'whsec_' + Buffer.alloc(32, 1).toString('base64');
    const rotated = parseSecrets(`${fresh} ${VECTOR.secret}`);
    expect(verify({ keys: rotated, headers: good, body: VECTOR.body, purpose: Purpose.submitJobs, now: at(0) }).ok).toBe(true);
    const headers = signedHeaders(rotated, 'evt_1', 'x', at(0));
    expect(verify({ keys: parseSecrets(fresh), headers: { id: headers['webhook-id'], timestamp: headers['webhook-timestamp'], signature: headers['webhook-signature'] }, body: 'x', purpose: Purpose.jobEvents, now: at(0) }).ok).toBe(true);
    expect(verify({ keys, headers: { id: headers['webhook-id'], timestamp: headers['webhook-timestamp'], signature: headers['webhook-signature'] }, body: 'x', purpose: Purpose.jobEvents, now: at(0) }).ok).toBe(false);
  });

  it('rejects malformed secrets with a clear message', () => {
    expect(() => parseSecrets('')).toThrow(/no secret/);
    expect(() => parseSecrets('secret!')).toThrow(/whsec_/);
    expect(() => parseSecrets('c2hvcnQ=')).toThrow(/24 bytes/);
    // bare base64, as Render's generateValue makes it, is the same key as its whsec_ form
    const bare = Buffer.alloc(32, 5).toString('base64');
    expect(parseSecrets(bare)[0]).toEqual(parseSecrets(`whsec_${bare}`)[0]);
    expect(() => parseSecrets('whsec_AAAA')).toThrow(/24 bytes/);
  });
});

describe('the header signature (checked before the body is read)', () => {
  const line = { method: SignedRoutes.submitJobs.method, path: SignedRoutes.submitJobs.path };
  const signed = signedHeaders(keys, VECTOR.id, VECTOR.body, at(0), line);
  const pre = precheck({ headers: { id: signed['webhook-id'], timestamp: signed['webhook-timestamp'], signature: signed['webhook-signature'] }, purpose: Purpose.submitJobs, now: at(0) });
  if (!pre.ok) throw new Error(pre.reason);
  const length = Buffer.byteLength(VECTOR.body);

  it('is sent beside the body signature, which stays the Standard Webhooks one', () => {
    expect(signed['webhook-signature']).toBe(VECTOR.signature);
    expect(signed[HEADER_SIGNATURE]).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
    expect(signedHeaders(keys, VECTOR.id, VECTOR.body, at(0))[HEADER_SIGNATURE]).toBeUndefined();
  });

  it('verifies with the same key, method, path and length', () => {
    expect(checkHeaderSignature(pre, keys, signed[HEADER_SIGNATURE]!, line, length)).toEqual({ ok: true, id: VECTOR.id });
    expect(checkHeaderSignature(pre, keys, signed[HEADER_SIGNATURE]!, { method: 'post', path: SignedRoutes.submitJobs.path }, length).ok).toBe(true);
  });

  it.each([
    ['another length (a sender who declares more than it signed)', line, length + 1, keys],
    ['another path', { method: 'POST', path: SignedRoutes.spawnJobs.path }, length, keys],
    ['another method', { method: 'GET', path: SignedRoutes.submitJobs.path }, length, keys],
    ['another secret', line, length, parseSecrets('whsec_' + Buffer.alloc(32, 9).toString('base64'))],
  ])('refuses %s', (_label, otherLine, otherLength, otherKeys) => {
    expect(checkHeaderSignature(pre, otherKeys, signed[HEADER_SIGNATURE]!, otherLine, otherLength).ok).toBe(false);
  });

  it.each([
    ['random bytes', `v1,${Buffer.alloc(32, 3).toString('base64')}`],
    ['a short one', 'v1,AAAA'],
    ['another version', signed[HEADER_SIGNATURE]!.replace('v1,', 'v2,')],
    ['a 2 KB header', 'v1,' + 'A'.repeat(2048)],
    ['nothing', ''],
  ])('refuses %s without throwing', (_label, given) => {
    expect(checkHeaderSignature(pre, keys, given, line, length).ok).toBe(false);
  });
});

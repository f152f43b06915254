// Standard Webhooks v1 (symmetric), as DESIGN.md §2 specifies it: every request between the apps
// except GET /healthz carries webhook-id, webhook-timestamp and webhook-signature.
import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { ConfigError } from '../support/config.ts';

export const SIGNATURE_HEADERS = { id: 'webhook-id', timestamp: 'webhook-timestamp', signature: 'webhook-signature' } as const;

/**
 * jobgate's second signature, beside Standard Webhooks' body signature: the same key over what
 * the receiver knows before it reads a byte of the body (the message id, its timestamp, the
 * method, the route's path and the declared Content-Length). A stranger without the secret cannot
 * make one, so a receiver refuses him before his body can take any memory or any of the budget
 * of bodies being read (protocol/express.ts).
 */
export const HEADER_SIGNATURE = 'jobgate-header-signature';

/** How far a timestamp may be from the receiver's clock, either way. */
export const TOLERANCE_SECONDS = 300;
const ID = /^[A-Za-z0-9_:-]{1,128}$/;
const TIMESTAMP = /^\d{1,12}$/;
const MAX_SIGNATURE_HEADER = 1_024;
const MAX_SIGNATURES = 5;
const SIGNATURE_BYTES = 32;

/**
 * What a message is for, written as the webhook-id's prefix (`fwd_<jobId>`): signed with the
 * message, so a validly signed job event is not a valid job submission. Which route takes which
 * purpose is SignedRoutes' (protocol/routes.ts).
 */
export const Purpose = {
  submitJobs: 'fwd',
  jobEvents: 'evt',
  readStatus: 'sts',
  readJob: 'get',
  claimJob: 'clm',
  resendEvents: 'rsd',
  spawnJobs: 'spn',
  readPauses: 'pse',
} as const;
export type Purpose = (typeof Purpose)[keyof typeof Purpose];

export type SigningKey = Buffer;

/**
 * Each key as a KeyObject, made once: an HMAC keyed by a Buffer converts the key at every call,
 * five times the cost of the MAC of a claim's body (Node 24), and every signed message takes two.
 */
const keyObjects = new WeakMap<SigningKey, KeyObject>();
function hmac(key: SigningKey) {
  let made = keyObjects.get(key);
  if (!made) keyObjects.set(key, (made = createSecretKey(key)));
  return createHmac('sha256', made);
}

/**
 * Parses `FETCHER_SHARED_SECRET`: one or more secrets separated by spaces, newest first. Senders
 * sign with the first; receivers accept any (zero-downtime rotation). A secret is `whsec_<base64>`
 * (Standard Webhooks) or bare base64 (what Render's `generateValue` makes), of at least 24 bytes.
 */
export function parseSecrets(value: string): SigningKey[] {
  const secrets = value.trim().split(/\s+/).filter(Boolean);
  if (secrets.length === 0) throw new Error('no secret given');
  return secrets.map((secret, i) => {
    const encoded = secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret;
    if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(encoded)) throw new Error(`secret ${i + 1} must be whsec_<base64> or base64`);
    const key = Buffer.from(encoded, 'base64');
    if (key.length < 24) throw new Error(`secret ${i + 1} must hold at least 24 bytes of base64`);
    return key;
  });
}

/** The shared secret(s) as signing keys, or a ConfigError naming the option. */
export function signingKeys(secret: string, option: string): SigningKey[] {
  try {
    return parseSecrets(secret);
  } catch (err) {
    throw new ConfigError([`${option}: ${(err as Error).message}`]);
  }
}

export function sign(key: SigningKey, id: string, timestamp: number, body: string | Buffer): string {
  const mac = hmac(key).update(`${id}.${timestamp}.`).update(body).digest('base64');
  return `v1,${mac}`;
}

/** What a request's header signature covers: its path relative to the peer's base URL (with any query). */
export interface SignedRequestLine {
  method: string;
  path: string;
}

/** The header signature (HEADER_SIGNATURE) of a message sent as `line` with a body of `contentLength` bytes. */
export function signHeaderLine(key: SigningKey, id: string, timestamp: number, line: SignedRequestLine, contentLength: number): string {
  const mac = hmac(key).update(`${id}.${timestamp}.${line.method.toUpperCase()}.${line.path}.${contentLength}`).digest('base64');
  return `v1,${mac}`;
}

/**
 * The headers for a message, signed with the newest key: Standard Webhooks' three and, when the
 * request line is given, the header signature over it and the body's length.
 */
export function signedHeaders(keys: SigningKey[], id: string, body: string | Buffer, now = Date.now(), line?: SignedRequestLine): Record<string, string> {
  const timestamp = Math.floor(now / 1000);
  const headers: Record<string, string> = { [SIGNATURE_HEADERS.id]: id, [SIGNATURE_HEADERS.timestamp]: String(timestamp), [SIGNATURE_HEADERS.signature]: sign(keys[0]!, id, timestamp, body) };
  if (line) headers[HEADER_SIGNATURE] = signHeaderLine(keys[0]!, id, timestamp, line, Buffer.byteLength(body));
  return headers;
}

/**
 * Checks a header signature for a message that passed `precheck`, in constant time against each
 * key: `contentLength` is what the request declares (0 when it declares none).
 */
export function checkHeaderSignature(pre: Extract<Precheck, { ok: true }>, keys: SigningKey[], given: string, line: SignedRequestLine, contentLength: number): Verification {
  if (given.length > MAX_SIGNATURE_HEADER) return { ok: false, reason: `${HEADER_SIGNATURE} too long` };
  const candidates = v1Signatures(given);
  if (candidates === null || candidates.length === 0) return { ok: false, reason: `no well-formed v1 ${HEADER_SIGNATURE}` };
  const matched = keys.some((key) => {
    const expected = Buffer.from(signHeaderLine(key, pre.id, pre.ts, line, contentLength).slice(3), 'base64');
    return candidates.some((c) => timingSafeEqual(c, expected));
  });
  return matched ? { ok: true, id: pre.id } : { ok: false, reason: `${HEADER_SIGNATURE} does not match the request line` };
}

/**
 * The well-formed `v1,<base64 of 32 bytes>` entries of a space-separated signature list (null:
 * more entries than MAX_SIGNATURES). Length-checked here: timingSafeEqual throws on different
 * lengths, and a short signature must be a 401, not a 500.
 */
function v1Signatures(list: string): Buffer[] | null {
  const given = list.split(' ').filter(Boolean);
  if (given.length > MAX_SIGNATURES) return null;
  return given.flatMap((entry) => {
    const [version, value] = entry.split(',', 2);
    if (version !== 'v1' || !value) return [];
    const bytes = Buffer.from(value, 'base64');
    return bytes.length === SIGNATURE_BYTES ? [bytes] : [];
  });
}

export type Verification = { ok: true; id: string } | { ok: false; reason: string };

export type Precheck = { ok: true; id: string; ts: number; candidates: Buffer[] } | { ok: false; reason: string };

/**
 * Everything about a message that can be checked without its body: headers present and within
 * size limits, the timestamp inside the window, signatures well formed, the purpose (the id's
 * prefix) the route's. A receiver runs it before it reads a byte of the body.
 */
export function precheck(options: { headers: { id?: string; timestamp?: string; signature?: string }; purpose: Purpose; now?: number }): Precheck {
  const { id, timestamp, signature } = options.headers;
  if (!id || !timestamp || !signature) return { ok: false, reason: 'missing signature headers' };
  if (!ID.test(id)) return { ok: false, reason: 'malformed webhook-id' };
  if (!TIMESTAMP.test(timestamp)) return { ok: false, reason: 'malformed webhook-timestamp' };
  if (signature.length > MAX_SIGNATURE_HEADER) return { ok: false, reason: 'webhook-signature too long' };
  const now = Math.floor((options.now ?? Date.now()) / 1000);
  const ts = Number(timestamp);
  if (Math.abs(now - ts) > TOLERANCE_SECONDS) return { ok: false, reason: `timestamp outside the ${TOLERANCE_SECONDS} s window (skew ${now - ts} s)` };
  const candidates = v1Signatures(signature);
  if (candidates === null) return { ok: false, reason: 'too many signatures' };
  if (candidates.length === 0) return { ok: false, reason: 'no well-formed v1 signature' };
  if (!id.startsWith(`${options.purpose}_`)) return { ok: false, reason: `message is not for this route (expected ${options.purpose}_)` };
  return { ok: true, id, ts, candidates };
}

/**
 * Checks a message in the order DESIGN.md gives: `precheck` (headers, window, format, purpose),
 * then each signature in constant time against the body. The body is only parsed by the caller
 * once this says ok.
 */
export function verify(options: {
  keys: SigningKey[];
  headers: { id?: string; timestamp?: string; signature?: string };
  body: string | Buffer;
  purpose: Purpose;
  now?: number;
}): Verification {
  const pre = precheck(options);
  return pre.ok ? checkSignature(pre, options.keys, options.body) : pre;
}

/** The HMAC part of `verify`, for a message that passed `precheck` (a receiver that ran it before reading the body). */
export function checkSignature(pre: Extract<Precheck, { ok: true }>, keys: SigningKey[], body: string | Buffer): Verification {
  const matched = keys.some((key) => {
    const expected = Buffer.from(sign(key, pre.id, pre.ts, body).slice(3), 'base64');
    return pre.candidates.some((c) => timingSafeEqual(c, expected));
  });
  return matched ? { ok: true, id: pre.id } : { ok: false, reason: 'no matching signature' };
}

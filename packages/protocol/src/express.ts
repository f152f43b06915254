import express, { type RequestHandler } from 'express';
import { ErrorCode, JobgateError, findNul } from '@jobgate/runtime';
import { verify, type Purpose, type SigningKey } from './signing.ts';

declare module 'express-serve-static-core' {
  interface Request {
    /** The verified raw body, parsed as JSON (undefined for a GET). */
    signedBody?: unknown;
  }
}

const header = (value: string | string[] | undefined) => (Array.isArray(value) ? value[0] : value);

/**
 * Reads the raw body (up to `limit`), checks the Standard Webhooks signature for `purpose`, and
 * only then parses the body. Every failure is the same 401 "Invalid signature"; the reason goes
 * to the log only.
 */
export function requireSignature(keys: SigningKey[], purpose: Purpose, limit = '8mb'): RequestHandler[] {
  return [
    (req, _res, next) => {
      // A body must be JSON (FAULTS.md row 30); checked before it is read.
      const declared = req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0';
      if ((declared || req.headers['transfer-encoding']) && !req.is('application/json')) {
        next(new JobgateError(ErrorCode.unsupportedMediaType, 'Send the body as application/json.'));
        return;
      }
      next();
    },
    express.raw({ type: () => true, limit }),
    (req, _res, next) => {
      const body: Buffer = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      const result = verify({
        keys,
        purpose,
        body,
        headers: { id: header(req.headers['webhook-id']), timestamp: header(req.headers['webhook-timestamp']), signature: header(req.headers['webhook-signature']) },
      });
      if (!result.ok) {
        req.log.warn({ reason: result.reason, webhookId: header(req.headers['webhook-id'])?.slice(0, 128) }, 'signature rejected');
        next(new JobgateError(ErrorCode.invalidSignature, 'Invalid signature'));
        return;
      }
      if (body.length > 0) {
        try {
          req.signedBody = JSON.parse(body.toString('utf8'));
        } catch {
          next(new JobgateError(ErrorCode.bodyMalformed, 'The body is not valid JSON.', { errors: [{ path: '(body)', message: 'invalid JSON' }] }));
          return;
        }
        const nul = findNul(req.signedBody);
        if (nul !== null) {
          next(new JobgateError(ErrorCode.requestInvalid, 'The body holds a NUL character (\\u0000), which cannot be stored.', { errors: [{ path: nul, message: 'contains a NUL character (\\u0000)' }] }));
          return;
        }
      }
      next();
    },
  ];
}

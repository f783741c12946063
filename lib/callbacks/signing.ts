import { createHmac } from 'node:crypto';

/** Standard Webhooks secrets are `whsec_` and the base64 of the key bytes. */
const SECRET_PREFIX = 'whsec_';
const MIN_KEY_BYTES = 24;
const MAX_KEY_BYTES = 64;

/** What is wrong with a client callback secret, or undefined when it is a usable `whsec_<base64>` secret. */
export function secretProblem(secret: string): string | undefined {
  if (!secret.startsWith(SECRET_PREFIX)) return `must start with '${SECRET_PREFIX}' (Standard Webhooks form: whsec_<base64 of ${MIN_KEY_BYTES} to ${MAX_KEY_BYTES} random bytes>)`;
  const encoded = secret.slice(SECRET_PREFIX.length);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded) || encoded.length % 4 !== 0) return `must be '${SECRET_PREFIX}' followed by standard base64`;
  const bytes = Buffer.from(encoded, 'base64').length;
  if (bytes < MIN_KEY_BYTES || bytes > MAX_KEY_BYTES) return `holds a ${bytes}-byte key; use ${MIN_KEY_BYTES} to ${MAX_KEY_BYTES} random bytes`;
  return undefined;
}

/**
 * The Standard Webhooks headers of one delivery attempt: `webhook-signature` is
 * `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` keyed with the secret's decoded bytes. The
 * timestamp is the attempt's (unix seconds), so a retry is signed afresh and passes a receiver's
 * tolerance window.
 */
export function signatureHeaders(secret: string, noticeId: string, timestampSeconds: number, body: string): Record<string, string> {
  const key = Buffer.from(secret.slice(SECRET_PREFIX.length), 'base64');
  const signature = createHmac('sha256', key).update(`${noticeId}.${timestampSeconds}.${body}`).digest('base64');
  return { 'webhook-id': noticeId, 'webhook-timestamp': String(timestampSeconds), 'webhook-signature': `v1,${signature}` };
}

import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

/** Standard Webhooks secrets are `whsec_` and the base64 of the key bytes. */
const SECRET_PREFIX = 'whsec_';
const MIN_KEY_BYTES = 24;
const MAX_KEY_BYTES = 64;
/** How far a signed timestamp may be from now, either way: Standard Webhooks' and Kling's five minutes. */
export const SIGNATURE_TOLERANCE_SECONDS = 5 * 60;

/** What is wrong with the form of a `whsec_<base64>` secret, or undefined when it has that form. */
export function secretFormatProblem(secret: string): string | undefined {
  if (!secret.startsWith(SECRET_PREFIX)) return `must start with '${SECRET_PREFIX}' (Standard Webhooks form: whsec_<base64>)`;
  const encoded = secret.slice(SECRET_PREFIX.length);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded) || encoded.length % 4 !== 0) return `must be '${SECRET_PREFIX}' followed by standard base64`;
  return undefined;
}

/** What is wrong with a client callback secret, or undefined when it is a usable `whsec_<base64>` secret. */
export function secretProblem(secret: string): string | undefined {
  const format = secretFormatProblem(secret);
  if (format) return format.replace('whsec_<base64>', `whsec_<base64 of ${MIN_KEY_BYTES} to ${MAX_KEY_BYTES} random bytes>`);
  const bytes = Buffer.from(secret.slice(SECRET_PREFIX.length), 'base64').length;
  if (bytes < MIN_KEY_BYTES || bytes > MAX_KEY_BYTES) return `holds a ${bytes}-byte key; use ${MIN_KEY_BYTES} to ${MAX_KEY_BYTES} random bytes`;
  return undefined;
}

/** base64 HMAC-SHA256 of `id.timestamp.body`, keyed with the secret's decoded bytes; the body as its bytes. */
function sign(secret: string, id: string, timestamp: string, body: string | Buffer): string {
  const key = Buffer.from(secret.slice(SECRET_PREFIX.length), 'base64');
  return createHmac('sha256', key).update(`${id}.${timestamp}.`).update(body).digest('base64');
}

/**
 * The Standard Webhooks headers of one delivery attempt: `webhook-signature` is
 * `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` keyed with the secret's decoded bytes. The
 * timestamp is the attempt's (unix seconds), so a retry is signed afresh and passes a receiver's
 * tolerance window.
 */
export function signatureHeaders(secret: string, noticeId: string, timestampSeconds: number, body: string): Record<string, string> {
  const signature = sign(secret, noticeId, String(timestampSeconds), body);
  return { 'webhook-id': noticeId, 'webhook-timestamp': String(timestampSeconds), 'webhook-signature': `v1,${signature}` };
}

/**
 * How a signed request fared: `valid`; `unsigned` (a Standard Webhooks header missing); `stale` (the
 * timestamp not a number of seconds within SIGNATURE_TOLERANCE_SECONDS of now); `mismatch` (no `v1`
 * signature matches any of the secrets).
 */
export type SignatureCheck = 'valid' | 'unsigned' | 'stale' | 'mismatch';

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** Whether the headers carry all three Standard Webhooks headers and a timestamp within the window: checkable before the body is read. */
export function signatureEnvelope(headers: IncomingHttpHeaders, nowSeconds: number): Exclude<SignatureCheck, 'mismatch'> {
  const id = header(headers, 'webhook-id');
  const timestamp = header(headers, 'webhook-timestamp');
  if (id === undefined || timestamp === undefined || header(headers, 'webhook-signature') === undefined) return 'unsigned';
  if (!/^\d{1,15}$/.test(timestamp) || Math.abs(nowSeconds - Number(timestamp)) > SIGNATURE_TOLERANCE_SECONDS) return 'stale';
  return 'valid';
}

/**
 * Checks a Standard Webhooks signature over the raw body bytes as received, against each of the
 * secrets (the current one and, during a rotation, the previous one). `webhook-signature` may hold
 * several space-separated `<version>,<base64>` values; any `v1` value matching any secret is enough,
 * other versions are ignored. Comparisons are constant-time. `headers` as Node gives them (lower-case
 * names).
 */
export function verifySignature(secrets: readonly string[], headers: IncomingHttpHeaders, body: Buffer | string, nowSeconds = Math.floor(Date.now() / 1000)): SignatureCheck {
  const envelope = signatureEnvelope(headers, nowSeconds);
  if (envelope !== 'valid') return envelope;
  const id = header(headers, 'webhook-id') ?? '';
  const timestamp = header(headers, 'webhook-timestamp') ?? '';
  const presented = (header(headers, 'webhook-signature') ?? '')
    .split(' ')
    .filter((value) => value.startsWith('v1,'))
    .map((value) => Buffer.from(value.slice(3), 'utf8'));
  let matched = false;
  for (const secret of secrets) {
    const expected = Buffer.from(sign(secret, id, timestamp, body), 'utf8');
    // Every value is compared, matched or not, so the time taken does not tell which one matched.
    for (const given of presented) if (given.length === expected.length && timingSafeEqual(given, expected)) matched = true;
  }
  return matched ? 'valid' : 'mismatch';
}

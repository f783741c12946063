import { createHmac, randomBytes, randomInt } from 'node:crypto';
import type { CallbackSignature, SandboxAccount } from './types.js';

/** How old a `stale` callback's timestamp is: a minute past the five minutes Kling's receivers allow. */
const STALE_SECONDS = 6 * 60;

/** base64 HMAC-SHA256 of `id.timestamp.body`, keyed with the base64-decoded part of a `whsec_` secret. */
function sign(secret: string, id: string, timestamp: number, body: string): string {
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
  return createHmac('sha256', key).update(`${id}.${timestamp}.${body}`, 'utf8').digest('base64');
}

/** Kling's callback ids are long decimal numbers, e.g. 8674665223082153551. */
function callbackId(): string {
  return `${randomInt(1, 10)}${String(randomInt(0, 2 ** 47)).padStart(15, '0')}${randomInt(100, 1000)}`;
}

/**
 * The Standard Webhooks headers Kling adds to a callback of an account that has a Webhook Secret:
 * `webhook-id`, `webhook-timestamp` (unix seconds) and `webhook-signature`, one `v1,<base64>` per
 * secret (two, space-separated, during a rotation). None for an account without a secret, or when the
 * mode says `unsigned`; `bad` signs with a random key, `stale` with a timestamp 6 minutes old.
 */
export function callbackHeaders(account: SandboxAccount | undefined, body: string, mode: CallbackSignature): Record<string, string> {
  const secrets = [account?.webhookSecret, account?.previousWebhookSecret].filter((s): s is string => s !== undefined);
  if (secrets.length === 0 || mode === 'unsigned') return {};
  const id = callbackId();
  const timestamp = Math.floor(Date.now() / 1000) - (mode === 'stale' ? STALE_SECONDS : 0);
  const keys = mode === 'bad' ? secrets.map(() => `whsec_${randomBytes(32).toString('base64')}`) : secrets;
  const signature = keys.map((secret) => `v1,${sign(secret, id, timestamp, body)}`).join(' ');
  return { 'webhook-id': id, 'webhook-timestamp': String(timestamp), 'webhook-signature': signature };
}

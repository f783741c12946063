import { createHmac, timingSafeEqual } from 'node:crypto';

/** The per-task callback token: HMAC-SHA256(callbackSecret, external_task_id), hex. */
export function callbackToken(secret: string, externalTaskId: string): string {
  return createHmac('sha256', secret).update(externalTaskId).digest('hex');
}

/**
 * The callback URL Kling gets for one task: ours, naming the task (`task=<external_task_id>`) and the
 * Kling account it was submitted with (`account=<id>`), and carrying its token, so that the callback
 * handler can check the token, and the signature of an account with a webhook secret, before it parses
 * the body or reads the database. The token covers the task only; the handler refuses a URL whose
 * account is not the task's once the task is read.
 */
export function taskCallbackUrl(callbackUrl: string, secret: string, externalTaskId: string, accountId: string): string {
  const separator = callbackUrl.includes('?') ? '&' : '?';
  return `${callbackUrl}${separator}task=${encodeURIComponent(externalTaskId)}&account=${encodeURIComponent(accountId)}&token=${callbackToken(secret, externalTaskId)}`;
}

/** Constant-time comparison of a presented token with the expected one. */
export function tokenMatches(secret: string, externalTaskId: string, presented: string): boolean {
  const expected = Buffer.from(callbackToken(secret, externalTaskId), 'utf8');
  const given = Buffer.from(presented, 'utf8');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

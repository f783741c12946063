import { inspect } from 'node:util';
import { KlingRelayConfigError } from '../errors.js';
import { secretFormatProblem } from '../callbacks/signing.js';
import type { ConcurrencyInit } from '../dispatch/caps.js';

/** Kling's API host for servers outside mainland China (it replaced https://api.klingai.com). */
export const DEFAULT_KLING_BASE_URL = 'https://api-singapore.klingai.com';

interface KlingAccountBase {
  /** Stable id; stored with every task so follow-ups reach the same account. */
  readonly id: string;
  /**
   * The host's own integer id for this account (a one-api / new-api channel's id): written into the
   * host row's `channel_id` instead of `id`, and handed to `onTransition`. Undefined: `id` is written.
   */
  readonly channelId?: number;
  /** Origin without a trailing slash, e.g. `https://api-singapore.klingai.com`. */
  readonly baseUrl: string;
  /**
   * Share of new tasks. 0 means "draining": never picked for a new task, but still reachable by
   * `get(id)` for tasks it already owns (their follow-ups must go to the account that created them).
   */
  readonly weight: number;
  /**
   * The account's Webhook Secret from Kling's console (`whsec_<base64>`): Kling then signs every
   * callback with Standard Webhooks headers, and the relay refuses a notice for this account's tasks
   * whose signature does not verify. Undefined: Kling's callbacks are unsigned and taken with the
   * per-task token alone.
   */
  readonly webhookSecret?: string;
  /** During Kling's standard rotation (7 days), the secret before `webhookSecret`; it verifies too. */
  readonly previousWebhookSecret?: string;
}

/** An account that authenticates with a static API key, sent as is as the Bearer credential. */
export interface KlingApiKeyAccount extends KlingAccountBase {
  readonly apiKey: string;
  readonly accessKey?: undefined;
  readonly secretKey?: undefined;
}

/** An account that authenticates with a JWT signed per access/secret key pair. */
export interface KlingKeyPairAccount extends KlingAccountBase {
  readonly accessKey: string;
  readonly secretKey: string;
  readonly apiKey?: undefined;
}

/**
 * One Kling account the relay submits tasks with. Kling takes either credential on its `/v1` API;
 * an account carries exactly one of them.
 */
export type KlingAccount = KlingApiKeyAccount | KlingKeyPairAccount;

interface KlingAccountInitBase {
  id: string;
  /** Default `https://api-singapore.klingai.com`. */
  baseUrl?: string;
  /** A finite number >= 0; default 1. */
  weight?: number;
  /** Kling's Webhook Secret of this account (`whsec_<base64>`), when its callbacks are signed. */
  webhookSecret?: string;
  /** The previous Webhook Secret, while a standard rotation lasts; needs `webhookSecret`. */
  previousWebhookSecret?: string;
  /** How many slots the relay may run on this account at once, per model version (README, "Options"). */
  concurrency?: ConcurrencyInit;
  /** The host's integer id for this account (its one-api / new-api channel), written into the host row's `channel_id`. */
  channelId?: number;
}

/** An account as configured: either `apiKey` or `accessKey` with `secretKey`; `baseUrl` and `weight` may be left out. */
export type KlingAccountInit =
  | (KlingAccountInitBase & { apiKey: string; accessKey?: never; secretKey?: never })
  | (KlingAccountInitBase & { accessKey: string; secretKey: string; apiKey?: never });

const ACCOUNT_SHAPES = '{id, apiKey, baseUrl?, weight?} or {id, accessKey, secretKey, baseUrl?, weight?}';
const WEBHOOK_SECRET_FIX = "copy the Webhook Secret from Kling's console (Basic Settings, Webhook) as it is shown, whsec_ included";

function configError(message: string): KlingRelayConfigError {
  return new KlingRelayConfigError('ERR_KLING_RELAY_ACCOUNTS', message);
}

function nonEmptyString(value: unknown): value is string {
  return typeof value === 'string' && value.trim() !== '';
}

function normaliseBaseUrl(raw: unknown, where: string): string {
  let url: URL;
  try {
    url = new URL(String(raw));
  } catch {
    throw configError(`${where}.baseUrl must be an absolute http(s) URL such as "${DEFAULT_KLING_BASE_URL}".`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw configError(`${where}.baseUrl must use http or https, got "${url.protocol}".`);
  }
  if (url.search || url.hash) {
    throw configError(`${where}.baseUrl must not carry a query or fragment; give the origin, e.g. "${DEFAULT_KLING_BASE_URL}".`);
  }
  // Paths like "/v1/videos/text2video" are appended verbatim, so a trailing slash would double it.
  return url.href.replace(/\/+$/, '');
}

function redacted(account: KlingAccount): Record<string, unknown> {
  const credentials = account.apiKey !== undefined ? { apiKey: '[redacted]' } : { accessKey: '[redacted]', secretKey: '[redacted]' };
  const webhook = {
    ...(account.webhookSecret !== undefined ? { webhookSecret: '[redacted]' } : {}),
    ...(account.previousWebhookSecret !== undefined ? { previousWebhookSecret: '[redacted]' } : {}),
  };
  return { id: account.id, baseUrl: account.baseUrl, weight: account.weight, ...credentials, ...webhook };
}

/** The account's webhook secrets, checked for form; the messages name fields, never their values. */
function webhookSecrets(init: Record<string, unknown>, where: string, id: string): { webhookSecret?: string; previousWebhookSecret?: string } {
  const secrets: { webhookSecret?: string; previousWebhookSecret?: string } = {};
  for (const field of ['webhookSecret', 'previousWebhookSecret'] as const) {
    const value = init[field];
    if (value === undefined) continue;
    if (typeof value !== 'string') throw configError(`${where}.${field} (account "${id}") must be a string: ${WEBHOOK_SECRET_FIX}.`);
    const problem = secretFormatProblem(value);
    if (problem) throw configError(`${where}.${field} (account "${id}") ${problem}: ${WEBHOOK_SECRET_FIX}.`);
    secrets[field] = value;
  }
  if (secrets.previousWebhookSecret !== undefined && secrets.webhookSecret === undefined) {
    throw configError(`${where}.previousWebhookSecret (account "${id}") needs webhookSecret: give the current secret as webhookSecret, the one it replaces as previousWebhookSecret.`);
  }
  return secrets;
}

/** The one credential form an account gives; the messages name fields, never their values. */
function credentials(init: Record<string, unknown>, where: string, id: string): { apiKey: string } | { accessKey: string; secretKey: string } {
  const hasApiKey = init.apiKey !== undefined;
  if (hasApiKey && (init.accessKey !== undefined || init.secretKey !== undefined)) {
    throw configError(`${where} (account "${id}") has both an apiKey and an accessKey/secretKey pair; give one of them.`);
  }
  if (hasApiKey) {
    if (!nonEmptyString(init.apiKey)) throw configError(`${where}.apiKey (account "${id}") must be a non-empty string.`);
    // It goes into the Authorization header verbatim after "Bearer ".
    if (/\s/.test(init.apiKey)) throw configError(`${where}.apiKey (account "${id}") must be the key alone, without "Bearer " or spaces.`);
    return { apiKey: init.apiKey };
  }
  if (init.accessKey === undefined && init.secretKey === undefined) {
    throw configError(`${where} (account "${id}") has no credentials: give apiKey, or accessKey and secretKey.`);
  }
  if (!nonEmptyString(init.accessKey)) throw configError(`${where}.accessKey (account "${id}") must be a non-empty string.`);
  if (!nonEmptyString(init.secretKey)) throw configError(`${where}.secretKey (account "${id}") must be a non-empty string.`);
  return { accessKey: init.accessKey, secretKey: init.secretKey };
}

// `unknown`: the accounts come from the host's configuration, typed or not.
function freezeAccount(raw: unknown, index: number): KlingAccount {
  const where = `accounts[${index}]`;
  if (typeof raw !== 'object' || raw === null) throw configError(`${where} must be an object ${ACCOUNT_SHAPES}.`);
  const init = raw as Record<string, unknown>;
  if (!nonEmptyString(init.id)) throw configError(`${where}.id must be a non-empty string.`);
  const credential = credentials(init, where, init.id);
  const weight = init.weight ?? 1;
  if (typeof weight !== 'number' || !Number.isFinite(weight) || weight < 0) {
    throw configError(`${where}.weight (account "${init.id}") must be a finite number >= 0 (0 = take no new tasks).`);
  }
  const channelId = init.channelId;
  if (channelId !== undefined && (typeof channelId !== 'number' || !Number.isSafeInteger(channelId) || channelId <= 0)) {
    throw configError(`${where}.channelId (account "${init.id}") must be a positive integer: the id of the host's channel for this account (one-api's and new-api's channels.id).`);
  }
  const account: KlingAccount = {
    id: init.id,
    ...(channelId !== undefined ? { channelId } : {}),
    ...credential,
    ...webhookSecrets(init, where, init.id),
    baseUrl: normaliseBaseUrl(init.baseUrl ?? DEFAULT_KLING_BASE_URL, where),
    weight,
  };
  // An account object that ends up in a log line or an error dump must not carry its keys with it;
  // winston serialises through toJSON and console/util through inspect.custom. Non-enumerable, so
  // spreading or Object.keys still sees just the account's own fields.
  Object.defineProperty(account, 'toJSON', { value: () => redacted(account), enumerable: false });
  Object.defineProperty(account, inspect.custom, { value: () => redacted(account), enumerable: false });
  return Object.freeze(account);
}

/**
 * The configured Kling accounts. New tasks are spread by weight; follow-up calls find the owning
 * account by id.
 */
export class AccountPool {
  readonly #accounts: readonly KlingAccount[];
  readonly #byId: ReadonlyMap<string, KlingAccount>;
  /** Running totals of the pickable accounts, for one binary search per pick. */
  readonly #cumulative: readonly number[];
  readonly #pickable: readonly KlingAccount[];
  readonly #random: () => number;

  /**
   * @param accounts at least one, ids unique, at least one with a weight > 0.
   * @param random a uniform [0, 1) source; injectable so tests can be deterministic.
   * @throws KlingRelayConfigError `ERR_KLING_RELAY_ACCOUNTS`
   */
  constructor(accounts: readonly KlingAccountInit[], random: () => number = Math.random) {
    if (!Array.isArray(accounts) || accounts.length === 0) {
      throw configError('accounts must list at least one Kling account {id, apiKey} or {id, accessKey, secretKey}.');
    }
    const frozen = accounts.map(freezeAccount);
    const byId = new Map<string, KlingAccount>();
    for (const account of frozen) {
      if (byId.has(account.id)) throw configError(`accounts: id "${account.id}" is used twice; ids must be unique.`);
      byId.set(account.id, account);
    }
    const pickable = frozen.filter((a) => a.weight > 0);
    if (pickable.length === 0) {
      throw configError('accounts: every account has weight 0, so no account can take new tasks; give at least one a weight > 0.');
    }
    let total = 0;
    this.#cumulative = pickable.map((a) => (total += a.weight));
    this.#pickable = pickable;
    this.#accounts = Object.freeze(frozen);
    this.#byId = byId;
    this.#random = random;
  }

  /** A weighted random account for a new task; never one with weight 0. */
  pick(): KlingAccount {
    const cumulative = this.#cumulative;
    const total = cumulative[cumulative.length - 1] ?? 0;
    const target = this.#random() * total;
    let lo = 0;
    let hi = cumulative.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((cumulative[mid] ?? 0) > target) hi = mid;
      else lo = mid + 1;
    }
    const account = this.#pickable[lo];
    // Unreachable: the constructor guarantees a non-empty pickable list.
    if (!account) throw new Error('AccountPool has no pickable account');
    return account;
  }

  /**
   * A weighted random account among the pickable ones `accept` takes (one with a free slot, say);
   * undefined when it takes none.
   */
  pickAmong(accept: (account: KlingAccount) => boolean): KlingAccount | undefined {
    const eligible = this.#pickable.filter(accept);
    let target = this.#random() * eligible.reduce((sum, a) => sum + a.weight, 0);
    for (const account of eligible) {
      target -= account.weight;
      if (target < 0) return account;
    }
    return eligible[eligible.length - 1];
  }

  /** The account with this id, including weight-0 ones; undefined when it is no longer configured. */
  get(id: string): KlingAccount | undefined {
    return this.#byId.get(id);
  }

  /** Every account, in configuration order. */
  all(): readonly KlingAccount[] {
    return this.#accounts;
  }
}

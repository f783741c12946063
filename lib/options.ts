import type { Request, Response } from 'express';
import type { Knex } from 'knex';
import { isIP } from 'node:net';
import type { HostTableOptions, QuotaStore, Billing, TransitionHook } from '../adapters/types.js';
import { composeHooks, PROFILE_DEFAULTS, PROFILES, type ProfileName } from './profiles.js';
import type { KnexQuotaStoreOptions } from '../adapters/quota-store.js';
import { KlingRelayConfigError } from './errors.js';
import { concurrencyProblem } from './dispatch/caps.js';
import type { KlingAccountInit } from './upstream/accounts.js';
import type { FetchLike, Logger } from './upstream/client.js';
import type { PriceList, PricingRule } from './pricing/rules.js';
import type { RegistryFileJson } from './registry/types.js';
import type { ClientCallbackConfig } from './callbacks/delivery.js';
import { secretProblem } from './callbacks/signing.js';

/** The caller of a request, as the host knows it. */
export interface Caller {
  id: string | number;
  username?: string;
}

/** Options of `createKlingRelay()`. Every field is checked when the relay is created. */
export interface KlingRelayOptions {
  /** The host's knex instance (mysql2, pg or better-sqlite3). Required. */
  db: Knex;
  /**
   * Kling accounts, each with an API key `{ id, apiKey }` or an access/secret key pair
   * `{ id, accessKey, secretKey }`, and Kling's `webhookSecret` (`whsec_<base64>`; with
   * `previousWebhookSecret` during a rotation) when Kling signs the account's callbacks. Checked by
   * AccountPool: `ERR_KLING_RELAY_ACCOUNTS`. Default: one account `default` from KLING_API_KEY, or
   * from KLING_ACCESS_KEY / KLING_SECRET_KEY, with KLING_BASE_URL.
   */
  accounts?: KlingAccountInit[];
  /** Absolute URL where the host routes `relay.callback`. Default: KLING_CALLBACK_URL, or KLING_CALLBACK_DOMAIN + '/kling/callback'. */
  callbackUrl?: string;
  /** HMAC key (at least 32 characters) for per-task callback tokens. Default: KLING_CALLBACK_SECRET. */
  callbackSecret?: string;
  /** Returns the caller, or null/undefined for 401. Default: `res.locals.user ?? req.user`. */
  identify?: (req: Request, res: Response) => Caller | null | undefined | Promise<Caller | null | undefined>;
  /** Pricing rules (README, "Pricing"), or the path of a JSON file holding them. Required. */
  pricing: PricingRule[] | PriceList | string;
  /**
   * Write the tables of this host application as the application itself does (docs/guide.md):
   * `'one-api'` (videos, images, users, channels, logs; billing 'charge-on-success') or `'new-api'`
   * (tasks, users; billing 'hold'). It sets `tables`, `quota` and `billing` where they are left out;
   * give each account its channel's `channelId`.
   */
  profile?: ProfileName;
  /**
   * The host's own writes when a task becomes final (succeed, or failed and refunded), called inside
   * the transaction that writes the task's state, host row, ledger and balance; a hook that throws
   * rolls all of it back and the task is settled again later. After the profile's own writes.
   */
  onTransition?: TransitionHook;
  /** Quota units per 1 USD. Default 500000 (one-api / new-api convention). */
  quotaPerUnit?: number;
  /**
   * The host's Video and Image tables: their column mapping, status words, result shape, extra columns
   * (HostTableOptions). Default `videos` and `images`, or the profile's tables.
   */
  tables?: { video?: HostTableOptions; image?: HostTableOptions };
  /** The host's balance: a users table description, or an object implementing QuotaStore. */
  quota?: KnexQuotaStoreOptions | QuotaStore;
  /** Extra or overriding endpoints: the path of a registry JSON file or a registry object. */
  registry?: string | RegistryFileJson;
  /** 'hold' (default): hold the estimate at submit, settle or refund later. 'charge-on-success': check the balance at submit, charge on success only (docs/guide.md). */
  billing?: Billing;
  /** 'kling' (default): Kling's envelope. 'standard': `{task_id, message, raw_data}`. */
  responseFormat?: 'kling' | 'standard';
  /** Deadline of one Kling call in ms. Default 30000. */
  upstreamTimeoutMs?: number;
  /** JSON body limit of the relay routes ('60mb', or bytes). Default '60mb'. */
  bodyLimit?: string | number;
  /** Anything with winston's error/warn/info/debug. Default: a winston logger at info. */
  logger?: Logger;
  /** Upstream client. Default: node-fetch with a keep-alive agent. */
  fetch?: FetchLike;
  /**
   * Background completion. Default { intervalMs: 15000, taskTimeoutMs: 86400000 }. `leaseMs` is how
   * long a pass owns the tasks it claimed (default 2 x upstreamTimeoutMs + 10000): if the process dies
   * mid-pass, another instance takes those tasks once it runs out. It must exceed upstreamTimeoutMs.
   */
  reconciler?: { intervalMs?: number; taskTimeoutMs?: number; leaseMs?: number };
  /**
   * Deadline in ms of the database work that holds quota for a submit (the hold transaction,
   * including waiting for a pool connection). Past it the client gets 503/5001 and Kling is not
   * called; a hold that commits later is refunded. Default 10000. On MariaDB/MySQL and PostgreSQL,
   * a group of writes the server has not answered, or a knex query or transaction of the relay's
   * still holding its pool connection, after twice this (5 s at least) fails and its connection is
   * dropped.
   */
  dbTimeoutMs?: number;
  /**
   * Calls to the callers' own `callback_url`s (README, "Client callbacks"): after every status change
   * of a task whose caller set one, the relay POSTs Kling's callback body there, from a durable outbox,
   * signed with Standard Webhooks headers.
   */
  clientCallbacks?: ClientCallbacksOptions;
  /**
   * The queue of tasks waiting for a free Kling slot (docs/guide.md, "The queue"): a submit that finds
   * every eligible account at its concurrency cap is held, recorded `queued` and sent when a slot frees.
   */
  queue?: QueueOptions;
}

/** Limits of the queue of tasks waiting for a free Kling slot. */
export interface QueueOptions {
  /** The most tasks queued at once, every caller's; a submit over it gets 429/1303 with nothing held. 0 turns the queue off. Default 1000. */
  maxLength?: number;
  /** How long in ms a task may wait queued before it fails with its hold refunded. Default 600000 (10 min). */
  maxWaitMs?: number;
  /**
   * The most tasks one caller may have queued and running at once, for a model version with a cap in
   * force; a submit over it gets 429/1303 with nothing held. Default 100.
   */
  perCaller?: number;
}

/** Options of the calls to callers' callback URLs. */
export interface ClientCallbacksOptions {
  /**
   * Standard Webhooks secret, `whsec_` + base64 of 24 to 64 random bytes, e.g.
   * `whsec_$(openssl rand -base64 32)`: every notice carries `webhook-signature: v1,<base64 HMAC-SHA256>`.
   * Default: KLING_CLIENT_CALLBACK_SECRET. Without one, notices go out unsigned (a warning is logged).
   */
  secret?: string;
  /**
   * Hosts exempt from the address policy, as written in callback URLs: names (`hooks.internal`) or
   * literal IPs (`10.0.0.7`, `::1`). Otherwise the relay never connects to loopback, private,
   * link-local, CGNAT, unique-local, multicast, unspecified or metadata addresses. Default none.
   */
  allowHosts?: string[];
  /** Deadline of one delivery attempt in ms, connecting included. Default 10000. */
  timeoutMs?: number;
  /** How long in ms a notice is retried (exponential backoff from 1 s, at most 1 h apart) before it is given up. Default 86400000 (24 h). */
  retryForMs?: number;
  /** How long a delivered or given-up notice stays in the outbox before a reconciler pass deletes it; null keeps it for ever. */
  keepForMs?: number | null;
}

export const OPTION_KEYS = [
  'db', 'accounts', 'callbackUrl', 'callbackSecret', 'identify', 'pricing', 'quotaPerUnit', 'tables', 'quota', 'registry',
  'billing', 'responseFormat', 'upstreamTimeoutMs', 'bodyLimit', 'logger', 'fetch', 'reconciler',
  'dbTimeoutMs', 'clientCallbacks', 'profile', 'onTransition', 'queue',
] as const satisfies readonly (keyof KlingRelayOptions)[];

/** Options normalised once: every field present, environment fallbacks applied. */
export interface Configuration {
  db: Knex;
  accounts: KlingAccountInit[];
  callbackUrl: string;
  callbackSecret: string;
  identify: (req: Request, res: Response) => Caller | null | undefined | Promise<Caller | null | undefined>;
  pricing: PricingRule[] | PriceList | string;
  quotaPerUnit: number;
  tables: { video: HostTableOptions; image: HostTableOptions };
  quota: KnexQuotaStoreOptions | QuotaStore;
  registry: string | RegistryFileJson | undefined;
  billing: Billing;
  responseFormat: 'kling' | 'standard';
  upstreamTimeoutMs: number;
  bodyLimit: number;
  logger: Logger | undefined;
  fetch: FetchLike | undefined;
  reconciler: { intervalMs: number; taskTimeoutMs: number; leaseMs: number };
  dbTimeoutMs: number;
  clientCallbacks: ClientCallbackConfig;
  profile: ProfileName | undefined;
  /** The profile's hook and the host's, in that order. */
  onTransition: TransitionHook | undefined;
  queue: Required<QueueOptions>;
}

function fail(option: string, message: string): never {
  throw new KlingRelayConfigError(`ERR_KLING_RELAY_OPTION_${option.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}` as `ERR_KLING_RELAY_${string}`, `Option '${option}': ${message}`);
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0] ?? 0;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const saved = row[j] ?? 0;
      row[j] = Math.min((row[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, previous + (a[i - 1]?.toLowerCase() === b[j - 1]?.toLowerCase() ? 0 : 1));
      previous = saved;
    }
  }
  return row[b.length] ?? 0;
}

function suggestion(key: string): string {
  const best = OPTION_KEYS.map((k) => [k, distance(key, k)] as const).sort((x, y) => x[1] - y[1])[0];
  return best && best[1] <= Math.max(2, Math.floor(key.length / 3)) ? ` Did you mean '${best[0]}'?` : '';
}

const LIMIT_UNITS: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };

function parseLimit(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && value > 0 ? value : undefined;
  const match = /^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?\s*$/i.exec(value);
  if (!match) return undefined;
  const bytes = Math.floor(Number(match[1]) * (LIMIT_UNITS[(match[2] ?? 'b').toLowerCase()] ?? 1));
  return bytes > 0 ? bytes : undefined;
}

function isKnex(value: unknown): value is Knex {
  return typeof value === 'function' && typeof (value as { transaction?: unknown }).transaction === 'function' && typeof (value as { client?: unknown }).client === 'object';
}

/** `value`, or `fallback` when it is absent; a coded error for anything but a positive number. */
function positiveNumber(option: string, value: unknown, fallback: number, what = 'must be a positive number'): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) fail(option, `${what}, got ${JSON.stringify(value)}.`);
  return value;
}

/** `value`, or `fallback` when it is absent; a coded error for anything but an integer from `min`. */
function integerFrom(option: string, field: string, value: unknown, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || (value as number) < min) fail(option, `${field} must be an integer >= ${min}, got ${JSON.stringify(value)}.`);
  return value as number;
}

const QUEUE_FIELDS = ['maxLength', 'maxWaitMs', 'perCaller'] as const;

function queueOption(value: unknown): Required<QueueOptions> {
  if (value !== undefined && (typeof value !== 'object' || value === null || Array.isArray(value))) fail('queue', 'must be { maxLength?, maxWaitMs?, perCaller? }.');
  const queue = (value ?? {}) as Record<string, unknown>;
  for (const key of Object.keys(queue)) if (!(QUEUE_FIELDS as readonly string[]).includes(key)) fail('queue', `unknown field '${key}'; use ${QUEUE_FIELDS.join(', ')}.`);
  return {
    maxLength: integerFrom('queue', 'maxLength', queue.maxLength, 1000, 0),
    maxWaitMs: integerFrom('queue', 'maxWaitMs', queue.maxWaitMs, 600_000, 1),
    perCaller: integerFrom('queue', 'perCaller', queue.perCaller, 100, 1),
  };
}

function defaultIdentify(req: Request, res: Response): Caller | null {
  const user = (res.locals as { user?: Caller } | undefined)?.user ?? (req as Request & { user?: Caller }).user;
  return user ?? null;
}

/**
 * The account `default` from KLING_API_KEY, or from KLING_ACCESS_KEY with KLING_SECRET_KEY (and
 * KLING_BASE_URL, KLING_WEBHOOK_SECRET, KLING_PREVIOUS_WEBHOOK_SECRET); undefined when neither is set. Throws `ERR_KLING_RELAY_OPTION_ACCOUNTS` when both are.
 */
export function accountsFromEnv(env: NodeJS.ProcessEnv): KlingAccountInit[] | undefined {
  const { KLING_API_KEY: apiKey, KLING_ACCESS_KEY: accessKey, KLING_SECRET_KEY: secretKey } = env;
  const baseUrl = env.KLING_BASE_URL ? { baseUrl: env.KLING_BASE_URL } : {};
  // Kling's Webhook Secret of the account (and the one before it during a rotation), checked as an account's own.
  const secrets = {
    ...(env.KLING_WEBHOOK_SECRET ? { webhookSecret: env.KLING_WEBHOOK_SECRET } : {}),
    ...(env.KLING_PREVIOUS_WEBHOOK_SECRET ? { previousWebhookSecret: env.KLING_PREVIOUS_WEBHOOK_SECRET } : {}),
  };
  if (apiKey && (accessKey || secretKey)) {
    // Which one the operator means cannot be guessed, and the two may belong to different Kling accounts.
    fail('accounts', 'set KLING_API_KEY, or KLING_ACCESS_KEY with KLING_SECRET_KEY, not both: unset the one you do not use.');
  }
  if (apiKey) return [{ id: 'default', apiKey, ...baseUrl, ...secrets }];
  if (!accessKey || !secretKey) return undefined;
  return [{ id: 'default', accessKey, secretKey, ...baseUrl, ...secrets }];
}

function callbackUrlFromEnv(env: NodeJS.ProcessEnv): string | undefined {
  if (env.KLING_CALLBACK_URL) return env.KLING_CALLBACK_URL;
  if (env.KLING_CALLBACK_DOMAIN) return env.KLING_CALLBACK_DOMAIN.replace(/\/+$/, '') + '/kling/callback';
  return undefined;
}

const HOST_NAME = /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$/;
const CLIENT_CALLBACK_FIELDS = ['secret', 'allowHosts', 'timeoutMs', 'retryForMs', 'keepForMs'];

function clientCallbacksOption(value: unknown, env: NodeJS.ProcessEnv): ClientCallbackConfig {
  const shape = '{ secret?, allowHosts?, timeoutMs?, retryForMs?, keepForMs? }';
  if (value !== undefined && (typeof value !== 'object' || value === null || Array.isArray(value))) fail('clientCallbacks', `must be an object ${shape}.`);
  const o = (value ?? {}) as Record<string, unknown>;
  for (const key of Object.keys(o)) if (!CLIENT_CALLBACK_FIELDS.includes(key)) fail('clientCallbacks', `unknown field '${key}'; use ${CLIENT_CALLBACK_FIELDS.join(', ')}.`);
  const secret = o.secret ?? (env.KLING_CLIENT_CALLBACK_SECRET || undefined);
  if (secret !== undefined) {
    const from = o.secret === undefined ? 'KLING_CLIENT_CALLBACK_SECRET' : 'secret';
    if (typeof secret !== 'string') fail('clientCallbacks', `${from} must be a string.`);
    const problem = secretProblem(secret);
    if (problem) fail('clientCallbacks', `${from} ${problem}. Generate one with: echo "whsec_$(openssl rand -base64 32)".`);
  }
  const allowHosts = o.allowHosts ?? [];
  const isHost = (h: unknown): boolean => typeof h === 'string' && (isIP(h.replace(/^\[|\]$/g, '')) !== 0 || HOST_NAME.test(h));
  if (!Array.isArray(allowHosts) || !allowHosts.every(isHost)) {
    fail('clientCallbacks', `allowHosts must be an array of host names or IP addresses without scheme or port, e.g. ['hooks.internal', '10.0.0.7'], got ${JSON.stringify(allowHosts)}.`);
  }
  return {
    secret: secret as string | undefined,
    allowHosts: allowHosts as string[],
    timeoutMs: positiveNumber('clientCallbacks', o.timeoutMs, 10_000, 'timeoutMs must be a positive number of milliseconds'),
    retryForMs: positiveNumber('clientCallbacks', o.retryForMs, 86_400_000, 'retryForMs must be a positive number of milliseconds'),
    keepForMs: o.keepForMs === null ? null : positiveNumber('clientCallbacks', o.keepForMs, 30 * 86_400_000, 'keepForMs must be a positive number of milliseconds or null (keep for ever)'),
  };
}

/** `app.use(createKlingRelay)` calls the factory with (req, res, next). */
export function looksLikeRequest(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.method === 'string' && typeof v.headers === 'object' && (typeof v.url === 'string' || typeof v.pipe === 'function');
}

/** Checks every option and applies defaults and environment fallbacks. Throws a coded error naming the option and the fix. */
export function normalizeOptions(options: unknown, env: NodeJS.ProcessEnv = process.env): Configuration {
  if (looksLikeRequest(options)) {
    throw new KlingRelayConfigError(
      'ERR_KLING_RELAY_MISUSE',
      "createKlingRelay was called as middleware (app.use(createKlingRelay)). Create the relay once and mount its router: const relay = createKlingRelay({...}); app.use('/kling', relay.router).",
    );
  }
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new KlingRelayConfigError('ERR_KLING_RELAY_OPTIONS', 'createKlingRelay(options) needs an options object with at least db and pricing.');
  }
  const o = options as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!(OPTION_KEYS as readonly string[]).includes(key)) {
      throw new KlingRelayConfigError('ERR_KLING_RELAY_UNKNOWN_OPTION', `Unknown option '${key}'.${suggestion(key)} Known options: ${OPTION_KEYS.join(', ')}.`);
    }
  }

  if (!isKnex(o.db)) fail('db', "must be the host's knex instance, e.g. knex({ client: 'mysql2', connection: process.env.DATABASE_URL }).");

  const accounts = o.accounts ?? accountsFromEnv(env);
  if (accounts === undefined) {
    fail('accounts', 'no Kling account: pass accounts: [{ id, apiKey }] or [{ id, accessKey, secretKey }], or set KLING_API_KEY (or KLING_ACCESS_KEY and KLING_SECRET_KEY).');
  }
  if (!Array.isArray(accounts) || accounts.length === 0) fail('accounts', 'must be a non-empty array of { id, apiKey, baseUrl?, weight? } or { id, accessKey, secretKey, baseUrl?, weight? }.');
  accounts.forEach((account: unknown, index) => {
    const problem = concurrencyProblem((account as { concurrency?: unknown } | null)?.concurrency);
    if (problem) fail('accounts', `accounts[${index}].concurrency ${problem}.`);
  });

  const callbackUrl = o.callbackUrl ?? callbackUrlFromEnv(env);
  if (typeof callbackUrl !== 'string') fail('callbackUrl', 'missing: pass the absolute URL where you route relay.callback, or set KLING_CALLBACK_URL (or KLING_CALLBACK_DOMAIN).');
  let parsedCallback: URL;
  try {
    parsedCallback = new URL(callbackUrl);
  } catch {
    fail('callbackUrl', `must be an absolute http(s) URL, got ${JSON.stringify(callbackUrl)}.`);
  }
  if (parsedCallback.protocol !== 'https:' && parsedCallback.protocol !== 'http:') fail('callbackUrl', 'must be an http(s) URL.');

  const callbackSecret = o.callbackSecret ?? env.KLING_CALLBACK_SECRET;
  if (typeof callbackSecret !== 'string' || callbackSecret.length < 32) {
    fail('callbackSecret', 'must be a string of at least 32 characters (set KLING_CALLBACK_SECRET, e.g. from `openssl rand -hex 32`).');
  }

  if (o.identify !== undefined && typeof o.identify !== 'function') fail('identify', 'must be a function (req, res) => ({ id, username? }) | null.');
  if (o.pricing === undefined) fail('pricing', 'required: an array of pricing rules, {margin, rules}, or the path of a JSON file holding either (README, "Pricing").');
  if (typeof o.pricing !== 'string' && (typeof o.pricing !== 'object' || o.pricing === null)) fail('pricing', 'must be an array of rules, {margin, rules}, or a file path.');

  if (o.profile !== undefined && !(PROFILES as readonly unknown[]).includes(o.profile)) fail('profile', `must be ${PROFILES.map((p) => `'${p}'`).join(' or ')}, got ${JSON.stringify(o.profile)}.`);
  const profile = o.profile === undefined ? undefined : PROFILE_DEFAULTS[o.profile as ProfileName];
  if (o.onTransition !== undefined && typeof o.onTransition !== 'function') fail('onTransition', 'must be a function (trx, change) => Promise<void>, run inside the transaction of each final transition.');

  const billing = o.billing ?? profile?.billing ?? 'hold';
  if (billing !== 'hold' && billing !== 'charge-on-success') fail('billing', `must be 'hold' or 'charge-on-success', got ${JSON.stringify(billing)}.`);
  const responseFormat = o.responseFormat ?? 'kling';
  if (responseFormat !== 'kling' && responseFormat !== 'standard') fail('responseFormat', `must be 'kling' or 'standard', got ${JSON.stringify(responseFormat)}.`);

  const bodyLimit = parseLimit((o.bodyLimit as string | number | undefined) ?? '60mb');
  if (bodyLimit === undefined) fail('bodyLimit', `must be a size like '60mb' or a number of bytes, got ${JSON.stringify(o.bodyLimit)}.`);

  const logger = o.logger as Logger | undefined;
  if (logger !== undefined && !['error', 'warn', 'info', 'debug'].every((m) => typeof (logger as unknown as Record<string, unknown>)[m] === 'function')) {
    fail('logger', 'must have error, warn, info and debug methods (a winston logger works).');
  }
  if (o.fetch !== undefined && typeof o.fetch !== 'function') fail('fetch', 'must be a fetch-compatible function, e.g. globalThis.fetch.');

  const tables = (o.tables ?? {}) as { video?: HostTableOptions; image?: HostTableOptions };
  if (typeof tables !== 'object' || tables === null) fail('tables', 'must be { video?: { name, columns?, statuses?, result?, resultColumn?, duration?, failedQuota?, extraColumns? }, image?: {...} }.');
  for (const key of Object.keys(tables)) if (key !== 'video' && key !== 'image') fail('tables', `unknown table '${key}'; use 'video' and 'image'.`);

  const reconciler = (o.reconciler ?? {}) as Record<string, unknown>;
  for (const key of Object.keys(reconciler)) if (key !== 'intervalMs' && key !== 'taskTimeoutMs' && key !== 'leaseMs') fail('reconciler', `unknown field '${key}'; use intervalMs, taskTimeoutMs and leaseMs.`);
  const upstreamTimeoutMs = positiveNumber('upstreamTimeoutMs', o.upstreamTimeoutMs, 30_000);
  // A lease shorter than one Kling call would let a second instance check a task mid-check.
  const leaseMs = positiveNumber('reconciler', reconciler.leaseMs, upstreamTimeoutMs * 2 + 10_000);
  if (leaseMs <= upstreamTimeoutMs) fail('reconciler', `leaseMs (${leaseMs}) must exceed upstreamTimeoutMs (${upstreamTimeoutMs}), so that no other instance takes a task during a Kling call.`);

  const registry = o.registry;
  if (registry !== undefined && typeof registry !== 'string' && (typeof registry !== 'object' || registry === null)) {
    fail('registry', 'must be the path of a registry JSON file or a registry object { endpoints: [...] }.');
  }
  const quota = o.quota ?? profile?.quota ?? {};
  if (typeof quota !== 'object' || quota === null) fail('quota', 'must be { table, idColumn, quotaColumn, usedColumn } or an object implementing QuotaStore.');

  return {
    db: o.db,
    accounts: accounts as KlingAccountInit[],
    callbackUrl,
    callbackSecret,
    identify: (o.identify as Configuration['identify'] | undefined) ?? defaultIdentify,
    pricing: o.pricing as PricingRule[] | PriceList | string,
    quotaPerUnit: positiveNumber('quotaPerUnit', o.quotaPerUnit, 500_000),
    tables: { video: tables.video ?? profile?.tables.video ?? { name: 'videos' }, image: tables.image ?? profile?.tables.image ?? { name: 'images' } },
    quota: quota as Configuration['quota'],
    registry: registry as Configuration['registry'],
    billing,
    responseFormat,
    upstreamTimeoutMs,
    bodyLimit,
    logger,
    fetch: o.fetch as FetchLike | undefined,
    reconciler: {
      intervalMs: positiveNumber('reconciler', reconciler.intervalMs, 15_000),
      taskTimeoutMs: positiveNumber('reconciler', reconciler.taskTimeoutMs, 86_400_000),
      leaseMs,
    },
    dbTimeoutMs: positiveNumber('dbTimeoutMs', o.dbTimeoutMs, 10_000),
    clientCallbacks: clientCallbacksOption(o.clientCallbacks, env),
    profile: o.profile as ProfileName | undefined,
    onTransition: composeHooks(profile?.onTransition, o.onTransition as TransitionHook | undefined),
    queue: queueOption(o.queue),
  };
}

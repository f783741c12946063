import { expect } from 'chai';
import express5, { type RequestHandler } from 'express';
import express4 from 'express4';
import type { Knex } from 'knex';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { createDefaultHostTables } from '../../adapters/host-schema.js';
import { createKlingRelay, klingJwtAuth, type KlingKey, type KlingRelay, type KlingRelayOptions, type PricingRule } from '../../lib/index.js';
import { defaultLogger, silentLogger } from '../../lib/logger.js';
import type { ConcurrencyInit } from '../../lib/dispatch/caps.js';
import { startKlingSandbox, type KlingSandbox, type SandboxAccount, type SandboxOptions } from '../../lib/sandbox/index.js';
import type { TestDatabase } from './databases.js';

export const CALLBACK_SECRET = 'test-callback-secret-0123456789abcdef';

/** Prices for every built-in type, so that each endpoint can be submitted. */
export const TEST_PRICING: PricingRule[] = [
  { model: '*', type: '*', mode: '*', duration: '*', pricing_type: 'fixed', price: 0.01, currency: 'USD' },
  { model: 'kling-*', type: 'text2video', mode: '*', duration: '*', pricing_type: 'per_second', price: 0.01, currency: 'USD' },
  { model: 'kling-*', type: 'image-generation', mode: '*', duration: '*', pricing_type: 'per_image', price: 0.02, currency: 'USD' },
];

export interface Harness {
  url: string;
  db: Knex;
  sandbox: KlingSandbox;
  relay: KlingRelay;
  /** Creates a user with this balance; returns its id. */
  user(quota: number): Promise<number>;
  balance(userId: number): Promise<number>;
  rows(table: 'videos' | 'images'): Promise<Record<string, unknown>[]>;
  tasks(): Promise<Record<string, unknown>[]>;
  ledger(): Promise<Record<string, unknown>[]>;
  /**
   * The ledger invariant, for every user this harness created: quota = start + sum of its ledger rows,
   * and each task has at most one terminal row (settle or refund), present exactly when it is final.
   * Throws an assertion error naming what broke.
   */
  assertLedger(): Promise<void>;
  /** POSTs to Kling's sandbox received so far, excluding queries. */
  creates(): KlingSandbox['requests'];
  /** The sandbox keys of each relay account, by relay account id. */
  keys: Record<string, SandboxAccount>;
  /**
   * A second relay instance on the same database, accounts and settings, as another host process
   * would run one (`overrides` replace options, e.g. its own knex or fewer accounts); the caller closes it.
   */
  anotherRelay(overrides?: Partial<KlingRelayOptions>): KlingRelay;
  /** Issues a Kling-style access/secret key pair to a user: its JWTs are accepted as that user at /kling. */
  klingKeys(userId: number): SandboxAccount;
  close(): Promise<void>;
}

const TABLES = ['kling_relay_ledger', 'kling_relay_tasks', 'kling_relay_resources', 'kling_relay_outbox', 'videos', 'images', 'users'];

export interface HarnessAccount {
  id: string;
  /** The host's integer channel id for this account (one-api's and new-api's channels.id). */
  channelId?: number;
  weight?: number;
  /** Sign with this instead of the key the sandbox knows, as with a revoked or mistyped key. */
  secretKey?: string;
  /**
   * Authenticate with an API key instead of access/secret key JWTs: `true` for the key the sandbox
   * knows for this account, a string for one it may not know (a revoked or mistyped key).
   */
  apiKey?: true | string;
  /** The relay account's Kling webhook secrets; the sandbox signs this account's callbacks with the same, unless `klingWebhookSecrets` says otherwise. */
  webhookSecret?: string;
  previousWebhookSecret?: string;
  /** What the sandbox (Kling) signs with, when it differs from what the relay is given (a rotation). */
  klingWebhookSecrets?: { webhookSecret?: string; previousWebhookSecret?: string };
  /** The relay account's `concurrency` option. */
  concurrency?: ConcurrencyInit;
  /** The cap the sandbox (Kling) enforces on this account; default none. */
  klingConcurrency?: ConcurrencyInit;
}

export interface HarnessOptions {
  expressVersion?: 4 | 5;
  sandbox?: SandboxOptions;
  relay?: Partial<KlingRelayOptions>;
  /**
   * Several Kling accounts in the one sandbox, each with its own keys. Default: one account
   * `acct-1` with the sandbox's first account.
   */
  accounts?: HarnessAccount[];
}

/** Keys for a harness account: distinct per account, long enough for any key check; its webhook secrets, if any. */
function sandboxKeys(account: HarnessAccount): SandboxAccount {
  const { id } = account;
  const webhook = account.klingWebhookSecrets ?? { webhookSecret: account.webhookSecret, previousWebhookSecret: account.previousWebhookSecret };
  return {
    accessKey: `access-${id}`,
    secretKey: `secret-${id}-0123456789abcdef0123456789abcdef`,
    apiKeys: [`apikey-${id}-0123456789abcdef0123456789abcdef`],
    ...(webhook.webhookSecret !== undefined ? { webhookSecret: webhook.webhookSecret } : {}),
    ...(webhook.previousWebhookSecret !== undefined ? { previousWebhookSecret: webhook.previousWebhookSecret } : {}),
    ...(account.klingConcurrency !== undefined ? { concurrency: account.klingConcurrency } : {}),
  };
}

/**
 * A host app as an integrator would write one: its own tables and users, a token check that puts the
 * caller in res.locals.user (here: the X-User-Id header), the relay mounted at /kling, the sandbox as
 * Kling. `expressVersion` picks Express 5 or 4 for the host app.
 */
export async function startHarness(database: TestDatabase, options: HarnessOptions = {}): Promise<Harness> {
  const db = database.connect();
  for (const table of TABLES) await db.schema.dropTableIfExists(table);
  await createDefaultHostTables(db);
  const wanted = options.accounts;
  const sandbox = await startKlingSandbox({ schedule: 'manual', ...(wanted ? { accounts: wanted.map(sandboxKeys) } : {}), ...options.sandbox });
  const keys: Record<string, SandboxAccount> = {};
  const accounts = (wanted ?? [{ id: 'acct-1' }]).map((a, index) => {
    const known = sandbox.accounts[index];
    if (!known) throw new Error(`sandbox has no account #${index}`);
    keys[a.id] = known;
    const settings = {
      ...(a.weight !== undefined ? { weight: a.weight } : {}),
      ...(a.channelId !== undefined ? { channelId: a.channelId } : {}),
      ...(a.webhookSecret !== undefined ? { webhookSecret: a.webhookSecret } : {}),
      ...(a.previousWebhookSecret !== undefined ? { previousWebhookSecret: a.previousWebhookSecret } : {}),
      ...(a.concurrency !== undefined ? { concurrency: a.concurrency } : {}),
    };
    if (a.apiKey !== undefined) {
      const apiKey = a.apiKey === true ? known.apiKeys?.[0] : a.apiKey;
      if (apiKey === undefined) throw new Error(`sandbox account #${index} has no API key`);
      return { id: a.id, apiKey, baseUrl: sandbox.url, ...settings };
    }
    return { id: a.id, accessKey: known.accessKey, secretKey: a.secretKey ?? known.secretKey, baseUrl: sandbox.url, ...settings };
  });
  const relayOptions: KlingRelayOptions = {
    db,
    accounts,
    callbackUrl: 'http://127.0.0.1:9/kling/callback',
    callbackSecret: CALLBACK_SECRET,
    pricing: TEST_PRICING,
    // TEST_LOG=1 prints the relay's log lines while debugging a test.
    logger: process.env.TEST_LOG ? defaultLogger('debug') : silentLogger,
    upstreamTimeoutMs: 2_000,
    ...options.relay,
  };
  const relay = createKlingRelay(relayOptions);
  await relay.migrate();
  // TEST_EXPRESS=4 runs every suite's host app on Express 4 (CI runs the relay suites both ways).
  const expressVersion = options.expressVersion ?? (process.env.TEST_EXPRESS === '4' ? 4 : 5);
  const express = (expressVersion === 4 ? express4 : express5) as unknown as typeof express5;
  const app = express();
  const userIdCheck: RequestHandler = (req, res, next) => {
    const id = req.get('x-user-id');
    if (id) res.locals.user = { id: Number(id), username: `user${id}` };
    next();
  };
  // Kling-style JWTs (Authorization: Bearer <jwt>) for users given keys by klingKeys(), the X-User-Id
  // check otherwise. A suite that brings its own relay.identify decides every caller itself.
  const userKeys = new Map<string, KlingKey>();
  const jwtAuth = klingJwtAuth({ lookup: (accessKey) => userKeys.get(accessKey) ?? null, fallback: userIdCheck });
  app.use('/kling', options.relay?.identify ? userIdCheck : jwtAuth, relay.router);
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const starts = new Map<number, number>();
  const balance = async (userId: number): Promise<number> => {
    const row = (await db('users').where({ id: userId }).first()) as { quota: number | string };
    return Number(row.quota);
  };
  return {
    url,
    db,
    sandbox,
    relay,
    async user(quota) {
      const values = { username: 'someone', quota, used_quota: 0 };
      // MySQL has no RETURNING: insert() answers the new id there by itself.
      const [id] = database.name === 'mysql' ? await db('users').insert(values) : await db('users').insert(values, ['id']);
      const userId = Number(typeof id === 'object' ? (id as { id: number }).id : id);
      starts.set(userId, quota);
      return userId;
    },
    balance,
    async assertLedger() {
      const ledger = (await db('kling_relay_ledger').select('*')) as { task_id: number | string; user_id: string; kind: string; amount: number | string }[];
      for (const [userId, start] of starts) {
        const sum = ledger.filter((l) => l.user_id === String(userId)).reduce((total, l) => total + Number(l.amount), 0);
        expect(await balance(userId), `user ${userId}: quota = start + sum(ledger)`).to.equal(start + sum);
      }
      const tasks = (await db('kling_relay_tasks').select('id', 'state', 'billing')) as { id: number | string; state: string; billing: string }[];
      for (const task of tasks) {
        const rows = ledger.filter((l) => Number(l.task_id) === Number(task.id));
        const terminal = rows.filter((l) => l.kind === 'settle' || l.kind === 'refund');
        expect(terminal.length, `task ${task.id} terminal ledger rows`).to.be.at.most(1);
        const final = task.state === 'succeed' || task.state === 'failed';
        if (task.billing === 'hold') {
          expect(rows.filter((l) => l.kind === 'hold').length, `task ${task.id} holds`).to.equal(1);
          expect(terminal.length, `task ${task.id} (${task.state}) is settled exactly when final`).to.equal(final ? 1 : 0);
        }
      }
    },
    rows: (table) => db(table).select('*').orderBy('id'),
    tasks: () => db('kling_relay_tasks').select('*').orderBy('id'),
    ledger: () => db('kling_relay_ledger').select('*').orderBy('id'),
    creates: () => sandbox.requests.filter((r) => r.method === 'POST'),
    anotherRelay: (overrides = {}) => createKlingRelay({ ...relayOptions, ...overrides }),
    keys,
    klingKeys(userId) {
      const pair = { accessKey: `ak-user${userId}-${userKeys.size}`, secretKey: `sk-user${userId}-${randomBytes(16).toString('hex')}` };
      userKeys.set(pair.accessKey, { secretKey: pair.secretKey, user: { id: userId, username: `user${userId}` } });
      return pair;
    },
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      relay.close();
      await sandbox.close();
      await db.destroy();
    },
  };
}

/** afterEach of a suite that moves money: the ledger invariant must hold, then the harness closes. */
export async function checkAndClose(h: Harness | undefined): Promise<void> {
  if (!h) return;
  try {
    await h.assertLedger();
  } finally {
    await h.close();
  }
}

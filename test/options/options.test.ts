import { expect } from 'chai';
import express from 'express';
import knex, { type Knex } from 'knex';
import request from 'supertest';
import { createKlingRelay, KlingRelayConfigError, type KlingRelayOptions } from '../../lib/index.js';
import { normalizeOptions } from '../../lib/options.js';
import { refused } from '../support/config-errors.js';
import { TEST_PRICING } from '../support/harness.js';

describe('createKlingRelay options', () => {
  let db: Knex;
  before(() => {
    db = knex({ client: 'better-sqlite3', connection: { filename: ':memory:' }, useNullAsDefault: true });
  });
  after(async () => db.destroy());

  const base = (): KlingRelayOptions => ({
    db,
    accounts: [{ id: 'a', accessKey: 'ak', secretKey: 'sk' }],
    callbackUrl: 'https://relay.example.com/kling/callback',
    callbackSecret: 'x'.repeat(32),
    pricing: TEST_PRICING,
  });

  it('creates a relay from good options, with the documented defaults', () => {
    const relay = createKlingRelay(base());
    expect(relay.router).to.be.a('function');
    expect(relay.callback).to.be.a('function');
    relay.close();
    const config = normalizeOptions(base(), {});
    expect(config).to.include({ quotaPerUnit: 500_000, billing: 'hold', responseFormat: 'kling', upstreamTimeoutMs: 30_000, bodyLimit: 60 * 1024 * 1024 });
    expect(config.reconciler).to.deep.equal({ intervalMs: 15_000, taskTimeoutMs: 86_400_000, leaseMs: 70_000 });
    expect(config.dbTimeoutMs).to.equal(10_000);
    expect(config.queue).to.deep.equal({ maxLength: 1000, maxWaitMs: 600_000, perCaller: 100 });
    expect(normalizeOptions({ ...base(), queue: { maxLength: 0 } }, {}).queue.maxLength).to.equal(0);
    expect(config.tables).to.deep.equal({ video: { name: 'videos' }, image: { name: 'images' } });
  });

  it('falls back to the environment for accounts, callbackUrl and callbackSecret', () => {
    const { accounts: _a, callbackUrl: _c, callbackSecret: _s, ...rest } = base();
    const env = { KLING_ACCESS_KEY: 'ak-env', KLING_SECRET_KEY: 'sk-env', KLING_BASE_URL: 'http://127.0.0.1:1', KLING_CALLBACK_DOMAIN: 'https://relay.example.com/', KLING_CALLBACK_SECRET: 'e'.repeat(40) };
    const config = normalizeOptions(rest, env);
    expect(config.accounts).to.deep.equal([{ id: 'default', accessKey: 'ak-env', secretKey: 'sk-env', baseUrl: 'http://127.0.0.1:1' }]);
    expect(config.callbackUrl).to.equal('https://relay.example.com/kling/callback');
    expect(normalizeOptions(rest, { ...env, KLING_CALLBACK_URL: 'https://x.example.com/cb' }).callbackUrl).to.equal('https://x.example.com/cb');
    expect(config.callbackSecret).to.equal('e'.repeat(40));
  });

  it('takes an API-key account from KLING_API_KEY, and refuses it beside an access/secret key pair', () => {
    const { accounts: _a, ...rest } = base();
    const config = normalizeOptions(rest, { KLING_API_KEY: 'key-env', KLING_BASE_URL: 'http://127.0.0.1:1' });
    expect(config.accounts).to.deep.equal([{ id: 'default', apiKey: 'key-env', baseUrl: 'http://127.0.0.1:1' }]);
    expect(normalizeOptions(rest, { KLING_API_KEY: 'key-env' }).accounts).to.deep.equal([{ id: 'default', apiKey: 'key-env' }]);
    let caught: unknown;
    try {
      normalizeOptions(rest, { KLING_API_KEY: 'key-env', KLING_ACCESS_KEY: 'ak-env', KLING_SECRET_KEY: 'sk-env' });
    } catch (error) {
      caught = error;
    }
    expect(caught).to.be.instanceOf(KlingRelayConfigError);
    expect((caught as KlingRelayConfigError).code).to.equal('ERR_KLING_RELAY_OPTION_ACCOUNTS');
    expect((caught as Error).message).to.include('set KLING_API_KEY, or KLING_ACCESS_KEY with KLING_SECRET_KEY, not both');
    expect((caught as Error).message).to.not.include('key-env');
    // Passed accounts win over the environment, as for the other options.
    expect(normalizeOptions(base(), { KLING_API_KEY: 'key-env', KLING_ACCESS_KEY: 'ak-env' }).accounts).to.deep.equal(base().accounts);
  });

  it('gives the environment account Kling\'s Webhook Secret from KLING_WEBHOOK_SECRET (and KLING_PREVIOUS_WEBHOOK_SECRET during a rotation)', () => {
    const { accounts: _a, ...rest } = base();
    const secret = `whsec_${Buffer.from('kling-webhook-secret-for-tests-32').toString('base64')}`;
    const previous = `whsec_${Buffer.from('kling-webhook-previous-secret-32b').toString('base64')}`;
    expect(normalizeOptions(rest, { KLING_API_KEY: 'key-env', KLING_WEBHOOK_SECRET: secret }).accounts).to.deep.equal([{ id: 'default', apiKey: 'key-env', webhookSecret: secret }]);
    expect(normalizeOptions(rest, { KLING_ACCESS_KEY: 'ak-env', KLING_SECRET_KEY: 'sk-env', KLING_WEBHOOK_SECRET: secret, KLING_PREVIOUS_WEBHOOK_SECRET: previous }).accounts).to.deep.equal([
      { id: 'default', accessKey: 'ak-env', secretKey: 'sk-env', webhookSecret: secret, previousWebhookSecret: previous },
    ]);
    // A secret alone makes no account.
    expect(() => normalizeOptions(rest, { KLING_WEBHOOK_SECRET: secret })).to.throw(KlingRelayConfigError, 'no Kling account');
  });

  it('refuses an unknown option, suggesting the one that was meant', () => {
    refused({ ...base(), callbackSecert: 'x' }, 'ERR_KLING_RELAY_UNKNOWN_OPTION', "'callbackSecert'", "Did you mean 'callbackSecret'?");
    refused({ ...base(), colour: 'red' }, 'ERR_KLING_RELAY_UNKNOWN_OPTION', "'colour'");
  });

  it('refuses each bad value with a code naming the option and the fix', () => {
    refused({ ...base(), db: {} }, 'ERR_KLING_RELAY_OPTION_DB', 'knex instance');
    refused({ ...base(), callbackSecret: 'short' }, 'ERR_KLING_RELAY_OPTION_CALLBACK_SECRET', 'at least 32 characters');
    refused({ ...base(), callbackUrl: 'relay.example.com/cb' }, 'ERR_KLING_RELAY_OPTION_CALLBACK_URL', 'absolute');
    refused({ ...base(), billing: 'later' }, 'ERR_KLING_RELAY_OPTION_BILLING', "'hold' or 'charge-on-success'");
    refused({ ...base(), responseFormat: 'xml' }, 'ERR_KLING_RELAY_OPTION_RESPONSE_FORMAT', "'kling' or 'standard'");
    refused({ ...base(), quotaPerUnit: -1 }, 'ERR_KLING_RELAY_OPTION_QUOTA_PER_UNIT', 'positive number');
    refused({ ...base(), upstreamTimeoutMs: 0 }, 'ERR_KLING_RELAY_OPTION_UPSTREAM_TIMEOUT_MS', 'positive number');
    refused({ ...base(), bodyLimit: 'lots' }, 'ERR_KLING_RELAY_OPTION_BODY_LIMIT', "'60mb'");
    refused({ ...base(), logger: { info() {} } }, 'ERR_KLING_RELAY_OPTION_LOGGER', 'winston');
    refused({ ...base(), identify: 'res.locals.user' }, 'ERR_KLING_RELAY_OPTION_IDENTIFY', 'function');
    refused({ ...base(), fetch: 'node-fetch' }, 'ERR_KLING_RELAY_OPTION_FETCH', 'fetch-compatible');
    refused({ ...base(), tables: { audio: { name: 'audios' } } }, 'ERR_KLING_RELAY_OPTION_TABLES', "'audio'");
    refused({ ...base(), tables: { video: { name: 'videos; drop table users' } } }, 'ERR_KLING_RELAY_IDENTIFIER');
    refused({ ...base(), reconciler: { every: 5 } }, 'ERR_KLING_RELAY_OPTION_RECONCILER', "'every'");
    refused({ ...base(), reconciler: { leaseMs: 0 } }, 'ERR_KLING_RELAY_OPTION_RECONCILER', 'positive number');
    refused({ ...base(), upstreamTimeoutMs: 5_000, reconciler: { leaseMs: 5_000 } }, 'ERR_KLING_RELAY_OPTION_RECONCILER', 'must exceed upstreamTimeoutMs');
    refused({ ...base(), dbTimeoutMs: -5 }, 'ERR_KLING_RELAY_OPTION_DB_TIMEOUT_MS', 'positive number');
    refused({ ...base(), queue: 5 }, 'ERR_KLING_RELAY_OPTION_QUEUE', 'maxLength?, maxWaitMs?, perCaller?');
    refused({ ...base(), queue: { length: 5 } }, 'ERR_KLING_RELAY_OPTION_QUEUE', "unknown field 'length'");
    refused({ ...base(), queue: { maxLength: -1 } }, 'ERR_KLING_RELAY_OPTION_QUEUE', 'maxLength must be an integer >= 0', '-1');
    refused({ ...base(), queue: { maxWaitMs: 0 } }, 'ERR_KLING_RELAY_OPTION_QUEUE', 'maxWaitMs must be an integer >= 1');
    refused({ ...base(), queue: { perCaller: 2.5 } }, 'ERR_KLING_RELAY_OPTION_QUEUE', 'perCaller must be an integer >= 1', '2.5');
    refused({ ...base(), quota: { hold: () => true } }, 'ERR_KLING_RELAY_QUOTA_STORE');
    refused({ ...base(), accounts: [] }, 'ERR_KLING_RELAY_OPTION_ACCOUNTS', 'non-empty');
    refused({ ...base(), accounts: [{ id: 'a', accessKey: '', secretKey: 'sk' }] }, 'ERR_KLING_RELAY_ACCOUNTS');
    refused({ ...base(), accounts: [{ id: 'a', apiKey: 'key', accessKey: 'ak', secretKey: 'sk' }] }, 'ERR_KLING_RELAY_ACCOUNTS', 'give one of them');
    refused({ ...base(), accounts: [{ id: 'a' }] }, 'ERR_KLING_RELAY_ACCOUNTS', 'give apiKey, or accessKey and secretKey');
    refused({ ...base(), pricing: [{ type: 'tts', price: 'free' }] }, 'ERR_KLING_RELAY_PRICING_INVALID', '/0/price');
    refused({ ...base(), registry: '/no/such/registry.json' }, 'ERR_KLING_RELAY_REGISTRY_MISSING');
    const { pricing: _p, ...noPricing } = base();
    refused(noPricing, 'ERR_KLING_RELAY_OPTION_PRICING', 'required');
  });

  it('refuses a missing account or callback configuration, naming the environment variables', () => {
    const { accounts: _a, ...noAccounts } = base();
    expect(() => normalizeOptions(noAccounts, {})).to.throw(KlingRelayConfigError, /KLING_ACCESS_KEY/);
    expect(() => normalizeOptions(noAccounts, {})).to.throw(KlingRelayConfigError, /set KLING_API_KEY/);
    expect(() => normalizeOptions(noAccounts, {})).to.throw(KlingRelayConfigError, /accounts: \[\{ id, apiKey \}\]/);
    const { callbackUrl: _c, ...noCallback } = base();
    expect(() => normalizeOptions(noCallback, {})).to.throw(KlingRelayConfigError, /KLING_CALLBACK_URL/);
  });

  it('detects app.use(createKlingRelay) and says how to mount the relay', async () => {
    const app = express();
    app.use(createKlingRelay as unknown as express.RequestHandler);
    let seen: unknown;
    app.use((error: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      seen = error;
      res.status(500).end();
    });
    await request(app).get('/');
    expect(seen).to.be.instanceOf(KlingRelayConfigError);
    expect((seen as KlingRelayConfigError).code).to.equal('ERR_KLING_RELAY_MISUSE');
    expect((seen as Error).message).to.include("app.use('/kling', relay.router)");
  });
});

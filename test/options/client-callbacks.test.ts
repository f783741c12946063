import { expect } from 'chai';
import knex, { type Knex } from 'knex';
import sinon from 'sinon';
import { createKlingRelay, KlingRelayConfigError, type KlingRelayOptions } from '../../lib/index.js';
import { normalizeOptions } from '../../lib/options.js';
import { TEST_PRICING } from '../support/harness.js';

const SECRET = `whsec_${Buffer.from('0123456789abcdef0123456789abcdef').toString('base64')}`;
const CODE = 'ERR_KLING_RELAY_OPTION_CLIENT_CALLBACKS';

describe('createKlingRelay option clientCallbacks', () => {
  let db: Knex;
  before(() => {
    db = knex({ client: 'better-sqlite3', connection: { filename: ':memory:' }, useNullAsDefault: true });
  });
  after(async () => db.destroy());

  const base = (clientCallbacks?: unknown): KlingRelayOptions => ({
    db,
    accounts: [{ id: 'a', accessKey: 'ak', secretKey: 'sk' }],
    callbackUrl: 'https://relay.example.com/kling/callback',
    callbackSecret: 'x'.repeat(32),
    pricing: TEST_PRICING,
    ...(clientCallbacks === undefined ? {} : { clientCallbacks: clientCallbacks as KlingRelayOptions['clientCallbacks'] }),
  });

  function refused(clientCallbacks: unknown, env: NodeJS.ProcessEnv, ...fragments: string[]): void {
    let caught: unknown;
    try {
      normalizeOptions(base(clientCallbacks), env);
    } catch (error) {
      caught = error;
    }
    expect(caught, JSON.stringify(clientCallbacks)).to.be.instanceOf(KlingRelayConfigError);
    expect((caught as KlingRelayConfigError).code).to.equal(CODE);
    expect((caught as Error).message).to.include("Option 'clientCallbacks'");
    for (const fragment of fragments) expect((caught as Error).message, JSON.stringify(clientCallbacks)).to.include(fragment);
  }

  it('defaults: unsigned, no allowed hosts, 10 s per attempt, retried for 24 h, kept for 30 days once ended', () => {
    expect(normalizeOptions(base(), {}).clientCallbacks).to.deep.equal({ secret: undefined, allowHosts: [], timeoutMs: 10_000, retryForMs: 86_400_000, keepForMs: 2_592_000_000 });
  });

  it('takes its fields, and the secret from KLING_CLIENT_CALLBACK_SECRET when not given', () => {
    const given = { secret: SECRET, allowHosts: ['hooks.internal', '10.0.0.7', '::1', '[fd00::1]'], timeoutMs: 500, retryForMs: 60_000, keepForMs: 3_600_000 };
    expect(normalizeOptions(base(given), {}).clientCallbacks).to.deep.equal(given);
    // null keeps ended notices for ever.
    expect(normalizeOptions(base({ keepForMs: null }), {}).clientCallbacks.keepForMs).to.equal(null);
    expect(normalizeOptions(base(), { KLING_CLIENT_CALLBACK_SECRET: SECRET }).clientCallbacks.secret).to.equal(SECRET);
    // The option wins over the environment.
    const other = `whsec_${Buffer.from('fedcba9876543210fedcba9876543210').toString('base64')}`;
    expect(normalizeOptions(base({ secret: other }), { KLING_CLIENT_CALLBACK_SECRET: SECRET }).clientCallbacks.secret).to.equal(other);
  });

  it('refuses each bad value with a code naming the field and the fix', () => {
    refused('whsec_x', {}, 'must be an object');
    refused({ secrets: SECRET }, {}, "unknown field 'secrets'", 'secret, allowHosts, timeoutMs, retryForMs, keepForMs');
    refused({ keepForMs: 0 }, {}, 'keepForMs must be a positive number of milliseconds or null');
    refused({ keepForMs: '30d' }, {}, 'keepForMs must be a positive number of milliseconds or null');
    refused({ secret: 'x'.repeat(40) }, {}, "secret must start with 'whsec_'", 'openssl rand -base64 32');
    refused({ secret: 'whsec_not base64!' }, {}, 'standard base64');
    refused({ secret: `whsec_${Buffer.from('short').toString('base64')}` }, {}, '5-byte key', '24 to 64');
    refused({ secret: 42 }, {}, 'secret must be a string');
    refused({}, { KLING_CLIENT_CALLBACK_SECRET: 'plain-secret-without-prefix-0123456789' }, "KLING_CLIENT_CALLBACK_SECRET must start with 'whsec_'");
    refused({ allowHosts: 'localhost' }, {}, 'allowHosts must be an array');
    refused({ allowHosts: ['http://hooks.internal'] }, {}, 'without scheme or port');
    refused({ allowHosts: ['hooks.internal:8080'] }, {}, 'without scheme or port');
    refused({ allowHosts: [''] }, {}, 'allowHosts');
    refused({ timeoutMs: 0 }, {}, 'timeoutMs must be a positive number of milliseconds');
    refused({ retryForMs: '1h' }, {}, 'retryForMs must be a positive number of milliseconds, got "1h"');
  });

  it('is a known option key, so a typo gets a suggestion', () => {
    let caught: unknown;
    try {
      createKlingRelay({ ...base(), clientCallback: {} } as unknown as KlingRelayOptions);
    } catch (error) {
      caught = error;
    }
    expect((caught as KlingRelayConfigError).code).to.equal('ERR_KLING_RELAY_UNKNOWN_OPTION');
    expect((caught as Error).message).to.include("Did you mean 'clientCallbacks'?");
  });

  it('does not warn at creation without a secret (only a notice sent unsigned does), and logs no secret', () => {
    const saved = process.env.KLING_CLIENT_CALLBACK_SECRET;
    delete process.env.KLING_CLIENT_CALLBACK_SECRET;
    try {
      const logger = { error: sinon.spy(), warn: sinon.spy(), info: sinon.spy(), debug: sinon.spy() };
      createKlingRelay({ ...base(), logger }).close();
      expect(logger.warn.callCount).to.equal(0);
      const signed = { error: sinon.spy(), warn: sinon.spy(), info: sinon.spy(), debug: sinon.spy() };
      createKlingRelay({ ...base({ secret: SECRET }), logger: signed }).close();
      expect(signed.warn.callCount).to.equal(0);
      expect(JSON.stringify(signed.info.getCalls().map((c) => c.args))).to.not.include(SECRET.slice(6));
    } finally {
      if (saved !== undefined) process.env.KLING_CLIENT_CALLBACK_SECRET = saved;
    }
  });
});

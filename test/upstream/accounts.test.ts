import { inspect } from 'node:util';
import { expect } from 'chai';
import { KlingRelayConfigError } from '../../lib/errors.js';
import { AccountPool, DEFAULT_KLING_BASE_URL } from '../../lib/upstream/index.js';

const keys = { accessKey: 'ak-test', secretKey: 'sk-test-secret-value' };

describe('upstream/AccountPool', () => {
  it('fills in the default base URL and weight and strips a trailing slash', () => {
    const pool = new AccountPool([
      { id: 'a', ...keys },
      { id: 'b', ...keys, baseUrl: 'http://127.0.0.1:9999/', weight: 2 },
      { id: 'c', ...keys, baseUrl: 'https://proxy.example.com/kling/' },
    ]);
    expect(pool.get('a')).to.include({ baseUrl: DEFAULT_KLING_BASE_URL, weight: 1 });
    expect(pool.get('b')).to.include({ baseUrl: 'http://127.0.0.1:9999', weight: 2 });
    expect(pool.get('c')?.baseUrl).to.equal('https://proxy.example.com/kling');
    expect(pool.get('nope')).to.equal(undefined);
    expect(pool.all().map((a) => a.id)).to.deep.equal(['a', 'b', 'c']);
  });

  it('spreads picks by weight (3:1 over 4000 picks)', () => {
    const pool = new AccountPool([
      { id: 'heavy', ...keys, weight: 3 },
      { id: 'light', ...keys, weight: 1 },
    ]);
    const counts = new Map<string, number>();
    for (let i = 0; i < 4000; i++) {
      const id = pool.pick().id;
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    // Expected 3000 / 1000, standard deviation about 27: 150 is over 5 sigma.
    expect(counts.get('heavy')).to.be.within(2850, 3150);
    expect(counts.get('light')).to.be.within(850, 1150);
  });

  it('maps the random source onto cumulative weights exactly', () => {
    let next = 0;
    const pool = new AccountPool(
      [
        { id: 'a', ...keys, weight: 1 },
        { id: 'b', ...keys, weight: 2 },
        { id: 'c', ...keys, weight: 1 },
      ],
      () => next,
    );
    const at = (r: number): string => {
      next = r;
      return pool.pick().id;
    };
    expect([at(0), at(0.2499), at(0.25), at(0.7499), at(0.75), at(0.9999)]).to.deep.equal(['a', 'a', 'b', 'b', 'c', 'c']);
  });

  it('never picks a weight-0 (draining) account but still finds it by id', () => {
    const pool = new AccountPool([
      { id: 'draining', ...keys, weight: 0 },
      { id: 'live', ...keys },
    ]);
    for (let i = 0; i < 500; i++) expect(pool.pick().id).to.equal('live');
    expect(pool.get('draining')?.weight).to.equal(0);
    // The edges of the random range too.
    expect(new AccountPool([{ id: 'z', ...keys, weight: 0 }, { id: 'y', ...keys }], () => 0).pick().id).to.equal('y');
  });

  it('rejects bad account lists with a coded error that names the problem', () => {
    const bad: Array<[unknown, RegExp]> = [
      [[], /at least one/],
      [[{ id: 'a', ...keys }, { id: 'a', ...keys }], /"a" is used twice/],
      [[{ id: '', ...keys }], /id must be a non-empty string/],
      [[{ id: 'a', accessKey: '', secretKey: 's' }], /accessKey/],
      [[{ id: 'a', accessKey: 'k', secretKey: ' ' }], /secretKey/],
      [[{ id: 'a', ...keys, weight: -1 }], /weight/],
      [[{ id: 'a', ...keys, weight: Number.NaN }], /weight/],
      [[{ id: 'a', ...keys, weight: 0 }], /weight 0/],
      [[{ id: 'a', ...keys, baseUrl: 'not a url' }], /baseUrl/],
      [[{ id: 'a', ...keys, baseUrl: 'ftp://x.example.com' }], /http or https/],
    ];
    for (const [input, message] of bad) {
      expect(() => new AccountPool(input as never), JSON.stringify(input))
        .to.throw(KlingRelayConfigError, message)
        .with.property('code', 'ERR_KLING_RELAY_ACCOUNTS');
    }
  });

  it('takes an API-key account {id, apiKey} beside access/secret key accounts', () => {
    const pool = new AccountPool([
      { id: 'pair', ...keys },
      { id: 'key', apiKey: 'kling-api-key-0123456789', weight: 2 },
    ]);
    expect({ ...pool.get('key') }).to.deep.equal({ id: 'key', apiKey: 'kling-api-key-0123456789', baseUrl: DEFAULT_KLING_BASE_URL, weight: 2 });
    expect({ ...pool.get('pair') }).to.deep.equal({ id: 'pair', ...keys, baseUrl: DEFAULT_KLING_BASE_URL, weight: 1 });
  });

  it('refuses an account with both credentials, neither, or half a key pair, naming the fields to give', () => {
    const bad: Array<[unknown, RegExp]> = [
      [{ id: 'a', apiKey: 'k', ...keys }, /accounts\[0\] \(account "a"\) has both an apiKey and an accessKey\/secretKey pair; give one of them/],
      [{ id: 'a', apiKey: 'k', secretKey: 's' }, /both an apiKey and an accessKey\/secretKey pair/],
      [{ id: 'a' }, /accounts\[0\] \(account "a"\) has no credentials: give apiKey, or accessKey and secretKey/],
      [{ id: 'a', weight: 1 }, /no credentials/],
      [{ id: 'a', accessKey: 'k' }, /accounts\[0\]\.secretKey \(account "a"\) must be a non-empty string/],
      [{ id: 'a', secretKey: 's' }, /accounts\[0\]\.accessKey \(account "a"\) must be a non-empty string/],
      [{ id: 'a', apiKey: '' }, /accounts\[0\]\.apiKey \(account "a"\) must be a non-empty string/],
      [{ id: 'a', apiKey: 42 }, /apiKey .*must be a non-empty string/],
      [{ id: 'a', apiKey: 'Bearer k' }, /accounts\[0\]\.apiKey \(account "a"\) must be the key alone, without "Bearer " or spaces/],
      ['apiKey', /accounts\[0\] must be an object \{id, apiKey, baseUrl\?, weight\?\} or \{id, accessKey, secretKey, baseUrl\?, weight\?\}/],
    ];
    for (const [input, message] of bad) {
      expect(() => new AccountPool([input] as never), JSON.stringify(input))
        .to.throw(KlingRelayConfigError, message)
        .with.property('code', 'ERR_KLING_RELAY_ACCOUNTS');
    }
    expect(() => new AccountPool([]), 'empty list').to.throw(KlingRelayConfigError, /\{id, apiKey\} or \{id, accessKey, secretKey\}/);
  });

  it('keeps an API key out of JSON, util.inspect and its own error messages', () => {
    const apiKey = 'kling-api-key-must-stay-secret-0123456789';
    const account = new AccountPool([{ id: 'main', apiKey }]).pick();
    for (const text of [JSON.stringify(account), inspect(account), JSON.stringify({ nested: { account } }), inspect({ nested: { account } })]) {
      expect(text).to.include('main');
      expect(text).to.include('[redacted]');
      expect(text).not.to.include(apiKey);
    }
    expect(account.apiKey).to.equal(apiKey);
    expect(Object.isFrozen(account)).to.equal(true);
    for (const input of [{ id: 'x', apiKey, weight: -2 }, { id: 'x', apiKey, ...keys }, { id: 'x', apiKey: `Bearer ${apiKey}` }]) {
      expect(() => new AccountPool([input] as never))
        .to.throw(KlingRelayConfigError)
        .with.property('message')
        .that.does.not.include(apiKey);
    }
  });

  it('keeps the keys out of JSON and util.inspect, and out of its own error messages', () => {
    const account = new AccountPool([{ id: 'main', ...keys }]).pick();
    for (const text of [JSON.stringify(account), inspect(account), JSON.stringify({ nested: { account } })]) {
      expect(text).to.include('main');
      expect(text).not.to.include(keys.secretKey);
      expect(text).not.to.include(keys.accessKey);
    }
    // The keys are still plain fields for the code that needs them.
    expect({ ...account }).to.include(keys);
    expect(Object.isFrozen(account)).to.equal(true);
    expect(() => new AccountPool([{ id: 'x', ...keys, weight: -2 }]))
      .to.throw(KlingRelayConfigError)
      .with.property('message')
      .that.does.not.include(keys.secretKey);
  });
});

describe('upstream/AccountPool: Kling webhook secrets', () => {
  const secret = `whsec_${Buffer.from('kling-webhook-secret-0123456789ab').toString('base64')}`;
  const previous = `whsec_${Buffer.from('kling-webhook-secret-previous-xyz').toString('base64')}`;

  it('takes a webhook secret and, during a rotation, the previous one; refuses bad ones with the fix', () => {
    const pool = new AccountPool([
      { id: 'signed', ...keys, webhookSecret: secret, previousWebhookSecret: previous },
      { id: 'plain', ...keys },
    ]);
    expect(pool.get('signed')).to.include({ webhookSecret: secret, previousWebhookSecret: previous });
    expect(pool.get('plain')?.webhookSecret).to.equal(undefined);
    const bad: Array<[unknown, RegExp]> = [
      [{ id: 'a', ...keys, webhookSecret: 'dGVzdA==' }, /accounts\[0\]\.webhookSecret \(account "a"\) must start with 'whsec_'.*copy the Webhook Secret from Kling's console/],
      [{ id: 'a', ...keys, webhookSecret: 'whsec_not base64!' }, /webhookSecret .*standard base64/],
      [{ id: 'a', ...keys, webhookSecret: 42 }, /webhookSecret .*must be a string/],
      [{ id: 'a', ...keys, webhookSecret: secret, previousWebhookSecret: 'nope' }, /accounts\[0\]\.previousWebhookSecret \(account "a"\) must start with 'whsec_'/],
      [{ id: 'a', ...keys, previousWebhookSecret: previous }, /previousWebhookSecret \(account "a"\) needs webhookSecret/],
    ];
    for (const [input, message] of bad) {
      expect(() => new AccountPool([input] as never), JSON.stringify(input))
        .to.throw(KlingRelayConfigError, message)
        .with.property('code', 'ERR_KLING_RELAY_ACCOUNTS');
    }
  });

  it('keeps webhook secrets out of JSON, util.inspect and its own error messages', () => {
    const account = new AccountPool([{ id: 'main', ...keys, webhookSecret: secret, previousWebhookSecret: previous }]).pick();
    for (const text of [JSON.stringify(account), inspect(account), JSON.stringify({ nested: { account } })]) {
      expect(text).to.include('[redacted]');
      expect(text).not.to.include(secret.slice(6));
      expect(text).not.to.include(previous.slice(6));
    }
    expect(() => new AccountPool([{ id: 'x', ...keys, webhookSecret: `${secret}!` }] as never))
      .to.throw(KlingRelayConfigError)
      .with.property('message')
      .that.does.not.include(secret.slice(6));
  });
});

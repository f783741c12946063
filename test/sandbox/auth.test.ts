import { expect } from 'chai';
import { type KlingSandbox, signKlingToken, startKlingSandbox } from '../../lib/sandbox/index.js';
import { call } from './helpers.js';

const LIST = '/v1/videos/text2video';

function b64url(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

describe('kling sandbox: JWT authentication', () => {
  let sandbox: KlingSandbox;
  before(async () => {
    sandbox = await startKlingSandbox({ schedule: 'manual' });
  });
  after(() => sandbox.close());

  async function expectCode(authorization: string | null, status: number, code: number): Promise<void> {
    const answer = await call(sandbox, 'GET', LIST, { authorization });
    expect(answer.status, answer.text).to.equal(status);
    expect(answer.json.code).to.equal(code);
    expect(answer.json.request_id).to.be.a('string').with.length.above(0);
    expect(answer.json).to.not.have.property('data');
  }

  it('accepts a token signed like Kling samples (HS256, iss, exp now+1800, nbf now-5)', async () => {
    const answer = await call(sandbox, 'GET', LIST);
    expect(answer.status).to.equal(200);
    expect(answer.json).to.include({ code: 0, message: 'SUCCEED' });
    expect(answer.json.data).to.deep.equal([]);
    expect(sandbox.requests.at(-1)?.accessKey).to.equal('sandbox-access-key');
  });

  it('answers 401/1001 for a missing or empty Authorization', async () => {
    await expectCode(null, 401, 1001);
    await expectCode('', 401, 1001);
    await expectCode('Bearer ', 401, 1001);
  });

  it('answers 401/1002 for garbage, a wrong scheme, a wrong secret, an unknown issuer and alg none', async () => {
    await expectCode('Bearer not-a-jwt', 401, 1002);
    const good = await sandbox.token();
    await expectCode(`Basic ${good}`, 401, 1002);
    const wrongSecret = await signKlingToken({ accessKey: 'sandbox-access-key', secretKey: 'another-secret-0123456789' });
    await expectCode(`Bearer ${wrongSecret}`, 401, 1002);
    const stranger = await signKlingToken({ accessKey: 'stranger', secretKey: 'sandbox-secret-key-0123456789abcdef' });
    await expectCode(`Bearer ${stranger}`, 401, 1002);
    const now = Math.floor(Date.now() / 1000);
    const none = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ iss: 'sandbox-access-key', exp: now + 1800, nbf: now - 5 })}.`;
    await expectCode(`Bearer ${none}`, 401, 1002);
    expect(sandbox.requests.at(-1)?.accessKey).to.equal(undefined);
  });

  it('answers 401/1003 for a token not yet valid and 401/1004 for an expired one', async () => {
    const account = sandbox.accounts[0]!;
    await expectCode(`Bearer ${await signKlingToken(account, { notBefore: 60 })}`, 401, 1003);
    const hourAgo = Math.floor(Date.now() / 1000) - 3600;
    await expectCode(`Bearer ${await signKlingToken(account, { now: hourAgo })}`, 401, 1004);
  });
});

describe('kling sandbox: API key authentication', () => {
  const alice = { accessKey: 'ak-alice', secretKey: 'sk-alice-0123456789abcdef', apiKeys: ['key-alice-1', 'key-alice-2'] };
  const bob = { accessKey: 'ak-bob', secretKey: 'sk-bob-0123456789abcdef', apiKeys: ['key-bob'] };
  let sandbox: KlingSandbox;
  before(async () => {
    sandbox = await startKlingSandbox({ schedule: 'manual', accounts: [alice, bob] });
  });
  after(() => sandbox.close());

  it("takes a known API key as its account's credential: the account's tasks, whichever of its keys or JWTs asks", async () => {
    const created = await call(sandbox, 'POST', LIST, { body: { prompt: 'a kite', external_task_id: 'ext-1' }, authorization: 'Bearer key-alice-1' });
    expect(created.status, created.text).to.equal(200);
    const taskId = created.json.data.task_id as string;
    expect(sandbox.requests.at(-1)?.accessKey).to.equal('ak-alice');
    expect(sandbox.tasks.getTask(taskId)?.accessKey).to.equal('ak-alice');
    for (const authorization of ['Bearer key-alice-2', `Bearer ${await signKlingToken(alice)}`]) {
      const seen = await call(sandbox, 'GET', `${LIST}/ext-1`, { authorization });
      expect([seen.status, seen.json.data?.task_id], authorization).to.deep.equal([200, taskId]);
    }
    // Another account's key does not see it, as at Kling.
    const other = await call(sandbox, 'GET', `${LIST}/${taskId}`, { authorization: 'Bearer key-bob' });
    expect([other.status, other.json.code]).to.deep.equal([404, 1203]);
    expect(sandbox.requests.at(-1)?.accessKey).to.equal('ak-bob');
  });

  it('answers 401/1002 for an API key it does not know, or a known one in the wrong place', async () => {
    for (const authorization of ['Bearer key-carol', 'Bearer key-alice-1x', 'Bearer ak-alice', 'Basic key-alice-1', 'key-alice-1', 'Bearer key-alice-1 key-alice-2']) {
      const answer = await call(sandbox, 'GET', LIST, { authorization });
      expect([answer.status, answer.json.code], authorization).to.deep.equal([401, 1002]);
      expect(answer.json).to.not.have.property('data');
      expect(sandbox.requests.at(-1)?.accessKey, authorization).to.equal(undefined);
    }
  });

  it('refuses API keys that are empty, hold spaces, or belong to two accounts', async () => {
    const bad: Array<[unknown, RegExp]> = [
      [[{ ...alice, apiKeys: [''] }], /apiKeys/],
      [[{ ...alice, apiKeys: ['two words'] }], /apiKeys/],
      [[{ ...alice, apiKeys: 'key-alice-1' }], /apiKeys/],
      [[alice, { ...bob, apiKeys: ['key-alice-2'] }], /"key-alice-2".*two accounts|two accounts.*"key-alice-2"/],
    ];
    for (const [accounts, message] of bad) {
      let caught: unknown;
      try {
        await (await startKlingSandbox({ accounts: accounts as never })).close();
      } catch (error) {
        caught = error;
      }
      expect(caught, JSON.stringify(accounts)).to.be.instanceOf(TypeError);
      expect((caught as Error).message).to.match(message);
    }
  });

  it('knows an API key for its default account, so a plain sandbox serves API-key clients too', async () => {
    const plain = await startKlingSandbox({ schedule: 'manual' });
    try {
      const apiKey = plain.accounts[0]?.apiKeys?.[0];
      expect(apiKey).to.be.a('string').with.length.above(16);
      const answer = await call(plain, 'GET', LIST, { authorization: `Bearer ${String(apiKey)}` });
      expect(answer.status, answer.text).to.equal(200);
      expect(plain.requests.at(-1)?.accessKey).to.equal('sandbox-access-key');
    } finally {
      await plain.close();
    }
  });
});

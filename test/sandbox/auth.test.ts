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

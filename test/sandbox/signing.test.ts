import { expect } from 'chai';
import { Webhook } from 'standardwebhooks';
import { type KlingSandbox, type SandboxAccount, startKlingSandbox } from '../../lib/sandbox/index.js';
import { type Receiver, call, startReceiver, waitFor } from './helpers.js';

const SECRET = `whsec_${Buffer.from('sandbox-webhook-secret-current-0123').toString('base64')}`;
const PREVIOUS = `whsec_${Buffer.from('sandbox-webhook-secret-previous-012').toString('base64')}`;
const signed: SandboxAccount = { accessKey: 'ak-signed', secretKey: 'sk-signed-0123456789abcdef', webhookSecret: SECRET };
const rotating: SandboxAccount = { accessKey: 'ak-rotating', secretKey: 'sk-rotating-0123456789abcdef', webhookSecret: SECRET, previousWebhookSecret: PREVIOUS };
const plain: SandboxAccount = { accessKey: 'ak-plain', secretKey: 'sk-plain-0123456789abcdef' };

describe('kling sandbox: signed callbacks (Standard Webhooks)', () => {
  let sandbox: KlingSandbox;
  let receiver: Receiver;
  before(async () => {
    sandbox = await startKlingSandbox({ schedule: 'manual', accounts: [signed, rotating, plain] });
    receiver = await startReceiver();
  });
  afterEach(() => {
    sandbox.reset();
    receiver.bodies.length = 0;
    receiver.raw.length = 0;
  });
  after(async () => {
    await sandbox.close();
    await receiver.close();
  });

  /** Creates a task as this account and finishes it; resolves with the two callbacks received. */
  async function twoCallbacks(account: SandboxAccount): Promise<Receiver['raw']> {
    const created = await call(sandbox, 'POST', '/v1/videos/text2video', { body: { prompt: 'p', callback_url: receiver.url }, authorization: `Bearer ${await sandbox.token(account)}` });
    sandbox.complete(created.json.data.task_id as string, { status: 'succeed' });
    await waitFor(() => receiver.raw.length === 2);
    await sandbox.callbacksIdle();
    return receiver.raw;
  }
  const headersOf = (r: Receiver['raw'][number]) => r.headers as Record<string, string>;

  it("signs an account's callbacks with its webhook secret, as the standardwebhooks package verifies them", async () => {
    const received = await twoCallbacks(signed);
    const webhook = new Webhook(SECRET);
    for (const r of received) expect(webhook.verify(r.body, headersOf(r))).to.deep.equal(JSON.parse(r.body));
    expect(received.map((r) => JSON.parse(r.body).task_status)).to.deep.equal(['submitted', 'succeed']);
    const ids = received.map((r) => r.headers['webhook-id']);
    expect(new Set(ids).size).to.equal(2);
    expect(Math.abs(Number(received[0]?.headers['webhook-timestamp']) - Date.now() / 1000)).to.be.below(5);
    expect(() => new Webhook(PREVIOUS).verify(received[0]?.body ?? '', headersOf(received[0]!))).to.throw();
    expect(sandbox.callbacks.map((c) => c.status)).to.deep.equal([200, 200]);
  });

  it('signs with both secrets during a rotation, and sends no signature for an account without a secret', async () => {
    const received = await twoCallbacks(rotating);
    for (const r of received) {
      expect(String(r.headers['webhook-signature']).split(' ')).to.have.length(2);
      expect(new Webhook(SECRET).verify(r.body, headersOf(r))).to.deep.equal(JSON.parse(r.body));
      expect(new Webhook(PREVIOUS).verify(r.body, headersOf(r))).to.deep.equal(JSON.parse(r.body));
    }
    receiver.raw.length = 0;
    const unsigned = await twoCallbacks(plain);
    for (const r of unsigned) expect(Object.keys(r.headers).filter((name) => name.startsWith('webhook-'))).to.deep.equal([]);
  });

  it('sends a bad signature, a timestamp 6 minutes old or no signature headers when told to, until reset', async () => {
    sandbox.callbackMode({ signature: 'bad' });
    const bad = await twoCallbacks(signed);
    for (const r of bad) expect(() => new Webhook(SECRET).verify(r.body, headersOf(r))).to.throw(/signature/i);
    receiver.raw.length = 0;
    sandbox.callbackMode({ signature: 'stale' });
    const stale = await twoCallbacks(signed);
    for (const r of stale) {
      expect(Date.now() / 1000 - Number(r.headers['webhook-timestamp'])).to.be.within(359, 365);
      expect(() => new Webhook(SECRET).verify(r.body, headersOf(r))).to.throw(/timestamp/i);
    }
    receiver.raw.length = 0;
    sandbox.callbackMode({ signature: 'unsigned' });
    const none = await twoCallbacks(signed);
    for (const r of none) expect(Object.keys(r.headers).filter((name) => name.startsWith('webhook-'))).to.deep.equal([]);
    receiver.raw.length = 0;
    sandbox.reset();
    const again = await twoCallbacks(signed);
    for (const r of again) expect(new Webhook(SECRET).verify(r.body, headersOf(r))).to.deep.equal(JSON.parse(r.body));
  });
});

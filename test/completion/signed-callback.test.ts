import { expect } from 'chai';
import express from 'express';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { signatureHeaders } from '../../lib/callbacks/signing.js';
import { callbackToken } from '../../lib/completion/token.js';
import type { CallbackSignature } from '../../lib/sandbox/index.js';
import { testDatabases } from '../support/databases.js';
import { CALLBACK_SECRET, startHarness, checkAndClose, type Harness, type HarnessAccount } from '../support/harness.js';

const SECRET = `whsec_${Buffer.from('kling-webhook-secret-current-012345').toString('base64')}`;
const PREVIOUS = `whsec_${Buffer.from('kling-webhook-secret-previous-01234').toString('base64')}`;
const HOLD = Math.round(0.01 * 10 * 500_000);

for (const database of testDatabases()) {
  describe(`relay.callback with Kling's signed callbacks on ${database.name}`, function () {
    let h: Harness | undefined;
    let user: number;
    const start = 1_000_000;
    // Kling (the sandbox) calls this server back; it hands each request to the relay of the running test.
    let handle: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.writeHead(503).end();
    let server: Server;
    let callbackUrl: string;

    before(async () => {
      server = createServer((req, res) => handle(req, res));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      callbackUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/kling/callback`;
    });
    after(async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });
    afterEach(async () => checkAndClose(h));

    async function begin(accounts: HarnessAccount[]): Promise<Harness> {
      h = await startHarness(database, { accounts, relay: { callbackUrl } });
      handle = h.relay.callback;
      user = await h.user(start);
      return h;
    }

    /** Submits a task and waits for Kling's `submitted` notice to be answered. */
    async function submit(harness: Harness): Promise<{ taskId: string; externalTaskId: string; callbackPath: string }> {
      const res = await request(harness.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ prompt: 'a kite', duration: '10' });
      expect(res.status).to.equal(200);
      await harness.sandbox.callbacksIdle();
      const task = (await harness.tasks()).find((t) => t.kling_task_id === res.body.data.task_id);
      const create = harness.creates().find((r) => (r.body as Record<string, unknown>).external_task_id === task?.external_task_id);
      const url = new URL(String((create?.body as Record<string, unknown>).callback_url));
      return { taskId: res.body.data.task_id as string, externalTaskId: String(task?.external_task_id), callbackPath: `${url.pathname}${url.search}` };
    }

    /** Every statement the relay sends to the database while `work` runs. */
    async function statementsDuring(harness: Harness, work: () => Promise<void>): Promise<string[]> {
      const statements: string[] = [];
      const listener = (query: { sql: string }) => statements.push(query.sql);
      harness.db.on('query', listener);
      try {
        await work();
      } finally {
        harness.db.removeListener('query', listener);
      }
      return statements;
    }

    const klingQueries = (harness: Harness) => harness.sandbox.requests.filter((r) => r.method === 'GET').length;

    async function expectHeld(harness: Harness, state = 'submitted'): Promise<void> {
      expect((await harness.tasks()).map((t) => t.state)).to.deep.equal([state]);
      expect((await harness.rows('videos')).map((r) => r.status)).to.deep.equal([state]);
      expect((await harness.ledger()).map((l) => l.kind)).to.deep.equal(['hold']);
      expect(await harness.balance(user)).to.equal(start - HOLD);
    }

    async function expectSettled(harness: Harness): Promise<void> {
      expect((await harness.tasks()).map((t) => t.state)).to.deep.equal(['succeed']);
      expect((await harness.ledger()).map((l) => l.kind)).to.deep.equal(['hold', 'settle']);
      expect(await harness.balance(user)).to.equal(start - HOLD);
    }

    it('settles a notice Kling signed, sent to the callback URL that names the task, its account and its token', async () => {
      const harness = await begin([{ id: 'signed', webhookSecret: SECRET }]);
      const a = await submit(harness);
      const url = new URL(`http://relay${a.callbackPath}`);
      expect([...url.searchParams.keys()]).to.deep.equal(['task', 'account', 'token']);
      expect([url.searchParams.get('task'), url.searchParams.get('account'), url.searchParams.get('token')]).to.deep.equal([a.externalTaskId, 'signed', callbackToken(CALLBACK_SECRET, a.externalTaskId)]);
      harness.sandbox.complete(a.taskId, { status: 'succeed' });
      await harness.sandbox.callbacksIdle();
      expect(harness.sandbox.callbacks.map((c) => ['task_status' in c.body ? c.body.task_status : c.body.status, c.status, Object.keys(c.headers).length])).to.deep.equal([
        ['submitted', 200, 3],
        ['succeed', 200, 3],
      ]);
      // The signature proves the origin; the result is still confirmed with Kling before money moves.
      expect(klingQueries(harness)).to.equal(1);
      await expectSettled(harness);
    });

    it('refuses a bad signature, a timestamp 6 minutes old and a notice without signature headers with 401, reading no database, changing nothing', async () => {
      const harness = await begin([{ id: 'signed', webhookSecret: SECRET }]);
      const a = await submit(harness);
      const modes: CallbackSignature[] = ['bad', 'stale', 'unsigned'];
      const statements = await statementsDuring(harness, async () => {
        for (const signature of modes) {
          harness.sandbox.callbackMode({ signature });
          harness.sandbox.setStatus(a.taskId, signature === 'unsigned' ? 'processing' : 'succeed');
          await harness.sandbox.callbacksIdle();
        }
      });
      expect(statements).to.deep.equal([]);
      const refused = harness.sandbox.callbacks.slice(1);
      expect(refused.map((c) => c.status)).to.deep.equal([401, 401, 401]);
      expect(klingQueries(harness)).to.equal(0);
      await expectHeld(harness);
      // Without signature headers the answer comes before the body is read: this one is never finished.
      const { port } = server.address() as AddressInfo;
      const early = await new Promise<{ status: number | undefined; body: string }>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: a.callbackPath, headers: { 'content-type': 'application/json', 'content-length': '100000' } }, (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk)).on('end', () => resolve({ status: res.statusCode, body }));
        });
        req.on('error', reject);
        req.write('{"task_id": "');
      });
      expect(early.status).to.equal(401);
      expect(JSON.parse(early.body)).to.include({ code: 1002 });
      // Signed again, the same task settles.
      harness.sandbox.callbackMode({});
      harness.sandbox.setStatus(a.taskId, 'succeed');
      await harness.sandbox.callbacksIdle();
      expect(harness.sandbox.callbacks.at(-1)?.status).to.equal(200);
      await expectSettled(harness);
    });

    it('accepts a notice signed only with the previous secret while it is configured, and refuses it once it is not', async () => {
      const harness = await begin([{ id: 'signed', webhookSecret: SECRET, previousWebhookSecret: PREVIOUS, klingWebhookSecrets: { webhookSecret: PREVIOUS } }]);
      const a = await submit(harness);
      harness.sandbox.complete(a.taskId, { status: 'succeed' });
      await harness.sandbox.callbacksIdle();
      expect(harness.sandbox.callbacks.map((c) => c.status)).to.deep.equal([200, 200]);
      await expectSettled(harness);
      // An emergency rotation: the relay knows the new secret only.
      const keys = harness.keys.signed;
      if (!keys) throw new Error('no sandbox keys');
      const rotated = harness.anotherRelay({ accounts: [{ id: 'signed', accessKey: keys.accessKey, secretKey: keys.secretKey, baseUrl: harness.sandbox.url, webhookSecret: SECRET }] });
      try {
        const app = express();
        app.post('/kling/callback', rotated.callback);
        const last = harness.sandbox.callbacks.at(-1);
        const res = await request(app).post(a.callbackPath).set('Content-Type', 'application/json').set(last?.headers ?? {}).send(JSON.stringify(last?.body));
        expect([res.status, res.body.code]).to.deep.equal([401, 1002]);
      } finally {
        rotated.close();
      }
    });

    it('takes unsigned notices for an account without a secret, as before', async () => {
      const harness = await begin([{ id: 'plain' }]);
      const a = await submit(harness);
      expect(new URL(`http://relay${a.callbackPath}`).searchParams.get('account')).to.equal('plain');
      harness.sandbox.complete(a.taskId, { status: 'succeed' });
      await harness.sandbox.callbacksIdle();
      expect(harness.sandbox.callbacks.map((c) => [c.status, Object.keys(c.headers).length])).to.deep.equal([
        [200, 0],
        [200, 0],
      ]);
      await expectSettled(harness);
    });

    it("refuses a URL naming another account than the task's as a wrong token, and checks a URL naming none against the task's account", async () => {
      const harness = await begin([{ id: 'signed', webhookSecret: SECRET }, { id: 'plain', weight: 0 }]);
      const a = await submit(harness);
      // The notices below are the test's own.
      harness.sandbox.callbackMode({ drop: true });
      harness.sandbox.complete(a.taskId, { status: 'succeed' });
      const task = encodeURIComponent(a.externalTaskId);
      const token = callbackToken(CALLBACK_SECRET, a.externalTaskId);
      const body = JSON.stringify({ task_id: a.taskId, task_status: 'succeed', task_status_msg: '', task_info: { external_task_id: a.externalTaskId }, created_at: Date.now(), updated_at: Date.now() });
      const post = (path: string, headers: Record<string, string> = {}) => request(harness.relay.callback).post(path).set('Content-Type', 'application/json').set(headers).send(body);
      // The right token, but the URL names an account without a secret: the notice cannot escape the signature.
      const otherAccount = await post(`/kling/callback?task=${task}&account=plain&token=${token}`);
      expect([otherAccount.status, otherAccount.body]).to.deep.equal([401, { code: 1002, message: 'invalid callback token' }]);
      // URLs given out before they named the account: verified against the task's account after the token check.
      for (const path of [`/kling/callback?task=${task}&token=${token}`, `/kling/callback?token=${token}`]) {
        const unsigned = await post(path);
        expect([unsigned.status, unsigned.body.code], path).to.deep.equal([401, 1002]);
        const forged = await post(path, signatureHeaders(PREVIOUS, 'msg-1', Math.floor(Date.now() / 1000), body));
        expect([forged.status, forged.body.code], path).to.deep.equal([401, 1002]);
      }
      expect(klingQueries(harness)).to.equal(0);
      await expectHeld(harness);
      const signed = await post(`/kling/callback?task=${task}&token=${token}`, signatureHeaders(SECRET, 'msg-2', Math.floor(Date.now() / 1000), body));
      expect(signed.status).to.equal(200);
      await expectSettled(harness);
    });

    it("checks a notice a host's body parser read against the raw bytes it kept (req.rawBody), and refuses one whose bytes are gone", async () => {
      const harness = await begin([{ id: 'signed', webhookSecret: SECRET }]);
      const a = await submit(harness);
      harness.sandbox.callbackMode({ drop: true });
      harness.sandbox.complete(a.taskId, { status: 'succeed' });
      // Spaced as Kling's serializer may space it: a parsed and re-serialized body would not match its signature.
      const body = JSON.stringify({ task_id: a.taskId, task_status: 'succeed', task_status_msg: '', task_info: { external_task_id: a.externalTaskId }, created_at: Date.now(), updated_at: Date.now() }, null, 1);
      const signed = (id: string) => signatureHeaders(SECRET, id, Math.floor(Date.now() / 1000), body);
      const parsedOnly = express().use(express.json()).post('/kling/callback', harness.relay.callback);
      const gone = await request(parsedOnly).post(a.callbackPath).set('Content-Type', 'application/json').set(signed('msg-1')).send(body);
      expect([gone.status, gone.body.code]).to.deep.equal([401, 1002]);
      await expectHeld(harness);
      const keptRaw = express()
        .use(express.json({ verify: (req, _res, bytes) => Object.assign(req, { rawBody: bytes }) }))
        .post('/kling/callback', harness.relay.callback);
      const kept = await request(keptRaw).post(a.callbackPath).set('Content-Type', 'application/json').set(signed('msg-2')).send(body);
      expect([kept.status, kept.body.code]).to.deep.equal([200, 0]);
      await expectSettled(harness);
    });
  });
}

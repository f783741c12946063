import { expect } from 'chai';
import express from 'express';
import http from 'node:http';
import request from 'supertest';
import winston from 'winston';
import Transport from 'winston-transport';
import { callbackToken } from '../../lib/completion/token.js';
import { PNG_400x300 } from '../fixtures/media.js';
import { testDatabases } from '../support/databases.js';
import { CALLBACK_SECRET, checkAndClose, startHarness, type Harness } from '../support/harness.js';

const MESSAGE = Symbol.for('message');

/** Keeps each line exactly as winston's JSON format writes it. */
class Written extends Transport {
  readonly lines: string[] = [];
  override log(info: Record<string | symbol, unknown>, next: () => void): void {
    this.lines.push(String(info[MESSAGE]));
    next();
  }
}

function capturingLogger(): { logger: winston.Logger; lines: string[] } {
  const sink = new Written();
  return { logger: winston.createLogger({ level: 'debug', format: winston.format.json(), transports: [sink] }), lines: sink.lines };
}

const POLLUTERS = [
  '{"prompt":"a kite","__proto__":{"polluted":"yes"}}',
  '{"prompt":"a kite","constructor":{"prototype":{"polluted":"yes"}}}',
  '{"prompt":"a kite","camera_control":{"type":"simple","config":{"__proto__":{"polluted":"yes"},"zoom":5}}}',
  '{"prompt":"a kite","camera_control":{"type":"simple","__proto__":{"polluted":"yes"}}}',
];

function prototypeClean(): void {
  expect(Object.prototype).to.not.have.property('polluted');
  expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
  expect(Object.getOwnPropertyNames(Object.prototype)).to.not.include('polluted');
}

/** A base64 run long enough to be media, not an id or a hash. */
const BASE64_RUN = /[A-Za-z0-9+/]{200,}/;
const JWT = /eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/;

/**
 * POSTs the start of a JSON body that declares `declared` bytes and never sends the rest: the answer,
 * which the server must give while the body is still arriving (a failure after 5 s).
 */
function sendStartOnly(url: string, headers: Record<string, string>, declared: number, start: string): Promise<{ status: number; body: { code?: number; message?: string } }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers: { ...headers, 'Content-Type': 'application/json', 'Content-Length': declared } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as { code?: number; message?: string } });
        req.destroy();
      });
    });
    req.on('error', reject);
    req.write(start);
    setTimeout(() => reject(new Error('no answer while the body was still arriving')), 5_000).unref();
  });
}

for (const database of testDatabases()) {
  describe(`hostile input on ${database.name}`, function () {
    this.timeout(20_000);
    let h: Harness;
    let user: number;
    let lines: string[];

    beforeEach(async () => {
      const captured = capturingLogger();
      lines = captured.lines;
      h = await startHarness(database, { relay: { logger: captured.logger } });
      user = await h.user(1_000_000);
    });
    afterEach(async () => checkAndClose(h));

    const post = (raw: string) => request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).set('Content-Type', 'application/json').send(raw);

    it('prototype-pollution payloads: 400, Object.prototype untouched, nothing written, nothing sent to Kling', async () => {
      for (const raw of POLLUTERS) {
        const res = await post(raw);
        expect([res.status, res.body.code], raw).to.deep.equal([400, 1201]);
        prototypeClean();
      }
      // The callback reader sees the same payloads.
      const callbackApp = express().post('/kling/callback', h.relay.callback);
      const cb = await request(callbackApp).post(`/kling/callback?token=${'a'.repeat(64)}`).set('Content-Type', 'application/json').send('{"task_id":"x","__proto__":{"polluted":"yes"},"task_info":{"__proto__":{"polluted":"yes"}}}');
      expect(cb.status).to.equal(401);
      prototypeClean();
      expect(await h.tasks()).to.deep.equal([]);
      expect(await h.rows('videos')).to.deep.equal([]);
      expect(h.creates()).to.deep.equal([]);
    });

    /** `{"prompt":"x","junk":[0,0,...]}`: a small valid body with a long array of numbers beside it. */
    const junkBody = (bytes: number) => `{"prompt":"x","junk":[${'0,'.repeat(Math.floor(bytes / 2))}0]}`;
    const deepBody = (depth: number) => `{"prompt":"x","junk":${'['.repeat(depth)}${']'.repeat(depth)}}`;

    it('a body of many JSON values or deep nesting from a caller without quota: 400/1200 naming the limit, no rows, no hold, Kling not called', async () => {
      const broke = await h.user(0);
      const send = (raw: string) => request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(broke)).set('Content-Type', 'application/json').send(raw);
      const many = await send(junkBody(1_000_000));
      expect([many.status, many.body.code, many.body.message]).to.deep.equal([400, 1200, 'request body has more than 10000 JSON values; no Kling request needs that many']);
      const deep = await send(deepBody(1_000));
      expect([deep.status, deep.body.code, deep.body.message]).to.deep.equal([400, 1200, 'request body nests JSON deeper than 32 levels; no Kling request needs that']);
      // A burst of them at once, then the host still answers, and a body within the limits is judged as before.
      const burst = await Promise.all(Array.from({ length: 6 }, () => send(junkBody(2_000_000))));
      expect(burst.map((r) => r.status)).to.deep.equal(Array(6).fill(400));
      const fine = await send('{"prompt":"x","junk":[0,0,0]}');
      expect([fine.status, fine.body.code]).to.deep.equal([402, 1102]);
      // Commas, brackets and escaped quotes inside strings are not values.
      const quoted = await send(`{"prompt":"x","note":"${',[{\\\\\\"'.repeat(20_000)}"}`);
      expect([quoted.status, quoted.body.code]).to.deep.equal([402, 1102]);
      expect(await h.tasks()).to.deep.equal([]);
      expect(await h.ledger()).to.deep.equal([]);
      expect(await h.rows('videos')).to.deep.equal([]);
      expect(await h.balance(broke)).to.equal(0);
      expect(h.creates()).to.deep.equal([]);
      // Kling's callback is read by the same reader.
      const callbackApp = express().post('/kling/callback', h.relay.callback);
      const cb = await request(callbackApp).post(`/kling/callback?token=${'a'.repeat(64)}`).set('Content-Type', 'application/json').send(`{"task_id":"x","junk":[${'0,'.repeat(20_000)}0]}`);
      expect([cb.status, cb.body.code]).to.deep.equal([400, 1200]);
    });

    it('refuses a body over the JSON limits as it arrives: 400/1200 while the caller is still sending, nothing kept of the rest', async () => {
      const declared = 10 * 1024 * 1024;
      const start = junkBody(declared).slice(0, 64 * 1024);
      // The first 64 KB of a 10 MB body of tiny values; the rest is never sent.
      const answer = await sendStartOnly(`${h.url}/kling/v1/videos/text2video`, { 'X-User-Id': String(user) }, declared, start);
      expect([answer.status, answer.body.code, answer.body.message]).to.deep.equal([400, 1200, 'request body has more than 10000 JSON values; no Kling request needs that many']);
      expect(await h.tasks()).to.deep.equal([]);
      // The relay still answers, and reads a whole body as before.
      const fine = await post('{"prompt":"a kite"}');
      expect(fine.status).to.equal(200);
    });

    it("refuses a Kling callback over the JSON limits as it arrives, within the callback's size limit", async () => {
      const server = express().post('/kling/callback', h.relay.callback).listen(0, '127.0.0.1');
      await new Promise((resolve) => server.once('listening', resolve));
      try {
        const { port } = server.address() as { port: number };
        // 30 KB of tiny values (15000 of them) of a body that says it has 60 KB, under the 64 KiB
        // a callback may have; the rest is never sent.
        const declared = 60 * 1024;
        const start = junkBody(declared).slice(0, 30 * 1024);
        const answer = await sendStartOnly(`http://127.0.0.1:${port}/kling/callback?token=${'a'.repeat(64)}`, {}, declared, start);
        expect([answer.status, answer.body.code, answer.body.message]).to.deep.equal([400, 1200, 'malformed callback body']);
      } finally {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      }
    });

    it('the same bounds hold for a body the host parsed already (express.json() before the relay)', async () => {
      const broke = await h.user(0);
      const host = express()
        .use(express.json({ limit: '10mb' }))
        .use((_req, res, next) => {
          res.locals.user = { id: broke };
          next();
        })
        .use('/kling', h.relay.router);
      const send = (raw: string) => request(host).post('/kling/v1/videos/text2video').set('Content-Type', 'application/json').send(raw);
      const many = await send(junkBody(1_000_000));
      expect([many.status, many.body.code, many.body.message]).to.deep.equal([400, 1200, 'request body has more than 10000 JSON values; no Kling request needs that many']);
      const deep = await send(deepBody(1_000));
      expect([deep.status, deep.body.code]).to.deep.equal([400, 1200]);
      const fine = await send('{"prompt":"x","junk":[0,0,0]}');
      expect([fine.status, fine.body.code]).to.deep.equal([402, 1102]);
      expect(await h.tasks()).to.deep.equal([]);
      expect(await h.ledger()).to.deep.equal([]);
      expect(h.creates()).to.deep.equal([]);
    });

    it('CRLF in external_task_id and callback_url: never in a header or a raw log line, never sent to Kling', async () => {
      const crlf = 'mine-1\r\nSet-Cookie: session=stolen\r\nX-Injected: 1';
      const res = await request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ prompt: 'a kite', external_task_id: crlf });
      const headers = JSON.stringify(res.headers);
      expect(headers).to.not.match(/stolen|x-injected/i);
      // Accepted (the caller's id is the caller's business): it comes back as JSON data, and Kling got ours instead.
      expect(res.status).to.equal(200);
      expect(res.body.data.task_info.external_task_id).to.equal(crlf);
      expect(JSON.stringify(h.creates().map((r) => [r.headers, r.body]))).to.not.include('stolen');
      const found = await request(h.url).get(`/kling/v1/videos/text2video?external_task_id=${encodeURIComponent(crlf)}`).set('X-User-Id', String(user));
      expect([found.status, found.body.data[0]?.task_info.external_task_id]).to.deep.equal([200, crlf]);
      expect(JSON.stringify(found.headers)).to.not.match(/stolen|x-injected/i);
      const bad = await request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ prompt: 'a kite', callback_url: 'https://client.example.com/hook\r\nX-Injected: 1' });
      expect(JSON.stringify(bad.headers)).to.not.match(/x-injected/i);
      expect([bad.status, bad.body.code]).to.deep.equal([400, 1201]);
      // Each written line is one JSON line: no line break reaches the log.
      expect(lines.length).to.be.greaterThan(0);
      for (const line of lines) expect(line, line).to.not.match(/[\r\n]/);
    });

    it('the log of a whole run holds no Authorization header, key, JWT, callback token or base64 blob', async () => {
      const callbackApp = express().post('/kling/callback', h.relay.callback);
      const submit = (path: string, body: object) => request(h.url).post(`/kling${path}`).set('X-User-Id', String(user)).send(body);
      const ok = await submit('/v1/videos/text2video', { prompt: 'a kite', callback_url: 'https://client.example.com/hook?token=client-secret' });
      const img = await submit('/v1/videos/image2video', { image: PNG_400x300, prompt: 'wave' });
      expect([ok.status, img.status]).to.deep.equal([200, 200]);
      // Kling refuses a request and quotes the base64 image in its message.
      h.sandbox.failNextCreate({ code: 1201, message: `image invalid: ${PNG_400x300}` });
      expect((await submit('/v1/videos/image2video', { image: PNG_400x300, prompt: 'wave' })).status).to.equal(400);
      // Kling resets a create: left for the reconciler.
      h.sandbox.resetNextCreate();
      expect((await submit('/v1/videos/image2video', { image: PNG_400x300, prompt: 'wave' })).status).to.equal(502);
      const tasks = await h.tasks();
      const token = (t: Record<string, unknown>) => callbackToken(CALLBACK_SECRET, String(t.external_task_id));
      // Callbacks: a good one, a forged one, a failure quoting base64.
      h.sandbox.complete(ok.body.data.task_id as string, { status: 'succeed' });
      const first = tasks.find((t) => t.kling_task_id === ok.body.data.task_id) ?? {};
      await request(callbackApp).post(`/kling/callback?token=${token(first)}`).send({ task_id: ok.body.data.task_id, task_status: 'succeed', task_info: { external_task_id: first.external_task_id } });
      await request(callbackApp).post(`/kling/callback?token=${'b'.repeat(64)}`).send({ task_id: ok.body.data.task_id, task_status: 'failed', task_info: { external_task_id: first.external_task_id } });
      h.sandbox.complete(img.body.data.task_id as string, { status: 'failed', message: `bad frame ${PNG_400x300}` });
      await request(h.url).get(`/kling/v1/videos/image2video/${String(img.body.data.task_id)}`).set('X-User-Id', String(user));
      await h.db('kling_relay_tasks').update({ next_check_at: 0 });
      await h.relay.reconcile();

      expect(lines.length).to.be.greaterThan(8);
      const all = lines.join('\n');
      const secrets = [h.keys['acct-1']?.accessKey, h.keys['acct-1']?.secretKey, CALLBACK_SECRET, 'client-secret', ...tasks.map(token)];
      for (const secret of secrets) expect(all, String(secret)).to.not.include(String(secret));
      expect(all).to.not.match(/authorization|bearer/i);
      expect(all).to.not.match(JWT);
      expect(all).to.not.match(BASE64_RUN);
    });
  });
}

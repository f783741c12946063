import type http from 'node:http';
import { expect } from 'chai';
import { jwtVerify } from 'jose';
import winston from 'winston';
import {
  AccountPool,
  KlingClient,
  UpstreamError,
  type FetchLike,
  type KlingAccount,
  type Logger,
} from '../../lib/upstream/index.js';
import { captureLogger, closedPort, sendJson, startServer, type TestServer } from './support.js';

const ACCESS_KEY = 'ak-client-test-4f1c';
const SECRET_KEY = 'sk-client-test-secret-9b7e2d';

// Compile-time checks: the two fetch implementations and winston fit the client's options.
const _globalFetch: FetchLike = globalThis.fetch;
const _winston: Logger = winston.createLogger({ silent: true });
void _globalFetch;
void _winston;

const ok = (res: http.ServerResponse, data: unknown = { task_id: 't-1', task_status: 'submitted' }): void =>
  sendJson(res, 200, { code: 0, message: 'SUCCEED', request_id: 'req-ok', data });

async function rejection(promise: Promise<unknown>): Promise<UpstreamError> {
  try {
    await promise;
  } catch (err) {
    expect(err).to.be.instanceOf(UpstreamError);
    return err as UpstreamError;
  }
  throw new Error('expected the call to fail');
}

/** Every behaviour runs with the default node-fetch and with the host passing globalThis.fetch. */
const flavours: Array<{ name: string; fetch: FetchLike | undefined }> = [
  { name: 'default node-fetch', fetch: undefined },
  { name: 'globalThis.fetch', fetch: globalThis.fetch },
];

for (const flavour of flavours) {
  describe(`upstream/KlingClient with ${flavour.name}`, function () {
    let server: TestServer | undefined;
    let client: KlingClient | undefined;
    let logger: ReturnType<typeof captureLogger>;

    function makeClient(baseUrl: string, extra: { timeoutMs?: number; maxResponseBytes?: number } = {}) {
      logger = captureLogger();
      const pool = new AccountPool([{ id: 'acct-1', accessKey: ACCESS_KEY, secretKey: SECRET_KEY, baseUrl }]);
      client = new KlingClient({
        accounts: pool,
        timeoutMs: extra.timeoutMs ?? 2000,
        logger,
        ...(flavour.fetch ? { fetch: flavour.fetch } : {}),
        ...(extra.maxResponseBytes ? { maxResponseBytes: extra.maxResponseBytes } : {}),
      });
      return { client, account: pool.pick() };
    }

    afterEach(async () => {
      client?.close();
      client = undefined;
      await server?.close();
      server = undefined;
    });

    it('posts JSON with a Bearer JWT and returns the envelope', async () => {
      server = await startServer((_req, res) => ok(res));
      const { client, account } = makeClient(server.url);
      const reply = await client.post(account, '/v1/videos/text2video', { prompt: 'a cat', duration: '5' });
      expect(reply).to.deep.equal({
        httpStatus: 200,
        envelope: { code: 0, message: 'SUCCEED', request_id: 'req-ok', data: { task_id: 't-1', task_status: 'submitted' } },
      });
      const seen = server.requests[0];
      expect(seen?.method).to.equal('POST');
      expect(seen?.url).to.equal('/v1/videos/text2video');
      expect(seen?.headers['content-type']).to.equal('application/json');
      expect(JSON.parse(seen?.body ?? '')).to.deep.equal({ prompt: 'a cat', duration: '5' });
      const auth = seen?.headers.authorization ?? '';
      expect(auth).to.match(/^Bearer [\w-]+\.[\w-]+\.[\w-]+$/);
      const { payload } = await jwtVerify(auth.slice('Bearer '.length), new TextEncoder().encode(SECRET_KEY), {
        issuer: ACCESS_KEY,
        typ: 'JWT',
      });
      expect(payload.exp).to.be.a('number');
    });

    it('gets a path with its query string and reuses one token across calls', async () => {
      server = await startServer((_req, res) => ok(res, []));
      const { client, account } = makeClient(server.url);
      await client.get(account, '/v1/videos/text2video?pageNum=1&pageSize=30');
      await client.get(account, '/v1/videos/text2video/abc');
      await client.post(account, '/v1/images/generations', { prompt: 'x' });
      expect(server.requests.map((r) => `${r.method} ${r.url}`)).to.deep.equal([
        'GET /v1/videos/text2video?pageNum=1&pageSize=30',
        'GET /v1/videos/text2video/abc',
        'POST /v1/images/generations',
      ]);
      expect(server.requests[0]?.body).to.equal('');
      expect(new Set(server.requests.map((r) => r.headers.authorization)).size).to.equal(1);
    });

    if (!flavour.fetch) {
      it('keeps the connection alive across sequential calls', async () => {
        server = await startServer((_req, res) => ok(res));
        const { client, account } = makeClient(server.url);
        for (let i = 0; i < 5; i++) await client.post(account, '/v1/videos/text2video', { prompt: `n${i}` });
        expect(server.requests).to.have.length(5);
        expect(server.connections()).to.equal(1);
      });

      it('keeps the sockets of a burst of concurrent calls for the next burst', async () => {
        // Answers wait a little so that every call of a burst needs a socket of its own.
        server = await startServer((_req, res) => void setTimeout(() => ok(res), 50));
        const { client, account } = makeClient(server.url);
        const burst = (): Promise<unknown> => Promise.all(Array.from({ length: 40 }, (_, i) => client.post(account, '/v1/videos/text2video', { prompt: `n${i}` })));
        await burst();
        expect(server.connections()).to.equal(40);
        await burst();
        expect(server.requests).to.have.length(80);
        expect(server.connections(), 'connections after the second burst').to.equal(40);
      });
    }

    it('times out a server that never answers, as an ambiguous timeout', async () => {
      server = await startServer(() => undefined);
      const { client, account } = makeClient(server.url, { timeoutMs: 300 });
      const started = Date.now();
      const err = await rejection(client.post(account, '/v1/videos/text2video', { prompt: 'slow' }));
      const took = Date.now() - started;
      expect(err).to.include({ kind: 'timeout', ambiguous: true, accountId: 'acct-1', method: 'POST', path: '/v1/videos/text2video' });
      expect(took).to.be.within(280, 300 + 700);
    });

    it('counts the body against the same deadline', async () => {
      server = await startServer((_req, res) => {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.write('{"code":0,"message":"SUCC'); // and then nothing more
      });
      const { client, account } = makeClient(server.url, { timeoutMs: 300 });
      const started = Date.now();
      const err = await rejection(client.get(account, '/v1/videos/text2video/1'));
      expect(err).to.include({ kind: 'timeout', ambiguous: true, httpStatus: 200 });
      expect(Date.now() - started).to.be.below(300 + 700);
    });

    it('reports a connection destroyed after the body was read as an ambiguous network error', async () => {
      server = await startServer((req) => req.socket.destroy());
      const { client, account } = makeClient(server.url);
      const err = await rejection(client.post(account, '/v1/videos/text2video', { prompt: 'x' }));
      expect(err).to.include({ kind: 'network', ambiguous: true });
      expect(server.requests).to.have.length(1);
    });

    it('reports a connection cut in the middle of the body as an ambiguous network error', async () => {
      server = await startServer((_req, res) => {
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': '500' });
        res.write('{"code":0,', () => res.socket?.destroy());
      });
      const { client, account } = makeClient(server.url);
      const err = await rejection(client.post(account, '/v1/videos/text2video', { prompt: 'x' }));
      expect(err).to.include({ kind: 'network', ambiguous: true, httpStatus: 200 });
    });

    it('reports a refused connection as a network error that is not ambiguous', async () => {
      const port = await closedPort();
      const { client, account } = makeClient(`http://127.0.0.1:${port}`);
      const err = await rejection(client.post(account, '/v1/videos/text2video', { prompt: 'x' }));
      expect(err).to.include({ kind: 'network', ambiguous: false, httpStatus: undefined });
      expect(err.message).to.include('ECONNREFUSED');
    });

    it('reports an unresolvable host as a network error that is not ambiguous', async function () {
      // .invalid never resolves (RFC 6761); a sandbox without DNS fails the same way, just faster.
      const { client, account } = makeClient('http://kling-relay-test.invalid');
      const err = await rejection(client.get(account, '/v1/videos/text2video/1'));
      expect(err).to.include({ kind: 'network', ambiguous: false });
    });

    it('reports a body that is not JSON as bad_response', async () => {
      server = await startServer((_req, res) => {
        res.writeHead(502, { 'Content-Type': 'text/html' });
        res.end('<html><body>502 Bad Gateway</body></html>');
      });
      const { client, account } = makeClient(server.url);
      const err = await rejection(client.post(account, '/v1/videos/text2video', { prompt: 'x' }));
      expect(err).to.include({ kind: 'bad_response', ambiguous: true, httpStatus: 502 });
    });

    it('reports JSON that is not an envelope as bad_response', async () => {
      for (const body of [[1, 2], { message: 'no code' }, { code: '0' }, 'just a string', null]) {
        const local = await startServer((_req, res) => sendJson(res, 200, body));
        const { client, account } = makeClient(local.url);
        try {
          const err = await rejection(client.get(account, '/v1/videos/text2video/1'));
          expect(err.kind, JSON.stringify(body)).to.equal('bad_response');
        } finally {
          client.close();
          await local.close();
        }
      }
    });

    it('refuses a declared 20 MB body before reading it', async () => {
      let written = 0;
      let finished = false;
      server = await startServer((_req, res) => {
        const size = 20 * 1024 * 1024;
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': String(size) });
        const chunk = Buffer.alloc(64 * 1024, 0x20);
        const pump = (): void => {
          while (written < size) {
            written += chunk.length;
            if (!res.write(chunk)) {
              res.once('drain', pump);
              return;
            }
          }
          finished = true;
          res.end();
        };
        res.on('close', () => undefined);
        pump();
      });
      const { client, account } = makeClient(server.url);
      const err = await rejection(client.get(account, '/v1/videos/text2video/1'));
      expect(err).to.include({ kind: 'bad_response', ambiguous: true, httpStatus: 200 });
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(finished).to.equal(false);
      expect(written).to.be.below(20 * 1024 * 1024);
    });

    it('stops reading an undeclared (chunked) body once it passes the cap', async () => {
      const size = 20 * 1024 * 1024;
      let written = 0;
      let closedAt: number | undefined;
      server = await startServer((_req, res) => {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        const chunk = Buffer.alloc(64 * 1024, 0x20);
        res.on('close', () => {
          closedAt = written;
        });
        const pump = (): void => {
          while (written < size && !res.destroyed) {
            written += chunk.length;
            if (!res.write(chunk)) {
              res.once('drain', pump);
              return;
            }
          }
          res.end();
        };
        pump();
      });
      const { client, account } = makeClient(server.url, { maxResponseBytes: 1024 * 1024 });
      const heapBefore = process.memoryUsage().heapUsed;
      const err = await rejection(client.get(account, '/v1/videos/text2video/1'));
      expect(err).to.include({ kind: 'bad_response', ambiguous: true, httpStatus: 200 });
      expect(err.message).to.include('1048576-byte limit');
      const deadline = Date.now() + 2000;
      while (closedAt === undefined && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      // The server was cut off well before its 20 MB: loopback socket buffers hold a few MB at most.
      expect(closedAt).to.be.a('number').below(12 * 1024 * 1024);
      // Rough: the reader kept no more than about the cap, not the whole body.
      expect(process.memoryUsage().heapUsed - heapBefore).to.be.below(10 * 1024 * 1024);
    });

    it('rejects with the default 16 MiB cap on a 20 MB chunked body', async () => {
      server = await startServer((_req, res) => {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        const chunk = Buffer.alloc(256 * 1024, 0x20);
        let left = 80;
        const pump = (): void => {
          while (left > 0 && !res.destroyed) {
            left--;
            if (!res.write(chunk)) {
              res.once('drain', pump);
              return;
            }
          }
          res.end();
        };
        pump();
      });
      const { client, account } = makeClient(server.url, { timeoutMs: 10_000 });
      const err = await rejection(client.get(account, '/v1/videos/text2video/1'));
      expect(err).to.include({ kind: 'bad_response', ambiguous: true });
      expect(err.message).to.include(`${16 * 1024 * 1024}-byte limit`);
    });

    it('turns Kling error envelopes into kling errors, ambiguous only for 5000 and 5002 (the task may exist)', async () => {
      const cases: Array<[number, number, string, boolean]> = [
        [400, 1201, 'model_name is invalid', false],
        [401, 1004, 'Authorization has expired', false],
        [429, 1102, 'Resource pack depleted', false],
        [429, 1303, 'parallel task over resource pack limit', false],
        [404, 1203, 'resource does not exist', false],
        [500, 5000, 'Server internal error', true],
        [503, 5001, 'Service temporarily unavailable', false],
        [504, 5002, 'Server internal timeout', true],
        [200, 1301, 'content security policy', false],
      ];
      server = await startServer((req, res) => {
        const [status, code, message] = cases[Number(req.url?.split('/').pop())] ?? [];
        sendJson(res, status ?? 500, { code, message, request_id: `req-${code}` }, { 'Retry-After': '7' });
      });
      const { client, account } = makeClient(server.url);
      for (const [index, [status, code, message, ambiguous]] of cases.entries()) {
        const err = await rejection(client.get(account, `/v1/videos/text2video/${index}`));
        expect(err).to.include({
          kind: 'kling', ambiguous, httpStatus: status, klingCode: code, klingMessage: message,
          requestId: `req-${code}`, retryAfter: '7',
        });
      }
    });

    it('treats code 0 with an error status as bad_response', async () => {
      server = await startServer((_req, res) => sendJson(res, 500, { code: 0, message: 'SUCCEED', request_id: 'r' }));
      const { client, account } = makeClient(server.url);
      const err = await rejection(client.get(account, '/v1/videos/text2video/1'));
      expect(err).to.include({ kind: 'bad_response', httpStatus: 500 });
    });

    it('does not follow redirects (the token must not travel elsewhere)', async () => {
      const elsewhere = await startServer((_req, res) => ok(res));
      try {
        server = await startServer((_req, res) => {
          res.writeHead(302, { Location: `${elsewhere.url}/v1/videos/text2video` });
          res.end();
        });
        const { client, account } = makeClient(server.url);
        const err = await rejection(client.post(account, '/v1/videos/text2video', { prompt: 'x' }));
        expect(err).to.include({ kind: 'bad_response', httpStatus: 302 });
        expect(elsewhere.requests).to.have.length(0);
      } finally {
        await elsewhere.close();
      }
    });

    it('logs one line per call with account, method, path, status and duration, and nothing secret', async () => {
      const prompt = 'SECRET-PROMPT-7d1e a cat in data:image/png;base64,iVBORw0KGgo';
      server = await startServer((req, res) => {
        if (req.url?.endsWith('/fail')) sendJson(res, 401, { code: 1002, message: 'Authorization is invalid', request_id: 'r2' });
        else ok(res);
      });
      const { client, account } = makeClient(server.url);
      await client.post(account, '/v1/videos/text2video', { prompt });
      await rejection(client.post(account, '/v1/videos/text2video/fail', { prompt }));
      expect(logger.lines).to.have.length(2);
      const [success, failure] = logger.lines;
      expect(success?.level).to.equal('info');
      expect(success?.meta).to.include({ account: 'acct-1', method: 'POST', path: '/v1/videos/text2video', status: 200 });
      expect(success?.meta).to.have.property('durationMs').that.is.a('number');
      expect(failure?.level).to.equal('warn');
      expect(failure?.meta).to.include({ account: 'acct-1', status: 401, kind: 'kling', klingCode: 1002 });

      const token = (server.requests[0]?.headers.authorization ?? '').slice('Bearer '.length);
      expect(token).to.have.length.above(20);
      const dump = JSON.stringify(logger.lines);
      for (const secret of [token, SECRET_KEY, ACCESS_KEY, 'Bearer', 'SECRET-PROMPT', 'base64', 'uthorization:']) {
        expect(dump).not.to.include(secret);
      }
    });

    it('validates its options', () => {
      const accounts = new AccountPool([{ id: 'a', accessKey: 'k', secretKey: 's' }]);
      expect(() => new KlingClient({ accounts, logger: captureLogger(), timeoutMs: 0 })).to.throw(RangeError, /timeoutMs/);
      expect(() => new KlingClient({ accounts, logger: captureLogger(), timeoutMs: 10, maxResponseBytes: -1 })).to.throw(
        RangeError,
        /maxResponseBytes/,
      );
    });
  });
}

describe('upstream/KlingClient across accounts', () => {
  it('signs each account with its own keys against its own base URL', async () => {
    const a = await startServer((_req, res) => ok(res));
    const b = await startServer((_req, res) => ok(res));
    const pool = new AccountPool([
      { id: 'a', accessKey: 'ak-a', secretKey: 'sk-a', baseUrl: a.url },
      { id: 'b', accessKey: 'ak-b', secretKey: 'sk-b', baseUrl: b.url },
    ]);
    const client = new KlingClient({ accounts: pool, logger: captureLogger(), timeoutMs: 2000 });
    try {
      await client.post(pool.get('a') as KlingAccount, '/v1/videos/text2video', {});
      await client.post(pool.get('b') as KlingAccount, '/v1/videos/text2video', {});
      const tokenOf = (s: TestServer) => (s.requests[0]?.headers.authorization ?? '').slice(7);
      expect((await jwtVerify(tokenOf(a), new TextEncoder().encode('sk-a'))).payload.iss).to.equal('ak-a');
      expect((await jwtVerify(tokenOf(b), new TextEncoder().encode('sk-b'))).payload.iss).to.equal('ak-b');
    } finally {
      client.close();
      await a.close();
      await b.close();
    }
  });
});


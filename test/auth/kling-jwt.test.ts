import { expect } from 'chai';
import express from 'express';
import express4 from 'express4';
import { errors as joseErrors, generateKeyPair, SignJWT } from 'jose';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { klingJwtAuth, klingJwtIdentify, KlingRelayConfigError, type KlingKey } from '../../lib/index.js';
import { RelayHttpError } from '../../lib/errors.js';
import { testDatabases } from '../support/databases.js';
import { checkAndClose, startHarness, type Harness } from '../support/harness.js';

const ALICE = { accessKey: 'ak-alice', secretKey: 'sk-alice-0123456789abcdef0123456789abcdef' };
const BOB = { accessKey: 'ak-bob', secretKey: 'sk-bob-0123456789abcdef0123456789abcdef0' };
const KEYS = new Map<string, KlingKey>([
  [ALICE.accessKey, { secretKey: ALICE.secretKey, user: { id: 'alice', username: 'Alice' } }],
  [BOB.accessKey, { secretKey: BOB.secretKey, user: { id: 'bob' } }],
]);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const nowSeconds = (): number => Math.floor(Date.now() / 1000);
const b64url = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url');

interface Claims {
  iss?: string;
  exp?: number;
  nbf?: number;
}

/** Kling's documented token (HS256, typ JWT, iss, exp = now + 1800, nbf = now - 5), with claims overridable or removable. */
function sign(secretKey: string, claims: Claims = {}, alg = 'HS256'): Promise<string> {
  const now = nowSeconds();
  const all: Claims = { iss: ALICE.accessKey, exp: now + 1800, nbf: now - 5, ...claims };
  const present = Object.fromEntries(Object.entries(all).filter(([, v]) => v !== undefined));
  return new SignJWT(present).setProtectedHeader({ alg, typ: 'JWT' }).sign(new TextEncoder().encode(secretKey));
}

/** Every way a token can be wrong, with the code Kling answers for it (its authentication and error-code pages). */
async function failures(): Promise<{ name: string; authorization: string | undefined; code: number }[]> {
  const now = nowSeconds();
  const { privateKey } = await generateKeyPair('RS256');
  const rs256 = await new SignJWT({ iss: ALICE.accessKey, exp: now + 1800, nbf: now - 5 }).setProtectedHeader({ alg: 'RS256', typ: 'JWT' }).sign(privateKey);
  const good = await sign(ALICE.secretKey);
  const [header, payload] = good.split('.');
  return [
    { name: 'no Authorization header', authorization: undefined, code: 1001 },
    { name: 'an empty Authorization header', authorization: '', code: 1001 },
    { name: 'Bearer without a token', authorization: 'Bearer ', code: 1001 },
    { name: 'a token that is not a JWT', authorization: 'Bearer not-a-jwt', code: 1002 },
    { name: 'three parts that are not JSON', authorization: 'Bearer abc.def.ghi', code: 1002 },
    { name: 'another scheme', authorization: `Basic ${good}`, code: 1002 },
    { name: 'a bad signature', authorization: `Bearer ${await sign('sk-guessed-0123456789abcdef0123456789')}`, code: 1002 },
    { name: 'a payload changed after signing', authorization: `Bearer ${header}.${b64url({ iss: BOB.accessKey, exp: now + 1800, nbf: now - 5 })}.${good.split('.')[2]}`, code: 1002 },
    { name: 'an unknown access key', authorization: `Bearer ${await sign(ALICE.secretKey, { iss: 'ak-nobody' })}`, code: 1002 },
    { name: 'alg none', authorization: `Bearer ${b64url({ alg: 'none', typ: 'JWT' })}.${payload}.`, code: 1002 },
    { name: 'alg none with the real signature', authorization: `Bearer ${b64url({ alg: 'none', typ: 'JWT' })}.${payload}.${good.split('.')[2]}`, code: 1002 },
    { name: 'an RS256 token (HS/RS confusion)', authorization: `Bearer ${rs256}`, code: 1002 },
    { name: 'HS512 with the right secret', authorization: `Bearer ${await sign(ALICE.secretKey, {}, 'HS512')}`, code: 1002 },
    { name: "Bob's secret under Alice's access key", authorization: `Bearer ${await sign(BOB.secretKey)}`, code: 1002 },
    { name: "Alice's secret under Bob's access key", authorization: `Bearer ${await sign(ALICE.secretKey, { iss: BOB.accessKey })}`, code: 1002 },
    { name: 'no iss claim', authorization: `Bearer ${await sign(ALICE.secretKey, { iss: undefined })}`, code: 1002 },
    { name: 'no exp claim', authorization: `Bearer ${await sign(ALICE.secretKey, { exp: undefined })}`, code: 1002 },
    { name: 'no nbf claim', authorization: `Bearer ${await sign(ALICE.secretKey, { nbf: undefined })}`, code: 1002 },
    { name: 'an nbf a minute ahead', authorization: `Bearer ${await sign(ALICE.secretKey, { nbf: now + 60 })}`, code: 1003 },
    { name: 'an exp a minute ago', authorization: `Bearer ${await sign(ALICE.secretKey, { exp: now - 60, nbf: now - 1800 })}`, code: 1004 },
    { name: 'an expired token with a bad signature', authorization: `Bearer ${await sign(BOB.secretKey, { exp: now - 60 })}`, code: 1002 },
  ];
}

function expectKlingError(res: request.Response, code: number, what: string): void {
  expect(res.status, `${what}: ${res.text}`).to.equal(401);
  expect(res.body, what).to.have.all.keys('code', 'message', 'request_id');
  expect(res.body.code, what).to.equal(code);
  expect(res.body.message, what).to.be.a('string').and.not.equal('');
  expect(res.body.request_id, what).to.match(UUID);
}

async function listen(app: express.Express): Promise<{ url: string; server: Server }> {
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

for (const version of [5, 4] as const) {
  describe(`klingJwtAuth middleware in Express ${version}`, () => {
    let url: string;
    let server: Server;
    let lookups: string[];

    before(async () => {
      lookups = [];
      const app = (version === 4 ? express4 : express)() as express.Express;
      // An async lookup, as a host reading its database has.
      const auth = klingJwtAuth({
        lookup: async (accessKey) => {
          lookups.push(accessKey);
          if (accessKey === 'ak-broken') throw new Error('database is down');
          return KEYS.get(accessKey) ?? null;
        },
      });
      app.get('/whoami', auth, (_req, res) => {
        res.json({ user: res.locals.user });
      });
      app.use((error: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
        res.status(500).json({ hostError: error.message });
      });
      ({ url, server } = await listen(app));
    });
    after(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it("puts the key's caller in res.locals.user for a token signed as Kling documents", async () => {
      const res = await request(url).get('/whoami').set('Authorization', `Bearer ${await sign(ALICE.secretKey)}`);
      expect(res.status, res.text).to.equal(200);
      expect(res.body).to.deep.equal({ user: { id: 'alice', username: 'Alice' } });
      const asBob = await request(url).get('/whoami').set('Authorization', `bearer  ${await sign(BOB.secretKey, { iss: BOB.accessKey })}`);
      expect(asBob.body).to.deep.equal({ user: { id: 'bob' } });
    });

    it('answers every bad token with 401 and its Kling code in the envelope, and never reaches the route', async () => {
      for (const failure of await failures()) {
        const call = request(url).get('/whoami');
        if (failure.authorization !== undefined) void call.set('Authorization', failure.authorization);
        expectKlingError(await call, failure.code, failure.name);
      }
    });

    it('forgives a few seconds of clock skew on exp and nbf, not more', async () => {
      const now = nowSeconds();
      const fine = [await sign(ALICE.secretKey, { exp: now - 2, nbf: now - 1800 }), await sign(ALICE.secretKey, { nbf: now + 2 })];
      for (const token of fine) expect((await request(url).get('/whoami').set('Authorization', `Bearer ${token}`)).status).to.equal(200);
      expectKlingError(await request(url).get('/whoami').set('Authorization', `Bearer ${await sign(ALICE.secretKey, { exp: now - 10, nbf: now - 1800 })}`), 1004, 'exp 10 s ago');
      expectKlingError(await request(url).get('/whoami').set('Authorization', `Bearer ${await sign(ALICE.secretKey, { nbf: now + 10 })}`), 1003, 'nbf 10 s ahead');
    });

    it("passes a failing lookup to the host's error handler instead of calling it a bad token", async () => {
      const res = await request(url).get('/whoami').set('Authorization', `Bearer ${await sign(ALICE.secretKey, { iss: 'ak-broken' })}`);
      expect(res.status).to.equal(500);
      expect(res.body).to.deep.equal({ hostError: 'database is down' });
    });

    it('answers an unknown access key exactly as a bad signature: same status, code and message', async () => {
      const unknown = await request(url).get('/whoami').set('Authorization', `Bearer ${await sign(ALICE.secretKey, { iss: 'ak-nobody' })}`);
      const forged = await request(url).get('/whoami').set('Authorization', `Bearer ${await sign('sk-guessed-0123456789abcdef0123456789')}`);
      const seen = (res: request.Response) => ({ status: res.status, code: res.body.code as unknown, message: res.body.message as unknown });
      expect(seen(unknown)).to.deep.equal(seen(forged));
      expect(seen(forged)).to.deep.equal({ status: 401, code: 1002, message: 'Authorization is invalid' });
    });

    it('does not look up keys for tokens that fail before the signature can be checked', async () => {
      lookups.length = 0;
      const now = nowSeconds();
      await request(url).get('/whoami').set('Authorization', `Bearer ${b64url({ alg: 'none' })}.${b64url({ iss: ALICE.accessKey, exp: now + 60, nbf: now })}.`);
      await request(url).get('/whoami').set('Authorization', `Bearer ${await sign(ALICE.secretKey, { iss: undefined })}`);
      expect(lookups).to.deep.equal([]);
    });
  });
}

describe('klingJwtIdentify on an unknown access key', () => {
  /** What the identify threw for this Authorization header: the 401 and what caused it. */
  async function refusal(authorization: string): Promise<RelayHttpError> {
    const identify = klingJwtIdentify({ lookup: (accessKey) => KEYS.get(accessKey) ?? null });
    const thrown: unknown = await identify({ headers: { authorization } } as express.Request, {} as express.Response).then(() => null, (error: unknown) => error);
    if (!(thrown instanceof RelayHttpError)) throw new Error(`expected a RelayHttpError, got ${String(thrown)}`);
    return thrown;
  }

  it('is refused by a failed signature check, as a forged signature is, not before it', async () => {
    const unknown = await refusal(`Bearer ${await sign(ALICE.secretKey, { iss: 'ak-nobody' })}`);
    const forged = await refusal(`Bearer ${await sign('sk-guessed-0123456789abcdef0123456789')}`);
    // The cause is the signature check's own failure: the unknown key's token was verified (against a
    // secret no caller has) just as a known key's is, so both refusals cost the same work.
    for (const refused of [unknown, forged]) expect(refused.cause).to.be.an.instanceOf(joseErrors.JWSSignatureVerificationFailed);
    const seen = (e: RelayHttpError) => ({ status: e.status, code: e.klingCode, message: e.message, cause: (e.cause as Error).constructor });
    expect(seen(unknown)).to.deep.equal(seen(forged));
  });
});

describe('klingJwtAuth with a fallback to the host\'s own token check', () => {
  let url: string;
  let server: Server;

  before(async () => {
    const app = express();
    const hostTokens = new Map([['sk-host-token-1', { id: 7, username: 'carol' }]]);
    const hostCheck: express.RequestHandler = (req, res, next) => {
      const token = /^Bearer\s+(\S+)$/i.exec(req.get('authorization') ?? '')?.[1];
      const user = token === undefined ? undefined : hostTokens.get(token);
      if (!user) {
        res.status(401).json({ code: 1000, message: 'host: invalid token', request_id: 'host' });
        return;
      }
      res.locals.user = user;
      next();
    };
    app.get('/whoami', klingJwtAuth({ lookup: (accessKey) => KEYS.get(accessKey), fallback: hostCheck }), (_req, res) => {
      res.json({ user: res.locals.user });
    });
    ({ url, server } = await listen(app));
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it("accepts both the host's own tokens and Kling JWTs", async () => {
    expect((await request(url).get('/whoami').set('Authorization', 'Bearer sk-host-token-1')).body).to.deep.equal({ user: { id: 7, username: 'carol' } });
    expect((await request(url).get('/whoami').set('Authorization', `Bearer ${await sign(ALICE.secretKey)}`)).body).to.deep.equal({ user: { id: 'alice', username: 'Alice' } });
  });

  it('leaves requests without a JWT to the host check, and answers bad JWTs with Kling codes itself', async () => {
    const missing = await request(url).get('/whoami');
    expect(missing.body).to.deep.equal({ code: 1000, message: 'host: invalid token', request_id: 'host' });
    const unknown = await request(url).get('/whoami').set('Authorization', 'Bearer sk-unknown');
    expect(unknown.body.message).to.equal('host: invalid token');
    const now = nowSeconds();
    expectKlingError(await request(url).get('/whoami').set('Authorization', `Bearer ${await sign(ALICE.secretKey, { exp: now - 60, nbf: now - 1800 })}`), 1004, 'expired JWT');
    expectKlingError(await request(url).get('/whoami').set('Authorization', `Bearer ${await sign(BOB.secretKey)}`), 1002, 'JWT with a wrong secret');
  });
});

describe('klingJwtAuth with maxLifetimeSeconds', () => {
  let url: string;
  let server: Server;

  before(async () => {
    const app = express();
    app.get('/whoami', klingJwtAuth({ lookup: (accessKey) => KEYS.get(accessKey), maxLifetimeSeconds: 3600 }), (_req, res) => {
      res.json({ user: res.locals.user });
    });
    ({ url, server } = await listen(app));
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it("accepts tokens valid for up to the limit (Kling's 1800 s), refuses a longer one with 1002 and says why", async () => {
    const now = nowSeconds();
    for (const exp of [now + 1800, now + 3600]) {
      const res = await request(url).get('/whoami').set('Authorization', `Bearer ${await sign(ALICE.secretKey, { exp })}`);
      expect(res.status, `exp now + ${exp - now}`).to.equal(200);
    }
    const long = await request(url).get('/whoami').set('Authorization', `Bearer ${await sign(ALICE.secretKey, { exp: now + 30 * 86400 })}`);
    expectKlingError(long, 1002, 'a token valid for 30 days');
    expect(long.body.message).to.include('longer than 3600 s');
    // The lifetime says nothing about a token whose signature fails: that is a plain 1002.
    const forged = await request(url).get('/whoami').set('Authorization', `Bearer ${await sign(BOB.secretKey, { exp: now + 30 * 86400 })}`);
    expectKlingError(forged, 1002, 'a forged long-lived token');
    expect(forged.body.message).to.equal('Authorization is invalid');
  });
});

describe('klingJwtAuth options', () => {
  it('throws a coded error for a missing lookup, an unknown option, a bad tolerance, and a misuse as middleware', () => {
    const attempt = (make: () => unknown): KlingRelayConfigError => {
      try {
        make();
      } catch (error) {
        expect(error).to.be.instanceOf(KlingRelayConfigError);
        return error as KlingRelayConfigError;
      }
      throw new Error('expected a KlingRelayConfigError');
    };
    expect(attempt(() => klingJwtAuth({} as never)).code).to.equal('ERR_KLING_RELAY_JWT_LOOKUP');
    const unknown = attempt(() => klingJwtAuth({ lookup: () => null, lokup: () => null } as never));
    expect(unknown.code).to.equal('ERR_KLING_RELAY_UNKNOWN_OPTION');
    expect(unknown.message).to.include("'lokup'").and.include('lookup');
    expect(attempt(() => klingJwtIdentify({ lookup: () => null, clockToleranceSeconds: -1 })).code).to.equal('ERR_KLING_RELAY_JWT_CLOCK_TOLERANCE_SECONDS');
    for (const bad of [0, -5, Number.POSITIVE_INFINITY, '1800']) {
      const refused = attempt(() => klingJwtAuth({ lookup: () => null, maxLifetimeSeconds: bad as number }));
      expect(refused.code).to.equal('ERR_KLING_RELAY_JWT_MAX_LIFETIME_SECONDS');
      expect(refused.message).to.include('> 0');
    }
    expect(attempt(() => klingJwtAuth({ headers: {}, socket: {} } as never)).message).to.include("app.use('/kling', klingJwtAuth({ lookup }), relay.router)");
    expect(attempt(() => klingJwtAuth(undefined as never)).code).to.equal('ERR_KLING_RELAY_JWT_OPTIONS');
  });
});

for (const database of testDatabases()) {
  describe(`klingJwtIdentify as the relay's identify on ${database.name}`, () => {
    let h: Harness;
    let userId: number;
    let lookupFails = false;

    beforeEach(async () => {
      lookupFails = false;
      // The harness's users are numbers; Alice's key is given to a real user of this database.
      const keys = new Map<string, KlingKey>();
      h = await startHarness(database, {
        relay: {
          identify: klingJwtIdentify({
            lookup: (accessKey) => {
              if (lookupFails) throw new Error('key table unreachable');
              return keys.get(accessKey);
            },
          }),
        },
      });
      userId = await h.user(1_000_000);
      keys.set(ALICE.accessKey, { secretKey: ALICE.secretKey, user: { id: userId, username: 'alice' } });
      keys.set(BOB.accessKey, { secretKey: BOB.secretKey, user: { id: userId + 1000, username: 'bob' } });
    });
    afterEach(async () => checkAndClose(h));

    const submit = (authorization: string | undefined): request.Test => {
      const call = request(h.url).post('/kling/v1/videos/text2video').send({ prompt: 'a kite', duration: '5' });
      return authorization === undefined ? call : call.set('Authorization', authorization);
    };

    it('submits as the key owner, and answers every bad token with its Kling code leaving nothing behind', async () => {
      const ok = await submit(`Bearer ${await sign(ALICE.secretKey)}`);
      expect(ok.status, ok.text).to.equal(200);
      const [task] = await h.tasks();
      expect(task?.user_id).to.equal(String(userId));
      const after = await h.balance(userId);
      expect(after).to.be.below(1_000_000);

      for (const failure of await failures()) {
        expectKlingError(await submit(failure.authorization), failure.code, failure.name);
      }
      expect(await h.tasks()).to.have.length(1);
      expect(await h.rows('videos')).to.have.length(1);
      expect(h.creates()).to.have.length(1);
      expect(await h.balance(userId)).to.equal(after);
    });

    it('answers queries only for a valid token, by the key owner', async () => {
      const taskId = (await submit(`Bearer ${await sign(ALICE.secretKey)}`)).body.data.task_id as string;
      const mine = await request(h.url).get(`/kling/v1/videos/text2video/${taskId}`).set('Authorization', `Bearer ${await sign(ALICE.secretKey)}`);
      expect(mine.status).to.equal(200);
      expect(mine.body.data.task_id).to.equal(taskId);
      const bobs = await request(h.url).get(`/kling/v1/videos/text2video/${taskId}`).set('Authorization', `Bearer ${await sign(BOB.secretKey, { iss: BOB.accessKey })}`);
      expect(bobs.status).to.equal(404);
      const now = nowSeconds();
      expectKlingError(await request(h.url).get(`/kling/v1/videos/text2video/${taskId}`).set('Authorization', `Bearer ${await sign(ALICE.secretKey, { exp: now - 60, nbf: now - 1800 })}`), 1004, 'expired query');
      expectKlingError(await request(h.url).get('/kling/v1/videos/text2video'), 1001, 'list without a token');
    });

    it('answers 503/5001 when the lookup itself fails, holding nothing', async () => {
      lookupFails = true;
      const res = await submit(`Bearer ${await sign(ALICE.secretKey)}`);
      expect(res.status).to.equal(503);
      expect(res.body.code).to.equal(5001);
      expect(res.body.request_id).to.match(UUID);
      expect(await h.tasks()).to.deep.equal([]);
      expect(await h.balance(userId)).to.equal(1_000_000);
    });
  });

  describe(`klingJwtIdentify with a fallback identify on ${database.name}`, () => {
    let h: Harness;
    afterEach(async () => checkAndClose(h));

    it("identifies callers without a JWT by the host's identify, and callers with one by their key", async () => {
      const keys = new Map<string, KlingKey>();
      // The harness puts X-User-Id in res.locals.user when a suite brings its own identify.
      h = await startHarness(database, { relay: { identify: klingJwtIdentify({ lookup: (ak) => keys.get(ak), fallback: (_req, res) => res.locals.user as { id: number } | undefined }) } });
      const carol = await h.user(1_000_000);
      const dave = await h.user(1_000_000);
      keys.set(ALICE.accessKey, { secretKey: ALICE.secretKey, user: { id: dave } });
      const post = () => request(h.url).post('/kling/v1/videos/text2video').send({ prompt: 'a kite', duration: '5' });
      expect((await post().set('X-User-Id', String(carol))).status).to.equal(200);
      expect((await post().set('Authorization', `Bearer ${await sign(ALICE.secretKey)}`)).status).to.equal(200);
      expect((await h.tasks()).map((t) => t.user_id)).to.deep.equal([String(carol), String(dave)]);
      const noCaller = await post();
      expect(noCaller.status).to.equal(401);
      expect(noCaller.body.code).to.equal(1000);
      // A bad JWT is never handed to the fallback, even next to a header it would accept.
      expectKlingError(await post().set('X-User-Id', String(carol)).set('Authorization', `Bearer ${await sign(BOB.secretKey)}`), 1002, 'forged JWT');
      expect(await h.tasks()).to.have.length(2);
    });
  });

  describe(`the test host's own JWT path (klingJwtAuth with the X-User-Id fallback) on ${database.name}`, () => {
    let h: Harness;
    afterEach(async () => checkAndClose(h));

    it('accepts a user\'s Kling keys and X-User-Id alike, and answers a bad JWT with its code', async () => {
      h = await startHarness(database);
      const user = await h.user(1_000_000);
      const keys = h.klingKeys(user);
      const byJwt = await request(h.url).post('/kling/v1/videos/text2video').set('Authorization', `Bearer ${await sign(keys.secretKey, { iss: keys.accessKey })}`).send({ prompt: 'a kite', duration: '5' });
      expect(byJwt.status, byJwt.text).to.equal(200);
      const byHeader = await request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ prompt: 'a kite', duration: '5' });
      expect(byHeader.status, byHeader.text).to.equal(200);
      expect((await h.tasks()).map((t) => t.user_id)).to.deep.equal([String(user), String(user)]);
      const forged = await request(h.url).post('/kling/v1/videos/text2video').set('Authorization', `Bearer ${await sign(BOB.secretKey, { iss: keys.accessKey })}`).set('X-User-Id', String(user)).send({ prompt: 'a kite', duration: '5' });
      expectKlingError(forged, 1002, 'a forged JWT next to X-User-Id');
      expect(await h.tasks()).to.have.length(2);
    });
  });
}

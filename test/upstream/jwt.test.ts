import { expect } from 'chai';
import { decodeProtectedHeader, jwtVerify } from 'jose';
import { AccountPool, TokenCache, type KlingKeyPairAccount } from '../../lib/upstream/index.js';

const secretKey = 'sk-jwt-test-secret';
const secret = new TextEncoder().encode(secretKey);

function account(keys: { accessKey?: string; secretKey?: string } = {}): KlingKeyPairAccount {
  return new AccountPool([{ id: 'main', accessKey: keys.accessKey ?? 'ak-jwt', secretKey: keys.secretKey ?? secretKey }]).pick() as KlingKeyPairAccount;
}

describe('upstream/TokenCache', () => {
  const t0 = Date.UTC(2026, 10, 22, 12, 0, 0);

  it('signs HS256 with typ JWT, iss = access key, exp = now + 1800, nbf = now - 5', async () => {
    const cache = new TokenCache({ now: () => t0 + 400 });
    const token = await cache.token(account());
    expect(decodeProtectedHeader(token)).to.deep.equal({ alg: 'HS256', typ: 'JWT' });
    const { payload } = await jwtVerify(token, secret, {
      issuer: 'ak-jwt',
      algorithms: ['HS256'],
      typ: 'JWT',
      currentDate: new Date(t0),
    });
    const now = t0 / 1000;
    expect(payload).to.deep.equal({ iss: 'ak-jwt', exp: now + 1800, nbf: now - 5 });
  });

  it('is verifiable against the real clock by default', async () => {
    const token = await new TokenCache().token(account());
    const { payload } = await jwtVerify(token, secret, { issuer: 'ak-jwt' });
    const now = Math.floor(Date.now() / 1000);
    expect(payload.exp).to.be.within(now + 1799, now + 1800);
    expect(payload.nbf).to.be.within(now - 6, now - 5);
  });

  it('reuses the token until less than 5 minutes are left, then renews it', async () => {
    let now = t0;
    const cache = new TokenCache({ now: () => now });
    const acc = account();
    const first = await cache.token(acc);
    expect(cache.peek(acc)).to.equal(first);

    now = t0 + 1500 * 1000; // 300 s left: still good
    expect(await cache.token(acc)).to.equal(first);

    now = t0 + 1501 * 1000; // 299 s left: renewed
    expect(cache.peek(acc)).to.equal(undefined);
    const second = await cache.token(acc);
    expect(second).not.to.equal(first);
    const { payload } = await jwtVerify(second, secret, { currentDate: new Date(now) });
    expect(payload.exp).to.equal(t0 / 1000 + 1501 + 1800);
    expect(await cache.token(acc)).to.equal(second);
  });

  it('shares one signing between concurrent callers', async () => {
    // A clock that moves one second per reading: two signings could never produce equal tokens.
    let now = t0;
    const cache = new TokenCache({ now: () => (now += 1000) });
    const acc = account();
    const tokens = await Promise.all(Array.from({ length: 20 }, () => cache.token(acc)));
    expect(new Set(tokens).size).to.equal(1);
  });

  it('signs anew when an account id comes back with rotated keys', async () => {
    const cache = new TokenCache({ now: () => t0 });
    const before = await cache.token(account());
    const after = await cache.token(account({ accessKey: 'ak-rotated', secretKey: 'sk-rotated' }));
    expect(after).not.to.equal(before);
    const { payload } = await jwtVerify(after, new TextEncoder().encode('sk-rotated'), { currentDate: new Date(t0) });
    expect(payload.iss).to.equal('ak-rotated');
  });

  it('keeps one token per account and forgets on clear()', async () => {
    const pool = new AccountPool([
      { id: 'a', accessKey: 'ak-a', secretKey },
      { id: 'b', accessKey: 'ak-b', secretKey },
    ]);
    const [a, b] = pool.all() as KlingKeyPairAccount[];
    if (!a || !b) throw new Error('pool');
    const cache = new TokenCache({ now: () => t0 });
    const ta = await cache.token(a);
    const tb = await cache.token(b);
    expect(ta).not.to.equal(tb);
    expect(cache.peek(a)).to.equal(ta);
    cache.clear('a');
    expect(cache.peek(a)).to.equal(undefined);
    expect(cache.peek(b)).to.equal(tb);
    cache.clear();
    expect(cache.peek(b)).to.equal(undefined);
  });
});

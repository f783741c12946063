import { SignJWT } from 'jose';
import type { KlingKeyPairAccount } from './accounts.js';

/** The lifetime Kling's docs give a token: exp = now + 1800 s. */
export const TOKEN_LIFETIME_SECONDS = 1800;
/** Kling's documented skew allowance: nbf = now - 5 s. */
export const TOKEN_NOT_BEFORE_SKEW_SECONDS = 5;
/** A cached token is replaced once it has less than this left, so no request leaves with a token about to expire. */
export const TOKEN_RENEW_BEFORE_SECONDS = 300;

export interface TokenCacheOptions {
  /** Milliseconds since the epoch; injectable for tests. Default `Date.now`. */
  now?: () => number;
}

interface CachedToken {
  token: string;
  /** Unix seconds. */
  exp: number;
  // The keys the token was signed with: a host that rotates an account's keys under the same id
  // must not keep getting the old token.
  accessKey: string;
  secretKey: string;
}

/**
 * Kling Bearer tokens of access/secret key accounts, one per account, signed once and reused until
 * they are close to expiry. (An API-key account sends its key itself and needs none.)
 * Signing per request would cost an HMAC and an allocation on every call for nothing.
 */
export class TokenCache {
  readonly #now: () => number;
  readonly #cache = new Map<string, CachedToken>();
  readonly #inFlight = new Map<string, Promise<string>>();
  readonly #encoder = new TextEncoder();

  constructor(options: TokenCacheOptions = {}) {
    this.#now = options.now ?? Date.now;
  }

  /** The cached token when it is still fresh enough, without waiting; undefined when a signing is needed. */
  peek(account: KlingKeyPairAccount): string | undefined {
    const cached = this.#cache.get(account.id);
    if (!cached || cached.accessKey !== account.accessKey || cached.secretKey !== account.secretKey) return undefined;
    const nowSeconds = Math.floor(this.#now() / 1000);
    return cached.exp - nowSeconds >= TOKEN_RENEW_BEFORE_SECONDS ? cached.token : undefined;
  }

  /** A valid token for the account; concurrent callers that miss the cache share one signing. */
  token(account: KlingKeyPairAccount): Promise<string> {
    const fresh = this.peek(account);
    if (fresh !== undefined) return Promise.resolve(fresh);
    const key = account.id;
    const pending = this.#inFlight.get(key);
    if (pending) return pending;
    const signing = this.#sign(account).finally(() => {
      if (this.#inFlight.get(key) === signing) this.#inFlight.delete(key);
    });
    this.#inFlight.set(key, signing);
    return signing;
  }

  /** Forget every token, e.g. after Kling answered 1002/1004 for one that looked valid here. */
  clear(accountId?: string): void {
    if (accountId === undefined) this.#cache.clear();
    else this.#cache.delete(accountId);
  }

  async #sign(account: KlingKeyPairAccount): Promise<string> {
    const { accessKey, secretKey } = account;
    const nowSeconds = Math.floor(this.#now() / 1000);
    const exp = nowSeconds + TOKEN_LIFETIME_SECONDS;
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setIssuer(accessKey)
      .setExpirationTime(exp)
      .setNotBefore(nowSeconds - TOKEN_NOT_BEFORE_SKEW_SECONDS)
      .sign(this.#encoder.encode(secretKey));
    this.#cache.set(account.id, { token, exp, accessKey, secretKey });
    return token;
  }
}

import { SignJWT, decodeJwt, decodeProtectedHeader, errors, jwtVerify } from 'jose';
import { KlingError } from './codes.js';
import type { SandboxAccount } from './types.js';

export interface SignOptions {
  /** The signing time: a Date or unix seconds. Default: now. */
  now?: number | Date;
  /** Seconds from `now` to `exp`. Default 1800, as in Kling's sample. */
  expiresIn?: number;
  /** Seconds from `now` to `nbf` (negative: in the past). Default -5, as in Kling's sample. */
  notBefore?: number;
}

/** Signs a token the way Kling's official samples do: HS256, typ JWT, iss = access key. */
export async function signKlingToken(account: SandboxAccount, options: SignOptions = {}): Promise<string> {
  const now =
    options.now instanceof Date
      ? Math.floor(options.now.getTime() / 1000)
      : (options.now ?? Math.floor(Date.now() / 1000));
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer(account.accessKey)
    .setExpirationTime(now + (options.expiresIn ?? 1800))
    .setNotBefore(now + (options.notBefore ?? -5))
    .sign(new TextEncoder().encode(account.secretKey));
}

/**
 * Checks `Authorization: Bearer <credential>`, an API key of an account or a JWT signed with its
 * keys, and answers the account's access key, or throws Kling's 401 codes: 1001 empty, 1002 invalid
 * (an unknown API key too), 1003 not yet valid, 1004 expired.
 */
export async function authenticate(
  authorization: string | undefined,
  accounts: readonly SandboxAccount[],
): Promise<string> {
  const header = authorization?.trim() ?? '';
  if (header === '' || /^bearer$/i.test(header)) throw new KlingError(1001);
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  if (!match?.[1]) throw new KlingError(1002);
  const token = match[1];

  const keyOwner = accounts.find((a) => a.apiKeys?.includes(token));
  if (keyOwner) return keyOwner.accessKey;

  // The issuer picks the secret, so it must be read before the signature can be checked.
  let issuer: string | undefined;
  try {
    if (decodeProtectedHeader(token).alg !== 'HS256') throw new KlingError(1002);
    issuer = decodeJwt(token).iss;
  } catch {
    throw new KlingError(1002);
  }
  const account = accounts.find((a) => a.accessKey === issuer);
  if (!account) throw new KlingError(1002);

  try {
    await jwtVerify(token, new TextEncoder().encode(account.secretKey), {
      algorithms: ['HS256'],
      issuer: account.accessKey,
      requiredClaims: ['exp'],
      clockTolerance: 0,
    });
  } catch (err) {
    if (err instanceof errors.JWTExpired) throw new KlingError(1004);
    if (err instanceof errors.JWTClaimValidationFailed && err.claim === 'nbf') throw new KlingError(1003);
    throw new KlingError(1002);
  }
  return account.accessKey;
}

import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { decodeJwt, decodeProtectedHeader, errors, jwtVerify } from 'jose';
import { KlingRelayConfigError, newRequestId, RelayHttpError } from '../errors.js';
import type { Caller } from '../options.js';
import { sendError } from '../relay/respond.js';

/** What the host knows about one access key: the secret its owner signs with, and who that owner is. */
export interface KlingKey {
  secretKey: string;
  user: Caller;
}

/** The host's key store: access key (the token's `iss`) to its secret and caller; null when unknown. */
export type KlingKeyLookup = (accessKey: string) => KlingKey | null | undefined | Promise<KlingKey | null | undefined>;

export interface KlingJwtOptions {
  /** Finds the secret key and the caller of an access key. Required. Called once per request. */
  lookup: KlingKeyLookup;
  /**
   * Seconds of clock difference forgiven on `exp` and `nbf`. Default 5: Kling's own samples already
   * back-date `nbf` by 5 s, so a client's clock may be a few seconds off either way.
   */
  clockToleranceSeconds?: number;
  /**
   * The longest a token may still be valid for, in seconds: a token whose `exp` lies further ahead
   * than this (past the clock tolerance) is refused with 1002, so that a leaked token cannot be used
   * for months. Default: no limit, since Kling states none. Kling's own samples sign tokens for
   * 1800 s; 86400 allows a day.
   */
  maxLifetimeSeconds?: number;
}

export interface KlingJwtAuthOptions extends KlingJwtOptions {
  /**
   * The host's own check (an Express middleware), run instead when the request carries no Bearer
   * JWT: no Authorization header, or a token that is not three dot-separated base64url parts (an
   * `sk-...` API token). A Bearer JWT is never handed to it: a bad JWT is answered with Kling's code.
   * Without a fallback such requests get 401 with 1001 (no header) or 1002.
   */
  fallback?: RequestHandler;
}

export interface KlingJwtIdentifyOptions extends KlingJwtOptions {
  /** The identify to use when the request carries no Bearer JWT (see `KlingJwtAuthOptions.fallback`). */
  fallback?: (req: Request, res: Response) => Caller | null | undefined | Promise<Caller | null | undefined>;
}

const DEFAULT_CLOCK_TOLERANCE_SECONDS = 5;
const AUTH_OPTION_KEYS = ['lookup', 'clockToleranceSeconds', 'maxLifetimeSeconds', 'fallback'] as const;

/** JWS compact serialisation: header.payload.signature (empty signature for `alg: none`). */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

const encoder = new TextEncoder();

/** Kling's 401 answers: 1001 empty, 1002 invalid, 1003 not yet valid, 1004 expired. */
function unauthorized(code: 1001 | 1002 | 1003 | 1004, message: string, cause?: unknown): RelayHttpError {
  return new RelayHttpError(401, code, message, cause === undefined ? {} : { cause });
}

/**
 * What an unknown access key is verified against: a random secret of this process, which no token is
 * signed with. 64 bytes, HMAC-SHA256's block: a longer secret would cost one hash more.
 */
const UNKNOWN_KEY: KlingKey = { secretKey: randomBytes(32).toString('hex'), user: { id: '' } };

function fail(option: string, message: string): never {
  throw new KlingRelayConfigError(`ERR_KLING_RELAY_JWT_${option.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}` as `ERR_KLING_RELAY_${string}`, `klingJwtAuth option '${option}': ${message}`);
}

interface Settings {
  lookup: KlingKeyLookup;
  clockTolerance: number;
  maxLifetime: number | undefined;
}

/** Fails fast on a misspelt or mistyped option, so a host does not ship an auth check that is not what it wrote. */
function settings(options: unknown, what: string): Settings & { fallback: unknown } {
  if (typeof options !== 'object' || options === null) {
    throw new KlingRelayConfigError('ERR_KLING_RELAY_JWT_OPTIONS', `${what}(options) needs an options object: ${what}({ lookup: (accessKey) => ({ secretKey, user }) | null }).`);
  }
  if ('socket' in options || 'headers' in options) {
    throw new KlingRelayConfigError('ERR_KLING_RELAY_JWT_OPTIONS', `${what} was given a request: call it with options and mount what it returns, e.g. app.use('/kling', ${what}({ lookup }), relay.router).`);
  }
  const o = options as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!(AUTH_OPTION_KEYS as readonly string[]).includes(key)) {
      throw new KlingRelayConfigError('ERR_KLING_RELAY_UNKNOWN_OPTION', `${what}: unknown option '${key}'. Known options: ${AUTH_OPTION_KEYS.join(', ')}.`);
    }
  }
  if (typeof o.lookup !== 'function') fail('lookup', 'required: a function (accessKey) => ({ secretKey, user }) | null, sync or async.');
  const tolerance = o.clockToleranceSeconds ?? DEFAULT_CLOCK_TOLERANCE_SECONDS;
  if (typeof tolerance !== 'number' || !Number.isFinite(tolerance) || tolerance < 0) fail('clockToleranceSeconds', `must be a number of seconds >= 0, got ${JSON.stringify(o.clockToleranceSeconds)}.`);
  const lifetime = o.maxLifetimeSeconds;
  if (lifetime !== undefined && (typeof lifetime !== 'number' || !Number.isFinite(lifetime) || lifetime <= 0)) fail('maxLifetimeSeconds', `must be a number of seconds > 0 (1800 is what Kling's samples sign for), got ${JSON.stringify(lifetime)}.`);
  if (o.fallback !== undefined && typeof o.fallback !== 'function') fail('fallback', 'must be a function: your own token check.');
  return { lookup: o.lookup as KlingKeyLookup, clockTolerance: tolerance, maxLifetime: lifetime, fallback: o.fallback };
}

/** The Bearer token of a request: undefined when there is no Authorization header (or it is blank). */
function bearer(req: IncomingMessage): { token: string | undefined; present: boolean } {
  const header = (req.headers.authorization ?? '').trim();
  if (header === '' || /^bearer$/i.test(header)) return { token: undefined, present: false };
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  return { token: match?.[1], present: true };
}

function isJwt(token: string | undefined): token is string {
  return token !== undefined && COMPACT_JWS.test(token);
}

/**
 * Verifies one Kling-style token: HS256 only, signed with the secret of the access key in `iss`,
 * `iss`, `exp` and `nbf` all present. Answers the key's caller or throws Kling's 401 codes.
 */
async function verify(token: string, config: Settings): Promise<Caller> {
  // The issuer picks the secret, so it is read before the signature can be checked; nothing read here
  // is trusted until jwtVerify has checked the signature with that secret.
  let issuer: unknown;
  try {
    if (decodeProtectedHeader(token).alg !== 'HS256') throw unauthorized(1002, 'Authorization is invalid: the token must be signed with HS256');
    issuer = decodeJwt(token).iss;
  } catch (error) {
    if (error instanceof RelayHttpError) throw error;
    throw unauthorized(1002, 'Authorization is invalid: the token is not a well-formed JWT');
  }
  if (typeof issuer !== 'string' || issuer === '') throw unauthorized(1002, 'Authorization is invalid: the token has no iss (your access key)');
  const found = await config.lookup(issuer);
  if (found !== null && found !== undefined && (typeof found.secretKey !== 'string' || found.secretKey === '' || typeof found.user !== 'object' || found.user === null)) {
    // The host's lookup is broken; that is not the caller's fault, so it is not a 401.
    throw new Error('klingJwtAuth lookup must answer { secretKey: string, user: { id, username? } } or null');
  }
  // An unknown access key is checked against a secret no caller has, and so fails where a wrong
  // signature fails, with its answer and after the same work: neither the answer nor the time
  // taken tells a caller which access keys exist.
  const key = found ?? UNKNOWN_KEY;
  let exp: number | undefined;
  try {
    ({ payload: { exp } } = await jwtVerify(token, encoder.encode(key.secretKey), {
      algorithms: ['HS256'],
      issuer,
      requiredClaims: ['iss', 'exp', 'nbf'],
      clockTolerance: config.clockTolerance,
    }));
  } catch (error) {
    if (error instanceof errors.JWTExpired) throw unauthorized(1004, 'Authorization has expired');
    if (error instanceof errors.JWTClaimValidationFailed && error.claim === 'nbf' && error.reason === 'check_failed') {
      throw unauthorized(1003, 'Authorization is not yet valid');
    }
    if (error instanceof errors.JWTClaimValidationFailed && error.reason === 'missing') {
      throw unauthorized(1002, `Authorization is invalid: the token has no ${error.claim} claim`);
    }
    throw unauthorized(1002, 'Authorization is invalid', error);
  }
  if (key === UNKNOWN_KEY) throw unauthorized(1002, 'Authorization is invalid');
  // Checked only once the signature holds, so that it says nothing about tokens it cannot trust.
  if (config.maxLifetime !== undefined && exp !== undefined && exp - Date.now() / 1000 > config.maxLifetime + config.clockTolerance) {
    throw unauthorized(1002, `Authorization is invalid: the token is valid for longer than ${config.maxLifetime} s; sign it with a nearer exp`);
  }
  return key.user;
}

/**
 * Kling-style authentication as an `identify` option of createKlingRelay: the caller of a valid
 * Kling JWT, or a thrown RelayHttpError that the relay answers with Kling's 401 code (1001-1004).
 */
export function klingJwtIdentify(options: KlingJwtIdentifyOptions): (req: Request, res: Response) => Promise<Caller | null | undefined> {
  const { fallback, ...config } = settings(options, 'klingJwtIdentify');
  const other = fallback as KlingJwtIdentifyOptions['fallback'];
  return async (req, res) => {
    const { token, present } = bearer(req);
    if (isJwt(token)) return verify(token, config);
    if (other) return other(req, res);
    throw present ? unauthorized(1002, 'Authorization is invalid: expected Bearer <JWT>') : unauthorized(1001, 'Authorization is empty');
  };
}

/**
 * Kling-style authentication as Express middleware: puts the caller of a valid Kling JWT in
 * `res.locals.user` (where the relay's default identify looks) and calls next; answers Kling's 401
 * envelope itself otherwise. A failing `lookup` goes to next(error).
 */
export function klingJwtAuth(options: KlingJwtAuthOptions): RequestHandler {
  const { fallback, ...config } = settings(options, 'klingJwtAuth');
  const other = fallback as RequestHandler | undefined;
  return (req: Request, res: Response, next: NextFunction) => {
    const { token, present } = bearer(req);
    if (!isJwt(token)) {
      if (other) {
        // Express 5 handles a returned promise, Express 4 does not: a rejection is passed on here.
        const result = other(req, res, next) as unknown;
        if (result instanceof Promise) result.catch(next);
        return;
      }
      answer(res, present ? unauthorized(1002, 'Authorization is invalid: expected Bearer <JWT>') : unauthorized(1001, 'Authorization is empty'));
      return;
    }
    verify(token, config).then(
      (user) => {
        res.locals.user = user;
        next();
      },
      (error: unknown) => {
        if (error instanceof RelayHttpError) answer(res, error);
        else next(error);
      },
    );
  };
}

function answer(res: ServerResponse, error: RelayHttpError): void {
  sendError(res, error, newRequestId());
}

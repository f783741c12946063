import http from 'node:http';
import https from 'node:https';
import nodeFetch from 'node-fetch';
import type { AccountPool, KlingAccount } from './accounts.js';
import { TokenCache } from './jwt.js';

/** What the relay logs through; winston's logger satisfies it. */
export interface Logger {
  error(message: string, meta?: object): void;
  warn(message: string, meta?: object): void;
  info(message: string, meta?: object): void;
  debug(message: string, meta?: object): void;
}

/** The request part of fetch the client uses; both node-fetch and `globalThis.fetch` accept it. */
export interface FetchRequestInit {
  method: string;
  headers: Record<string, string>;
  body?: string;
  signal: AbortSignal;
  /** A Kling redirect is never followed: following it could carry the Bearer token to another host. */
  redirect: 'manual';
  /** node-fetch only; other implementations ignore it. */
  agent?: http.Agent;
}

/** The response part of fetch the client uses. */
export interface FetchResponseLike {
  readonly status: number;
  readonly headers: { get(name: string): string | null };
  /** A Node Readable (node-fetch) or a web ReadableStream (global fetch); read with a size cap. */
  readonly body?: unknown;
  /** Only used when `body` is neither kind of stream. */
  text(): Promise<string>;
}

/** node-fetch v3, `globalThis.fetch` (undici) or anything shaped like them. */
export type FetchLike = (url: string, init: FetchRequestInit) => Promise<FetchResponseLike>;

/**
 * - `timeout`: the deadline passed (or the OS timed the socket out) before the answer was complete.
 * - `network`: the connection failed: refused, not resolved, reset, hung up, closed mid-body.
 * - `bad_response`: an answer came that is not a Kling envelope (not JSON, not an object with an
 *   integer `code`, code 0 with a non-2xx status, a redirect) or is larger than `maxResponseBytes`.
 * - `kling`: a Kling envelope with a code other than 0.
 */
export type UpstreamErrorKind = 'timeout' | 'network' | 'bad_response' | 'kling';

/** The envelope of a successful Kling answer (code 0). */
export interface KlingReplyEnvelope {
  code: number;
  message: string;
  request_id: string;
  data?: unknown;
}

/** A well-formed Kling answer with code 0. */
export interface KlingReply {
  httpStatus: number;
  envelope: KlingReplyEnvelope;
}

export interface UpstreamErrorInit {
  kind: UpstreamErrorKind;
  ambiguous: boolean;
  accountId: string;
  method: string;
  path: string;
  httpStatus?: number;
  klingCode?: number;
  klingMessage?: string;
  requestId?: string;
  /** Kling's `Retry-After` header, when it sent one. */
  retryAfter?: string;
  cause?: unknown;
}

/**
 * A Kling call that did not end in a code-0 envelope.
 *
 * `ambiguous` says whether the request may have reached Kling and taken effect. When it is true a
 * create call must not be posted again nor refunded blindly: the task is looked up by its
 * `external_task_id` first. It is false only when the request provably never left (the connection
 * was refused, the host did not resolve) or when Kling answered with an error envelope that refuses
 * the request; Kling's 5000 (internal error) and 5002 (internal timeout) do not say whether the task
 * was made, and are ambiguous.
 */
export class UpstreamError extends Error {
  readonly kind: UpstreamErrorKind;
  readonly ambiguous: boolean;
  readonly accountId: string;
  readonly method: string;
  readonly path: string;
  readonly httpStatus: number | undefined;
  readonly klingCode: number | undefined;
  readonly klingMessage: string | undefined;
  readonly requestId: string | undefined;
  readonly retryAfter: string | undefined;

  constructor(message: string, init: UpstreamErrorInit) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'UpstreamError';
    this.kind = init.kind;
    this.ambiguous = init.ambiguous;
    this.accountId = init.accountId;
    this.method = init.method;
    this.path = init.path;
    this.httpStatus = init.httpStatus;
    this.klingCode = init.klingCode;
    this.klingMessage = init.klingMessage;
    this.requestId = init.requestId;
    this.retryAfter = init.retryAfter;
  }
}

export const DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

export interface KlingClientOptions {
  accounts: AccountPool;
  /** Default: node-fetch with a keep-alive agent per protocol. */
  fetch?: FetchLike;
  /** Deadline of one call, headers and body together. */
  timeoutMs: number;
  logger: Logger;
  /** A larger answer is refused as `bad_response` without being read to the end. Default 16 MiB. */
  maxResponseBytes?: number;
  /** Share a token cache (e.g. with another client of the same accounts); default a new one. */
  tokens?: TokenCache;
}

/**
 * Error codes after which the request provably never left this process, so nothing can have
 * happened at Kling. Anything else (resets, hang-ups, premature closes, unknown errors) may have
 * followed a fully sent request and counts as ambiguous.
 */
/**
 * Kling's codes that say Kling failed while handling the request, not that it refused it: 5000
 * (internal error) and 5002 (internal timeout, a backlog) may come after the task was made. 5001
 * (maintenance) turns requests away.
 */
const OUTCOME_UNKNOWN_CODES = new Set([5000, 5002]);

const NEVER_SENT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EAI_FAIL',
  'EAI_NONAME',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'EADDRNOTAVAIL',
  'ERR_INVALID_URL',
  'ERR_INVALID_PROTOCOL',
  // TLS verification fails during the handshake, before a byte of the request is written.
  'CERT_HAS_EXPIRED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** The first error `code` found along the cause chain (node-fetch wraps it once, undici in `cause`). */
function errorCode(err: unknown): string | undefined {
  let current: unknown = err;
  for (let depth = 0; depth < 5 && typeof current === 'object' && current !== null; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && code !== '') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

function errorMessage(err: unknown): string {
  const parts: string[] = [];
  let current: unknown = err;
  for (let depth = 0; depth < 3 && current instanceof Error; depth++) {
    if (current.message && !parts.includes(current.message)) parts.push(current.message);
    current = current.cause;
  }
  return parts.join(': ') || String(err);
}

function isNodeReadable(body: unknown): body is NodeJS.ReadableStream & { on(event: 'error', fn: () => void): unknown } {
  return (
    typeof body === 'object' && body !== null &&
    typeof (body as { on?: unknown }).on === 'function' &&
    typeof (body as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === 'function'
  );
}

interface WebReader {
  read(): Promise<{ done: boolean; value?: unknown }>;
  cancel(reason?: unknown): Promise<void>;
}

function isWebStream(body: unknown): body is { getReader(): WebReader } {
  return typeof body === 'object' && body !== null && typeof (body as { getReader?: unknown }).getReader === 'function';
}

function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (typeof chunk === 'string') return Buffer.from(chunk, 'utf8');
  throw new TypeError('response body yielded a chunk that is not bytes');
}

/** Thrown inside the body reader when the answer exceeds the cap; classified as bad_response. */
class ResponseTooLarge extends Error {}

/**
 * Reads the whole body, refusing to hold more than `limit` bytes: past the cap it calls `abort`
 * (which drops the connection instead of draining it) and throws ResponseTooLarge.
 */
async function readCapped(response: FetchResponseLike, limit: number, abort: () => void): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  const take = (chunk: unknown): void => {
    const buf = toBuffer(chunk);
    size += buf.byteLength;
    if (size > limit) throw new ResponseTooLarge(`response body exceeds ${limit} bytes`);
    chunks.push(buf);
  };
  const body = response.body;
  if (isWebStream(body)) {
    const reader = body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        take(value);
      }
    } catch (err) {
      if (err instanceof ResponseTooLarge) {
        abort();
        reader.cancel().catch(() => undefined);
      }
      throw err;
    }
  } else if (isNodeReadable(body)) {
    try {
      for await (const chunk of body) take(chunk);
    } catch (err) {
      // Leaving the loop destroys the stream; aborting as well closes the socket rather than
      // returning a half-read one to the pool.
      if (err instanceof ResponseTooLarge) abort();
      throw err;
    }
  } else {
    take(await response.text());
  }
  return Buffer.concat(chunks, size);
}

function parseEnvelope(bytes: Buffer): KlingReplyEnvelope | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
  const { code, message, request_id: requestId, data } = parsed as Record<string, unknown>;
  if (typeof code !== 'number' || !Number.isInteger(code)) return undefined;
  const envelope: KlingReplyEnvelope = {
    code,
    message: typeof message === 'string' ? message : '',
    request_id: typeof requestId === 'string' ? requestId : '',
  };
  if (data !== undefined) envelope.data = data;
  return envelope;
}

/**
 * Calls Kling as one account: signs with a cached JWT, enforces one deadline over headers and body,
 * caps the answer size, and turns every failure into an UpstreamError that says whether the call
 * may have taken effect. It never retries: whether a retry is safe is the caller's decision.
 */
export class KlingClient {
  readonly #accounts: KlingClientOptions['accounts'];
  readonly #fetch: FetchLike;
  readonly #timeoutMs: number;
  readonly #logger: Logger;
  readonly #maxResponseBytes: number;
  readonly #tokens: TokenCache;
  readonly #agents: { http: http.Agent; https: https.Agent } | undefined;

  constructor(options: KlingClientOptions) {
    if (!Number.isFinite(options.timeoutMs) || options.timeoutMs <= 0) {
      throw new RangeError(`KlingClient: timeoutMs must be a positive number of milliseconds, got ${String(options.timeoutMs)}`);
    }
    const maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    if (!Number.isInteger(maxResponseBytes) || maxResponseBytes <= 0) {
      throw new RangeError(`KlingClient: maxResponseBytes must be a positive integer, got ${String(maxResponseBytes)}`);
    }
    this.#accounts = options.accounts;
    this.#timeoutMs = options.timeoutMs;
    this.#logger = options.logger;
    this.#maxResponseBytes = maxResponseBytes;
    this.#tokens = options.tokens ?? new TokenCache();
    if (options.fetch) {
      this.#fetch = options.fetch;
      // A host's own fetch brings its own connection policy; ours would only override it.
      this.#agents = undefined;
    } else {
      this.#fetch = nodeFetch;
      // Kling is one or two hosts called over and over: reusing TLS connections saves a handshake
      // (and its latency) on almost every call. As many idle sockets are kept as may be open, or a burst
      // of calls would close most of its sockets afterwards and open them again at the next burst.
      this.#agents = {
        http: new http.Agent({ keepAlive: true, maxSockets: 64, maxFreeSockets: 64 }),
        https: new https.Agent({ keepAlive: true, maxSockets: 64, maxFreeSockets: 64 }),
      };
    }
  }

  /** The account pool this client was built with, for callers that route by account id. */
  get accounts(): KlingClientOptions['accounts'] {
    return this.#accounts;
  }

  /** POST a JSON body, e.g. `post(account, '/v1/videos/text2video', body)`. */
  post(account: KlingAccount, path: string, body: object): Promise<KlingReply> {
    return this.#call(account, 'POST', path, JSON.stringify(body));
  }

  /** GET a path with its query string, e.g. `get(account, '/v1/videos/text2video/123')`. */
  get(account: KlingAccount, pathWithQuery: string): Promise<KlingReply> {
    return this.#call(account, 'GET', pathWithQuery, undefined);
  }

  /** Closes the pooled connections of the default fetch; the client stays usable (new sockets open). */
  close(): void {
    this.#agents?.http.destroy();
    this.#agents?.https.destroy();
  }

  async #call(account: KlingAccount, method: 'GET' | 'POST', path: string, body: string | undefined): Promise<KlingReply> {
    if (!path.startsWith('/')) throw new TypeError(`KlingClient: path must start with "/", got "${path}"`);
    const started = performance.now();
    const logPath = path;
    const fail = (message: string, init: Omit<UpstreamErrorInit, 'accountId' | 'method' | 'path'>): UpstreamError =>
      new UpstreamError(message, { ...init, accountId: account.id, method, path });

    const controller = new AbortController();
    let timedOut = false;
    // One clearable timer rather than AbortSignal.timeout: the same signal must also be abortable
    // by us when a body grows past the cap, and a finished call should not leave a timer behind.
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new DOMException(`Kling did not answer within ${this.#timeoutMs} ms`, 'TimeoutError'));
    }, this.#timeoutMs);

    let httpStatus: number | undefined;
    try {
      // An API key is the Bearer credential itself; an access/secret key pair signs a JWT.
      const credential = account.apiKey ?? this.#tokens.peek(account) ?? (await this.#tokens.token(account));
      const url = account.baseUrl + path;
      const headers: Record<string, string> = { Authorization: `Bearer ${credential}`, Accept: 'application/json' };
      if (body !== undefined) headers['Content-Type'] = 'application/json';
      const init: FetchRequestInit = { method, headers, signal: controller.signal, redirect: 'manual' };
      if (body !== undefined) init.body = body;
      if (this.#agents) init.agent = url.startsWith('https:') ? this.#agents.https : this.#agents.http;

      let response: FetchResponseLike;
      try {
        response = await this.#fetch(url, init);
      } catch (err) {
        throw this.#transportError(err, timedOut, false, fail);
      }
      httpStatus = response.status;
      // node-fetch re-emits an abort as an 'error' event on the body; without a listener that
      // event would crash the process if the deadline passes between here and the first read.
      if (isNodeReadable(response.body)) response.body.on('error', () => undefined);

      const declared = Number(response.headers.get('content-length') ?? Number.NaN);
      if (Number.isFinite(declared) && declared > this.#maxResponseBytes) {
        controller.abort();
        throw fail(`Kling answered HTTP ${httpStatus} with a ${declared}-byte body, over the ${this.#maxResponseBytes}-byte limit`, {
          kind: 'bad_response', ambiguous: true, httpStatus,
        });
      }

      let bytes: Buffer;
      try {
        bytes = await readCapped(response, this.#maxResponseBytes, () => controller.abort());
      } catch (err) {
        if (err instanceof ResponseTooLarge) {
          throw fail(`Kling answered HTTP ${httpStatus} with a body over the ${this.#maxResponseBytes}-byte limit`, {
            kind: 'bad_response', ambiguous: true, httpStatus,
          });
        }
        throw this.#transportError(err, timedOut, true, fail, httpStatus);
      }

      const envelope = parseEnvelope(bytes);
      if (!envelope) {
        // Whatever answered (Kling, a gateway) may have acted on the request first.
        throw fail(`Kling answered HTTP ${httpStatus} with a body that is not a Kling envelope`, {
          kind: 'bad_response', ambiguous: true, httpStatus,
        });
      }
      if (envelope.code !== 0) {
        const retryAfter = response.headers.get('retry-after') ?? undefined;
        throw fail(`Kling answered HTTP ${httpStatus} code ${envelope.code}: ${envelope.message}`, {
          kind: 'kling', ambiguous: OUTCOME_UNKNOWN_CODES.has(envelope.code), httpStatus,
          klingCode: envelope.code, klingMessage: envelope.message, requestId: envelope.request_id,
          ...(retryAfter !== undefined ? { retryAfter } : {}),
        });
      }
      if (httpStatus < 200 || httpStatus > 299) {
        throw fail(`Kling answered HTTP ${httpStatus} with code 0`, { kind: 'bad_response', ambiguous: true, httpStatus });
      }
      this.#logger.info('kling upstream call', {
        account: account.id, method, path: logPath, status: httpStatus, durationMs: elapsed(started),
        klingCode: 0, klingRequestId: envelope.request_id,
      });
      return { httpStatus, envelope };
    } catch (err) {
      if (err instanceof UpstreamError) {
        this.#logger.warn('kling upstream call failed', {
          account: account.id, method, path: logPath, status: err.httpStatus, durationMs: elapsed(started),
          kind: err.kind, ambiguous: err.ambiguous, klingCode: err.klingCode, klingRequestId: err.requestId,
          error: loggable(err.message),
        });
      }
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  #transportError(
    err: unknown,
    timedOut: boolean,
    gotHeaders: boolean,
    fail: (message: string, init: Omit<UpstreamErrorInit, 'accountId' | 'method' | 'path'>) => UpstreamError,
    httpStatus?: number,
  ): UpstreamError {
    const status = httpStatus === undefined ? {} : { httpStatus };
    const code = errorCode(err);
    // ETIMEDOUT is the OS giving up on the socket: the same situation as our deadline passing.
    if (timedOut || code === 'ETIMEDOUT') {
      return fail(`Kling did not answer within ${this.#timeoutMs} ms`, { kind: 'timeout', ambiguous: true, cause: err, ...status });
    }
    // Once headers came back the request certainly arrived, whatever broke afterwards.
    const ambiguous = gotHeaders || code === undefined || !NEVER_SENT_CODES.has(code);
    return fail(`Kling call failed: ${errorMessage(err)}${code ? ` (${code})` : ''}`, { kind: 'network', ambiguous, cause: err, ...status });
  }
}

/**
 * An error message fit for a log line. A message from Kling or a gateway in front of it may quote
 * the request, and with it a base64 image: long runs of base64-looking characters are replaced by
 * their length and the whole is capped, so a log line never carries media.
 */
export function loggable(message: string): string {
  const cut = message.replace(/[A-Za-z0-9+/=_-]{100,}/g, (run) => `[${run.length} characters cut]`);
  return cut.length > 500 ? `${cut.slice(0, 500)}... [${cut.length - 500} more characters]` : cut;
}

function elapsed(started: number): number {
  return Math.round(performance.now() - started);
}

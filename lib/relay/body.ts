import type { IncomingMessage } from 'node:http';
import { parse as parseContentType } from 'content-type';
import { RelayHttpError } from '../errors.js';

/** True when the request says it carries JSON (application/json or +json). */
export function isJsonRequest(req: IncomingMessage): boolean {
  const header = req.headers['content-type'];
  if (!header) return false;
  try {
    const type = parseContentType(header).type;
    return type === 'application/json' || type.endsWith('+json');
  } catch {
    return false;
  }
}

/**
 * Most JSON values (objects, arrays, keys' values and array items) a request body may hold. Kling's
 * largest bodies (six motion-brush groups of 77 points) hold under 1500; a limit far above that keeps
 * JSON.parse, validation and everything after them bounded by a small multiple of the body's size.
 */
export const MAX_JSON_VALUES = 10_000;
/** Deepest nesting of objects and arrays a request body may have; Kling's bodies nest under 6. */
export const MAX_JSON_DEPTH = 32;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;

const tooMany = (): RelayHttpError => new RelayHttpError(400, 1200, `request body has more than ${MAX_JSON_VALUES} JSON values; no Kling request needs that many`);
const tooDeep = (): RelayHttpError => new RelayHttpError(400, 1200, `request body nests JSON deeper than ${MAX_JSON_DEPTH} levels; no Kling request needs that`);

/**
 * The limits JsonBodyCounter counts, for a value parsed already (a host's express.json()): a walk
 * that stops at the first value over the limit, so its work is bounded by the limit, not by the body.
 */
export function checkJsonValue(value: unknown): void {
  let values = 1;
  const stack: [object, number][] = typeof value === 'object' && value !== null ? [[value, 1]] : [];
  for (let top = stack.pop(); top !== undefined; top = stack.pop()) {
    const [node, depth] = top;
    if (depth > MAX_JSON_DEPTH) throw tooDeep();
    const visit = (child: unknown): void => {
      if (++values > MAX_JSON_VALUES) throw tooMany();
      if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
    };
    if (Array.isArray(node)) {
      for (const item of node as unknown[]) visit(item);
    } else {
      for (const key in node) if (Object.hasOwn(node, key)) visit((node as Record<string, unknown>)[key]);
    }
  }
}

/**
 * Refuses JSON with more values or deeper nesting than a Kling body has, counted on the bytes of a
 * body as they arrive, chunk by chunk: a body over the limits is refused when its first values over
 * them arrive, not once all of it has, and counting allocates nothing. The count is 1 + commas +
 * opening brackets outside strings: every value but the first follows one of them. JSON's structural
 * characters are ASCII, and no byte of a multi-byte UTF-8 character is one, so bytes can be counted
 * before they are decoded. Strings are skipped with indexOf, so a body of big base64 strings costs
 * little more than finding its quotes. Malformed text is left to JSON.parse.
 */
export class JsonBodyCounter {
  #values = 1;
  #depth = 0;
  #inString = false;
  /** Backslashes at the end of the last chunk, inside a string: they may escape the next chunk's first quote. */
  #slashes = 0;

  feed(chunk: Uint8Array): void {
    const length = chunk.length;
    let i = 0;
    while (i < length) {
      if (this.#inString) {
        const quote = chunk.indexOf(QUOTE, i);
        const end = quote === -1 ? length : quote;
        let run = 0;
        while (end - 1 - run >= i && chunk[end - 1 - run] === BACKSLASH) run++;
        // A run that reaches the chunk's start goes on from the last chunk's.
        if (i === 0 && run === end) run += this.#slashes;
        if (quote === -1) {
          this.#slashes = run;
          return;
        }
        this.#slashes = 0;
        if (run % 2 === 0) this.#inString = false;
        i = quote + 1;
        continue;
      }
      const c = chunk[i];
      if (c === QUOTE) {
        this.#inString = true;
      } else if (c === COMMA) {
        if (++this.#values > MAX_JSON_VALUES) throw tooMany();
      } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
        if (++this.#values > MAX_JSON_VALUES) throw tooMany();
        if (++this.#depth > MAX_JSON_DEPTH) throw tooDeep();
      } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
        this.#depth--;
      }
      i++;
    }
  }
}

const bodyTooLarge = (limit: number): RelayHttpError => new RelayHttpError(413, 1200, `request body is larger than the limit of ${limit} bytes`);

/**
 * The checks readCheckedBytes makes as a body arrives, for the bytes of one read already (kept by a
 * body parser in front of the relay): at most `limit` bytes, within the JSON limits.
 */
export function checkBodyBytes(bytes: Uint8Array, limit: number): void {
  if (bytes.length > limit) throw bodyTooLarge(limit);
  new JsonBodyCounter().feed(bytes);
}

/**
 * The body's bytes, read up to `limit` bytes and checked by a JsonBodyCounter as it arrives. Refused
 * (413 over the limit, 400 over the JSON limits or when the body ends short of its Content-Length),
 * the rest of the body is read and dropped, not kept. Kling's callbacks are read by it too: their
 * signature is checked over these bytes.
 */
export function readCheckedBytes(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
  const tooLarge = (): RelayHttpError => bodyTooLarge(limit);
  if (declared !== undefined && declared > limit) {
    req.resume();
    return Promise.reject(tooLarge());
  }
  // Read already by something in front of the relay that left no parsed body: no 'end' would come.
  if (!req.readable) return Promise.reject(new RelayHttpError(400, 1200, 'could not read the request body: it was read before the relay'));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const counter = new JsonBodyCounter();
    let received = 0;
    const stop = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    const fail = (error: RelayHttpError): void => {
      stop();
      chunks.length = 0;
      req.resume();
      reject(error);
    };
    const onData = (data: Buffer | string): void => {
      // Bytes, unless something in front of the relay set the stream's encoding.
      const chunk = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      received += chunk.length;
      if (received > limit) return fail(tooLarge());
      try {
        counter.feed(chunk);
      } catch (error) {
        return fail(error as RelayHttpError);
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      stop();
      if (declared !== undefined && received !== declared) return reject(new RelayHttpError(400, 1200, 'could not read the request body: it ended before its Content-Length'));
      resolve(Buffer.concat(chunks, received));
    };
    const onError = (cause: Error): void => fail(new RelayHttpError(400, 1200, 'could not read the request body', { cause }));
    const onClose = (): void => {
      if (!req.complete) fail(new RelayHttpError(400, 1200, 'could not read the request body: the connection closed before its end'));
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

/** Whether a body parser in front of the relay (express.json()) read the body already. */
export function parsedByHost(req: IncomingMessage & { body?: unknown; _body?: boolean }): boolean {
  return req._body === true || (req.body !== undefined && req.readableEnded);
}

/**
 * The parsed JSON body. A host that parsed the body already (express.json() before the relay) is
 * respected; otherwise the stream is read once, up to `limit` bytes. Either way a body with more JSON
 * values or deeper nesting than any Kling body is refused (400/1200) before anything else reads it,
 * and a body read here as soon as the values over the limits arrive.
 */
export async function readJsonBody(req: IncomingMessage & { body?: unknown; _body?: boolean }, limit: number): Promise<unknown> {
  if (parsedByHost(req)) {
    checkJsonValue(req.body);
    return req.body;
  }
  const text = (await readCheckedBytes(req, limit)).toString('utf8');
  try {
    // A byte order mark is not JSON; a decoder for the body's charset drops it.
    return JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text) as unknown;
  } catch (cause) {
    throw new RelayHttpError(400, 1200, `malformed JSON: ${(cause as Error).message}`, { cause });
  }
}

/** A GET call's request: its query string as an object of strings (a repeated name keeps its last value). */
export function queryInput(req: IncomingMessage): Record<string, string> {
  const query = (req.url ?? '').split('?')[1] ?? '';
  return Object.fromEntries(new URLSearchParams(query));
}

import type { IncomingMessage } from 'node:http';
import { parse as parseContentType } from 'content-type';
import getRawBody from 'raw-body';
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

/** The index of the quote that closes the string whose opening quote is at `open`, or -1. */
function stringEnd(text: string, open: number): number {
  let end = text.indexOf('"', open + 1);
  while (end !== -1) {
    let slashes = 0;
    while (text.charCodeAt(end - 1 - slashes) === BACKSLASH) slashes++;
    if (slashes % 2 === 0) return end;
    end = text.indexOf('"', end + 1);
  }
  return -1;
}

/**
 * Refuses JSON text with more values or deeper nesting than a Kling body has, in one pass over the
 * text that allocates nothing and stops at the first value over the limit. Strings are skipped with
 * indexOf, so a body of big base64 strings costs little more than finding its quotes. The count is
 * 1 + commas + opening brackets outside strings: every value but the first follows one of them.
 * Malformed text is left to JSON.parse.
 */
export function checkJsonText(text: string): void {
  let values = 1;
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      i = stringEnd(text, i);
      if (i === -1) return;
    } else if (c === COMMA) {
      if (++values > MAX_JSON_VALUES) throw tooMany();
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++values > MAX_JSON_VALUES) throw tooMany();
      if (++depth > MAX_JSON_DEPTH) throw tooDeep();
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      depth--;
    }
  }
}

/**
 * The same limits for a value parsed already (a host's express.json()): a walk that stops at the
 * first value over the limit, so its work is bounded by the limit, not by the body.
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

/** Whether a body parser in front of the relay (express.json()) read the body already. */
export function parsedByHost(req: IncomingMessage & { body?: unknown; _body?: boolean }): boolean {
  return req._body === true || (req.body !== undefined && req.readableEnded);
}

/**
 * The parsed JSON body. A host that parsed the body already (express.json() before the relay) is
 * respected; otherwise the stream is read once, up to `limit` bytes. Either way a body with more JSON
 * values or deeper nesting than any Kling body is refused (400/1200) before anything else reads it.
 */
export async function readJsonBody(req: IncomingMessage & { body?: unknown; _body?: boolean }, limit: number): Promise<unknown> {
  if (parsedByHost(req)) {
    checkJsonValue(req.body);
    return req.body;
  }
  let text: string;
  try {
    text = await getRawBody(req, { limit, length: req.headers['content-length'], encoding: 'utf8' });
  } catch (cause) {
    const type = (cause as { type?: string }).type;
    if (type === 'entity.too.large') throw new RelayHttpError(413, 1200, `request body is larger than the limit of ${limit} bytes`, { cause });
    throw new RelayHttpError(400, 1200, 'could not read the request body', { cause });
  }
  checkJsonText(text);
  try {
    return JSON.parse(text) as unknown;
  } catch (cause) {
    throw new RelayHttpError(400, 1200, `malformed JSON: ${(cause as Error).message}`, { cause });
  }
}

/** A GET call's request: its query string as an object of strings (a repeated name keeps its last value). */
export function queryInput(req: IncomingMessage): Record<string, string> {
  const query = (req.url ?? '').split('?')[1] ?? '';
  return Object.fromEntries(new URLSearchParams(query));
}

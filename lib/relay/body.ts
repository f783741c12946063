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
 * The parsed JSON body. A host that parsed the body already (express.json() before the relay) is
 * respected; otherwise the stream is read once, up to `limit` bytes.
 */
export async function readJsonBody(req: IncomingMessage & { body?: unknown; _body?: boolean }, limit: number): Promise<unknown> {
  if (req._body === true || (req.body !== undefined && req.readableEnded)) return req.body;
  let text: string;
  try {
    text = await getRawBody(req, { limit, length: req.headers['content-length'], encoding: 'utf8' });
  } catch (cause) {
    const type = (cause as { type?: string }).type;
    if (type === 'entity.too.large') throw new RelayHttpError(413, 1200, `request body is larger than the limit of ${limit} bytes`, { cause });
    throw new RelayHttpError(400, 1200, 'could not read the request body', { cause });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (cause) {
    throw new RelayHttpError(400, 1200, `malformed JSON: ${(cause as Error).message}`, { cause });
  }
}

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { KlingSandbox } from '../../lib/sandbox/index.js';

export interface Answer {
  status: number;
  // Tests read arbitrary envelope fields, so the body is loosely typed on purpose.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
  text: string;
}

/** One call to the sandbox with a fresh token of its first account (or the given header). */
export async function call(
  sandbox: KlingSandbox,
  method: 'GET' | 'POST' | 'PUT',
  path: string,
  options: { body?: unknown; rawBody?: string; authorization?: string | null; signal?: AbortSignal } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  const authorization = options.authorization === undefined ? `Bearer ${await sandbox.token()}` : options.authorization;
  if (authorization !== null) headers.authorization = authorization;
  const res = await fetch(sandbox.url + path, {
    method,
    headers,
    body: options.rawBody ?? (options.body === undefined ? undefined : JSON.stringify(options.body)),
    signal: options.signal ?? null,
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}

export interface Receiver {
  url: string;
  bodies: { task_id: string; task_status: string; [key: string]: unknown }[];
  /** Each request's body as received and its headers, in the order of `bodies`. */
  raw: { body: string; headers: Record<string, string | string[] | undefined> }[];
  close(): Promise<void>;
}

/** A real callback endpoint that records every JSON body POSTed to it. */
export async function startReceiver(): Promise<Receiver> {
  const bodies: Receiver['bodies'] = [];
  const raw: Receiver['raw'] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      raw.push({ body: Buffer.concat(chunks).toString('utf8'), headers: { ...req.headers } });
      bodies.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Receiver['bodies'][number]);
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/kling/callback?token=t`,
    bodies,
    raw,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export async function waitFor(check: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

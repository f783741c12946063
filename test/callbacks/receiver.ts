import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';

/** One request a receiver got. */
export interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  /** The raw body, as signed. */
  raw: string;
  body: Record<string, unknown>;
}

/** How the receiver answers one request: a status (with optional headers), or 'hang' (never answers). */
export type Answer = number | { status: number; headers?: Record<string, string> } | 'hang';

/**
 * A caller's callback endpoint: a real local HTTP server that records every request and answers 200,
 * or what `answerNext` queued. `stop()` closes the port (connections are refused), `start()` opens the
 * same port again.
 */
export class Receiver {
  readonly requests: Received[] = [];
  private server: Server | undefined;
  private port = 0;
  private readonly queued: Answer[] = [];
  /** Answer for requests when nothing is queued. */
  answer: Answer = 200;

  /** With `tls`, an HTTPS receiver with that key and certificate. */
  constructor(private readonly tls?: { key: string; cert: string }) {}

  get url(): string {
    return this.urlWith('127.0.0.1');
  }

  /** The URL with another host name (e.g. localhost) and path. */
  urlWith(host: string, path = '/hook'): string {
    return `${this.tls ? 'https' : 'http'}://${host}:${this.port}${path}`;
  }

  answerNext(...answers: Answer[]): void {
    this.queued.push(...answers);
  }

  /** Bodies of the requests received, in order. */
  bodies(): Record<string, unknown>[] {
    return this.requests.map((r) => r.body);
  }

  statuses(): unknown[] {
    return this.requests.map((r) => r.body.task_status);
  }

  async start(): Promise<void> {
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        let body: Record<string, unknown> = {};
        try {
          body = JSON.parse(raw) as Record<string, unknown>;
        } catch {
          body = { unparsed: raw };
        }
        this.requests.push({ path: req.url ?? '', headers: req.headers, raw, body });
        this.reply(res, this.queued.shift() ?? this.answer);
      });
    };
    const server: Server = this.tls ? createTlsServer(this.tls, handler) : createServer(handler);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private reply(res: ServerResponse, answer: Answer): void {
    if (answer === 'hang') return;
    const { status, headers } = typeof answer === 'number' ? { status: answer, headers: {} } : { status: answer.status, headers: answer.headers ?? {} };
    res.writeHead(status, { 'content-type': 'text/plain', ...headers });
    res.end('ok');
  }
}

export async function startReceiver(tls?: { key: string; cert: string }): Promise<Receiver> {
  const receiver = new Receiver(tls);
  await receiver.start();
  return receiver;
}

import type { IncomingMessage, ServerResponse } from 'node:http';
import { type KlingError, requestId } from './codes.js';

export function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export function sendRaw(res: ServerResponse, status: number, body: string, contentType = 'application/json; charset=utf-8'): void {
  if (res.destroyed || res.headersSent) return;
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

export function sendData(res: ServerResponse, data: unknown): void {
  sendRaw(res, 200, JSON.stringify({ code: 0, message: 'SUCCEED', request_id: requestId(), data }));
}

export function sendError(res: ServerResponse, err: KlingError): void {
  sendRaw(res, err.httpStatus, JSON.stringify({ code: err.code, message: err.message, request_id: requestId() }));
}

import type { ServerResponse } from 'node:http';
import type { RelayHttpError} from '../errors.js';
import { errorEnvelope, successEnvelope, type KlingEnvelope } from '../errors.js';

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(text));
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  res.end(text);
}

export function sendSuccess(res: ServerResponse, data: unknown, requestId: string): void {
  sendJson(res, 200, successEnvelope(data, requestId) satisfies KlingEnvelope);
}

export function sendError(res: ServerResponse, error: RelayHttpError, requestId: string): void {
  sendJson(res, error.status, errorEnvelope(error, requestId), error.headers);
}

import { randomUUID } from 'node:crypto';
import type { KlingFault } from './types.js';

/** Kling's service codes and the HTTP status Kling answers each with. */
const KLING_CODES: Record<number, readonly [number, string]> = {
  1000: [401, 'Authentication failed'],
  1001: [401, 'Authorization is empty'],
  1002: [401, 'Authorization is invalid'],
  1003: [401, 'Authorization is not yet valid'],
  1004: [401, 'Authorization has expired'],
  1100: [429, 'Account exception'],
  1101: [429, 'Account in arrears'],
  1102: [429, 'Resource pack depleted or expired'],
  1103: [403, 'Unauthorized access to requested resource'],
  1200: [400, 'Invalid request parameters'],
  1201: [400, 'Invalid parameters'],
  1202: [404, 'Requested method is invalid'],
  1203: [404, 'Requested resource does not exist'],
  1300: [400, 'Platform strategy triggered'],
  1301: [400, 'Content security policy triggered'],
  1302: [429, 'Request rate too high'],
  1303: [429, 'parallel task over resource pack limit'],
  1304: [429, 'IP whitelist policy triggered'],
  5000: [500, 'Server internal error'],
  5001: [503, 'Service temporarily unavailable'],
  5002: [504, 'Server internal timeout'],
};

/** An error the sandbox answers in Kling's error body `{code, message, request_id}`. */
export class KlingError extends Error {
  readonly httpStatus: number;
  readonly code: number;
  constructor(code: number, message?: string, httpStatus?: number) {
    const known = KLING_CODES[code];
    super(message ?? known?.[1] ?? `error ${code}`);
    this.name = 'KlingError';
    this.code = code;
    this.httpStatus = httpStatus ?? known?.[0] ?? 500;
  }

  static from(fault: KlingFault): KlingError {
    return new KlingError(fault.code, fault.message, fault.httpStatus);
  }
}

export function requestId(): string {
  return randomUUID();
}

import { randomUUID } from 'node:crypto';

/**
 * A configuration problem found while the relay is created: a bad option, an invalid registry,
 * a missing schema file, an invalid pricing file. `code` is stable (`ERR_KLING_RELAY_*`) and the
 * message names the offending option or entry and says how to fix it.
 */
export class KlingRelayConfigError extends Error {
  readonly code: string;
  constructor(code: `ERR_KLING_RELAY_${string}`, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KlingRelayConfigError';
    this.code = code;
  }
}

/** One field a client got wrong: a JSON path (`/camera_control/config/pan`) and what is allowed. */
export interface FieldError {
  path: string;
  message: string;
}

/**
 * An error answered to a client in Kling's envelope:
 * `{"code": <kling code>, "message": "...", "request_id": "...", "errors": [...]}`.
 */
export class RelayHttpError extends Error {
  readonly status: number;
  readonly klingCode: number;
  readonly errors: FieldError[] | undefined;
  readonly headers: Record<string, string>;
  constructor(
    status: number,
    klingCode: number,
    message: string,
    extra: { errors?: FieldError[]; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(message, { cause: extra.cause });
    this.name = 'RelayHttpError';
    this.status = status;
    this.klingCode = klingCode;
    this.errors = extra.errors;
    this.headers = extra.headers ?? {};
  }
}

export interface KlingEnvelope<T = unknown> {
  code: number;
  message: string;
  request_id: string;
  data?: T;
  errors?: FieldError[];
}

export function newRequestId(): string {
  return randomUUID();
}

export function successEnvelope<T>(data: T, requestId: string = newRequestId()): KlingEnvelope<T> {
  return { code: 0, message: 'SUCCEED', request_id: requestId, data };
}

export function errorEnvelope(err: RelayHttpError, requestId: string = newRequestId()): KlingEnvelope {
  const body: KlingEnvelope = { code: err.klingCode, message: err.message, request_id: requestId };
  if (err.errors) body.errors = err.errors;
  return body;
}

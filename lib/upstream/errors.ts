import { RelayHttpError } from '../errors.js';
import { UpstreamError } from './client.js';

/** Kling rejected what the client asked for; the client can fix it, so it sees Kling's own code and message. */
const CLIENT_CODES = new Set([1200, 1201, 1202, 1203, 1300, 1301]);
/** Kling's rate and concurrency limits: worth retrying later. */
const RATE_LIMIT_CODES = new Set([1302, 1303]);
/**
 * Our credentials or our Kling account are at fault (bad token, arrears, depleted pack, model not
 * enabled, IP not whitelisted). The client can do nothing about it, and Kling's wording would
 * expose the reseller's account state, so it gets a generic 5001 and the operator an error log.
 */
const ACCOUNT_CODES = new Set([1000, 1001, 1002, 1003, 1004, 1100, 1101, 1102, 1103, 1304]);
/** Kling's own failures (internal error, maintenance, backlog timeout). */
const SERVER_CODES = new Set([5000, 5001, 5002]);

/** Retry-After sent with a 429 when Kling gave none; Kling advises backing off from at least 1 s. */
export const DEFAULT_RETRY_AFTER = '1';

function isUnknownCode(code: number): boolean {
  return !CLIENT_CODES.has(code) && !RATE_LIMIT_CODES.has(code) && !ACCOUNT_CODES.has(code) && !SERVER_CODES.has(code);
}

/**
 * True when the failure lies with the relay's Kling account or keys rather than with the request:
 * the caller should log it as an error (an operator has to act) and may stop using the account.
 */
export function isAccountProblem(err: unknown): boolean {
  if (!(err instanceof UpstreamError) || err.kind !== 'kling' || err.klingCode === undefined) return false;
  if (ACCOUNT_CODES.has(err.klingCode)) return true;
  // A code missing from Kling's table, sent with an auth status, is treated as one of the auth rows.
  return isUnknownCode(err.klingCode) && (err.httpStatus === 401 || err.httpStatus === 403);
}

/** True when Kling answered that it has no such task (1203, or HTTP 404). */
export function isTaskNotFound(err: unknown): boolean {
  return err instanceof UpstreamError && err.kind === 'kling' && (err.klingCode === 1203 || err.httpStatus === 404);
}

/** `Sun, 06 Nov 1994 08:49:37 GMT`; Date.parse alone accepts far too much. */
const IMF_FIXDATE = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/;

function retryAfter(err: UpstreamError): string {
  const sent = err.retryAfter?.trim();
  // Passed on only in one of the two forms RFC 9110 allows, so a garbled header never reaches the client.
  if (sent && (/^\d{1,6}$/.test(sent) || IMF_FIXDATE.test(sent))) return sent;
  return DEFAULT_RETRY_AFTER;
}

/**
 * What the client sees when a Kling call failed:
 *
 * | upstream | HTTP | code |
 * |---|---|---|
 * | Kling 1200-1203, 1300-1301 | 400 | Kling's code and message |
 * | Kling 1302, 1303 | 429 + Retry-After | Kling's code and message |
 * | Kling 1000-1004, 1100-1103, 1304 | 503 | 5001 "upstream account unavailable" |
 * | Kling 5xxx or any other code | 502 | 5000 |
 * | timeout | 504 | 5002 |
 * | network, bad_response | 502 | 5000 |
 *
 * Codes outside Kling's table fall back on the HTTP status Kling sent with them: 401/403 as an
 * account problem, 429 as a rate limit, another 4xx as a client error, anything else as 502.
 */
export function toRelayError(err: UpstreamError): RelayHttpError {
  const cause = { cause: err };
  switch (err.kind) {
    case 'timeout':
      return new RelayHttpError(504, 5002, 'upstream timeout: Kling did not answer in time', cause);
    case 'network':
      return new RelayHttpError(502, 5000, 'upstream unreachable: the connection to Kling failed', cause);
    case 'bad_response':
      return new RelayHttpError(502, 5000, 'upstream error: Kling sent an answer that could not be read', cause);
    case 'kling':
      break;
  }
  const code = err.klingCode ?? 5000;
  const status = err.httpStatus ?? 0;
  const message = err.klingMessage || `Kling error ${code}`;
  if (isAccountProblem(err)) return new RelayHttpError(503, 5001, 'upstream account unavailable', cause);
  if (RATE_LIMIT_CODES.has(code) || (isUnknownCode(code) && status === 429)) {
    return new RelayHttpError(429, code, message, { ...cause, headers: { 'Retry-After': retryAfter(err) } });
  }
  if (CLIENT_CODES.has(code) || (isUnknownCode(code) && status >= 400 && status <= 499)) {
    return new RelayHttpError(400, code, message, cause);
  }
  return new RelayHttpError(502, 5000, 'upstream error: Kling failed to process the request', cause);
}

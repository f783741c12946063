import type { ServerResponse } from 'node:http';
import { KlingError, requestId } from './codes.js';
import type { FaultSwitches } from './faults.js';
import { sendRaw } from './http.js';
import type { QueryFault } from './types.js';

/**
 * Takes the query fault a test switched on, for a query about to be answered. A hang keeps the
 * response open, `http-500` throws Kling's 5000, `reset` drops the connection, and `garbage` and `no-data` are sent here: those
 * answer 'answered'. `huge` and `unknown-status` come back to the caller, which shapes its own answer
 * with them; undefined when no fault was switched on.
 */
export function takeQueryFault(ctx: { faults: FaultSwitches; hung: Set<ServerResponse> }, res: ServerResponse): Extract<QueryFault, 'huge' | 'unknown-status'> | 'answered' | undefined {
  if (ctx.faults.takeQueryHang()) {
    ctx.hung.add(res);
    res.once('close', () => ctx.hung.delete(res));
    return 'answered';
  }
  const fault = ctx.faults.takeQueryFault();
  if (fault === 'http-500') throw new KlingError(5000);
  if (fault === 'reset') {
    res.socket?.destroy();
    return 'answered';
  }
  if (fault === 'garbage') {
    // Declared JSON, so a client that trusts the content type is caught out too.
    sendRaw(res, 200, '<html><body>502 Bad Gateway</body></html>');
    return 'answered';
  }
  if (fault === 'no-data') {
    sendRaw(res, 200, JSON.stringify({ code: 0, message: 'SUCCEED', request_id: requestId() }));
    return 'answered';
  }
  return fault;
}

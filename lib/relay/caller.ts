import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Request, Response } from 'express';
import { RelayHttpError } from '../errors.js';
import type { Caller } from '../options.js';
import type { RelayContext } from './context.js';

/** The caller the host's `identify` names; a request it names no one for is refused with 401/1000. */
export async function identifyCaller(ctx: RelayContext, req: IncomingMessage, res: ServerResponse): Promise<Caller> {
  const caller = await ctx.config.identify(req as Request, res as Response);
  if (!caller || (typeof caller.id !== 'string' && typeof caller.id !== 'number') || caller.id === '') {
    throw new RelayHttpError(401, 1000, 'authentication required: the host did not identify a caller');
  }
  return caller;
}

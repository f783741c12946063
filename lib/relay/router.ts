import type { IncomingMessage, ServerResponse } from 'node:http';
import { newRequestId, RelayHttpError } from '../errors.js';
import type { RelayContext } from './context.js';
import { loggableError } from '../loggable-error.js';
import { openApiDocument } from '../openapi.js';
import { sendError, sendJson } from './respond.js';
import { queryList, queryOne } from './query.js';
import { queryStandardTasks } from './standard-query.js';
import { submit } from './submit.js';
import { listStandardTasks } from './task-listing.js';

/** The standard family's task queries: `GET /tasks?task_ids=` or `?external_task_ids=`, and the `POST /tasks` listing. */
const STANDARD_TASKS = '/tasks';

export type NextFunction = (error?: unknown) => void;

/** An Express-compatible handler (Express 4 and 5 alike): mount it with app.use('/kling', relay.router). */
export type RelayRouter = (req: IncomingMessage, res: ServerResponse, next: NextFunction) => void;

/** The path relative to the mount point, without the query and one trailing slash (Kling accepts both). */
function routePath(url: string | undefined): string {
  const path = (url ?? '/').split('?', 1)[0] ?? '/';
  return path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
}

function dispatch(ctx: RelayContext, path: string, req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
  const entry = ctx.registry.byPath.get(path);
  if (entry && req.method === entry.method) return submit(ctx, entry, req, res, requestId);
  if (path === STANDARD_TASKS && (req.method === 'GET' || req.method === 'HEAD')) {
    return queryStandardTasks(ctx, new URLSearchParams((req.url ?? '').split('?')[1] ?? ''), req, res, requestId);
  }
  if (path === STANDARD_TASKS && req.method === 'POST') return listStandardTasks(ctx, req, res, requestId);
  // A standard-family path is a create only; its tasks are queried through /tasks.
  if ((req.method === 'GET' || req.method === 'HEAD') && entry?.method !== 'GET' && path.startsWith('/v1/')) {
    const search = new URLSearchParams((req.url ?? '').split('?')[1] ?? '');
    if (entry?.queryable) return queryList(ctx, entry, search, req, res, requestId);
    const cut = path.lastIndexOf('/');
    const parent = path.slice(0, cut);
    let id = '';
    try {
      id = decodeURIComponent(path.slice(cut + 1));
    } catch {
      return Promise.reject(new RelayHttpError(404, 1203, 'task not found'));
    }
    if (parent === '/v1/tasks' && id !== '') return queryOne(ctx, undefined, id, req, res, requestId);
    const owner = ctx.registry.byPath.get(parent);
    if (owner?.queryable && id !== '') return queryOne(ctx, owner, id, req, res, requestId);
  }
  return Promise.reject(new RelayHttpError(404, 1202, `unknown endpoint: ${req.method ?? ''} ${path}`));
}

export function createRouter(ctx: RelayContext): RelayRouter {
  return (req, res, next) => {
    const path = routePath(req.url);
    if (path === '/openapi.json' && (req.method === 'GET' || req.method === 'HEAD')) {
      // Express sets baseUrl to the mount point, so the document's server is where the host mounted us.
      sendJson(res, 200, openApiDocument(ctx.registry, (req as { baseUrl?: string }).baseUrl || '/'));
      return;
    }
    if (!path.startsWith('/v1/') && path !== STANDARD_TASKS && ctx.registry.byPath.get(path)?.family !== 'standard') {
      next();
      return;
    }
    const requestId = newRequestId();
    const work = dispatch(ctx, path, req, res, requestId);
    work.catch((error: unknown) => {
      if (res.headersSent) {
        ctx.logger.error('error after the answer was sent', { path, error: loggableError(error) });
        return;
      }
      if (error instanceof RelayHttpError) {
        sendError(res, error, requestId);
        return;
      }
      // Anything else is the database or the host's identify failing: nothing was held for the caller
      // (the hold transaction rolled back), so the request can be retried.
      ctx.logger.error('request failed', { path, error: loggableError(error) });
      sendError(res, new RelayHttpError(503, 5001, 'service temporarily unavailable'), requestId);
    });
  };
}

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RelayTask } from '../../adapters/types.js';
import { RelayHttpError } from '../errors.js';
import { asStandardTask } from '../upstream/standard.js';
import type { RelayContext } from './context.js';
import { taskObject } from '../task/task-object.js';
import { identifyCaller } from './caller.js';
import { refreshTask } from './query.js';
import { sendSuccess } from './respond.js';

/** The most tasks one `GET /tasks` names; Kling documents no limit, the relay keeps one query bounded. */
export const MAX_TASKS_PER_QUERY = 100;

function badQuery(path: string, message: string): RelayHttpError {
  return new RelayHttpError(400, 1201, `invalid request: ${path} ${message}`, { errors: [{ path, message }] });
}

/** The ids of `task_ids` or `external_task_ids` (exactly one of them), and which it was. */
function namedIds(search: URLSearchParams): { ids: string[]; byClientId: boolean } {
  const taskIds = search.get('task_ids');
  const clientIds = search.get('external_task_ids');
  if (taskIds !== null && clientIds !== null) throw badQuery('/external_task_ids', "cannot be used with 'task_ids'; give one of them");
  if (taskIds === null && clientIds === null) throw badQuery('/task_ids', "is required (or 'external_task_ids')");
  const name = taskIds !== null ? 'task_ids' : 'external_task_ids';
  const ids = [...new Set((taskIds ?? clientIds ?? '').split(',').map((id) => id.trim()).filter((id) => id !== ''))];
  if (ids.length === 0) throw badQuery(`/${name}`, 'must name at least one task');
  if (ids.length > MAX_TASKS_PER_QUERY) throw badQuery(`/${name}`, `names ${ids.length} tasks; at most ${MAX_TASKS_PER_QUERY}`);
  return { ids, byClientId: clientIds !== null };
}

/** The caller's standard-family task named by this id, refreshed from Kling when it is due. */
async function ownTask(ctx: RelayContext, userId: string, id: string, byClientId: boolean): Promise<RelayTask | undefined> {
  const task = await ctx.store.findForUser(ctx.db, userId, id, undefined);
  // A /v1 request the relay translated to the standard family is the caller's /v1 task.
  if (!task || task.client_endpoint !== null || ctx.registry.byPath.get(task.endpoint)?.family !== 'standard') return undefined;
  // By task_ids: Kling's id, or the relay's that a queued task was answered with.
  if (byClientId ? task.client_task_id !== id : task.kling_task_id !== id && task.external_task_id !== id) return undefined;
  await refreshTask(ctx, task);
  return (await ctx.store.getTask(ctx.db, task.id)) ?? task;
}

/**
 * `GET /tasks?task_ids=a,b` or `?external_task_ids=a,b` — the caller's standard-family tasks named, in
 * the order asked, as Kling's task objects; ids of no such task of the caller are left out, as Kling
 * leaves out ids it does not know.
 */
export async function queryStandardTasks(ctx: RelayContext, search: URLSearchParams, req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
  const caller = await identifyCaller(ctx, req, res);
  const { ids, byClientId } = namedIds(search);
  const found: Record<string, unknown>[] = [];
  for (const id of ids) {
    const task = await ownTask(ctx, String(caller.id), id, byClientId);
    if (task) found.push(asStandardTask(taskObject(task)));
  }
  sendSuccess(res, found, requestId);
}

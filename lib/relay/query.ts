import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RelayTask } from '../../adapters/types.js';
import { observe } from '../task/observe.js';
import { isFinal } from '../task/states.js';
import { taskObject } from '../task/task-object.js';
import { RelayHttpError } from '../errors.js';
import type { RegistryEntry } from '../registry/types.js';
import { UpstreamError } from '../upstream/client.js';
import type { RelayContext } from './context.js';
import { sendSuccess } from './respond.js';
import { identifyCaller } from './caller.js';

/** A task not final and not checked within this long is refreshed from Kling when queried. */
export const REFRESH_AFTER_MS = 3_000;


const inFlight = new WeakMap<RelayContext, Map<number, Promise<void>>>();

/** Asks Kling about one task and applies the answer; one refresh in flight per task. */
export function refreshTask(ctx: RelayContext, task: RelayTask): Promise<void> {
  let running = inFlight.get(ctx);
  if (!running) inFlight.set(ctx, (running = new Map()));
  const existing = running.get(task.id);
  if (existing) return existing;
  const work = (async () => {
    // A request that read the row before another refresh of this task finished would ask Kling again:
    // the row as it is now says whether that refresh already happened.
    const current = await ctx.store.getTask(ctx.db, task.id);
    if (!current || !due(current)) return;
    const account = ctx.accounts.get(current.account_id);
    if (!account || current.kling_task_id === null) return;
    try {
      // An answer the relay cannot read changes nothing here: the caller gets the task as stored.
      await observe(ctx, account, current, { id: current.kling_task_id, strict: false, mustNameOurs: false, markChecked: true });
    } catch (error) {
      // Kling's trouble must not hide the caller's task: answer from the database.
      if (!(error instanceof UpstreamError)) throw error;
      ctx.logger.warn('task refresh failed', { taskId: task.id, klingTaskId: task.kling_task_id, accountId: task.account_id, kind: error.kind });
    }
  })().finally(() => running.delete(task.id));
  running.set(task.id, work);
  return work;
}

/** GET /v1/<path>/:id and GET /v1/tasks/:id — by Kling's task_id or the caller's external_task_id. */
export async function queryOne(ctx: RelayContext, entry: RegistryEntry | undefined, id: string, req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
  const caller = await identifyCaller(ctx, req, res);
  const userId = String(caller.id);
  const task = await ctx.store.findForUser(ctx.db, userId, id, entry?.path);
  // Another caller's task is as unknown as a task that does not exist.
  if (!task) throw new RelayHttpError(404, 1203, 'task not found');
  sendSuccess(res, taskObject(await freshTask(ctx, task)), requestId);
}

/** Whether a query should ask Kling about this task: not final, and not checked lately. */
function due(task: RelayTask): boolean {
  return !isFinal(task) && (task.checked_at === null || Date.now() - task.checked_at > REFRESH_AFTER_MS);
}

/** The task, refreshed from Kling first when it is not final and was not checked lately. */
async function freshTask(ctx: RelayContext, task: RelayTask): Promise<RelayTask> {
  if (!due(task)) return task;
  await refreshTask(ctx, task);
  return (await ctx.store.getTask(ctx.db, task.id)) ?? task;
}

function pageParam(value: string | null, name: string, fallback: number, max: number): number {
  if (value === null || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max) {
    throw new RelayHttpError(400, 1201, `${name} must be an integer from 1 to ${max}`, { errors: [{ path: `/${name}`, message: `must be an integer from 1 to ${max}` }] });
  }
  return n;
}

/** GET /v1/<path>?pageNum=&pageSize= — the caller's tasks of that endpoint, newest first (Kling's limits). */
export async function queryList(ctx: RelayContext, entry: RegistryEntry, search: URLSearchParams, req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
  const caller = await identifyCaller(ctx, req, res);
  const external = search.get('external_task_id');
  if (external !== null) {
    const task = await ctx.store.findForUser(ctx.db, String(caller.id), external, entry.path);
    // Clients poll this form too, so it refreshes the task like GET /v1/<path>/<external_task_id>.
    sendSuccess(res, task && task.client_task_id === external ? [taskObject(await freshTask(ctx, task))] : [], requestId);
    return;
  }
  const pageNum = pageParam(search.get('pageNum'), 'pageNum', 1, 1000);
  const pageSize = pageParam(search.get('pageSize'), 'pageSize', 30, 500);
  const tasks = await ctx.store.listForUser(ctx.db, String(caller.id), entry.path, pageNum, pageSize);
  sendSuccess(res, tasks.map(taskObject), requestId);
}

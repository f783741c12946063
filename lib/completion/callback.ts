import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RelayTask } from '../../adapters/types.js';
import type { RelayContext } from '../relay/context.js';
import { sendJson } from '../relay/respond.js';
import { UpstreamError } from '../upstream/client.js';
import { readJsonBody } from '../relay/body.js';
import { applyKlingTask, fetchKlingTask, isFinal, type Applied, type KlingTaskObject } from './apply.js';
import { tokenMatches } from './token.js';

/** A Kling notice is a small JSON document; anything larger is not one. */
const CALLBACK_LIMIT = 1024 * 1024;

export type CallbackHandler = (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void) => void;

function reply(res: ServerResponse, status: number, code: number, message: string): void {
  sendJson(res, status, { code, message });
}

function tokenOf(url: string | undefined): string | null {
  const query = (url ?? '').split('?')[1];
  return query === undefined ? null : new URLSearchParams(query).get('token');
}

/**
 * Asks Kling, with the account that created the task, what the task's status really is: the notice
 * is only a hint, since anyone who learns the callback URL could post one.
 */
async function confirm(ctx: RelayContext, task: RelayTask, noticeTaskId: string | undefined): Promise<Applied> {
  const account = ctx.accounts.get(task.account_id);
  const klingTaskId = task.kling_task_id ?? noticeTaskId;
  if (!account || !klingTaskId) return 'unchanged';
  const data = await fetchKlingTask(ctx, account, task, klingTaskId);
  // An answer without a task or with a status we do not know is Kling's trouble, as garbage is: the
  // notice is not acknowledged, so that Kling sends it again (the reconciler asks again too).
  const unusable = (why: string) => new UpstreamError(why, { kind: 'bad_response', ambiguous: false, accountId: account.id, method: 'GET', path: task.endpoint });
  if (!data) throw unusable('no task in the answer');
  // Before Kling's create answer reached us the notice names the task; Kling must agree it is ours.
  if (task.kling_task_id === null && data.task_info?.external_task_id !== task.external_task_id) return 'invalid';
  const applied = await applyKlingTask(ctx, task, data);
  if (applied === 'invalid') throw unusable(`unknown task_status ${JSON.stringify(data.task_status)}`);
  await ctx.store.updateTask(ctx.db, task.id, { checked_at: Date.now() });
  return applied;
}

const TOKEN_SHAPE = /^[0-9a-f]{64}$/;

/**
 * The task a notice is about. Normally by our external_task_id, which names table and row: the token
 * is checked against it before the database is read. A notice without it (Kling leaves task_info out
 * on some endpoints) falls back to the seed's lookup by Kling's task_id, video table first, then image
 * table; the token must then be the found task's, so a guessed task_id alone gets nothing.
 */
async function findTask(ctx: RelayContext, body: KlingTaskObject, token: string): Promise<RelayTask | 'unidentified' | 'forbidden' | 'unknown'> {
  const externalTaskId = body.task_info?.external_task_id;
  if (typeof externalTaskId === 'string' && externalTaskId !== '') {
    if (!tokenMatches(ctx.config.callbackSecret, externalTaskId, token)) return 'forbidden';
    return (await ctx.store.getByExternalId(ctx.db, externalTaskId)) ?? 'unknown';
  }
  const klingTaskId = body.task_id;
  if (typeof klingTaskId !== 'string' || klingTaskId === '') return 'unidentified';
  // A token that cannot be one of ours is refused before any read.
  if (!TOKEN_SHAPE.test(token)) return 'forbidden';
  let seen = false;
  for (const kind of ['video', 'image'] as const) {
    const task = await ctx.store.getByKlingTaskId(ctx.db, klingTaskId, kind);
    if (task && tokenMatches(ctx.config.callbackSecret, task.external_task_id, token)) return task;
    seen ||= task !== undefined;
  }
  return seen ? 'forbidden' : 'unknown';
}

/**
 * `relay.callback`: Kling's notices. The per-task token is checked before the database is touched;
 * a final status is confirmed with Kling before any money moves; duplicates and late or reordered
 * notices answer 200 and change nothing.
 */
export function createCallbackHandler(ctx: RelayContext): CallbackHandler {
  return (req, res) => {
    void (async () => {
      const token = tokenOf(req.url);
      if (!token) return reply(res, 401, 1001, 'missing callback token');
      let notice: unknown;
      try {
        notice = await readJsonBody(req, CALLBACK_LIMIT);
      } catch {
        return reply(res, 400, 1200, 'malformed callback body');
      }
      if (typeof notice !== 'object' || notice === null || Array.isArray(notice)) return reply(res, 400, 1200, 'malformed callback body');
      const body = notice as KlingTaskObject;
      const found = await findTask(ctx, body, token);
      if (found === 'unidentified') return reply(res, 400, 1200, 'callback body names no task: neither task_info.external_task_id nor task_id');
      if (found === 'forbidden') return reply(res, 401, 1002, 'invalid callback token');
      if (found === 'unknown') return reply(res, 404, 1203, 'task not found');
      const task = found;
      const externalTaskId = task.external_task_id;
      const noticeTaskId = typeof body.task_id === 'string' ? body.task_id : undefined;
      const log = { taskId: task.id, externalTaskId, klingTaskId: task.kling_task_id ?? noticeTaskId, status: body.task_status, delayMs: typeof body.updated_at === 'number' ? Date.now() - body.updated_at : undefined };
      ctx.logger.info('callback received', log);
      ctx.events?.emit('callback', { taskId: task.id, externalTaskId, status: typeof body.task_status === 'string' ? body.task_status : undefined, delayMs: log.delayMs });
      if (isFinal(task)) return reply(res, 200, 0, 'SUCCEED');
      try {
        if (body.task_status === 'succeed' || body.task_status === 'failed') await confirm(ctx, task, noticeTaskId);
        else await applyKlingTask(ctx, task, { task_status: body.task_status, task_id: task.kling_task_id ?? undefined });
      } catch (error) {
        if (!(error instanceof UpstreamError)) throw error;
        // The reconciler will ask again; Kling may also notify again.
        ctx.logger.warn('callback could not be confirmed with Kling', { ...log, kind: error.kind });
        return reply(res, 502, 5000, 'could not confirm the task with Kling');
      }
      return reply(res, 200, 0, 'SUCCEED');
    })().catch((error: unknown) => {
      ctx.logger.error('callback failed', { error: (error as Error).message });
      if (!res.headersSent) reply(res, 503, 5001, 'service temporarily unavailable');
    });
  };
}

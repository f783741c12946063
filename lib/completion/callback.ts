import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RelayTask } from '../../adapters/types.js';
import type { RelayContext } from '../relay/context.js';
import { sendJson } from '../relay/respond.js';
import { UpstreamError } from '../upstream/client.js';
import { readJsonBody } from '../relay/body.js';
import { loggableError } from '../loggable-error.js';
import { RelayHttpError } from '../errors.js';
import { applyKlingTask, fetchKlingTask, isFinal, type Applied, type KlingTaskObject } from './apply.js';
import { tokenMatches } from './token.js';

/**
 * A Kling notice is its task object: a few ids, times and messages, and a task_result of at most 9
 * images (or a few videos or audios), each a CDN URL whose signed query runs to a few hundred bytes,
 * twice with the watermarked copy: about 20 KB at the very most. 64 KiB holds that three times over,
 * and is all a stranger can make the handler read before a token is checked (on a URL naming no task).
 */
const CALLBACK_LIMIT = 64 * 1024;

export type CallbackHandler = (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void) => void;

function reply(res: ServerResponse, status: number, code: number, message: string): void {
  sendJson(res, status, { code, message });
}

/** What the callback URL carries: the token, and the task it is for (URLs given out by taskCallbackUrl). */
interface Credentials {
  token: string | null;
  task: string | null;
}

function credentialsOf(url: string | undefined): Credentials {
  const query = (url ?? '').split('?')[1];
  if (query === undefined) return { token: null, task: null };
  const search = new URLSearchParams(query);
  const task = search.get('task');
  return { token: search.get('token'), task: task === '' ? null : task };
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

/**
 * The external_task_id whose token a notice carries, once the token is checked: the URL's `task`
 * (checked before the body is read), else the body's task_info.external_task_id. Decided from the
 * request alone, before any database read, so that an answer never depends on which tasks exist. A
 * notice that names neither cannot be checked and is refused: it comes to a URL given out before
 * callback URLs named their task, and the reconciler settles those tasks by asking Kling.
 */
function checkedTaskId(ctx: RelayContext, credentials: { token: string; task: string | null }, body: KlingTaskObject): string | 'forbidden' | 'unnamed' | 'mismatch' {
  const named = body.task_info?.external_task_id;
  const fromBody = typeof named === 'string' && named !== '' ? named : null;
  if (credentials.task !== null) return fromBody === null || fromBody === credentials.task ? credentials.task : 'mismatch';
  if (fromBody === null) return 'unnamed';
  return tokenMatches(ctx.config.callbackSecret, fromBody, credentials.token) ? fromBody : 'forbidden';
}

/**
 * `relay.callback`: Kling's notices. The per-task token is checked before the database is touched,
 * and before the body is read when the URL names the task; a final status is confirmed with Kling
 * before any money moves; duplicates and late or reordered notices answer 200 and change nothing.
 */
export function createCallbackHandler(ctx: RelayContext): CallbackHandler {
  return (req, res) => {
    void (async () => {
      const { token, task: urlTaskId } = credentialsOf(req.url);
      if (!token) return reply(res, 401, 1001, 'missing callback token');
      if (urlTaskId !== null && !tokenMatches(ctx.config.callbackSecret, urlTaskId, token)) return reply(res, 401, 1002, 'invalid callback token');
      let notice: unknown;
      try {
        notice = await readJsonBody(req, CALLBACK_LIMIT);
      } catch (error) {
        if (error instanceof RelayHttpError && error.status === 413) return reply(res, 413, 1200, `callback body is larger than ${CALLBACK_LIMIT} bytes`);
        return reply(res, 400, 1200, 'malformed callback body');
      }
      if (typeof notice !== 'object' || notice === null || Array.isArray(notice)) return reply(res, 400, 1200, 'malformed callback body');
      const body = notice as KlingTaskObject;
      const checked = checkedTaskId(ctx, { token, task: urlTaskId }, body);
      if (checked === 'forbidden') return reply(res, 401, 1002, 'invalid callback token');
      if (checked === 'unnamed') return reply(res, 401, 1002, 'invalid callback token: neither the callback URL nor the body names the task it is for');
      if (checked === 'mismatch') return reply(res, 400, 1200, 'callback body names another task than its URL');
      const task = await ctx.store.getByExternalId(ctx.db, checked);
      if (!task) return reply(res, 404, 1203, 'task not found');
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
      ctx.logger.error('callback failed', { error: loggableError(error) });
      if (!res.headersSent) reply(res, 503, 5001, 'service temporarily unavailable');
    });
  };
}

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RelayTask } from '../../adapters/types.js';
import type { RelayContext } from '../relay/context.js';
import { sendJson } from '../relay/respond.js';
import { UpstreamError } from '../upstream/client.js';
import { asV1Task, isStandardTask } from '../upstream/standard.js';
import { checkBodyBytes, checkJsonValue, parsedByHost, readCheckedBytes } from '../relay/body.js';
import { SIGNATURE_TOLERANCE_SECONDS, signatureEnvelope, verifySignature, type SignatureCheck } from '../callbacks/signing.js';
import { loggableError } from '../loggable-error.js';
import { RelayHttpError } from '../errors.js';
import { applyKlingTask, observe, type Applied, type KlingTaskObject } from '../task/observe.js';
import { isFinal } from '../task/states.js';
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

/** What the callback URL carries: the token, the task it is for and its account (URLs given out by taskCallbackUrl). */
interface Credentials {
  token: string | null;
  task: string | null;
  account: string | null;
}

function credentialsOf(url: string | undefined): Credentials {
  const query = (url ?? '').split('?')[1];
  if (query === undefined) return { token: null, task: null, account: null };
  const search = new URLSearchParams(query);
  const named = (name: string): string | null => {
    const value = search.get(name);
    return value === '' ? null : value;
  };
  return { token: search.get('token'), task: named('task'), account: named('account') };
}

/** The Webhook Secrets Kling signs this account's callbacks with (current first); none when it signs nothing. */
function webhookSecretsOf(ctx: RelayContext, accountId: string): string[] {
  const account = ctx.accounts.get(accountId);
  return [account?.webhookSecret, account?.previousWebhookSecret].filter((secret): secret is string => secret !== undefined);
}

const SIGNATURE_REFUSALS: Record<Exclude<SignatureCheck, 'valid'>, string> = {
  unsigned: 'missing callback signature: webhook-id, webhook-timestamp and webhook-signature are required',
  stale: `callback signature timestamp is more than ${SIGNATURE_TOLERANCE_SECONDS / 60} minutes from now`,
  mismatch: 'invalid callback signature',
};

/** A notice as read: its raw bytes, or the value a body parser in front of the relay made of them. */
type ReadNotice = { raw: Buffer } | { parsed: unknown };

/**
 * The bytes a host's body parser kept of the body it read, as `req.rawBody` (express.json's `verify`
 * hook can keep them so); undefined when it kept none.
 */
function keptBytes(req: IncomingMessage & { rawBody?: unknown }): Buffer | undefined {
  const kept = req.rawBody;
  if (Buffer.isBuffer(kept)) return kept;
  return typeof kept === 'string' ? Buffer.from(kept, 'utf8') : undefined;
}

/**
 * The body, at most CALLBACK_LIMIT bytes, held to the JSON limits of every request body as it arrives.
 * Of a body the host's parser read, the bytes it kept (`req.rawBody`), held to the same limits, else
 * the value it made.
 */
async function readNotice(req: IncomingMessage & { body?: unknown; _body?: boolean; rawBody?: unknown }): Promise<ReadNotice> {
  let kept: Buffer | undefined;
  if (parsedByHost(req)) {
    kept = keptBytes(req);
    if (kept === undefined) return { parsed: req.body };
  }
  try {
    if (kept === undefined) return { raw: await readCheckedBytes(req, CALLBACK_LIMIT) };
    checkBodyBytes(kept, CALLBACK_LIMIT);
    return { raw: kept };
  } catch (cause) {
    if (cause instanceof RelayHttpError && cause.status === 413) throw new RelayHttpError(413, 1200, `callback body is larger than ${CALLBACK_LIMIT} bytes`, { cause });
    throw new RelayHttpError(400, 1200, 'malformed callback body', { cause });
  }
}

/** The notice's JSON; a value the host's parser made is held to the bounds every request body is. */
function parseNotice(notice: ReadNotice): KlingTaskObject {
  let value: unknown;
  try {
    if ('raw' in notice) {
      value = JSON.parse(notice.raw.toString('utf8'));
    } else {
      checkJsonValue(notice.parsed);
      value = notice.parsed;
    }
  } catch (cause) {
    throw new RelayHttpError(400, 1200, 'malformed callback body', { cause });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new RelayHttpError(400, 1200, 'malformed callback body');
  return value as KlingTaskObject;
}

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/**
 * Checks the Standard Webhooks signature of a notice against the account's secrets, over the raw bytes
 * received (or those a parser in front of the relay kept). A body a parser consumed without keeping its
 * bytes cannot be checked and is refused too, with an error in the log naming the fix.
 */
function signatureCheck(ctx: RelayContext, req: IncomingMessage, notice: ReadNotice, secrets: readonly string[], accountId: string): SignatureCheck {
  if (!('raw' in notice)) {
    ctx.logger.error('callback signature cannot be checked: a body parser read the notice before relay.callback; mount relay.callback before express.json(), or have the parser keep the bytes in req.rawBody', { accountId });
    return 'mismatch';
  }
  return verifySignature(secrets, req.headers, notice.raw, nowSeconds());
}

/**
 * Asks Kling, with the account that created the task, what the task's status really is: the notice
 * is only a hint, since anyone who learns the callback URL could post one.
 */
async function confirm(ctx: RelayContext, task: RelayTask, noticeTaskId: string | undefined): Promise<Applied> {
  const account = ctx.accounts.get(task.account_id);
  const klingTaskId = task.kling_task_id ?? noticeTaskId;
  if (!account || !klingTaskId) return 'unchanged';
  // An answer without a task or with a status we do not know is Kling's trouble, as garbage is: the
  // notice is not acknowledged, so that Kling sends it again (the reconciler asks again too). Before
  // Kling's create answer reached us the notice names the task; Kling must agree it is ours.
  const { applied } = await observe(ctx, account, task, { id: klingTaskId, strict: true, mustNameOurs: true, markChecked: true });
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
 * and before the body is read when the URL names the task. For an account with a webhook secret, the
 * notice's Standard Webhooks signature is checked too: before the body is parsed and before any
 * database read when the URL names the account (as every URL given out now does), else against the
 * task's account once the task is read, before anything in the body is acted on. A final status is
 * confirmed with Kling before any money moves; duplicates and late or reordered notices answer 200
 * and change nothing.
 */
export function createCallbackHandler(ctx: RelayContext): CallbackHandler {
  return (req, res) => {
    handleNotice(ctx, req, res).catch((error: unknown) => {
      if (error instanceof RelayHttpError) return reply(res, error.status, error.klingCode, error.message);
      ctx.logger.error('callback failed', { error: loggableError(error) });
      if (!res.headersSent) reply(res, 503, 5001, 'service temporarily unavailable');
    });
  };
}

async function handleNotice(ctx: RelayContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { token, task: urlTaskId, account: urlAccountId } = credentialsOf(req.url);
  if (!token) return reply(res, 401, 1001, 'missing callback token');
  if (urlTaskId !== null && !tokenMatches(ctx.config.callbackSecret, urlTaskId, token)) return reply(res, 401, 1002, 'invalid callback token');
  const refuse = (check: Exclude<SignatureCheck, 'valid'>, accountId: string): void => {
    ctx.logger.warn('callback signature refused', { accountId, externalTaskId: urlTaskId ?? undefined, reason: check });
    reply(res, 401, 1002, SIGNATURE_REFUSALS[check]);
  };
  // The account the URL names says which secrets sign the notice, so no signature check waits for the database.
  const urlSecrets = urlAccountId === null ? [] : webhookSecretsOf(ctx, urlAccountId);
  const signedPerUrl = urlAccountId !== null && urlSecrets.length > 0;
  if (signedPerUrl) {
    // The headers and the timestamp can be judged before the body is read.
    const envelope = signatureEnvelope(req.headers, nowSeconds());
    if (envelope !== 'valid') return refuse(envelope, urlAccountId);
  }
  const read = await readNotice(req);
  if (signedPerUrl) {
    const check = signatureCheck(ctx, req, read, urlSecrets, urlAccountId);
    if (check !== 'valid') return refuse(check, urlAccountId);
  }
  const notice = parseNotice(read);
  // A standard-family task is called back in that family's words; the relay reads v1's.
  const body: KlingTaskObject = isStandardTask(notice as Record<string, unknown>) ? asV1Task(notice as Record<string, unknown>) : notice;
  const checked = checkedTaskId(ctx, { token, task: urlTaskId }, body);
  if (checked === 'forbidden') return reply(res, 401, 1002, 'invalid callback token');
  if (checked === 'unnamed') return reply(res, 401, 1002, 'invalid callback token: neither the callback URL nor the body names the task it is for');
  if (checked === 'mismatch') return reply(res, 400, 1200, 'callback body names another task than its URL');
  const task = await ctx.store.getByExternalId(ctx.db, checked);
  if (!task) return reply(res, 404, 1203, 'task not found');
  // A URL naming an account other than the task's would let a notice pick secrets that are not its own.
  if (urlAccountId !== null && urlAccountId !== task.account_id) return reply(res, 401, 1002, 'invalid callback token');
  if (urlAccountId === null) {
    // A URL given out before callback URLs named the account: the task's account decides.
    const secrets = webhookSecretsOf(ctx, task.account_id);
    const check = secrets.length > 0 ? signatureCheck(ctx, req, read, secrets, task.account_id) : 'valid';
    if (check !== 'valid') return refuse(check, task.account_id);
  }
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
}

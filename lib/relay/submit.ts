import { createHash, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { NewHostRow, NewRelayTask, RelayTask } from '../../adapters/types.js';
import type { HostWriteFacts } from '../../adapters/host-table.js';
import { accept, checkAgainAt, finish, hold, QUEUED_MESSAGE } from '../task/life.js';
import { fetchKlingTask, type KlingTaskObject } from '../task/observe.js';
import type { ExternalIdParts, HoldPlan } from '../task/storage.js';
import { reportedDeductions } from '../completion/deductions.js';
import { accountWithFreeSlot, hasRoom } from '../dispatch/choose.js';
import type { InFlight } from '../dispatch/gate.js';
import { sendCreate, type SentCreate } from '../dispatch/send.js';
import { type SlotNeed, slotNeed } from '../dispatch/slots.js';
import { taskCallbackUrl } from '../completion/token.js';
import { isUniqueViolation } from '../../adapters/dialect.js';
import { RelayHttpError } from '../errors.js';
import type { Caller } from '../options.js';
import { quote, type PriceQuote } from '../pricing/estimate.js';
import type { RegistryEntry } from '../registry/types.js';
import type { KlingAccount } from '../upstream/accounts.js';
import type { KlingReply, UpstreamError } from '../upstream/client.js';
import { isAccountProblem, isTaskNotFound, toRelayError } from '../upstream/errors.js';
import { isJsonRequest, queryInput, readJsonBody } from './body.js';
import { loggableError } from '../loggable-error.js';
import type { RelayContext } from './context.js';
import { withinDeadline } from './deadline.js';
import { taskObject } from '../task/task-object.js';
import { identifyCaller } from './caller.js';
import { sendJson, sendSuccess } from './respond.js';
import { accountFor, clientTaskIdIn, createAnswerOf, type CreatedTask, createdTask, servesFamily, shownAsV1Create, shownStandardCreate, takeClientIds, withRelayIds } from './standard.js';
import { translate, translationFor } from './translate.js';

/** The ids at a refers_to path (`a.b`, `a[].b`), each with its JSON pointer in the body. */
function idsAt(value: unknown, path: string, pointer = ''): [string, string][] {
  const [head = '', ...rest] = path.split('.');
  const isArray = head.endsWith('[]');
  const key = isArray ? head.slice(0, -2) : head;
  if (typeof value !== 'object' || value === null) return [];
  const next = (value as Record<string, unknown>)[key];
  const here = `${pointer}/${key}`;
  const items: [unknown, string][] = isArray ? (Array.isArray(next) ? next.map((item, i) => [item, `${here}/${i}`]) : []) : [[next, here]];
  if (rest.length === 0) return items.filter(([v]) => typeof v === 'string' || typeof v === 'number').map(([v, at]) => [String(v), at]);
  return items.flatMap(([item, at]) => idsAt(item, rest.join('.'), at));
}

/**
 * The account that created the resources a request names (a video to extend, a session); undefined
 * when it names none the relay knows. A resource another caller created is refused as if the relay did
 * not know it, before anything is held.
 */
export async function resourceOwner(ctx: RelayContext, entry: RegistryEntry, body: Record<string, unknown>, userId: string): Promise<KlingAccount | undefined> {
  const named = entry.refersTo.flatMap((path) => idsAt(body, path));
  if (named.length === 0) return undefined;
  const { account: owner, foreign } = await ctx.store.accountForResources(ctx.db, named.map(([id]) => id), userId);
  const at = named.find(([id]) => id === foreign)?.[1];
  if (at !== undefined) throw new RelayHttpError(400, 1201, `invalid request: ${at} is not a resource of yours`, { errors: [{ path: at, message: 'is not a resource of yours' }] });
  const account = owner === undefined ? undefined : ctx.accounts.get(owner);
  return account && accountFor(entry, ctx.accounts, account);
}

/** An account chosen for a task, whether it must stay there, and whether a slot is free there now. */
export interface Choice {
  account: KlingAccount;
  /** The account owns a resource the request names: the task cannot move. */
  pinned: boolean;
  /** A slot is free (or no cap is in force); false: the task waits in the queue, or is sent to meet Kling's 1303. */
  free: boolean;
}

/**
 * The account for a request: the one that created the resources it names, else any with a free slot
 * under the caps in force, else (no slot free anywhere) any, with `free` false.
 */
export async function chooseAccount(ctx: RelayContext, entry: RegistryEntry, body: Record<string, unknown>, userId: string, need: SlotNeed, inFlight?: InFlight): Promise<Choice> {
  const owner = await resourceOwner(ctx, entry, body, userId);
  if (owner) return { account: owner, pinned: true, free: await hasRoom(ctx, owner, need, inFlight) };
  const free = await accountWithFreeSlot(ctx, need, new Set(), servesFamily(entry), inFlight);
  return { account: free ?? accountFor(entry, ctx.accounts, undefined), pinned: false, free: free !== undefined || !ctx.slots.limited(need) };
}

/** A new task's external_task_id is `before` + its host row's id + `after`. */
function externalIdAround(table: string): ExternalIdParts {
  // 48 random bits: the last 12 hex digits of a v4 UUID are all random. randomUUID draws from a
  // buffer it refills now and then; randomBytes asked OpenSSL every time (20 µs a submit under load).
  return { before: `kr-${table}-`, after: `-${randomUUID().slice(-12)}` };
}


interface ClientIds {
  taskId: string | null;
  callbackUrl: string | null;
  /** requestHash of the submit, kept with the caller's task id. */
  requestHash: string | null;
  /** The path the caller posted to, when Kling serves the request on another (a translated request). */
  endpoint: string | null;
}

function newHostRow(entry: RegistryEntry, caller: Caller, account: KlingAccount, price: PriceQuote, seconds: number): NewHostRow {
  return {
    task_id: '',
    user_id: String(caller.id),
    username: caller.username ?? '',
    channel_id: account.channelId ?? account.id,
    model: price.model,
    provider: 'kling',
    type: entry.type,
    status: 'pending',
    quota: price.quota,
    mode: price.mode,
    duration: Math.floor(price.seconds),
    result: '',
    fail_reason: '',
    created_at: seconds,
    updated_at: seconds,
  };
}

function newTask(ctx: RelayContext, entry: RegistryEntry, caller: Caller, account: KlingAccount, price: PriceQuote, client: ClientIds, slots: number, externalId: ExternalIdParts, hostRowId: string, now: number, queued: Record<string, unknown> | undefined): NewRelayTask {
  return {
    external_task_id: `${externalId.before}${hostRowId}${externalId.after}`,
    client_task_id: client.taskId,
    request_hash: client.requestHash,
    kling_task_id: null,
    account_id: account.id,
    endpoint: entry.path,
    client_endpoint: client.endpoint,
    request_type: entry.type,
    table_kind: entry.table,
    host_row_id: hostRowId,
    user_id: String(caller.id),
    state: queued ? 'queued' : 'pending',
    billing: ctx.config.billing,
    hold_quota: price.quota,
    charge_quota: null,
    model: price.model,
    slots,
    pricing: JSON.stringify(price.terms),
    status_msg: queued ? QUEUED_MESSAGE : null,
    result: null,
    deductions: null,
    kling_created_at: null,
    kling_updated_at: null,
    client_callback_url: client.callbackUrl,
    queued_body: queued ? JSON.stringify(queued) : null,
    lease_owner: null,
    lease_until: null,
    // If the answer never comes, the reconciler looks the task up by external_task_id after the deadline.
    // A queued task is not the reconciler's: Kling has not heard of it.
    next_check_at: queued ? null : now + answerDeadlineMs(ctx),
    check_count: 0,
    checked_at: null,
    created_at: now,
    updated_at: now,
  };
}

/** How long after a create was sent the reconciler looks it up if Kling's answer never came. */
export const answerDeadlineMs = (ctx: RelayContext): number => ctx.config.upstreamTimeoutMs + 30_000;

/**
 * The hold of a new task: its host row and relay row, and the quota it takes or needs. `queued`: the
 * Kling body of a task that waits for a free slot, kept with it to be sent later.
 */
function holdPlan(ctx: RelayContext, entry: RegistryEntry, caller: Caller, account: KlingAccount, price: PriceQuote, client: ClientIds, slots: number, facts: HostWriteFacts, queued: Record<string, unknown> | undefined): HoldPlan {
  const now = Date.now();
  const externalId = externalIdAround(entry.table);
  return {
    table: entry.table,
    userId: String(caller.id),
    billing: ctx.config.billing,
    amount: price.quota,
    row: newHostRow(entry, caller, account, price, Math.floor(now / 1000)),
    task: (hostRowId) => newTask(ctx, entry, caller, account, price, client, slots, externalId, hostRowId, now, queued),
    externalId,
    facts,
    now,
  };
}

/** The images (or other items) a request asks for: its `n`, 1 when it has none. */
function requestedCount(body: Record<string, unknown>): number {
  const n = Number(body.n);
  return Number.isSafeInteger(n) && n > 0 ? n : 1;
}

/** A sync answer's session id (results are recorded by the transition), so follow-ups reach the same account. */
async function recordSession(ctx: RelayContext, account: KlingAccount, caller: Caller, data: Record<string, unknown>): Promise<void> {
  if (typeof data.session_id === 'string') await ctx.store.recordResource(ctx.db, data.session_id, 'session', account.id, String(caller.id));
}

function shownTaskInfo(data: Record<string, unknown>, clientTaskId: string | null): Record<string, unknown> {
  // Kling echoes our external_task_id; the caller sees its own (or none), never ours.
  const info = { ...((data.task_info as Record<string, unknown> | undefined) ?? {}) };
  if (clientTaskId === null) delete info.external_task_id;
  else info.external_task_id = clientTaskId;
  return { ...data, task_info: info };
}

/** Kling's envelope, or `{task_id, message, raw_data}` with responseFormat 'standard'. */
function answer(ctx: RelayContext, res: ServerResponse, taskId: string | null, data: Record<string, unknown>, requestId: string): void {
  if (ctx.config.responseFormat === 'standard') sendJson(res, 200, { task_id: taskId, message: 'success', raw_data: data });
  else sendSuccess(res, data, requestId);
}

/**
 * A failed Kling post: refunds what certainly never became a task and throws the caller's error, or
 * answers the task Kling made after all. A create Kling answered 5000/5002 to is over but may have
 * made the task: it is looked up by external_task_id at once, adopted if Kling has it, refunded if
 * Kling has not; if Kling cannot tell now, it waits for the reconciler like a create whose answer
 * never came (posted once, looked up by external_task_id, never posted again).
 */
export async function afterFailedPost(ctx: RelayContext, entry: RegistryEntry, account: KlingAccount, task: RelayTask, error: UpstreamError, log: Record<string, unknown>): Promise<KlingReply> {
  const upstream = { ...log, kind: error.kind, httpStatus: error.httpStatus, klingCode: error.klingCode, klingRequestId: error.requestId };
  if (isAccountProblem(error)) ctx.logger.error('Kling refused the account', upstream);
  // A refusal of the request itself (content policy, a bad parameter) is the caller's business;
  // anything else (rate limits, Kling failing, an unreachable host) is worth an operator's look.
  else if (error.kind === 'kling' && error.httpStatus === 400) ctx.logger.info('Kling refused the request', upstream);
  else if (!error.ambiguous || entry.kind === 'sync') ctx.logger.warn('Kling call failed', upstream);
  // A sync call has nothing to look up, so its hold goes back.
  if (!error.ambiguous || entry.kind === 'sync') {
    await refundUnsent(ctx, task, error);
    throw toRelayError(error);
  }
  if (error.kind === 'kling') {
    const found = await lookUpCreate(ctx, account, task, upstream);
    if (found === 'absent') {
      await refundUnsent(ctx, task, error);
      throw toRelayError(error);
    }
    if (found !== undefined) {
      ctx.logger.warn('Kling answered an error to a create it carried out; task adopted', { ...upstream, klingTaskId: found.task_id });
      return { httpStatus: 200, envelope: { code: 0, message: 'SUCCEED', request_id: error.requestId ?? '', data: createAnswerOf(entry, found as Record<string, unknown>) } };
    }
  }
  ctx.logger.warn('Kling create outcome unknown; left for the reconciler', upstream);
  await checkAgainAt(ctx, task.id, Date.now() + 5_000).catch(() => false);
  throw toRelayError(error);
}

async function refundUnsent(ctx: RelayContext, task: RelayTask, error: UpstreamError): Promise<void> {
  await finish(ctx, task.id, { status: 'failed', reason: `submit failed: ${error.klingMessage ?? error.message}` }, ['pending']);
}

/** Kling's task for our external_task_id; 'absent' when Kling says it has none, undefined when it cannot tell. */
async function lookUpCreate(ctx: RelayContext, account: KlingAccount, task: RelayTask, log: Record<string, unknown>): Promise<KlingTaskObject | 'absent' | undefined> {
  try {
    const found = await fetchKlingTask(ctx, account, task, task.external_task_id);
    return typeof found?.task_id === 'string' && found.task_id !== '' ? found : undefined;
  } catch (error) {
    if (isTaskNotFound(error)) return 'absent';
    ctx.logger.warn('could not look up a create of unknown outcome', { ...log, error: loggableError(error) });
    return undefined;
  }
}

/** JSON with every object's keys sorted: one text for bodies that differ only in key order. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.keys(value).sort().map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** sha-256 of the endpoint and the caller's validated body: what tells a resent submit from another one. */
function requestHash(path: string, body: Record<string, unknown>): string {
  return createHash('sha256').update(canonicalJson({ path, body })).digest('hex');
}

const usedTaskId = (clientTaskId: string, why: string): RelayHttpError =>
  new RelayHttpError(400, 1201, `external_task_id '${clientTaskId}' is already used by another of your tasks${why}`, { errors: [{ path: '/external_task_id', message: 'must be unique among your tasks' }] });

/** How long a resent submit waits for the first one's Kling answer: the Kling call's deadline, and a little. */
const pendingWaitMs = (ctx: RelayContext): number => ctx.config.upstreamTimeoutMs + 1_000;
const PENDING_POLL_MS = 25;

/**
 * The answer to a submit whose external_task_id this caller used before: the same body gets the
 * first task as Kling would show it (waiting a bounded time for Kling's task id when the first
 * submit is still waiting for Kling), another body a 400 naming the field. Nothing is held or sent.
 */
async function answerResent(ctx: RelayContext, res: ServerResponse, first: RelayTask, hash: string, requestId: string): Promise<void> {
  const clientTaskId = first.client_task_id ?? '';
  if (first.request_hash !== hash) throw usedTaskId(clientTaskId, ' with a different request');
  let task: RelayTask = first;
  // The entry the caller posted to: a translated task is shown as the caller's /v1 task.
  const entry = ctx.registry.byPath.get(task.client_endpoint ?? task.endpoint);
  if (task.state === 'queued' && entry) return answerQueued(ctx, res, entry, task, requestId);
  const until = Date.now() + pendingWaitMs(ctx);
  while (task.state === 'pending' && task.kling_task_id === null && Date.now() < until) {
    await new Promise((resolve) => setTimeout(resolve, PENDING_POLL_MS));
    task = (await ctx.store.getTask(ctx.db, task.id)) ?? task;
  }
  if (task.kling_task_id === null) {
    if (task.state === 'failed') throw usedTaskId(clientTaskId, `; that submit failed (${task.status_msg ?? 'no reason'}), so send a new external_task_id`);
    throw new RelayHttpError(504, 5002, `the submit with external_task_id '${clientTaskId}' is still waiting for Kling; query it by that id later`);
  }
  ctx.logger.info('resent submit answered with its first task', { taskId: task.id, userId: task.user_id, clientTaskId, klingTaskId: task.kling_task_id });
  answer(ctx, res, task.kling_task_id, entry ? createAnswerOf(entry, taskObject(task)) : taskObject(task), requestId);
}

/** The validated request, sent as Kling serves the path: a JSON body, or a query string for a GET entry. */
export function callKling(ctx: RelayContext, account: KlingAccount, entry: RegistryEntry, kling: Record<string, unknown>): Promise<KlingReply> {
  if (entry.method === 'POST') return ctx.client.post(account, entry.path, kling);
  const query = new URLSearchParams(Object.entries(kling).map(([name, value]): [string, string] => [name, String(value)])).toString();
  return ctx.client.get(account, query === '' ? entry.path : `${entry.path}?${query}`);
}

/** A task held and recorded, with the account chosen for it; `queued` when it waits for a slot. */
interface Placed {
  task: RelayTask;
  account: KlingAccount;
  pinned: boolean;
}

/** Retry-After of a submit refused for the queue's limits: a slot frees when a task ends, seconds to minutes. */
const QUEUE_RETRY_AFTER = '10';

const queueRefusal = (message: string): RelayHttpError => new RelayHttpError(429, 1303, message, { headers: { 'Retry-After': QUEUE_RETRY_AFTER } });

/**
 * The queue's limits on a submit under a cap, checked before anything is held: the caller's tasks
 * queued and running (`active`), and the queue's length when this one would join it (`inQueue`:
 * those placed in the queue that the database may not show yet). Over either: 429/1303.
 */
async function checkQueueLimits(ctx: RelayContext, queued: boolean, active: number, inQueue: number): Promise<void> {
  const { perCaller, maxLength } = ctx.config.queue;
  if (active >= perCaller) throw queueRefusal(`too many tasks: you have ${perCaller} tasks queued or running, the most allowed; submit again when one has finished`);
  if (queued && (await ctx.store.queuedCount(ctx.db)) + inQueue >= maxLength) throw queueRefusal(`every Kling slot is busy and the queue is full (${maxLength} tasks); submit again later`);
}

/** A task placed: its hold on its way, and the account chosen for it. */
interface Decided {
  holding: Promise<RelayTask>;
  account: KlingAccount;
  pinned: boolean;
}

/**
 * Chooses the account and starts the task's hold: `pending`, to be sent now, or `queued` with its
 * body when no slot is free. `limited`: a cap is in force for the task's model version; the decision
 * then runs holding its gate, counts what the decisions before it placed (`SlotGate.inFlight`) beside
 * what it reads, and notes its own task (`SlotGate.reserve`) before the gate lets the next one in.
 *
 * The task waits in the queue when the queue is on, a cap is in force and no slot is free, or others
 * wait for that model version already (they go first).
 */
async function decide(ctx: RelayContext, entry: RegistryEntry, kling: Record<string, unknown>, caller: Caller, need: SlotNeed, price: PriceQuote, client: ClientIds, limited: boolean): Promise<Decided> {
  const userId = String(caller.id);
  const queueOn = limited && ctx.config.queue.maxLength !== 0;
  const inFlight = limited ? ctx.gate.inFlight(need) : undefined;
  // The counts a decision under a cap reads do not depend on each other: read at once, the decision
  // (which holds its model version's gate) waits for one round trip, not three.
  const [{ account, pinned, free }, waiting, active] = await Promise.all([
    chooseAccount(ctx, entry, kling, userId, need, inFlight),
    queueOn ? ctx.store.queuedCount(ctx.db, need) : 0,
    limited ? ctx.store.activeCount(ctx.db, userId) : 0,
  ]);
  const queued = queueOn && (!free || waiting + (inFlight?.queued ?? 0) > 0);
  if (limited) await checkQueueLimits(ctx, queued, active + (inFlight?.ofCaller(userId) ?? 0), inFlight?.queued ?? 0);
  const plan = holdPlan(ctx, entry, caller, account, price, client, need.slots, { requestedCount: requestedCount(kling) }, queued ? kling : undefined);
  const holding = hold(ctx, plan);
  if (limited) ctx.gate.reserve(need, { accountId: account.id, slots: need.slots, queued, userId }, holding);
  return { holding, account, pinned };
}

/**
 * Places the task (`decide`, under its model version's gate when `limited`) and waits for its hold
 * within the database deadline. A hold that commits after the client got its 503 is never sent to
 * Kling: it is refunded at once (or by the reconciler, which finds that Kling never got the task).
 */
async function placeTask(ctx: RelayContext, entry: RegistryEntry, kling: Record<string, unknown>, caller: Caller, need: SlotNeed, price: PriceQuote, client: ClientIds, limited: boolean): Promise<Placed> {
  const place = (): Promise<Decided> => decide(ctx, entry, kling, caller, need, price, client, limited);
  // Under a cap, counting the slots and placing the task that takes one are one step in this process.
  const { holding, account, pinned } = limited ? await ctx.gate.run(need, place) : await place();
  const task = await withinDeadline(holding, ctx.config.dbTimeoutMs, (late) => {
    const refund = (): Promise<unknown> => finish(ctx, late.id, { status: 'failed', reason: 'the hold committed after the database deadline; Kling was not called' }, ['queued', 'pending']);
    refund().catch((error: unknown) => {
      ctx.logger.error('could not refund a late hold', { taskId: late.id, error: loggableError(error) });
      ctx.retries.schedule('refund of a late hold', { taskId: late.id }, refund);
    });
  });
  return { task, account, pinned };
}

/** A queued task as the caller sees it at once: Kling's create answer, the relay's id, `submitted`, queued. */
function answerQueued(ctx: RelayContext, res: ServerResponse, entry: RegistryEntry, task: RelayTask, requestId: string): void {
  const object = taskObject(task);
  const shown = entry.family === 'v1' ? object : shownStandardCreate(createAnswerOf(entry, object), task.client_task_id);
  answer(ctx, res, task.external_task_id, shown, requestId);
}

/**
 * Posts a held task's create to Kling (moving it to another account when Kling refuses the account,
 * unless it is pinned there). The body gets the relay's external_task_id and the callback URL, which
 * names the account, so a create moved to another account gets its own body.
 */
export function postCreate(ctx: RelayContext, entry: RegistryEntry, task: RelayTask, kling: Record<string, unknown>, need: SlotNeed, account: KlingAccount, pinned: boolean): Promise<SentCreate> {
  const bodyFor = (to: KlingAccount): Record<string, unknown> =>
    entry.kind === 'task' ? withRelayIds(entry, kling, task.external_task_id, taskCallbackUrl(ctx.config.callbackUrl, ctx.config.callbackSecret, task.external_task_id, to.id)) : kling;
  return sendCreate(ctx, { entry, task, need, account, pinned, eligible: servesFamily(entry), call: (to) => callKling(ctx, to, entry, bodyFor(to)) });
}

/**
 * Records Kling's answer to a task's create. A failed write is logged and tried again in the
 * background (ctx.retries); failing that, the reconciler adopts the task by external_task_id at the
 * answer deadline.
 */
export async function acceptCreated(ctx: RelayContext, task: RelayTask, created: CreatedTask, log: Record<string, unknown>): Promise<void> {
  const write = (): Promise<void> => accept(ctx, task, { klingTaskId: created.klingTaskId, status: created.status, createdAt: created.createdAt, updatedAt: created.updatedAt }, ctx.config.reconciler.intervalMs);
  try {
    await write();
  } catch (error) {
    ctx.logger.error('could not record Kling task id', { ...log, klingTaskId: created.klingTaskId, error: loggableError(error) });
    ctx.retries.schedule("Kling's task id", { ...log, klingTaskId: created.klingTaskId }, write);
  }
}

/** The relay's handler for one registry entry: a POST, or a GET entry's call. */
export async function submit(ctx: RelayContext, entry: RegistryEntry, req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
  if (entry.method === 'POST' && !isJsonRequest(req)) throw new RelayHttpError(415, 1200, "the request body must be JSON (Content-Type: application/json)");
  const caller = await identifyCaller(ctx, req, res);
  const body = entry.method === 'GET' ? queryInput(req) : await readJsonBody(req, ctx.config.bodyLimit);
  // What the caller sent, before validation fills in defaults: a translated request refuses only those.
  const given = typeof body === 'object' && body !== null ? Object.keys(body) : [];
  const checked = ctx.validator.validate(entry.path, body);
  if (!checked.ok) throw new RelayHttpError(400, 1201, `invalid request: ${checked.errors[0]?.path || '/'} ${checked.errors[0]?.message ?? ''}`.trim(), { errors: checked.errors });
  // Only a submit that names its external_task_id can be resent: the hash of its whole body (ids
  // included) is kept to tell a resend from another request.
  const hash = clientTaskIdIn(entry, checked.body) === null ? null : requestHash(entry.path, checked.body);
  // A /v1 model Kling serves only through its standard family is sent, priced and recorded as that
  // family's entry (`served`); the caller still sees /v1.
  const translation = entry.family === 'v1' ? translationFor(ctx.registry, entry, checked.body) : undefined;
  const kling = translation ? translate(ctx.validator, ctx.registry, translation, checked.body, given) : checked.body;
  const served = translation?.target ?? entry;
  const { taskId: clientTaskId, callbackUrl: clientCallbackUrl } = takeClientIds(served, kling);

  const priced = quote(served, kling, ctx.prices, ctx.config.quotaPerUnit);
  if (!priced.ok) throw new RelayHttpError(503, 5001, `this request cannot be priced: ${priced.reason}`);
  if (clientTaskId !== null && hash !== null) {
    const first = await ctx.store.findByClientId(ctx.db, String(caller.id), clientTaskId);
    if (first) return answerResent(ctx, res, first, hash, requestId);
  }
  const need = slotNeed(served, kling, priced.quote.model);
  const client: ClientIds = { taskId: clientTaskId, callbackUrl: clientCallbackUrl, requestHash: hash, endpoint: translation ? entry.path : null };
  const limited = ctx.slots.limited(need);
  let placed: Placed;
  try {
    placed = await placeTask(ctx, served, kling, caller, need, priced.quote, client, limited);
  } catch (error) {
    // A concurrent submit with this external_task_id committed first: UNIQUE(user_id, client_task_id)
    // rolled this one back, hold and rows; it is answered as a resend of that one.
    const first = clientTaskId !== null && hash !== null && isUniqueViolation(error) ? await ctx.store.findByClientId(ctx.db, String(caller.id), clientTaskId) : undefined;
    if (!first || hash === null) throw error;
    return answerResent(ctx, res, first, hash, requestId);
  }
  const { account, pinned } = placed;
  let { task } = placed;
  const log = { taskId: task.id, externalTaskId: task.external_task_id, userId: task.user_id, accountId: account.id, type: served.type, hold: task.hold_quota };
  // The caller's own id too: it is what a caller names when asking an operator about a task.
  ctx.logger.info(task.state === 'queued' ? 'task queued for a free Kling slot' : 'task submitted', { ...log, ...(task.client_task_id !== null ? { clientTaskId: task.client_task_id } : {}) });
  ctx.events?.emit('submitted', { taskId: task.id, externalTaskId: task.external_task_id, userId: task.user_id, accountId: account.id, type: served.type, path: served.path, hold: task.hold_quota });
  if (task.state === 'queued') {
    ctx.events?.emit('queued', { taskId: task.id, externalTaskId: task.external_task_id, userId: task.user_id, accountId: account.id, type: served.type, model: need.model, pack: need.pack });
    ctx.queue?.kick();
    answerQueued(ctx, res, entry, task, requestId);
    return;
  }

  const sent = await postCreate(ctx, served, task, kling, need, account, pinned);
  const sentWith = sent.account;
  task = sent.task;
  const reply = 'reply' in sent ? sent.reply : await afterFailedPost(ctx, served, sentWith, task, sent.error, { ...log, accountId: sentWith.id });

  const data = (reply.envelope.data ?? {}) as Record<string, unknown>;
  const created = createdTask(served, data);
  // Kling's ids for the request (a task id, or a sync answer's session), so Kling's records can be found.
  const answeredId = created.klingTaskId ?? (typeof data.session_id === 'string' ? data.session_id : undefined);
  ctx.logger.info('Kling accepted the request', { ...log, klingTaskId: answeredId, klingRequestId: reply.envelope.request_id });
  if (entry.kind === 'sync') {
    await recordSession(ctx, sentWith, caller, data);
    const klingTaskId = typeof data.task_id === 'string' ? data.task_id : undefined;
    await finish(ctx, task.id, { status: 'succeed', klingTaskId, result: data.task_result ?? data, deductions: reportedDeductions(data) }, ['pending'], task);
    const syncId = typeof data.task_id === 'string' ? data.task_id : typeof data.session_id === 'string' ? data.session_id : null;
    answer(ctx, res, syncId, data, reply.envelope.request_id || requestId);
    return;
  }

  const { klingTaskId } = created;
  await acceptCreated(ctx, task, created, log);
  const shown = translation ? shownAsV1Create(created, clientTaskId) : entry.family === 'v1' ? shownTaskInfo(data, clientTaskId) : shownStandardCreate(data, clientTaskId);
  answer(ctx, res, klingTaskId, shown, reply.envelope.request_id || requestId);
}


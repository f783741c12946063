import type { IncomingMessage, ServerResponse } from 'node:http';
import { KlingError, requestId } from './codes.js';
import { answerCreate, carriesDataUri } from './create-answer.js';
import type { FaultSwitches } from './faults.js';
import { sendData, sendRaw } from './http.js';
import { takeQueryFault } from './query-faults.js';
import { standardStatus, standardTaskObject } from './standard-view.js';
import type { TaskStore } from './tasks.js';
import type { SandboxAccount, SandboxTask, StandardTaskObject } from './types.js';
import { isObject, type Json } from '../json.js';

/** What the standard family's handlers use of the sandbox. */
export interface StandardContext {
  accounts: readonly SandboxAccount[];
  standardPaths: ReadonlySet<string>;
  store: TaskStore;
  faults: FaultSwitches;
  hung: Set<ServerResponse>;
}

const TASKS_PATH = '/tasks';
const DAY_MS = 24 * 60 * 60 * 1000;
const LISTING_LIMIT = { default: 100, max: 500 };
const HUGE_BYTES = 20 * 1024 * 1024;
const FILTER_VALUES: Record<string, readonly string[]> = {
  status: ['submitted', 'processing', 'succeeded', 'failed'],
  product_type: ['video', 'image', 'try_on'],
};
/** A JWT is three base64url parts joined by dots; an API key is not. */
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** Whether a request is the standard family's: a POST to one of its create paths, or `/tasks`. */
export function servesStandard(paths: ReadonlySet<string>, method: string, path: string): boolean {
  return (method === 'POST' && paths.has(path)) || path === TASKS_PATH;
}

/**
 * The account of `Authorization: Bearer <API key>`. The standard family takes API keys only: a
 * key-pair token (JWT), even a valid one, is refused like any other unknown credential (401, 1002).
 */
export function apiKeyAccount(authorization: string | undefined, accounts: readonly SandboxAccount[]): string {
  const header = authorization?.trim() ?? '';
  if (header === '' || /^bearer$/i.test(header)) throw new KlingError(1001);
  const token = /^Bearer\s+(\S+)$/i.exec(header)?.[1];
  const owner = token === undefined ? undefined : accounts.find((a) => a.apiKeys?.includes(token));
  if (owner) return owner.accessKey;
  if (token !== undefined && JWT_SHAPE.test(token)) throw new KlingError(1002, 'Authorization is invalid: this API accepts API keys only, not access-key tokens');
  throw new KlingError(1002);
}

export function handleStandard(ctx: StandardContext, res: ServerResponse, accessKey: string, req: IncomingMessage, url: URL, body: unknown, malformed: boolean): void {
  const method = req.method ?? 'GET';
  if (url.pathname !== TASKS_PATH) createTask(ctx, res, accessKey, url.pathname, body, malformed);
  else if (method === 'GET') queryTasks(ctx, res, accessKey, url.searchParams);
  else if (method === 'POST') listTasks(ctx, res, accessKey, body, malformed);
  else throw new KlingError(1202);
}

/** The request body as an object, or Kling's 1200. */
function objectBody(body: unknown, malformed: boolean): Json {
  if (malformed) throw new KlingError(1200, 'request body is not valid JSON');
  if (!isObject(body)) throw new KlingError(1200, 'request body must be a JSON object');
  return body;
}

/** What Kling refuses before making a task: no input, a data: prefix, options of the wrong types. */
function checkCreate(path: string, body: Json): { externalTaskId: string | undefined; callbackUrl: unknown } {
  if (path.startsWith('/text-to-video/')) {
    if (typeof body.prompt !== 'string' || body.prompt === '') throw new KlingError(1201, 'prompt is required');
  } else if (!Array.isArray(body.contents) || body.contents.length === 0) {
    throw new KlingError(1201, 'contents is required');
  }
  if (carriesDataUri(body)) throw new KlingError(1201, 'base64 must not carry a data: prefix');
  const options = body.options === undefined ? {} : body.options;
  if (!isObject(options)) throw new KlingError(1201, 'options must be an object');
  const external = options.external_task_id;
  if (external !== undefined && typeof external !== 'string') throw new KlingError(1201, 'options.external_task_id must be a string');
  // An empty external_task_id is no id (Kling's own examples send "").
  return { externalTaskId: external === '' ? undefined : external, callbackUrl: options.callback_url };
}

function createTask(ctx: StandardContext, res: ServerResponse, accessKey: string, path: string, raw: unknown, malformed: boolean): void {
  const fault = ctx.faults.takeCreateError();
  if (fault) throw fault;
  const body = objectBody(raw, malformed);
  const { externalTaskId, callbackUrl } = checkCreate(path, body);
  const delivery = ctx.faults.takeCreateDelivery();
  // Callbacks wait for the answer to leave, unless the answer is being sabotaged anyway.
  const answered = delivery ? undefined : new Promise((resolve) => res.once('close', resolve));
  const task = ctx.store.create(accessKey, path, body, answered, { family: 'standard', externalTaskId, callbackUrl });
  // Like v1's, the answer says submitted even when the schedule has already finished the task.
  const data: Json = { id: task.taskId, status: 'submitted', create_time: task.createdAt, update_time: task.createdAt };
  if (task.externalTaskId !== undefined) data.external_id = task.externalTaskId;
  answerCreate(ctx.hung, res, data, delivery);
}

function idList(raw: string): string[] {
  return [...new Set(raw.split(',').map((id) => id.trim()).filter((id) => id !== ''))];
}

/** A standard task of this account named by Kling's id or by the account's external_task_id. */
function ownTask(ctx: StandardContext, accessKey: string, id: string, byExternal: boolean): SandboxTask | undefined {
  const task = byExternal ? ctx.store.findByExternalId(accessKey, id) : ctx.store.getTask(id);
  if (!task || task.accessKey !== accessKey || task.family !== 'standard') return undefined;
  return ctx.faults.isLost(id, task.taskId, task.externalTaskId) ? undefined : task;
}

/**
 * `GET /tasks?task_ids=a,b` or `?external_task_ids=a,b` (one of the two): the tasks found, in the
 * order asked; ids of no task of this account are left out. The query fault switches apply.
 */
function queryTasks(ctx: StandardContext, res: ServerResponse, accessKey: string, params: URLSearchParams): void {
  const taskIds = params.get('task_ids');
  const externalIds = params.get('external_task_ids');
  if ((taskIds === null) === (externalIds === null)) throw new KlingError(1201, 'give one of task_ids or external_task_ids');
  const ids = idList(taskIds ?? externalIds ?? '');
  if (ids.length === 0) throw new KlingError(1201, `${taskIds !== null ? 'task_ids' : 'external_task_ids'} must name at least one task`);
  const fault = takeQueryFault(ctx, res);
  if (fault === 'answered') return;
  const data: (StandardTaskObject | Json)[] = ids.flatMap((id) => {
    const task = ownTask(ctx, accessKey, id, externalIds !== null);
    return task ? [standardTaskObject(task)] : [];
  });
  if (fault === 'unknown-status' && data[0]) data[0].status = 'weird';
  if (fault === 'huge') {
    sendRaw(res, 200, JSON.stringify({ code: 0, message: 'SUCCEED', request_id: requestId(), data, padding: 'x'.repeat(HUGE_BYTES) }));
    return;
  }
  sendData(res, data);
}

/** A `POST /tasks` listing: what the first page was asked for, and where the next page starts. */
interface Listing {
  start: number;
  end: number;
  limit: number;
  filters: Record<string, string[]>;
  offset: number;
}

function timeField(body: Json, name: string, fallback: number): number {
  const value = body[name];
  if (value === undefined || value === '') return fallback;
  const ms = typeof value === 'number' ? value : typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(ms) || ms < 0) throw new KlingError(1201, `${name} must be Unix milliseconds (a number or a string of digits)`);
  return ms;
}

function listingFilters(raw: unknown): Record<string, string[]> {
  if (raw === undefined) return {};
  if (!Array.isArray(raw)) throw new KlingError(1201, 'filters must be an array of {key, values}');
  const filters: Record<string, string[]> = {};
  for (const filter of raw) {
    const key = isObject(filter) ? filter.key : undefined;
    const allowed = typeof key === 'string' ? FILTER_VALUES[key] : undefined;
    if (!allowed || !isObject(filter)) throw new KlingError(1201, 'filters[].key must be status or product_type');
    const values = filter.values;
    if (!Array.isArray(values) || !values.every((v) => typeof v === 'string' && allowed.includes(v))) {
      throw new KlingError(1201, `filters[].values of ${String(key)} must be some of: ${allowed.join(', ')}`);
    }
    filters[key as string] = [...(filters[key as string] ?? []), ...(values as string[])];
  }
  return filters;
}

function readCursor(cursor: string): Listing {
  try {
    const listing = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as Listing;
    if (Number.isSafeInteger(listing.offset) && Number.isSafeInteger(listing.limit) && isObject(listing.filters)) return listing;
  } catch {
    // Not a cursor this sandbox made: answered below.
  }
  throw new KlingError(1201, 'cursor is invalid');
}

/** The listing a `POST /tasks` body asks for; a cursor replaces every other field. */
function readListing(body: Json): Listing {
  if (typeof body.cursor === 'string' && body.cursor !== '') return readCursor(body.cursor);
  const end = timeField(body, 'end_time', Date.now());
  const start = timeField(body, 'start_time', end - 30 * DAY_MS);
  if (start >= end) throw new KlingError(1201, 'start_time must be earlier than end_time');
  const limit = body.limit ?? LISTING_LIMIT.default;
  if (!(Number.isSafeInteger(limit) && (limit as number) >= 1 && (limit as number) <= LISTING_LIMIT.max)) {
    throw new KlingError(1201, `limit must be an integer in [1, ${LISTING_LIMIT.max}]`);
  }
  return { start, end, limit: limit as number, filters: listingFilters(body.filters), offset: 0 };
}

function matches(task: SandboxTask, listing: Listing): boolean {
  if (task.createdAt < listing.start || task.createdAt > listing.end) return false;
  const statuses = listing.filters.status;
  if (statuses && !statuses.includes(standardStatus(task.status))) return false;
  // The sandbox's standard paths all make videos.
  const products = listing.filters.product_type;
  return !products || products.includes('video');
}

/** `POST /tasks`: the account's standard tasks created in the window, newest first, a page at a time. */
function listTasks(ctx: StandardContext, res: ServerResponse, accessKey: string, raw: unknown, malformed: boolean): void {
  const listing = readListing(raw === undefined && !malformed ? {} : objectBody(raw, malformed));
  const tasks = ctx.store
    .all()
    .filter((task) => task.accessKey === accessKey && task.family === 'standard' && matches(task, listing))
    .reverse();
  const page = tasks.slice(listing.offset, listing.offset + listing.limit);
  const hasMore = listing.offset + listing.limit < tasks.length;
  const nextCursor = hasMore ? Buffer.from(JSON.stringify({ ...listing, offset: listing.offset + listing.limit })).toString('base64url') : '';
  sendData(res, { result: page.map(standardTaskObject), count: page.length, next_cursor: nextCursor, has_more: hasMore });
}

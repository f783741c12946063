import type { IncomingMessage, ServerResponse } from 'node:http';
import { AccountBook } from './account.js';
import { authenticate } from './auth.js';
import { KlingError, requestId } from './codes.js';
import { answerCreate, carriesDataUri } from './create-answer.js';
import type { FaultSwitches } from './faults.js';
import { readBody, sendData, sendError, sendRaw } from './http.js';
import { SandboxResources } from './resources.js';
import { syncResult, taskObject } from './results.js';
import { takeQueryFault } from './query-faults.js';
import { apiKeyAccount, handleStandard, servesStandard } from './standard.js';
import { boundedCopy, type TaskStore } from './tasks.js';
import type { EndpointKind, RecordedRequest, SandboxAccount } from './types.js';

export interface SandboxContext {
  accounts: readonly SandboxAccount[];
  endpoints: ReadonlyMap<string, EndpointKind>;
  /** The standard family's create paths (standard.ts serves them and `/tasks`). */
  standardPaths: ReadonlySet<string>;
  store: TaskStore;
  /** Custom voices and elements per account, and the preset lists. */
  resources: SandboxResources;
  faults: FaultSwitches;
  requests: RecordedRequest[];
  /** Answers held back by hangNextCreate or hangNextQueries, released or destroyed by close(). */
  hung: Set<ServerResponse>;
  /** Bound on the recorded requests (their bodies cut), or undefined to keep every one whole. */
  history: number | undefined;
  /** The account endpoints (`/account/...`). */
  accountBook: AccountBook;
}

const HUGE_BYTES = 20 * 1024 * 1024;

export function createHandler(ctx: SandboxContext): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    handle(ctx, req, res).catch(() => res.destroy());
  };
}

async function handle(ctx: SandboxContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://sandbox.invalid');
  const raw = await readBody(req);
  let body: unknown;
  let malformed = false;
  if (raw.length > 0) {
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      malformed = true;
    }
  }
  const entry: RecordedRequest = {
    method: req.method ?? 'GET',
    path: url.pathname,
    query: Object.fromEntries(url.searchParams),
    headers: { ...req.headers },
    body: ctx.history === undefined ? body : boundedCopy(body),
    accessKey: undefined,
    at: Date.now(),
  };
  ctx.requests.push(entry);
  // Trimmed in batches: one splice per `history` requests, not a shift per request.
  if (ctx.history !== undefined && ctx.requests.length >= 2 * ctx.history) ctx.requests.splice(0, ctx.requests.length - ctx.history);

  try {
    if (servesStandard(ctx.standardPaths, entry.method, url.pathname)) {
      entry.accessKey = apiKeyAccount(req.headers.authorization, ctx.accounts);
      handleStandard(ctx, res, entry.accessKey, req, url, body, malformed);
      return;
    }
    const accessKey = await authenticate(req.headers.authorization, ctx.accounts);
    entry.accessKey = accessKey;
    if (AccountBook.serves(url.pathname)) {
      sendData(res, ctx.accountBook.answer(accessKey, entry.method, url, body, malformed));
    } else if (entry.method === 'POST') {
      create(ctx, res, accessKey, url.pathname, body, malformed);
    } else if (entry.method === 'GET' && SandboxResources.isListPath(url.pathname)) {
      sendData(res, ctx.resources.list(url.pathname, url.searchParams));
    } else if (entry.method === 'GET') {
      query(ctx, res, accessKey, url);
    } else {
      throw new KlingError(1202);
    }
  } catch (err) {
    sendError(res, err instanceof KlingError ? err : new KlingError(5000));
  }
}

function create(
  ctx: SandboxContext,
  res: ServerResponse,
  accessKey: string,
  path: string,
  body: unknown,
  malformed: boolean,
): void {
  const kind = ctx.endpoints.get(path);
  if (!kind) throw new KlingError(1202);
  const fault = ctx.faults.takeCreateError();
  if (fault) throw fault;
  if (malformed) throw new KlingError(1200, 'request body is not valid JSON');
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new KlingError(1200, 'request body must be a JSON object');
  }
  const fields = body as Record<string, unknown>;
  if (carriesDataUri(fields)) throw new KlingError(1201, 'base64 must not carry a data: prefix');

  const delivery = ctx.faults.takeCreateDelivery();
  let data: unknown;
  if (kind === 'sync') {
    const answer = ctx.resources.call(accessKey, path, fields) ?? syncResult(path, fields);
    ctx.accountBook.recordSync(accessKey, path, fields, answer);
    data = answer;
  } else {
    // Callbacks wait for the answer to leave, unless the answer is being sabotaged anyway.
    const answered = delivery ? undefined : new Promise((resolve) => res.once('close', resolve));
    const task = ctx.store.create(accessKey, path, fields, answered);
    data = {
      task_id: task.taskId,
      task_status: 'submitted',
      task_info: task.externalTaskId === undefined ? {} : { external_task_id: task.externalTaskId },
      created_at: task.createdAt,
      updated_at: task.createdAt,
    };
  }

  answerCreate(ctx.hung, res, data, delivery);
}

function query(ctx: SandboxContext, res: ServerResponse, accessKey: string, url: URL): void {
  const path = url.pathname;
  if (ctx.endpoints.get(path) === 'task') {
    list(ctx, res, accessKey, path, url.searchParams);
    return;
  }
  const cut = path.lastIndexOf('/');
  const parent = path.slice(0, cut);
  if (cut <= 0 || ctx.endpoints.get(parent) !== 'task') throw new KlingError(1202);
  let id: string;
  try {
    id = decodeURIComponent(path.slice(cut + 1));
  } catch {
    throw new KlingError(1203, 'task not found');
  }
  single(ctx, res, accessKey, parent, id);
}

function single(ctx: SandboxContext, res: ServerResponse, accessKey: string, path: string, id: string): void {
  const fault = takeQueryFault(ctx, res);
  if (fault === 'answered') return;
  const task = ctx.store.lookup(accessKey, path, id);
  if (fault === 'huge') {
    const data = task ? taskObject(task) : { task_id: id, task_status: 'submitted' };
    sendRaw(res, 200, JSON.stringify({ code: 0, message: 'SUCCEED', request_id: requestId(), data: { ...data, padding: 'x'.repeat(HUGE_BYTES) } }));
    return;
  }
  if (!task || ctx.faults.isLost(id, task.taskId, task.externalTaskId)) throw new KlingError(1203, 'task not found');
  const data = taskObject(task);
  if (fault === 'unknown-status') data.task_status = 'weird';
  sendData(res, data);
}

/** A /v1 list query: the account's tasks of the path, newest first; lost tasks left out; the query fault switches apply. */
function list(
  ctx: SandboxContext,
  res: ServerResponse,
  accessKey: string,
  path: string,
  params: URLSearchParams,
): void {
  const pageNum = pageParam(params, 'pageNum', 1, 1000, 1);
  const pageSize = pageParam(params, 'pageSize', 1, 500, 30);
  const fault = takeQueryFault(ctx, res);
  if (fault === 'answered') return;
  let tasks = ctx.store.list(accessKey, path).filter((t) => !ctx.faults.isLost(t.taskId, t.externalTaskId));
  const external = params.get('external_task_id');
  if (external !== null) tasks = tasks.filter((t) => t.externalTaskId === external);
  const start = (pageNum - 1) * pageSize;
  const data = tasks.slice(start, start + pageSize).map(taskObject);
  if (fault === 'unknown-status' && data[0]) data[0].task_status = 'weird';
  if (fault === 'huge') {
    sendRaw(res, 200, JSON.stringify({ code: 0, message: 'SUCCEED', request_id: requestId(), data, padding: 'x'.repeat(HUGE_BYTES) }));
    return;
  }
  sendData(res, data);
}

function pageParam(params: URLSearchParams, name: string, min: number, max: number, fallback: number): number {
  const raw = params.get(name);
  if (raw === null || raw === '') return fallback;
  const value = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!(value >= min && value <= max)) throw new KlingError(1201, `${name} must be an integer in [${min}, ${max}]`);
  return value;
}

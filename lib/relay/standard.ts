import { RelayHttpError } from '../errors.js';
import type { RegistryEntry } from '../registry/types.js';
import type { AccountPool, KlingAccount } from '../upstream/accounts.js';
import { v1Status } from '../upstream/standard.js';
import { isObject, type Json } from '../json.js';

/**
 * What a submit does differently in Kling's standard family (docs/kling.md): the caller's and the
 * relay's ids live in `options`, only API-key accounts are accepted, and Kling answers `{id, status,
 * create_time, update_time, external_id}`.
 */

export interface ClientIdsInBody {
  taskId: string | null;
  callbackUrl: string | null;
}

/** Where the family keeps the task's ids: the body itself (v1) or its `options` (standard). */
function idHolder(entry: RegistryEntry, body: Json): Json {
  if (entry.family === 'v1') return body;
  if (!isObject(body.options)) body.options = {};
  return body.options as Json;
}

/**
 * Takes the caller's external_task_id and callback_url out of the body: the relay keeps them and
 * never forwards them. An empty external_task_id is none (Kling's own examples send "").
 */
/** The caller's external_task_id as the body carries it (not taken out; an empty one is none). */
export function clientTaskIdIn(entry: RegistryEntry, body: Json): string | null {
  const holder = entry.family === 'v1' ? body : isObject(body.options) ? body.options : {};
  return typeof holder.external_task_id === 'string' && holder.external_task_id !== '' ? holder.external_task_id : null;
}

export function takeClientIds(entry: RegistryEntry, body: Json): ClientIdsInBody {
  const holder = idHolder(entry, body);
  const taskId = typeof holder.external_task_id === 'string' && holder.external_task_id !== '' ? holder.external_task_id : null;
  const callbackUrl = typeof holder.callback_url === 'string' ? holder.callback_url : null;
  delete holder.external_task_id;
  delete holder.callback_url;
  return { taskId, callbackUrl };
}

/**
 * A copy of the body with the relay's own external_task_id and callback URL where Kling reads them for
 * this family; the body itself is left as it is (a create moved to another account gets another URL).
 */
export function withRelayIds(entry: RegistryEntry, body: Json, externalTaskId: string, callbackUrl: string): Json {
  const copy = isObject(body.options) ? { ...body, options: { ...body.options } } : { ...body };
  const holder = idHolder(entry, copy);
  holder.external_task_id = externalTaskId;
  holder.callback_url = callbackUrl;
  return copy;
}

/** Whether an account can serve the entry: any for the v1 family, those with an API key for the standard family. */
export function servesFamily(entry: RegistryEntry): (account: KlingAccount) => boolean {
  return entry.family === 'v1' ? () => true : (account) => account.apiKey !== undefined;
}

/** An account weighted pick among those that authenticate with an API key, or undefined when none does. */
function pickApiKeyAccount(pool: AccountPool, random: () => number): KlingAccount | undefined {
  const candidates = pool.all().filter((account) => account.apiKey !== undefined && account.weight > 0);
  let target = random() * candidates.reduce((sum, account) => sum + account.weight, 0);
  return candidates.find((account) => (target -= account.weight) < 0) ?? candidates[candidates.length - 1];
}

/**
 * The account for a new task of this entry: `owner` (the one that made a resource the request names)
 * or a weighted pick. Standard-family paths take API keys only, so a key-pair account cannot serve
 * them: refused with 503 before anything is held.
 */
export function accountFor(entry: RegistryEntry, pool: AccountPool, owner: KlingAccount | undefined, random: () => number = Math.random): KlingAccount {
  if (entry.family === 'v1') return owner ?? pool.pick();
  if (owner) {
    if (owner.apiKey !== undefined) return owner;
    throw new RelayHttpError(503, 5001, `the Kling account that made a resource this request names has no API key, and ${entry.path} takes API keys only`);
  }
  const account = pickApiKeyAccount(pool, random);
  if (account) return account;
  throw new RelayHttpError(503, 5001, `no Kling account with an API key is configured; ${entry.path} (Kling's standard API family) takes API keys only`);
}

/** Kling's create answer as the relay records it: Kling's task id, the status in v1's words, the times. */
export interface CreatedTask {
  klingTaskId: string | null;
  status: unknown;
  createdAt: unknown;
  updatedAt: unknown;
}

export function createdTask(entry: RegistryEntry, data: Json): CreatedTask {
  if (entry.family === 'v1') {
    return { klingTaskId: typeof data.task_id === 'string' ? data.task_id : null, status: data.task_status, createdAt: data.created_at, updatedAt: data.updated_at };
  }
  return { klingTaskId: typeof data.id === 'string' ? data.id : null, status: v1Status(data.status), createdAt: data.create_time, updatedAt: data.update_time };
}

/** Kling's standard create answer as the caller sees it: its own external id (or none), never the relay's. */
export function shownStandardCreate(data: Json, clientTaskId: string | null): Json {
  const { external_id: _ours, ...shown } = data;
  return clientTaskId === null ? shown : { ...shown, external_id: clientTaskId };
}

/**
 * Kling's standard create answer as a caller of the /v1 path sees it (a request the relay translated
 * to the standard family): /v1's fields, with its own external_task_id (or none), never the relay's.
 */
export function shownAsV1Create(created: CreatedTask, clientTaskId: string | null): Json {
  return {
    task_id: created.klingTaskId ?? '',
    task_status: created.status,
    task_info: clientTaskId === null ? {} : { external_task_id: clientTaskId },
    created_at: created.createdAt,
    updated_at: created.updatedAt,
  };
}

/**
 * A task found by a look-up (in v1's words) as the family's create answer, for a create Kling
 * answered with an error but carried out.
 */
export function createAnswerOf(entry: RegistryEntry, found: Json): Json {
  if (entry.family === 'v1') return found;
  const info = isObject(found.task_info) ? found.task_info : {};
  const answer: Json = { id: found.task_id, status: found.task_status === 'succeed' ? 'succeeded' : found.task_status, create_time: found.created_at, update_time: found.updated_at };
  if (typeof info.external_task_id === 'string') answer.external_id = info.external_task_id;
  return answer;
}

import type { KlingAccount } from './accounts.js';
import { type KlingClient, UpstreamError } from './client.js';
import { isObject, type Json } from '../json.js';

/**
 * Kling's standard family (docs/kling.md) answers and calls back with `{id, status, message,
 * create_time, update_time, external_id, outputs[], billing[]}`; the relay records tasks in v1's words
 * (`task_id`, `task_status`, `task_result`, the deductions). This file reads the one as the other.
 */

/**
 * Whether a create path is the standard family's. The registry's meta-schema keeps every v1 path
 * under `/v1/` and every standard path out of it, so the path alone says which family a task is in.
 */
export function isStandardPath(path: string): boolean {
  return !path.startsWith('/v1/');
}

/** `succeeded` is v1's `succeed`; the other statuses are the same words in both families. */
export function v1Status(status: unknown): unknown {
  return status === 'succeeded' ? 'succeed' : status;
}

/** `outputs[]` as v1's `task_result`: videos, images and audios under their v1 names. */
function taskResult(outputs: unknown): Json | undefined {
  if (!Array.isArray(outputs) || outputs.length === 0) return undefined;
  const result: { videos: Json[]; images: Json[]; audios: Json[] } = { videos: [], images: [], audios: [] };
  for (const output of outputs.filter(isObject)) {
    const { type, ...fields } = output;
    if (type === 'video') result.videos.push(fields);
    else if (type === 'image') result.images.push({ index: result.images.length, ...fields });
    else if (type === 'audio') {
      result.audios.push({ id: fields.id, url_mp3: fields.mp3_url, url_wav: fields.wav_url, duration_mp3: fields.mp3_duration, duration_wav: fields.wav_duration });
    }
  }
  return Object.fromEntries(Object.entries(result).filter(([, items]) => items.length > 0));
}

/** Decimal strings added without binary fractions creeping in (amounts have at most a few decimals). */
function addDecimals(amounts: string[]): string {
  const scale = 1_000_000;
  return String(amounts.reduce((sum, amount) => sum + Math.round(Number(amount) * scale), 0) / scale);
}

/** The one string every entry has at `key`, or undefined when they differ or one has none. */
function shared(entries: Json[], key: string): string | undefined {
  const values = new Set(entries.map((entry) => entry[key]));
  const [value] = values;
  return values.size === 1 && typeof value === 'string' ? value : undefined;
}

/**
 * `billing[]` as v1's `final_unit_deduction` (units) and `final_balance_deduction` (money: the
 * amounts, the list prices, and the currency and cash type when the cash entries agree on them).
 */
function deductions(billing: unknown): Json {
  if (!Array.isArray(billing)) return {};
  const charges = billing.filter(isObject);
  const units = charges.filter((c) => c.charge_type === 'unit' && typeof c.amount === 'string').map((c) => c.amount as string);
  const cash = charges.filter((c) => c.charge_type === 'cash' && typeof c.amount === 'string');
  const out: Json = {};
  if (units.length > 0) out.final_unit_deduction = addDecimals(units);
  if (cash.length > 0) {
    const listPrices = cash.map((c) => (typeof c.list_price === 'string' ? c.list_price : '0'));
    const balance: Json = { quota: addDecimals(cash.map((c) => c.amount as string)), list_price: addDecimals(listPrices) };
    const currency = shared(cash, 'currency');
    const cashType = shared(cash, 'cash_type');
    if (currency !== undefined) balance.currency = currency;
    if (cashType !== undefined) balance.cash_type = cashType;
    out.final_balance_deduction = balance;
  }
  return out;
}

/** A standard-family task object (a `/tasks` item or a callback body) in v1's words. */
export function asV1Task(task: Json): Json {
  const out: Json = {
    task_id: task.id,
    task_status: v1Status(task.status),
    task_status_msg: task.message,
    created_at: task.create_time,
    updated_at: task.update_time,
    task_info: typeof task.external_id === 'string' && task.external_id !== '' ? { external_task_id: task.external_id } : {},
    ...deductions(task.billing),
  };
  const result = taskResult(task.outputs);
  if (result) out.task_result = result;
  return out;
}

/** Whether a callback body is the standard family's: it names the task `id`, not `task_id`. */
export function isStandardTask(body: Json): boolean {
  return typeof body.id === 'string' && body.task_id === undefined;
}

/** What one `GET /tasks` answered: the tasks found by the id asked, in v1's words, and the call's path and request id. */
export interface StandardTasks {
  found: Map<string, Json>;
  path: string;
  requestId: string;
}

/**
 * Tasks from one `GET /tasks`, named by Kling's ids or by our external_task_ids (comma-separated, one
 * kind per call), keyed by the id asked; undefined when the answer holds no list. Kling leaves unknown
 * ids out of its list.
 */
export async function getStandardTasks(client: KlingClient, account: KlingAccount, ids: readonly string[], byExternalId: boolean): Promise<StandardTasks | undefined> {
  const path = `/tasks?${byExternalId ? 'external_task_ids' : 'task_ids'}=${ids.map(encodeURIComponent).join(',')}`;
  const reply = await client.get(account, path);
  if (!Array.isArray(reply.envelope.data)) return undefined;
  const found = new Map<string, Json>();
  for (const task of reply.envelope.data.filter(isObject)) {
    const id = byExternalId ? task.external_id : task.id;
    if (typeof id === 'string' && ids.includes(id)) found.set(id, asV1Task(task));
  }
  return { found, path, requestId: reply.envelope.request_id };
}

/**
 * Kling's not-found (1203) for an id its `GET /tasks` left out, as a v1 query of an unknown task
 * answers, so callers handle both families alike.
 */
export function standardTaskNotFound(account: KlingAccount, id: string, path: string, requestId: string): UpstreamError {
  return new UpstreamError(`Kling has no task ${id}`, { kind: 'kling', ambiguous: false, accountId: account.id, method: 'GET', path, httpStatus: 404, klingCode: 1203, klingMessage: 'task not found', requestId });
}

/** One task from `GET /tasks`, in v1's words; undefined when the answer holds no list, Kling's not-found when it leaves the task out. */
export async function getStandardTask(client: KlingClient, account: KlingAccount, id: string, byExternalId: boolean): Promise<Json | undefined> {
  const answer = await getStandardTasks(client, account, [id], byExternalId);
  if (!answer) return undefined;
  const found = answer.found.get(id);
  if (found) return found;
  throw standardTaskNotFound(account, id, answer.path, answer.requestId);
}

/** v1's `succeed` is the standard family's `succeeded`. */
function standardStatus(status: unknown): unknown {
  return status === 'succeed' ? 'succeeded' : status;
}

/** v1's `task_result` as `outputs[]`, each item typed. */
function outputsOf(result: unknown): Json[] {
  if (!isObject(result)) return [];
  const items = (key: string): Json[] => (Array.isArray(result[key]) ? (result[key] as unknown[]).filter(isObject) : []);
  return [
    ...items('videos').map((video) => ({ type: 'video', ...video })),
    ...items('images').map(({ index: _index, ...image }) => ({ type: 'image', ...image })),
    ...items('audios').map((audio) => ({ type: 'audio', id: audio.id, mp3_url: audio.url_mp3, wav_url: audio.url_wav, mp3_duration: audio.duration_mp3, wav_duration: audio.duration_wav })),
  ];
}

/**
 * v1's deductions as `billing[]`: the units (the family's tasks are videos) and the balance, with the
 * currency Kling reported (none when it named none) and its cash type (`balance` when it named none).
 */
function billingOf(task: Json): Json[] {
  const billing: Json[] = [];
  if (typeof task.final_unit_deduction === 'string' && Number(task.final_unit_deduction) > 0) {
    billing.push({ charge_type: 'unit', amount: task.final_unit_deduction, package_type: 'video' });
  }
  const balance = task.final_balance_deduction;
  if (isObject(balance) && typeof balance.quota === 'string' && Number(balance.quota) > 0) {
    const cash: Json = { charge_type: 'cash', cash_type: typeof balance.cash_type === 'string' ? balance.cash_type : 'balance', amount: balance.quota };
    if (typeof balance.currency === 'string') cash.currency = balance.currency;
    billing.push({ ...cash, list_price: balance.list_price });
  }
  return billing;
}

/**
 * A task object in v1's words (as the relay shows its own tasks) in the standard family's: what a
 * caller of that family gets from a query or a callback.
 */
export function asStandardTask(task: Json): Json {
  const info = isObject(task.task_info) ? task.task_info : {};
  const out: Json = {
    id: task.task_id ?? '',
    status: standardStatus(task.task_status),
    message: task.task_status_msg ?? '',
    create_time: task.created_at,
    update_time: task.updated_at,
  };
  if (typeof info.external_task_id === 'string') out.external_id = info.external_task_id;
  return { ...out, outputs: outputsOf(task.task_result), billing: billingOf(task) };
}

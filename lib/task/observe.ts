import type { RelayTask } from '../../adapters/types.js';
import { reportedDeductions } from '../completion/deductions.js';
import type { KlingAccount } from '../upstream/accounts.js';
import { UpstreamError, type KlingClient } from '../upstream/client.js';
import { getStandardTask, isStandardPath } from '../upstream/standard.js';
import { finish, markChecked, progress, type TaskLifeDeps } from './life.js';

/** What asking Kling about a task and applying the answer needs: the task's life, and a Kling client. */
export interface ObserveDeps extends TaskLifeDeps {
  client: KlingClient;
}

/** Kling's task object, as far as the relay reads it. */
export interface KlingTaskObject {
  task_id?: unknown;
  task_status?: unknown;
  task_status_msg?: unknown;
  task_result?: unknown;
  created_at?: unknown;
  updated_at?: unknown;
  task_info?: { external_task_id?: unknown };
  /** Resource-pack units Kling deducted, a decimal string. */
  final_unit_deduction?: unknown;
  /** The balance Kling deducted, `{quota, list_price}` as decimal strings. */
  final_balance_deduction?: unknown;
}

/**
 * Kling's task object for one of our tasks, asked with the account that created it, by Kling's id or
 * our external_task_id; undefined when the answer holds no task.
 */
export async function fetchKlingTask(ctx: Pick<ObserveDeps, 'client'>, account: KlingAccount, task: RelayTask, id: string): Promise<KlingTaskObject | undefined> {
  if (isStandardPath(task.endpoint)) return getStandardTask(ctx.client, account, id, id === task.external_task_id);
  const reply = await ctx.client.get(account, `${task.endpoint}/${encodeURIComponent(id)}`);
  const data = reply.envelope.data;
  return typeof data === 'object' && data !== null ? (data as KlingTaskObject) : undefined;
}

/**
 * What applying Kling's word did: the task reached a final state, moved forward, stayed as it was (a
 * duplicate or late word), or the word was no status the relay knows (then nothing was written).
 */
export type Applied = 'settled' | 'progressed' | 'unchanged' | 'invalid';

/** Applies what Kling says about a task: a final status through the one move to a final state, a non-final one only forward. */
export async function applyKlingTask(ctx: TaskLifeDeps, task: RelayTask, kling: KlingTaskObject): Promise<Applied> {
  const status = kling.task_status;
  const klingTaskId = typeof kling.task_id === 'string' && kling.task_id !== '' ? kling.task_id : undefined;
  const klingUpdatedAt = typeof kling.updated_at === 'number' ? kling.updated_at : undefined;
  if (status === 'succeed') {
    const outcome = { status: 'succeed', klingTaskId, result: kling.task_result ?? null, klingUpdatedAt, deductions: reportedDeductions(kling) } as const;
    return (await finish(ctx, task.id, outcome, undefined, task)) ? 'settled' : 'unchanged';
  }
  if (status === 'failed') {
    const reason = typeof kling.task_status_msg === 'string' && kling.task_status_msg !== '' ? kling.task_status_msg : 'failed at Kling';
    return (await finish(ctx, task.id, { status: 'failed', klingTaskId, reason, klingUpdatedAt, deductions: reportedDeductions(kling) })) ? 'settled' : 'unchanged';
  }
  if (status !== 'submitted' && status !== 'processing') return 'invalid';
  return (await progress(ctx, task, status, klingTaskId, klingUpdatedAt)) ? 'progressed' : 'unchanged';
}

/** How each caller of `observe` treats Kling's answer. */
export interface ObserveOptions {
  /** The id Kling is asked by: its own task id, or our external_task_id for a task whose create answer was lost. */
  id: string;
  /**
   * An answer without a task, or with a status the relay does not know, is Kling's trouble: an
   * UpstreamError (the caller tries again later). Otherwise it is applied as nothing.
   */
  strict: boolean;
  /** A task not yet known by Kling's id is Kling's only when the answer names our external_task_id; else 'invalid', nothing written. */
  mustNameOurs: boolean;
  /** Writes checked_at once the answer is applied. */
  markChecked: boolean;
}

/** What `observe` did with Kling's answer, and the answer (undefined when it held no task). */
export interface Observation {
  applied: Applied;
  answer: KlingTaskObject | undefined;
}

/** Asks Kling about a task with the account that created it and applies the answer. */
export async function observe(ctx: ObserveDeps, account: KlingAccount, task: RelayTask, options: ObserveOptions): Promise<Observation> {
  return applyObservation(ctx, account, task, await fetchKlingTask(ctx, account, task, options.id), options);
}

/**
 * Applies what Kling answered about a task (undefined: an answer without the task) as `observe`
 * does; for a caller that asked Kling about several tasks at once.
 */
export async function applyObservation(ctx: TaskLifeDeps, account: KlingAccount, task: RelayTask, data: KlingTaskObject | undefined, options: Omit<ObserveOptions, 'id'>): Promise<Observation> {
  const unusable = (why: string): UpstreamError => new UpstreamError(why, { kind: 'bad_response', ambiguous: false, accountId: account.id, method: 'GET', path: task.endpoint });
  if (!data && options.strict) throw unusable('no task in the answer');
  if (data && options.mustNameOurs && task.kling_task_id === null && data.task_info?.external_task_id !== task.external_task_id) return { applied: 'invalid', answer: data };
  const applied = data ? await applyKlingTask(ctx, task, data) : 'unchanged';
  if (applied === 'invalid' && options.strict) throw unusable(`unknown task_status ${JSON.stringify(data?.task_status)}`);
  if (options.markChecked) await markChecked(ctx, task.id);
  return { applied, answer: data };
}

/**
 * One page of Kling's list of an account's tasks of one /v1 endpoint (`GET {endpoint}?pageNum=&pageSize=`),
 * newest first; undefined when the answer holds no list.
 */
export async function listKlingTasks(ctx: Pick<ObserveDeps, 'client'>, account: KlingAccount, endpoint: string, pageNum: number, pageSize: number): Promise<KlingTaskObject[] | undefined> {
  const reply = await ctx.client.get(account, `${endpoint}?pageNum=${pageNum}&pageSize=${pageSize}`);
  const data = reply.envelope.data;
  return Array.isArray(data) ? data.filter((item): item is KlingTaskObject => typeof item === 'object' && item !== null && !Array.isArray(item)) : undefined;
}

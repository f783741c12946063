import type { Knex } from 'knex';
import { FINAL_STATES, type RelayTask, type TaskState } from '../../adapters/types.js';
import type { KlingAccount } from '../upstream/accounts.js';
import { getStandardTask, isStandardPath } from '../upstream/standard.js';
import { writeStatusChange } from '../callbacks/notice.js';
import type { RelayContext } from '../relay/context.js';
import { reportedDeductions } from './deductions.js';
import { finishTask } from './transition.js';

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

export function isFinal(task: RelayTask): boolean {
  return FINAL_STATES.includes(task.state);
}

/**
 * Kling's task object for one of our tasks, asked with the account that created it, by Kling's id or
 * our external_task_id; undefined when the answer holds no task.
 */
export async function fetchKlingTask(ctx: RelayContext, account: KlingAccount, task: RelayTask, id: string): Promise<KlingTaskObject | undefined> {
  if (isStandardPath(task.endpoint)) return getStandardTask(ctx.client, account, id, id === task.external_task_id);
  const reply = await ctx.client.get(account, `${task.endpoint}/${encodeURIComponent(id)}`);
  const data = reply.envelope.data;
  return typeof data === 'object' && data !== null ? (data as KlingTaskObject) : undefined;
}

const RANK: Record<TaskState, number> = { pending: 0, submitted: 1, processing: 2, succeed: 3, failed: 3 };

/** States a task may move forward from to reach `state`: a status never goes back. */
function earlierThan(state: TaskState): TaskState[] {
  return (Object.keys(RANK) as TaskState[]).filter((s) => RANK[s] < RANK[state]);
}

export type Applied = 'settled' | 'progressed' | 'unchanged' | 'invalid';

/**
 * Applies what Kling says about a task (from a query; the callback and the reconciler use it too):
 * a final status goes through the one transition, a non-final one only moves the state forward.
 */
export async function applyKlingTask(ctx: RelayContext, task: RelayTask, kling: KlingTaskObject): Promise<Applied> {
  const status = kling.task_status;
  const klingTaskId = typeof kling.task_id === 'string' && kling.task_id !== '' ? kling.task_id : undefined;
  const klingUpdatedAt = typeof kling.updated_at === 'number' ? kling.updated_at : undefined;
  if (status === 'succeed') {
    const outcome = { status: 'succeed', klingTaskId, result: kling.task_result ?? null, klingUpdatedAt, deductions: reportedDeductions(kling) } as const;
    return (await finishTask(ctx, task.id, outcome)) ? 'settled' : 'unchanged';
  }
  if (status === 'failed') {
    const reason = typeof kling.task_status_msg === 'string' && kling.task_status_msg !== '' ? kling.task_status_msg : 'failed at Kling';
    return (await finishTask(ctx, task.id, { status: 'failed', klingTaskId, reason, klingUpdatedAt, deductions: reportedDeductions(kling) })) ? 'settled' : 'unchanged';
  }
  if (status !== 'submitted' && status !== 'processing') return 'invalid';
  const now = Date.now();
  const patch: Partial<RelayTask> & { state: TaskState } = { state: status, ...(klingTaskId ? { kling_task_id: klingTaskId } : {}), ...(klingUpdatedAt ? { kling_updated_at: klingUpdatedAt } : {}) };
  const write = async (db: Knex.Transaction): Promise<boolean> => {
    if (!(await ctx.store.updateTask(db, task.id, patch, earlierThan(status)))) return false;
    // In finishTask's order: the task row, its notice, the host row; a failure anywhere undoes all three.
    await ctx.notices?.enqueue(db, { ...task, ...patch }, now);
    await ctx.hosts[task.table_kind].update(db, task.host_row_id, { status, ...(klingTaskId ? { task_id: klingTaskId } : {}), updated_at: Math.floor(now / 1000) });
    return true;
  };
  const moved = await writeStatusChange(ctx.db, write);
  return moved ? 'progressed' : 'unchanged';
}

import type { RelayTask } from '../../adapters/types.js';
import { shownDeductions } from '../completion/deductions.js';

/**
 * Kling's task object, from the relay's own row. The caller sees its own external_task_id, never ours,
 * and Kling's final_unit_deduction and final_balance_deduction once a final task came with them. A
 * task that waited in the queue was answered with the relay's external_task_id as its task_id: it keeps
 * that id until Kling gives its own (the caller may query by either). Queued and pending are `submitted`.
 */
export function taskObject(task: RelayTask): Record<string, unknown> {
  const object: Record<string, unknown> = {
    task_id: task.kling_task_id ?? (task.queued_body !== null ? task.external_task_id : ''),
    task_status: task.state === 'pending' || task.state === 'queued' ? 'submitted' : task.state,
    task_status_msg: task.status_msg ?? '',
    task_info: task.client_task_id === null ? {} : { external_task_id: task.client_task_id },
    created_at: task.kling_created_at ?? task.created_at,
    updated_at: task.kling_updated_at ?? task.updated_at,
  };
  if (task.result !== null && task.state === 'succeed') {
    try {
      object.task_result = JSON.parse(task.result) as unknown;
    } catch {
      object.task_result = {};
    }
  }
  return { ...object, ...shownDeductions(task) };
}

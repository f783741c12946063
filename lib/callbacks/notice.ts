import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import type { OutboxStore } from '../../adapters/outbox-store.js';
import type { RelayTask } from '../../adapters/types.js';
import { shownDeductions } from '../completion/deductions.js';
import type { Registry } from '../registry/types.js';
import { KLING_STATUSES } from '../task/states.js';
import { asStandardTask, isStandardPath } from '../upstream/standard.js';

/** The statuses Kling announces; `pending` (Kling has not answered the create yet) is the relay's own. */
const ANNOUNCED: ReadonlySet<string> = new Set(KLING_STATUSES);

function parsedResult(result: string | null): unknown {
  if (result === null || result === '') return {};
  try {
    return JSON.parse(result) as unknown;
  } catch {
    return {};
  }
}

/**
 * Kling's callback body for a task in its current state: Kling's task_id,
 * the caller's own external_task_id (never ours) or no task_info.external_task_id at all, the result
 * once it succeeded, the deductions Kling reported for a final task, Kling's times in ms.
 */
export function noticeBody(task: RelayTask, now: number): Record<string, unknown> {
  return {
    task_id: task.kling_task_id,
    task_status: task.state,
    task_status_msg: task.status_msg ?? '',
    task_info: task.client_task_id === null ? {} : { external_task_id: task.client_task_id },
    ...(task.state === 'succeed' ? { task_result: parsedResult(task.result) } : {}),
    ...shownDeductions(task),
    created_at: task.kling_created_at ?? task.created_at,
    updated_at: task.kling_updated_at ?? now,
  };
}

/**
 * Writes the notice of a task's new status into the outbox, inside the transaction that applied the
 * status, so the notice exists exactly when the change does. Kling calls back only for tasks it
 * accepted on endpoints with a later result, so neither does the relay: no notice for a task without
 * a callback URL, without a Kling task id (refused, or never received: the caller got the error), or
 * on a sync endpoint (the answer was the result).
 */
export class ClientNotices {
  /**
   * `onCommitted` is called once a written notice is committed: the delivery's kick, so the notice
   * need not wait for the next pass.
   */
  constructor(
    private readonly outbox: OutboxStore,
    private readonly registry: Registry,
    private readonly onCommitted?: () => void,
  ) {}

  /** `task` as it is after the transition (the row merged with the patch written). */
  async enqueue(trx: Knex | Knex.Transaction, task: RelayTask, now = Date.now()): Promise<void> {
    if (task.client_callback_url === null || task.kling_task_id === null || !ANNOUNCED.has(task.state)) return;
    if (this.registry.byPath.get(task.endpoint)?.kind === 'sync') return;
    await this.outbox.add(trx, {
      notice_id: `msg_${randomBytes(16).toString('hex')}`,
      task_id: task.id,
      status: task.state,
      url: task.client_callback_url,
      // In the family the caller posted in, which for a translated request is not the one Kling has the task in.
      body: JSON.stringify(isStandardPath(task.client_endpoint ?? task.endpoint) ? asStandardTask(noticeBody(task, now)) : noticeBody(task, now)),
      created_at: now,
    });
    const committed = this.onCommitted;
    if (!committed) return;
    // Inside a transaction the notice is invisible to a delivery pass until the commit.
    if (trx.isTransaction) (trx as Knex.Transaction).executionPromise.then(committed, () => undefined);
    else committed();
  }
}

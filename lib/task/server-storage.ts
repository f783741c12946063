import type { DirectWrites } from '../../adapters/direct-writes.js';
import { checkAmount, isBuiltInQuotaStore } from '../../adapters/quota-store.js';
import type { RelayTask } from '../../adapters/types.js';
import { KnexTaskStorage } from './knex-storage.js';
import type { TaskState } from './states.js';
import { acceptedHostRow, type Acceptance, type HoldPlan, type Settlement, type TaskStorageParts } from './storage.js';

/**
 * The task writes on MariaDB/MySQL and PostgreSQL: the submit's two (the hold and Kling's answer) and
 * a task's settlement run as statements compiled once on the driver's connection, committed in groups
 * (adapters/mysql-direct.ts, adapters/pg-direct.ts); everything else, and those three when they need
 * more than the built-in statements, goes through knex as on any database.
 */
export class ServerTaskStorage extends KnexTaskStorage {
  constructor(
    parts: TaskStorageParts,
    private readonly direct: DirectWrites,
  ) {
    super(parts);
  }

  /** Direct where `directHoldQuota` allows it, else through knex. */
  override hold(plan: HoldPlan): Promise<RelayTask | undefined> {
    const quota = this.directHoldQuota(plan);
    if (!quota) return super.hold(plan);
    return this.direct.hold({ quota, host: this.hosts[plan.table], userId: plan.userId, amount: plan.amount, hostRow: plan.row, task: plan.task(''), externalId: plan.externalId });
  }

  /** Direct where `acceptsDirectly` allows it, else through knex. */
  override async accept(task: RelayTask, answer: Acceptance): Promise<void> {
    if (!this.acceptsDirectly(task)) return super.accept(task, answer);
    await this.direct.accept({ host: this.hosts[task.table_kind], taskId: task.id, hostRowId: task.host_row_id, patch: { ...answer.patch, updated_at: answer.now }, hostPatch: (moved) => acceptedHostRow(answer, moved) });
  }

  /**
   * Direct with the built-in quota store, no `onTransition` hook, no notice to write (the task has no
   * callback URL) and a host table the statements can write; else through knex. The task is read
   * first, outside the write, as the knex transaction reads it before its compare-and-set: the write
   * applies only while the task is still in `from`, so of two racing settlements exactly one does.
   */
  override async finish(taskId: number, from: readonly TaskState[], settle: (task: RelayTask) => Settlement): Promise<{ task: RelayTask; settlement: Settlement } | undefined> {
    const { quota } = this;
    if (!isBuiltInQuotaStore(quota) || this.onTransition !== undefined) return super.finish(taskId, from, settle);
    const task = await this.store.getTask(this.db, taskId);
    if (!task || !from.includes(task.state)) return undefined;
    const host = this.hosts[task.table_kind];
    if (task.client_callback_url !== null || !host.templatable) return super.finish(taskId, from, settle);
    const settlement = settle(task);
    const { change, balance, ledger } = settlement;
    if (change.from.length === 0) return undefined;
    checkAmount(balance.amount);
    const used = quota.options.usedColumn === false ? 0 : (settlement.used ?? 0);
    checkAmount(used);
    const moved = await this.direct.finish({
      quota,
      host,
      taskId: task.id,
      userId: task.user_id,
      hostRowId: task.host_row_id,
      patch: { ...change.patch, updated_at: change.patch.updated_at ?? Date.now() },
      from: change.from,
      hostValues: host.updateValues(change.host, change.hostFacts),
      balanceDelta: balance.move === 'credit' ? balance.amount : -balance.amount,
      used,
      ledger: this.store.ledgerValues({ task_id: task.id, user_id: task.user_id, kind: ledger.kind, amount: ledger.amount }),
    });
    return moved ? { task, settlement } : undefined;
  }

  override close(): void {
    this.direct.close?.();
  }
}

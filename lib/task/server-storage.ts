import type { DirectWrites } from '../../adapters/direct-writes.js';
import { isBuiltInQuotaStore } from '../../adapters/quota-store.js';
import type { RelayTask } from '../../adapters/types.js';
import { KnexTaskStorage } from './knex-storage.js';
import { acceptedHostRow, type Acceptance, type HoldPlan, type TaskStorageParts } from './storage.js';

/**
 * The task writes on MariaDB/MySQL and PostgreSQL: the submit's two (the hold and Kling's answer) run
 * as statements compiled once on the driver's connection, committed in groups
 * (adapters/mysql-direct.ts, adapters/pg-direct.ts); everything else, and those two when they need
 * more than the built-in statements, goes through knex as on any database.
 */
export class ServerTaskStorage extends KnexTaskStorage {
  constructor(
    parts: TaskStorageParts,
    private readonly direct: DirectWrites,
  ) {
    super(parts);
  }

  /**
   * Direct under billing 'hold' with the built-in quota store, on a host table the templates can
   * write; otherwise (a store that overrides any method, charge-on-success's check, a table with extra
   * columns or another result shape) through knex.
   */
  override hold(plan: HoldPlan): Promise<RelayTask | undefined> {
    const { quota } = this;
    const host = this.hosts[plan.table];
    if (plan.billing !== 'hold' || !isBuiltInQuotaStore(quota) || !host.templatable) return super.hold(plan);
    return this.direct.hold({ quota, host, userId: plan.userId, amount: plan.amount, hostRow: plan.row, task: plan.task(''), externalId: plan.externalId });
  }

  /** Direct when there is no notice to write (the task has no callback URL) and the templates can write the host table. */
  override async accept(task: RelayTask, answer: Acceptance): Promise<void> {
    const host = this.hosts[task.table_kind];
    if (task.client_callback_url !== null || !host.templatable) return super.accept(task, answer);
    await this.direct.accept({ host, taskId: task.id, hostRowId: task.host_row_id, patch: { ...answer.patch, updated_at: answer.now }, hostPatch: (moved) => acceptedHostRow(answer, moved) });
  }

  override close(): void {
    this.direct.close?.();
  }
}

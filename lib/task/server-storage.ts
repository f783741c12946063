import type { DirectWrites } from '../../adapters/direct-writes.js';
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

  /** Direct where `finishWith` allows it, else through knex. */
  override finish(taskId: number, from: readonly TaskState[], settle: (task: RelayTask) => Settlement): Promise<{ task: RelayTask; settlement: Settlement } | undefined> {
    return this.finishWith((write) => this.direct.finish(write), taskId, from, settle);
  }

  override close(): void {
    this.direct.close?.();
  }
}

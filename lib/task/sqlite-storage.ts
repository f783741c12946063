import type { NewHostRow, RelayTask } from '../../adapters/types.js';
import type { DirectSqlite } from '../../adapters/sqlite-direct.js';
import { KnexTaskStorage, ShortBalance, unlessShort } from './knex-storage.js';
import { acceptedHostRow, type Acceptance, type HoldPlan, type TaskStorageParts } from './storage.js';

/**
 * The task writes on better-sqlite3: the submit's two (the hold and Kling's answer) run as the same
 * statements without knex's runner, in DirectSqlite's group-committed transactions
 * (adapters/sqlite-direct.ts); everything else, and those two when they need more than the built-in
 * statements, goes through knex as on any database.
 */
export class SqliteTaskStorage extends KnexTaskStorage {
  constructor(
    parts: TaskStorageParts,
    private readonly direct: DirectSqlite,
  ) {
    super(parts);
  }

  /** Direct where `directHoldQuota` allows it, else through knex. */
  override hold(plan: HoldPlan): Promise<RelayTask | undefined> {
    const { direct, store } = this;
    const quota = this.directHoldQuota(plan);
    if (!quota) return super.hold(plan);
    const host = this.hosts[plan.table];
    return unlessShort(
      direct.transaction((run) => {
        if (run(quota.holdTemplate(direct), quota.holdValues(plan.userId, plan.amount)).changes === 0) throw new ShortBalance();
        const hostRowId = String(run(host.insertTemplate(direct), host.directValues(plan.row)).lastInsertRowid);
        const task = plan.task(hostRowId);
        const id = Number(run(store.insertTaskTemplate(direct), task).lastInsertRowid);
        run(store.addLedgerTemplate(direct), store.ledgerValues({ task_id: id, user_id: plan.userId, kind: 'hold', amount: -plan.amount, created_at: plan.now }));
        return { ...task, id };
      }),
    );
  }

  /** Direct where `acceptsDirectly` allows it, else through knex. */
  override async accept(task: RelayTask, answer: Acceptance): Promise<void> {
    if (!this.acceptsDirectly(task)) return super.accept(task, answer);
    const { direct, store } = this;
    const host = this.hosts[task.table_kind];
    await direct.transaction((run) => {
      const moved = run(store.updateTaskTemplate(direct, ACCEPTED_COLUMNS, ['pending']), store.updateTaskValues(task.id, answer.patch, ['pending'])).changes > 0;
      if (!moved) run(store.updateTaskTemplate(direct, ['kling_task_id']), store.updateTaskValues(task.id, { kling_task_id: answer.patch.kling_task_id }));
      const change = acceptedHostRow(answer, moved);
      const update = host.updateTemplate(direct, Object.keys(change) as (keyof NewHostRow)[]);
      if (update) run(update, host.directValues({ ...change, id: task.host_row_id }));
    });
  }
}

/** The columns an acceptance's patch writes, every one (the record makes the compiler check that). */
const ACCEPTED: Record<keyof Acceptance['patch'], true> = { kling_task_id: true, state: true, kling_created_at: true, kling_updated_at: true, next_check_at: true };
const ACCEPTED_COLUMNS = Object.keys(ACCEPTED) as (keyof Acceptance['patch'])[];

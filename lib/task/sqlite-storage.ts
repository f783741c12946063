import { finishShape, type FinishShape, type FinishWrite } from '../../adapters/direct-writes.js';
import type { NewHostRow, RelayTask } from '../../adapters/types.js';
import type { DirectSqlite, Template } from '../../adapters/sqlite-direct.js';
import { KnexTaskStorage, ShortBalance, unlessShort } from './knex-storage.js';
import type { TaskState } from './states.js';
import { acceptedHostRow, type Acceptance, type HoldPlan, type Settlement, type TaskStorageParts } from './storage.js';

/**
 * The task writes on better-sqlite3: the submit's two (the hold and Kling's answer) and a task's
 * settlement run as the same statements without knex's runner, in DirectSqlite's group-committed
 * transactions (adapters/sqlite-direct.ts); everything else, and those three when they need more than
 * the built-in statements, goes through knex as on any database.
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

  /** Direct where `finishWith` allows it, else through knex. */
  override finish(taskId: number, from: readonly TaskState[], settle: (task: RelayTask) => Settlement): Promise<{ task: RelayTask; settlement: Settlement } | undefined> {
    return this.finishWith((write) => this.#finish(write), taskId, from, settle);
  }

  /** The task's compare-and-set, then, only when it matched, the host row, the balance and the ledger row. */
  #finish(write: FinishWrite): Promise<boolean> {
    const shape = finishShape(write);
    const templates = this.#finishTemplates(write, shape);
    return this.direct.transaction((run) => {
      if (run(templates.task, shape.values).changes === 0) return false;
      if (templates.host) run(templates.host, shape.values);
      run(templates.balance, shape.values);
      run(templates.ledger, shape.values);
      return true;
    });
  }

  /** A settlement's statements, compiled once per shape, their values named as `finishShape` names them. */
  #finishTemplates(write: FinishWrite, { key, columns, hostColumns, ledgerColumns }: FinishShape): { task: Template; host?: Template; balance: Template; ledger: Template } {
    const { direct, store } = this;
    const { db } = direct;
    const { table, idColumn, quotaColumn, usedColumn } = write.quota.options;
    const named = (prefix: string, names: readonly string[], param: (name: string) => string): Record<string, string> => Object.fromEntries(names.map((name) => [name, param(`${prefix}_${name}`)]));
    const task = direct.template(`${key}:task`, (param) =>
      db(store.tables.tasks)
        .where('id', param('task_id'))
        .whereIn('state', write.from.map((_, i) => param(`from_${i}`)))
        .update(named('task', columns, param)),
    );
    const hostId = write.host.idColumn;
    const host = hostColumns.length === 0 ? undefined : direct.template(`${key}:host`, (param) => db(write.host.name).where(hostId, param('host_id')).update(named('host', hostColumns, param)));
    const balance = direct.template(`${key}:balance`, (param) => {
      const moves: Record<string, unknown> = { [quotaColumn]: db.raw('?? + ?', [quotaColumn, param('delta')]) };
      if (usedColumn !== false) moves[usedColumn] = db.raw('?? + ?', [usedColumn, param('used')]);
      return db(table).where(idColumn, param('user_id')).update(moves);
    });
    const ledger = direct.template(`${key}:ledger`, (param) => db(store.tables.ledger).insert(named('ledger', ledgerColumns, param)));
    return host ? { task, host, balance, ledger } : { task, balance, ledger };
  }
}

/** The columns an acceptance's patch writes, every one (the record makes the compiler check that). */
const ACCEPTED: Record<keyof Acceptance['patch'], true> = { kling_task_id: true, state: true, kling_created_at: true, kling_updated_at: true, next_check_at: true };
const ACCEPTED_COLUMNS = Object.keys(ACCEPTED) as (keyof Acceptance['patch'])[];

import type { Knex } from 'knex';
import type { HostTable } from '../../adapters/host-table.js';
import type { RelayStore } from '../../adapters/relay-store.js';
import type { QuotaStore, RelayTask, TableKind, TransitionHook } from '../../adapters/types.js';
import type { ClientNotices } from '../callbacks/notice.js';
import type { FinishWrite } from '../../adapters/direct-writes.js';
import { checkAmount, isBuiltInQuotaStore, type KnexQuotaStore } from '../../adapters/quota-store.js';
import { affectedRows } from '../../adapters/dialect.js';
import { isFinal, type TaskState } from './states.js';
import { acceptedHostRow, type Acceptance, type Bookkeeping, type HoldPlan, type QueueMove, type Settlement, type StateChange, type TaskStorage, type TaskStorageParts } from './storage.js';

/** Thrown inside a hold's transaction when the balance falls short, so that it rolls back. */
export class ShortBalance extends Error {
  constructor() {
    super('not enough quota');
  }
}

/** A hold's outcome once its transaction is over: the task, or undefined when the balance fell short. */
export async function unlessShort(hold: Promise<RelayTask>): Promise<RelayTask | undefined> {
  try {
    return await hold;
  } catch (error) {
    if (error instanceof ShortBalance) return undefined;
    throw error;
  }
}

/** Every task write through knex, on any database knex speaks to. */
export class KnexTaskStorage implements TaskStorage {
  protected readonly db: Knex;
  protected readonly store: RelayStore;
  protected readonly hosts: Record<TableKind, HostTable>;
  protected readonly quota: QuotaStore;
  protected readonly notices: ClientNotices | undefined;
  protected readonly onTransition: TransitionHook | undefined;

  constructor(parts: TaskStorageParts) {
    this.db = parts.db;
    this.store = parts.store;
    this.hosts = parts.hosts;
    this.quota = parts.quota;
    this.notices = parts.notices;
    this.onTransition = parts.onTransition;
  }

  /**
   * Runs one task write in one transaction: every transaction of this storage comes through here. The
   * first write of a state change is the compare-and-set on the relay's task row; that row lock (on
   * SQLite, the one writer) orders concurrent changes of one task, so that of two racing writes the
   * later sees what the earlier committed, and the host row is never left at an older status.
   */
  protected transact<T>(work: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
    return this.db.transaction(work);
  }

  hold(plan: HoldPlan): Promise<RelayTask | undefined> {
    return unlessShort(
      this.transact(async (trx) => {
        if (plan.billing !== 'hold') await this.checkChargeable(trx, plan);
        const hostRowId = await this.hosts[plan.table].insert(trx, plan.row, plan.facts);
        const task = plan.task(hostRowId);
        const id = await this.store.insertTask(trx, task);
        if (plan.billing === 'hold') {
          await this.store.addLedger(trx, { task_id: id, user_id: plan.userId, kind: 'hold', amount: -plan.amount, created_at: plan.now });
          // The hold last: the conditional update locks the caller's balance row until COMMIT, and every
          // other submit of that caller waits for the lock; taken last, it is held for one round trip
          // instead of four. A short balance rolls the rows above back.
          if (!(await this.quota.hold(trx, plan.userId, plan.amount))) throw new ShortBalance();
        }
        return { ...task, id };
      }),
    );
  }

  /**
   * charge-on-success moves no quota at submit, so the check must count what the caller's running tasks
   * will be charged: balance >= this estimate + the estimates in flight. The store's hold and an equal
   * credit net to zero but take the caller's balance row lock until COMMIT, so the caller's submits
   * pass this check one at a time, each seeing the tasks the one before committed. The hold comes first:
   * on MySQL the reads after it then see what the previous lock holder committed.
   */
  private async checkChargeable(trx: Knex.Transaction, plan: HoldPlan): Promise<void> {
    if (!(await this.quota.hold(trx, plan.userId, plan.amount))) throw new ShortBalance();
    await this.quota.credit(trx, plan.userId, plan.amount);
    const inFlight = await this.store.inFlightEstimate(trx, plan.userId);
    const balance = await this.quota.balance(trx, plan.userId);
    if (balance === null || balance < plan.amount + inFlight) throw new ShortBalance();
  }

  async accept(task: RelayTask, answer: Acceptance): Promise<void> {
    await this.transact(async (trx) => {
      const moved = await this.store.updateTask(trx, task.id, answer.patch, ['pending']);
      // The Kling id is ours to keep whatever the status.
      if (!moved) await this.store.updateTask(trx, task.id, { kling_task_id: answer.patch.kling_task_id });
      await this.hosts[task.table_kind].update(trx, task.host_row_id, acceptedHostRow(answer, moved));
      // A status a callback applied before Kling's id was known had no notice; it gets one now.
      const current = moved ? { ...task, ...answer.patch } : task.client_callback_url === null ? undefined : await this.store.getTask(trx, task.id);
      if (current && (moved || !isFinal(current))) await this.notices?.enqueue(trx, current, answer.now);
    });
  }

  progress(task: RelayTask, change: StateChange): Promise<boolean> {
    return this.transact(async (trx) => {
      if (!(await this.store.updateTask(trx, task.id, change.patch, change.from))) return false;
      await this.announceAndMirror(trx, task, change);
      return true;
    });
  }

  finish(taskId: number, from: readonly TaskState[], settle: (task: RelayTask) => Settlement): Promise<{ task: RelayTask; settlement: Settlement } | undefined> {
    return this.finishThroughKnex(taskId, from, settle);
  }

  /**
   * `finish` as one knex transaction: read the task, compare-and-set, host row, balance, ledger, hook.
   * `read`: the task as the caller read it just before, so that it is not read again.
   */
  protected finishThroughKnex(taskId: number, from: readonly TaskState[], settle: (task: RelayTask) => Settlement, read?: RelayTask): Promise<{ task: RelayTask; settlement: Settlement } | undefined> {
    return this.transact(async (trx) => {
      const task = read ?? (await this.store.getTask(trx, taskId));
      if (!task || !from.includes(task.state)) return undefined;
      const settlement = settle(task);
      const { change, balance, ledger } = settlement;
      if (!(await this.store.updateTask(trx, task.id, change.patch, change.from))) return undefined;
      await this.announceAndMirror(trx, task, change);
      if (balance.move === 'credit') await this.quota.credit(trx, task.user_id, balance.amount);
      else await this.quota.debit(trx, task.user_id, balance.amount);
      await this.store.addLedger(trx, { task_id: task.id, user_id: task.user_id, kind: ledger.kind, amount: ledger.amount });
      if (settlement.used !== undefined) await this.quota.addUsed(trx, task.user_id, settlement.used);
      // Last in the transaction: a hook that throws rolls the whole change back.
      await this.onTransition?.(trx, { ...settlement.transition, hostTable: this.hosts[task.table_kind].name });
      return { task, settlement };
    });
  }

  reassign(task: RelayTask, to: { accountId: string; channelId: string | number }, now: number): Promise<boolean> {
    return this.transact(async (trx) => {
      if (!(await this.store.updateTask(trx, task.id, { account_id: to.accountId }, ['pending']))) return false;
      await this.hosts[task.table_kind].update(trx, task.host_row_id, { channel_id: to.channelId, updated_at: Math.floor(now / 1000) });
      return true;
    });
  }

  shift(task: RelayTask, move: QueueMove, now: number): Promise<boolean> {
    return this.transact(async (trx) => {
      // Only a task without Kling's id: one Kling accepted never goes back to waiting.
      const patch = { ...move.patch, lease_owner: null, lease_until: null };
      const changed = affectedRows(await trx(this.store.tables.tasks).where({ id: task.id, state: move.from }).whereNull('kling_task_id').update({ ...patch, updated_at: now }));
      if (changed === 0) return false;
      await this.hosts[task.table_kind].update(trx, task.host_row_id, { channel_id: move.channelId, updated_at: Math.floor(now / 1000) });
      return true;
    });
  }

  note(taskId: number, bookkeeping: Bookkeeping, from?: readonly TaskState[]): Promise<boolean> {
    return this.store.updateTask(this.db, taskId, bookkeeping, from);
  }

  /**
   * The quota store, when a storage that runs the hold's statements without knex may do so for
   * `plan`: billing 'hold' with the built-in quota store (a store that overrides any method, a
   * subclass's own hold, is called through knex, as is charge-on-success's check), on a host table
   * its templates can write (no extra columns, no other result shape). Undefined otherwise.
   */
  protected directHoldQuota(plan: HoldPlan): KnexQuotaStore | undefined {
    const { quota } = this;
    return plan.billing === 'hold' && isBuiltInQuotaStore(quota) && this.hosts[plan.table].templatable ? quota : undefined;
  }

  /** Whether Kling's answer may be written without knex: no notice to write, and a host table the templates can write. */
  protected acceptsDirectly(task: RelayTask): boolean {
    return task.client_callback_url === null && this.hosts[task.table_kind].templatable;
  }

  /**
   * `finish` through `write`, a storage's own statements, where they may stand for knex's: the
   * built-in quota store, no `onTransition` hook, no notice to write (the task has no callback URL) and
   * a host table the statements can write; else knex's `finish`. The task is read first, outside the
   * write, as knex's transaction reads it before its compare-and-set: `write` applies only while the
   * task is still in `from` (answering whether it did), so of two racing settlements exactly one does.
   * A task that needs knex's transaction after all is given to it as read here.
   */
  protected async finishWith(
    write: (finish: FinishWrite) => Promise<boolean>,
    taskId: number,
    from: readonly TaskState[],
    settle: (task: RelayTask) => Settlement,
  ): Promise<{ task: RelayTask; settlement: Settlement } | undefined> {
    const { quota } = this;
    if (!isBuiltInQuotaStore(quota) || this.onTransition !== undefined) return this.finishThroughKnex(taskId, from, settle);
    const task = await this.store.getTask(this.db, taskId);
    if (!task || !from.includes(task.state)) return undefined;
    const host = this.hosts[task.table_kind];
    if (task.client_callback_url !== null || !host.templatable) return this.finishThroughKnex(taskId, from, settle, task);
    const settlement = settle(task);
    const { change, balance, ledger } = settlement;
    if (change.from.length === 0) return undefined;
    checkAmount(balance.amount);
    const used = quota.options.usedColumn === false ? 0 : (settlement.used ?? 0);
    checkAmount(used);
    const moved = await write({
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

  /** Closes connections of its own: this storage has none beyond knex's pool. */
  close(): void {}

  /** After the compare-and-set: the notice of the new status, then the host row. */
  private async announceAndMirror(trx: Knex.Transaction, task: RelayTask, change: StateChange): Promise<void> {
    await this.notices?.enqueue(trx, { ...task, ...change.patch }, change.now);
    await this.hosts[task.table_kind].update(trx, task.host_row_id, change.host, change.hostFacts);
  }
}

import type { Knex } from 'knex';
import type { HostTable, HostWriteFacts } from '../../adapters/host-table.js';
import type { RelayStore } from '../../adapters/relay-store.js';
import type { Billing, LedgerKind, NewHostRow, NewRelayTask, QuotaStore, RelayTask, TableKind, TaskTransition, TransitionHook } from '../../adapters/types.js';
import type { ClientNotices } from '../callbacks/notice.js';
import type { ActiveState, TaskState } from './states.js';

/** What a storage writes to: the relay's tables, the host's Video/Image tables, the host's balances and the callers' outbox. */
export interface TaskStorageParts {
  db: Knex;
  store: RelayStore;
  hosts: Record<TableKind, HostTable>;
  quota: QuotaStore;
  /** Writes the caller's callback notice of each status change, in the transaction that applies it. */
  notices?: ClientNotices | undefined;
  /** The host's own writes of a final transition (option `onTransition`), last in its transaction. */
  onTransition?: TransitionHook | undefined;
  /** On MariaDB/MySQL and PostgreSQL: how long a group of writes may wait for the server before its connection is dropped. */
  groupDeadlineMs?: number | undefined;
}

/** A new task's external_task_id is `before` + its host row's id + `after`. */
export interface ExternalIdParts {
  before: string;
  after: string;
}

/** A new task: its host row, its relay row (once the host row's id is known) and the quota it holds or needs. */
export interface HoldPlan {
  table: TableKind;
  userId: string;
  billing: Billing;
  /** Taken at once under billing 'hold'; under 'charge-on-success' the balance must cover it and the estimates in flight. */
  amount: number;
  row: NewHostRow;
  task(hostRowId: string): NewRelayTask;
  /** The parts of `task(hostRowId).external_task_id` around the host row's id. */
  externalId: ExternalIdParts;
  /** What the host row's extra columns may be written from (the images asked for). */
  facts?: HostWriteFacts | undefined;
  now: number;
}

/** A patch of the relay's row that moves the task, and what the host row gets with it. */
export interface StateChange {
  patch: Partial<NewRelayTask> & { state: TaskState };
  host: Partial<NewHostRow>;
  /** What the host row's result and extra columns may be written from (Kling's task object, when final). */
  hostFacts?: HostWriteFacts | undefined;
  /** The states the compare-and-set moves the task from. */
  from: readonly TaskState[];
  now: number;
}

/** Kling's answer to a create: its task id and first status. */
export interface Acceptance {
  patch: Pick<NewRelayTask, 'kling_task_id' | 'kling_created_at' | 'kling_updated_at' | 'next_check_at'> & { state: Extract<ActiveState, 'submitted' | 'processing'> };
  now: number;
}

/** A move between `queued` and `pending`: the relay row's patch, the state it moves from, the host row's channel. */
export interface QueueMove {
  patch: Partial<Pick<NewRelayTask, 'account_id' | 'status_msg' | 'next_check_at'>> & { state: 'queued' | 'pending' };
  from: 'queued' | 'pending';
  channelId: string | number;
}

/** A final state and the money that goes with it, decided from the task as the transaction read it. */
export interface Settlement {
  change: StateChange;
  /** The balance movement: the unused hold or a refund given back (credit), or the charge taken (debit). */
  balance: { move: 'credit' | 'debit'; amount: number };
  ledger: { kind: LedgerKind; amount: number };
  /** Added to the user's used-quota statistic (a success only). */
  used?: number | undefined;
  /** What the task was charged. */
  charge: number;
  /** The transition as the host's `onTransition` hook sees it (the storage adds the host table's name). */
  transition: HookTransition;
}

/** A transition for the `onTransition` hook, but for the host table's name, which the storage knows. */
export type HookTransition = Omit<TaskTransition, 'hostTable'>;

/** Writes of the reconciler's bookkeeping on a task row: when it was checked, and when to check again. */
export type Bookkeeping = Partial<Pick<NewRelayTask, 'checked_at' | 'check_count' | 'next_check_at'>>;

/**
 * Every write of a task's state, each one atomic: the host row, the relay row, the ledger, the balance
 * and the callers' outbox change together or not at all. lib/task/life.ts decides what to write;
 * an implementation decides how the statements reach the database. knex-storage.ts is the generic one;
 * sqlite-storage.ts runs some of them on better-sqlite3 without knex's runner.
 */
export interface TaskStorage {
  /**
   * Records a new task and holds its quota (or, under charge-on-success, checks it is covered).
   * Undefined when the balance falls short: then nothing was written.
   */
  hold(plan: HoldPlan): Promise<RelayTask | undefined>;
  /**
   * Kling's task id and status from its answer to the create. A task a callback already moved on keeps
   * its newer status and gets only the id; a notice of that status, which needed the id, is written now.
   */
  accept(task: RelayTask, answer: Acceptance): Promise<void>;
  /** A non-final status moving forward (a compare-and-set from `change.from`); false when the task was elsewhere. */
  progress(task: RelayTask, change: StateChange): Promise<boolean>;
  /**
   * The move to a final state: reads the task, and when it is in `from`, writes what `settle` makes
   * of it. Returns the task as it was read and the settlement, or undefined when nothing changed.
   */
  finish(taskId: number, from: readonly TaskState[], settle: (task: RelayTask) => Settlement): Promise<{ task: RelayTask; settlement: Settlement } | undefined>;
  /**
   * Moves a task Kling has not accepted (still `pending`) to another account: the relay row's account
   * and the host row's channel together. False when the task has left `pending`: then nothing changed.
   */
  reassign(task: RelayTask, to: { accountId: string; channelId: string | number }, now: number): Promise<boolean>;
  /**
   * Moves a task Kling has not heard of between waiting for a slot (`queued`) and being sent
   * (`pending`), by compare-and-set from `move.from`: the relay row's state, account and bookkeeping,
   * and the host row's channel, together. No notice: the caller sees `submitted` either way. False when
   * the task was elsewhere: then nothing changed.
   */
  shift(task: RelayTask, move: QueueMove, now: number): Promise<boolean>;
  /** The reconciler's bookkeeping, only while the task is in `from` when given; false when nothing matched. */
  note(taskId: number, bookkeeping: Bookkeeping, from?: readonly TaskState[]): Promise<boolean>;
  /** Closes connections of its own, if it has any. */
  close?(): void;
}

/** The host row's part of an acceptance: the status too when the task moved, else only the id. */
export function acceptedHostRow(answer: Acceptance, moved: boolean): Partial<NewHostRow> {
  const taskId = answer.patch.kling_task_id ?? '';
  return moved ? { task_id: taskId, status: answer.patch.state, updated_at: Math.floor(answer.now / 1000) } : { task_id: taskId };
}

import type { Knex } from 'knex';
import type { HostTable } from './host-table.js';
import type { KnexQuotaStore } from './quota-store.js';
import type { RelayStore } from './relay-store.js';
import type { HostColumn, NewHostRow, NewRelayTask, RelayTask, TaskState } from './types.js';

/**
 * A submit's hold: the conditional balance update, the host row, the relay's task row and the
 * ledger's hold row, all or nothing.
 */
export interface HoldWrite {
  quota: KnexQuotaStore;
  host: HostTable;
  userId: string;
  amount: number;
  hostRow: NewHostRow;
  /** The task row; its `host_row_id` and `external_task_id` are filled in from the new host row's id. */
  task: NewRelayTask;
  /** The task's external_task_id is `before` + the host row's id + `after`. */
  externalId: { before: string; after: string };
}

/** The write after Kling accepted a task: Kling's id and state on the task, its id on the host row. */
export interface AcceptWrite {
  host: HostTable;
  taskId: number;
  hostRowId: string;
  /**
   * Written while the task is still `pending`; otherwise (a callback moved it on first) only its
   * `kling_task_id` is. Both set `updated_at`.
   */
  patch: Partial<NewRelayTask> & { kling_task_id: string | null; updated_at: number };
  /** The host row's patch, given whether the task's patch applied. */
  hostPatch: (moved: boolean) => Partial<NewHostRow>;
}

/**
 * A task's move to a final state with its money: the task row's patch while the task is in one of
 * `from`, and only then the host row, the balance movement, the used-quota statistic and the ledger
 * row. Built from a settlement the caller decided from the task as it read it.
 */
export interface FinishWrite {
  quota: KnexQuotaStore;
  host: HostTable;
  taskId: number;
  userId: string;
  hostRowId: string;
  /** The task row's patch, `updated_at` included. */
  patch: Partial<NewRelayTask> & { updated_at: number };
  /** The states the compare-and-set moves the task from. */
  from: readonly TaskState[];
  /** The host row's values by physical column, as `HostTable.updateValues` gives them. */
  hostValues: Record<string, unknown>;
  /** Added to the balance: a credit's amount, or minus a debit's. */
  balanceDelta: number;
  /** Added to the used-quota statistic when the host keeps one (0 when nothing is). */
  used: number;
  /** The ledger row, as `RelayStore.ledgerValues` gives it. */
  ledger: Record<string, unknown>;
}

/**
 * The submit's two writes and a task's settlement on a server database (MariaDB/MySQL, PostgreSQL) without knex's runner:
 * statements compiled once and run on the driver's connection (adapters/mysql-direct.ts,
 * adapters/pg-direct.ts). Used only with the built-in quota store, whose SQL they stand in for.
 */
export interface DirectWrites {
  /** The hold; undefined, with nothing written, when the balance does not cover `amount`. */
  hold(write: HoldWrite): Promise<RelayTask | undefined>;
  /** Answers whether the task's patch applied (it was still pending). */
  accept(write: AcceptWrite): Promise<boolean>;
  /** Answers whether the task moved (it was in `from`); when it did not, nothing was written. */
  finish(write: FinishWrite): Promise<boolean>;
  /** Closes connections of its own, if it has any. */
  close?(): void;
}

/** The parts of knex's client the direct writes use: its pool, and its driver's name. */
export interface PoolClient<Connection> {
  driverName?: string;
  acquireConnection(): Promise<Connection>;
  releaseConnection(connection: Connection): Promise<unknown>;
}

/** The client of a knex instance (not a transaction) on `driver`, or undefined. */
export function poolClientOf<Connection>(db: Knex, driver: string): PoolClient<Connection> | undefined {
  const client = db.client as PoolClient<Connection>;
  if (client.driverName !== driver || (db as { isTransaction?: boolean }).isTransaction === true) return undefined;
  return client;
}

/** The hold's ledger row, as the store writes it, for the task `taskId`. */
export function holdLedgerValues(store: RelayStore, write: HoldWrite, taskId: number): Record<string, unknown> {
  return store.ledgerValues({ task_id: taskId, user_id: write.userId, kind: 'hold', amount: -write.amount, created_at: write.task.created_at });
}

/** The patch's columns the host table has, by logical name. */
function presentPatch(host: HostTable, patch: Partial<NewHostRow>): Partial<NewHostRow> {
  const values = host.directValues(patch) as Record<string, unknown>;
  return Object.fromEntries(Object.entries(values).filter(([column, value]) => column !== 'id' && value !== undefined && host.has(column as HostColumn))) as Partial<NewHostRow>;
}

/** A hold's values by the names its statements use: `amount`, `user_id`, `id_before`, `id_after`, `host_<column>`, `task_<column>`, `ledger_<column>`. */
export function holdValues(store: RelayStore, write: HoldWrite): Record<string, unknown> {
  const hostValues = write.host.directValues(write.hostRow);
  const values: Record<string, unknown> = { amount: write.amount, user_id: write.userId, id_before: write.externalId.before, id_after: write.externalId.after };
  for (const [logical] of write.host.columns) values[`host_${logical}`] = hostValues[logical];
  for (const [column, value] of Object.entries(write.task)) values[`task_${column}`] = value;
  for (const [column, value] of Object.entries(holdLedgerValues(store, write, 0))) values[`ledger_${column}`] = value;
  return values;
}

/** What the answer's write touches: its statement's shape (and the key naming it) and its values. */
export interface AcceptShape {
  key: string;
  /** The task's patched columns, sorted. */
  columns: string[];
  /** The host columns either host patch writes, sorted. */
  hostColumns: HostColumn[];
  /** The host patch when the task's patch applied, and when it did not; the host's columns only. */
  moved: Partial<NewHostRow>;
  kept: Partial<NewHostRow>;
  /** By the names its statements use: `task_id`, `host_id`, `state_pending`, `task_<column>`, `moved_<column>`, `kept_<column>`. */
  values: Record<string, unknown>;
}

export function acceptShape(write: AcceptWrite): AcceptShape {
  const { host, patch } = write;
  const moved = presentPatch(host, write.hostPatch(true));
  const kept = presentPatch(host, write.hostPatch(false));
  const columns = Object.keys(patch).sort();
  const hostColumns = [...new Set([...Object.keys(moved), ...Object.keys(kept)])].sort() as HostColumn[];
  const key = `accept:${host.name}:${columns.join(',')}:${hostColumns.map((c) => `${c}${c in moved ? '+' : ''}${c in kept ? '-' : ''}`).join(',')}`;
  const values: Record<string, unknown> = { task_id: write.taskId, host_id: write.hostRowId, state_pending: 'pending' };
  for (const column of columns) values[`task_${column}`] = (patch as Record<string, unknown>)[column];
  for (const [column, value] of Object.entries(moved)) values[`moved_${column}`] = value;
  for (const [column, value] of Object.entries(kept)) values[`kept_${column}`] = value;
  return { key, columns, hostColumns, moved, kept, values };
}

/** What a settlement's write touches: its statement's shape (and the key naming it) and its values. */
export interface FinishShape {
  key: string;
  /** The task's patched columns, sorted. */
  columns: string[];
  /** The host row's physical columns, sorted. */
  hostColumns: string[];
  /** The ledger row's columns, in the store's order. */
  ledgerColumns: string[];
  /** By the names its statements use: `task_id`, `host_id`, `user_id`, `delta`, `used`, `from_<i>`, `task_<column>`, `host_<column>`, `ledger_<column>`. */
  values: Record<string, unknown>;
}

export function finishShape(write: FinishWrite): FinishShape {
  const { quota, host, patch } = write;
  const columns = Object.keys(patch)
    .filter((column) => column !== 'id' && (patch as Record<string, unknown>)[column] !== undefined)
    .sort();
  const hostColumns = Object.keys(write.hostValues).sort();
  const ledgerColumns = Object.keys(write.ledger);
  const { table, usedColumn } = quota.options;
  const key = `finish:${table}:${usedColumn === false ? '' : 'used'}:${host.name}:${columns.join(',')}:${write.from.length}:${hostColumns.join(',')}:${ledgerColumns.join(',')}`;
  const values: Record<string, unknown> = { task_id: write.taskId, host_id: write.hostRowId, user_id: write.userId, delta: write.balanceDelta, used: write.used };
  write.from.forEach((state, i) => (values[`from_${i}`] = state));
  for (const column of columns) values[`task_${column}`] = (patch as Record<string, unknown>)[column];
  for (const column of hostColumns) values[`host_${column}`] = write.hostValues[column];
  for (const column of ledgerColumns) values[`ledger_${column}`] = write.ledger[column];
  return { key, columns, hostColumns, ledgerColumns, values };
}

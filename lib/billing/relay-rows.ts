import type { Knex } from 'knex';
import { toNumber, toNumberOrNull, toStringOrNull } from '../../adapters/dialect.js';
import type { RelayStore } from '../../adapters/relay-store.js';
import type { TaskState } from '../../adapters/types.js';
import { shownDeductions } from '../completion/deductions.js';

/** Ids per `IN (...)` list: well under every database's limit of bound parameters. */
const CHUNK = 500;

/** What the relay recorded and charged for one task, as billing reconciliation reads it. */
export interface RelayBilledTask {
  /** The row id in kling_relay_tasks. */
  id: number;
  externalTaskId: string;
  klingTaskId: string | null;
  accountId: string;
  userId: string;
  endpoint: string;
  state: TaskState;
  billing: string;
  /** The estimate held at submit. */
  holdQuota: number;
  /** The final charge the task row records (null until final). */
  chargeQuota: number | null;
  /** What the caller's balance lost to this task: minus the sum of its ledger rows. */
  charged: number;
  /** The units and balance Kling reported in the task object when it ended (null: not reported). */
  reportedUnits: number | null;
  reportedBalance: number | null;
  /** Unix milliseconds. */
  createdAt: number;
}

const COLUMNS = ['id', 'external_task_id', 'kling_task_id', 'account_id', 'user_id', 'endpoint', 'state', 'billing', 'hold_quota', 'charge_quota', 'deductions', 'created_at'];

function reported(value: unknown): number | null {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  return typeof n === 'number' && Number.isFinite(n) ? n : null;
}

function toBilledTask(row: Record<string, unknown>, ledgerSums: ReadonlyMap<number, number>): RelayBilledTask {
  const id = toNumber(row.id);
  const deductions = shownDeductions({ deductions: toStringOrNull(row.deductions) });
  return {
    id,
    externalTaskId: String(row.external_task_id),
    klingTaskId: toStringOrNull(row.kling_task_id),
    accountId: String(row.account_id),
    userId: String(row.user_id),
    endpoint: String(row.endpoint),
    state: String(row.state) as TaskState,
    billing: String(row.billing),
    holdQuota: toNumber(row.hold_quota),
    chargeQuota: toNumberOrNull(row.charge_quota),
    charged: -(ledgerSums.get(id) ?? 0),
    reportedUnits: reported(deductions.final_unit_deduction),
    reportedBalance: reported(deductions.final_balance_deduction?.quota),
    createdAt: toNumber(row.created_at),
  };
}

function chunks<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += CHUNK) out.push(items.slice(i, i + CHUNK));
  return out;
}

async function ledgerSums(db: Knex, store: RelayStore, taskIds: readonly number[]): Promise<Map<number, number>> {
  const sums = new Map<number, number>();
  for (const ids of chunks(taskIds)) {
    const rows = (await db(store.tables.ledger).select('task_id').sum({ total: 'amount' }).whereIn('task_id', ids).groupBy('task_id')) as Record<string, unknown>[];
    for (const row of rows) sums.set(toNumber(row.task_id), toNumber(row.total));
  }
  return sums;
}

async function withLedger(db: Knex, store: RelayStore, rows: Record<string, unknown>[]): Promise<RelayBilledTask[]> {
  const sums = await ledgerSums(db, store, rows.map((row) => toNumber(row.id)));
  return rows.map((row) => toBilledTask(row, sums));
}

/** The relay's tasks created in `[from, to]` (unix ms), oldest first, with what each caller was charged. */
export async function tasksCreatedBetween(db: Knex, store: RelayStore, from: number, to: number): Promise<RelayBilledTask[]> {
  const rows = (await db(store.tables.tasks).select(COLUMNS).whereBetween('created_at', [from, to]).orderBy('id', 'asc')) as Record<string, unknown>[];
  return withLedger(db, store, rows);
}

/** The relay's tasks carrying these Kling task ids, whenever they were created. */
export async function tasksByKlingId(db: Knex, store: RelayStore, klingTaskIds: readonly string[]): Promise<RelayBilledTask[]> {
  const rows: Record<string, unknown>[] = [];
  for (const ids of chunks(klingTaskIds)) rows.push(...((await db(store.tables.tasks).select(COLUMNS).whereIn('kling_task_id', ids).orderBy('id', 'asc')) as Record<string, unknown>[]));
  return withLedger(db, store, rows);
}

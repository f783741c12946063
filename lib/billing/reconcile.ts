import type { Knex } from 'knex';
import type { RelayStore } from '../../adapters/relay-store.js';
import type { KlingAccount } from '../upstream/accounts.js';
import type { KlingAccountApi, KlingDeduction, TimeRange } from './account-api.js';
import { accountError, type AccountError } from './packs.js';
import { tasksByKlingId, tasksCreatedBetween, type RelayBilledTask } from './relay-rows.js';

/** Kling bills a task when it ends, after the relay recorded it: its deductions are read this much past the period. */
export const BILLING_LAG_MS = 86_400_000;

/**
 * How Kling's bill of a task compares with the relay's charge:
 * - `agree`: both charged, or neither did.
 * - `open`: the relay's task is not final yet; its hold is neither charged nor refunded.
 * - `unchecked`: Kling's billing of the task's account could not be read (or the account is no longer
 *   configured), or a charged task has no Kling task id to find it by (a synchronous call Kling
 *   answered without one).
 * - `not_recorded`: Kling billed a task the relay has no row of.
 * - `billed_but_refunded`: Kling billed a task the relay failed, refunded or charged nothing for.
 * - `charged_not_billed`: the relay charged the caller for a task Kling did not bill.
 * - `deduction_differs`: Kling's billing detail differs from the deduction its task object reported when the task ended.
 * - `row_differs`: the relay's task row and its ledger rows disagree on the charge (the row's
 *   charge_quota, 0 for a failed task, against what the ledger took).
 */
export type BillingStatus = 'agree' | 'open' | 'unchecked' | 'not_recorded' | 'billed_but_refunded' | 'charged_not_billed' | 'deduction_differs' | 'row_differs';

/** The statuses that are disagreements (the CLI exits 3 when a task has one). */
export const DISAGREEMENTS: readonly BillingStatus[] = ['not_recorded', 'billed_but_refunded', 'charged_not_billed', 'deduction_differs', 'row_differs'];

/** One task: what Kling billed and what the relay charged. */
export interface TaskBilling {
  klingTaskId: string | null;
  accountId: string;
  /** The relay's task; undefined when it has no row of it (`not_recorded`). */
  relay: RelayBilledTask | undefined;
  /** Units Kling took from resource packs for the task. */
  klingUnits: number;
  /** Balance Kling took for the task, and its currency ('' when none). */
  klingBalance: number;
  currency: string;
  /** Quota the caller lost to the task (0 when refunded or not recorded). */
  callerCharged: number;
  status: BillingStatus;
  /** What disagrees, in words; '' when it agrees. */
  reason: string;
}

export interface AccountBilling {
  account: string;
  /** Deduction rows Kling listed for the account, units and balance. */
  unitRows: number;
  balanceRows: number;
  error: AccountError | undefined;
}

export interface BillingReport {
  /** Unix milliseconds: the relay's tasks created in this period, with Kling's deductions up to `BILLING_LAG_MS` after it. */
  from: number;
  to: number;
  accounts: AccountBilling[];
  /** Every task, the relay's by row id, then those only Kling knows. */
  tasks: TaskBilling[];
  /** The tasks whose status is one of `DISAGREEMENTS`. */
  disagreements: TaskBilling[];
  totals: {
    klingUnits: number;
    /** Balance by currency. */
    klingBalance: Record<string, number>;
    callerCharged: number;
    tasks: number;
    disagreements: number;
    open: number;
    unchecked: number;
  };
}

interface KlingBill {
  units: number;
  balance: number;
  currency: string;
  /** Unix ms of the first deduction. */
  at: number;
}

const FINAL = new Set(['succeed', 'failed']);

function round(value: number): number {
  return Math.round(value * 1e6) / 1e6;
}

/** Kling's deductions of one account by task id. */
function billsByTask(units: readonly KlingDeduction[], balance: readonly KlingDeduction[]): Map<string, KlingBill> {
  const bills = new Map<string, KlingBill>();
  const bill = (taskId: string, at: number): KlingBill => {
    let found = bills.get(taskId);
    if (!found) bills.set(taskId, (found = { units: 0, balance: 0, currency: '', at }));
    found.at = Math.min(found.at, at);
    return found;
  };
  for (const row of units) bill(row.taskId, row.at).units = round(bill(row.taskId, row.at).units + row.amount);
  for (const row of balance) {
    const found = bill(row.taskId, row.at);
    found.balance = round(found.balance + row.amount);
    found.currency = row.kind;
  }
  return bills;
}

function differs(reported: number | null, billed: number): boolean {
  return reported !== null && Math.abs(reported - billed) > 1e-6;
}

/** How one recorded task compares; `bill` undefined when Kling listed no deduction for it. */
function compare(task: RelayBilledTask, bill: KlingBill | undefined): { status: BillingStatus; reason: string } {
  if (!FINAL.has(task.state)) return { status: 'open', reason: '' };
  if (task.klingTaskId === null && task.charged > 0) return { status: 'unchecked', reason: 'Kling answered it without a task id, so its bill cannot be found' };
  const billed = bill !== undefined && (bill.units > 0 || bill.balance > 0);
  if (billed && task.charged <= 0) {
    const what = task.state === 'failed' ? 'the relay failed it and refunded the caller' : 'the relay charged the caller nothing';
    return { status: 'billed_but_refunded', reason: `Kling billed it, ${what}` };
  }
  if (!billed && task.charged > 0) return { status: 'charged_not_billed', reason: `the caller was charged ${task.charged} quota, Kling billed nothing` };
  if (bill && (differs(task.reportedUnits, bill.units) || differs(task.reportedBalance, bill.balance))) {
    return {
      status: 'deduction_differs',
      reason: `Kling's billing detail says ${bill.units} units and ${bill.balance} balance, the task reported ${task.reportedUnits ?? '-'} units and ${task.reportedBalance ?? '-'} balance when it ended`,
    };
  }
  const rowCharge = task.state === 'failed' ? 0 : task.chargeQuota;
  if (rowCharge !== null && rowCharge !== task.charged) {
    return { status: 'row_differs', reason: `the task row says the caller was charged ${rowCharge} quota, its ledger rows took ${task.charged}` };
  }
  return { status: 'agree', reason: '' };
}

interface AccountBills {
  report: AccountBilling;
  bills: Map<string, KlingBill> | undefined;
}

async function readAccount(api: KlingAccountApi, account: KlingAccount, range: TimeRange): Promise<AccountBills> {
  try {
    const units = await api.unitDeductions(account, range);
    const balance = await api.balanceDeductions(account, range);
    return { report: { account: account.id, unitRows: units.length, balanceRows: balance.length, error: undefined }, bills: billsByTask(units, balance) };
  } catch (error) {
    return { report: { account: account.id, unitRows: 0, balanceRows: 0, error: accountError(error) }, bills: undefined };
  }
}

function totalsOf(tasks: readonly TaskBilling[], disagreements: number): BillingReport['totals'] {
  const klingBalance: Record<string, number> = {};
  for (const t of tasks) if (t.klingBalance > 0) klingBalance[t.currency] = round((klingBalance[t.currency] ?? 0) + t.klingBalance);
  return {
    klingUnits: round(tasks.reduce((sum, t) => sum + t.klingUnits, 0)),
    klingBalance,
    callerCharged: tasks.reduce((sum, t) => sum + t.callerCharged, 0),
    tasks: tasks.length,
    disagreements,
    open: tasks.filter((t) => t.status === 'open').length,
    unchecked: tasks.filter((t) => t.status === 'unchecked').length,
  };
}

export interface ReconcileBillingDeps {
  db: Knex;
  store: RelayStore;
  api: KlingAccountApi;
  accounts: readonly KlingAccount[];
}

/**
 * Compares Kling's per-task deductions with the relay's rows: the relay's tasks created in
 * `[from, to]`, and Kling's deductions from `from` to `to` plus a day (a task is billed when it ends).
 * A deduction of a task the relay recorded outside the period belongs to another period and is left
 * out; one of a task the relay has no row of is reported when it falls in the period.
 */
export async function reconcileBilling(deps: ReconcileBillingDeps, from: number, to: number): Promise<BillingReport> {
  const klingRange = { from, to: Math.max(to, Math.min(to + BILLING_LAG_MS, Date.now())) };
  const read = new Map<string, AccountBills>();
  for (const account of deps.accounts) read.set(account.id, await readAccount(deps.api, account, klingRange));

  const tasks: TaskBilling[] = [];
  const matched = new Set<string>();
  for (const task of await tasksCreatedBetween(deps.db, deps.store, from, to)) {
    const bills = read.get(task.accountId)?.bills;
    const bill = task.klingTaskId === null ? undefined : bills?.get(task.klingTaskId);
    if (task.klingTaskId !== null) matched.add(`${task.accountId}\u0000${task.klingTaskId}`);
    const { status, reason } = bills === undefined ? { status: 'unchecked' as const, reason: `Kling's billing of account ${task.accountId} was not read` } : compare(task, bill);
    tasks.push({ klingTaskId: task.klingTaskId, accountId: task.accountId, relay: task, klingUnits: bill?.units ?? 0, klingBalance: bill?.balance ?? 0, currency: bill?.currency ?? '', callerCharged: task.charged, status, reason });
  }

  const unmatched: { accountId: string; taskId: string; bill: KlingBill }[] = [];
  for (const [accountId, { bills }] of read) {
    for (const [taskId, bill] of bills ?? []) if (!matched.has(`${accountId}\u0000${taskId}`) && bill.at >= from && bill.at <= to) unmatched.push({ accountId, taskId, bill });
  }
  const elsewhere = new Set((await tasksByKlingId(deps.db, deps.store, unmatched.map((u) => u.taskId))).map((t) => `${t.accountId}\u0000${t.klingTaskId ?? ''}`));
  for (const { accountId, taskId, bill } of unmatched) {
    if (elsewhere.has(`${accountId}\u0000${taskId}`)) continue;
    tasks.push({ klingTaskId: taskId, accountId, relay: undefined, klingUnits: bill.units, klingBalance: bill.balance, currency: bill.currency, callerCharged: 0, status: 'not_recorded', reason: 'Kling billed a task the relay has no record of' });
  }

  const disagreements = tasks.filter((t) => DISAGREEMENTS.includes(t.status));
  return { from, to, accounts: [...read.values()].map((r) => r.report), tasks, disagreements, totals: totalsOf(tasks, disagreements.length) };
}

import type { Knex } from 'knex';
import type { TaskState } from '../lib/task/states.js';

/** Which host table a registry entry writes: the Video table (video and audio) or the Image table. */
export type TableKind = 'video' | 'image';

/** Logical columns of the host's Video/Image tables (one-api's Video and Image models in snake_case). */
export const HOST_COLUMNS = [
  'id',
  'task_id',
  'user_id',
  'username',
  'channel_id',
  'model',
  'provider',
  'type',
  'status',
  'quota',
  'mode',
  'duration',
  'result',
  'fail_reason',
  'created_at',
  'updated_at',
] as const;
export type HostColumn = (typeof HOST_COLUMNS)[number];

/** Columns a host table must have; every other logical column may be mapped to `false` (absent). */
export const REQUIRED_HOST_COLUMNS: readonly HostColumn[] = ['id', 'task_id', 'user_id', 'status', 'quota'];

/**
 * A host table and its column mapping. `columns` maps a logical column to the host's own column
 * name, or to `false` when the host table has no such column (the relay then never writes it).
 * Unmapped columns keep their logical name.
 */
export interface HostTableOptions {
  name: string;
  columns?: Partial<Record<HostColumn, string | false>>;
  /**
   * The word written into `status` for each state of a task. Default: Kling's own words, and `''`
   * for a task Kling has not answered yet (`pending`).
   */
  statuses?: Partial<Record<HostState, string>>;
  /**
   * What `result` holds once a task is final: `'task_result'` (default: Kling's task_result, written on
   * success only), `'task'` (Kling's whole task object, on success and failure), or `'envelope'`
   * (Kling's query answer `{code, message, request_id, data: <task object>}`, on success and failure).
   */
  result?: HostResultShape;
  /** `'text'` (default): `result` is `''` until written. `'json'`: NULL until written, for a JSON column. */
  resultColumn?: 'text' | 'json';
  /** `'seconds'` (default): `duration` in whole seconds. `'text'`: the seconds as Kling writes them ("5", "5.1"). */
  duration?: 'seconds' | 'text';
  /** What `quota` shows for a failed task: `'zero'` (default) or `'estimate'` (the estimate stays, as the row was written). */
  failedQuota?: 'zero' | 'estimate';
  /** Columns the relay's logical columns do not cover, by the host's name (`platform`, `progress`, `store_url`). */
  extraColumns?: Record<string, HostExtraColumn>;
}

export type HostResultShape = 'task_result' | 'task' | 'envelope';

/** When an extra column is written: when the row is recorded, or when the task reaches a state. */
/** The states a host row shows: a task waiting for a Kling slot (`queued`) shows `pending` there. */
export type HostState = Exclude<TaskState, 'queued'>;

export type HostWriteMoment = 'insert' | Exclude<HostState, 'pending'>;

/**
 * Where an extra column's value comes from: `now` (unix seconds), `url` (the first video's, image's
 * or audio's URL in Kling's result), `resourceId` (the first video's or audio's id in the result),
 * `requestedCount` (the request's `n`, 1 when it has none).
 */
export type HostExtraSource = 'now' | 'url' | 'resourceId' | 'requestedCount';

/**
 * One extra column: a fixed value or a source, written at the given moments (default `['insert']`),
 * or a value per moment (`{ values: { insert: '0%', succeed: '100%' } }`), written at those moments.
 */
export type HostExtraColumn =
  | { value: string | number; on?: HostWriteMoment[] }
  | { from: HostExtraSource; on?: HostWriteMoment[] }
  | { values: Partial<Record<HostWriteMoment, string | number>> };

/** A host row as the relay reads and writes it, in logical column names. Unix seconds. */
export interface HostRow {
  id: string;
  task_id: string;
  user_id: string;
  username: string;
  /** The account's integer `channelId` when it has one, else its id. */
  channel_id: string | number;
  model: string;
  provider: string;
  type: string;
  status: string;
  quota: number;
  mode: string;
  /** Seconds; Kling's text ("5.1") once it reported it, for a table whose duration is text. */
  duration: number | string;
  result: string;
  fail_reason: string;
  created_at: number;
  updated_at: number;
}
export type NewHostRow = Omit<HostRow, 'id'>;

/** The relay's own state of a task (lib/task/states.ts has them all, in order). */
export type { TaskState } from '../lib/task/states.js';

export type Billing = 'hold' | 'charge-on-success';

/**
 * A task's final transition, handed to the `onTransition` hook inside the transaction that applies
 * it (the relay's task row, the host row, the ledger and the balance).
 */
export interface TaskTransition {
  /** `kling_relay_tasks.id`. */
  taskId: number;
  /** The relay's external_task_id, sent to Kling. */
  externalTaskId: string;
  /** The caller's own external_task_id, if it sent one. */
  clientTaskId: string | null;
  klingTaskId: string | null;
  table: TableKind;
  /** The host table's name and the host row's id. */
  hostTable: string;
  hostRowId: string;
  userId: string;
  accountId: string;
  /** The account's `channelId`, or its id when it has none. */
  channelId: number | string;
  /** The request type (`text2video`) and model. */
  type: string;
  model: string;
  from: TaskState;
  to: 'succeed' | 'failed';
  billing: Billing;
  /** The estimate held (billing 'hold') or checked (billing 'charge-on-success') at submit. */
  hold: number;
  /** What the success took from the balance; 0 for a failure. */
  charge: number;
  /** What the failure gave back to the balance (the hold under billing 'hold'; 0 under 'charge-on-success'). */
  refund: number;
  /** When the relay recorded the task, unix ms. */
  createdAt: number;
}

/**
 * The host's own writes of a final transition (its consume log, request counts, a channel's used
 * quota), run in the transition's transaction: a hook that throws rolls the whole change back, and the
 * task stays unsettled for the next callback, query or reconciler pass to try again.
 */
export type TransitionHook = (trx: Knex.Transaction, change: TaskTransition) => Promise<void> | void;

/** A row of `kling_relay_tasks`. Times are unix milliseconds. */
export interface RelayTask {
  id: number;
  /** Ours, sent to Kling, unique: `<prefix>-<table>-<host row id>-<random>`. */
  external_task_id: string;
  /** The caller's own external_task_id, shown back to it; never sent to Kling. Unique per user. */
  client_task_id: string | null;
  /**
   * sha-256 (hex) of the submit's endpoint and body in a canonical form, set with client_task_id: a
   * resent submit with the same hash is answered with this task, another body with the id is refused.
   */
  request_hash: string | null;
  kling_task_id: string | null;
  account_id: string;
  /** Registry path, e.g. `/v1/videos/text2video`: where Kling has the task. */
  endpoint: string;
  /**
   * The path the caller posted to, when the relay sent the request to another family's path (a /v1
   * request for a model Kling serves only through its standard family); null when it is `endpoint`.
   * The caller sees and queries the task as this path's.
   */
  client_endpoint: string | null;
  request_type: string;
  table_kind: TableKind;
  host_row_id: string;
  user_id: string;
  state: TaskState;
  billing: Billing;
  /** Quota taken at submit (billing 'hold') or the estimate checked (billing 'charge-on-success'). */
  hold_quota: number;
  /** Final charge once settled; null before. */
  charge_quota: number | null;
  model: string;
  /**
   * The concurrency slots the task holds at Kling while it runs: 1 for a video task, one per image
   * for an image task, 0 for a synchronous call.
   */
  slots: number;
  /** How the hold was priced, JSON `{"type": "per_second", "unit": 0.001}`: the settle recomputes the charge from it. */
  pricing: string;
  /** Kling's task_status_msg. */
  status_msg: string | null;
  /** JSON text of Kling's task_result (or a sync endpoint's data). */
  result: string | null;
  /**
   * JSON text of what Kling reported it deducted for the task (`KlingDeductions`), kept when the task
   * became final; null when Kling reported nothing (and for every task refunded without Kling's word).
   */
  deductions: string | null;
  /** Kling's own created_at / updated_at (ms), when known. */
  kling_created_at: number | null;
  kling_updated_at: number | null;
  /** The caller's own callback_url, stored, never forwarded to Kling. */
  client_callback_url: string | null;
  /**
   * JSON text of the validated request a task that had to wait for a free Kling slot is sent with
   * (the caller's ids taken out, the relay's added at sending); null for a task sent at once.
   */
  queued_body: string | null;
  lease_owner: string | null;
  lease_until: number | null;
  next_check_at: number | null;
  check_count: number;
  checked_at: number | null;
  created_at: number;
  updated_at: number;
}
export type NewRelayTask = Omit<RelayTask, 'id'>;

/**
 * Kling's account of what a task cost it, top level in its task object: resource-pack units, and the
 * balance taken (`{quota, list_price}`: the discounted price and the list price), as decimal strings.
 */
export interface KlingDeductions {
  final_unit_deduction?: string | number;
  final_balance_deduction?: Record<string, string | number>;
}

/** Balance movements. `hold` (negative), `settle` (the unused part of the hold, >= 0, or the charge
 * under charge-on-success, <= 0), `refund` (the whole hold back). At most one of settle/refund. */
export type LedgerKind = 'hold' | 'settle' | 'refund';
export interface LedgerRow {
  id: number;
  task_id: number;
  user_id: string;
  kind: LedgerKind;
  /** Signed change of the user's quota. */
  amount: number;
  created_at: number;
}

/**
 * The host's balance. The knex default works on `users(id, quota, used_quota)`; a host with another
 * store implements this. Every method runs inside the caller's transaction.
 */
export interface QuotaStore {
  /** Takes `amount` if the balance covers it (`... WHERE quota >= amount`); false when short or unknown user. */
  hold(trx: Knex.Transaction, userId: string, amount: number): Promise<boolean>;
  /** Gives `amount` back (refunds, the unused part of a hold). */
  credit(trx: Knex.Transaction, userId: string, amount: number): Promise<void>;
  /** Takes `amount` unconditionally (charge-on-success settles after the fact). */
  debit(trx: Knex.Transaction, userId: string, amount: number): Promise<void>;
  /** Raises the user's used-quota statistic. */
  addUsed(trx: Knex.Transaction, userId: string, amount: number): Promise<void>;
  /** Current balance, or null for an unknown user. */
  balance(db: Knex | Knex.Transaction, userId: string): Promise<number | null>;
}

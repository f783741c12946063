import type { Knex } from 'knex';
import type { RelayStore } from '../../adapters/relay-store.js';
import type { KlingDeductions, NewRelayTask, RelayTask } from '../../adapters/types.js';
import type { AccountPool } from '../upstream/accounts.js';
import { taskObject } from './task-object.js';
import { RelayHttpError } from '../errors.js';
import type { RelayEvents } from '../metrics/events.js';
import { actualCharge, parseDuration, type SettleTerms } from '../pricing/estimate.js';
import { loggable, type Logger } from '../upstream/client.js';
import { ACTIVE_STATES, earlierThan, type TaskState } from './states.js';
import type { HoldPlan, HookTransition, Settlement, StateChange, TaskStorage } from './storage.js';

/**
 * Every change of a task's state is made here, through the storage (lib/task/storage.ts): the hold
 * that records a task, Kling's answer to the create, a status moving forward, the final state with its
 * money, and the reconciler's bookkeeping.
 */
export interface TaskLifeDeps {
  storage: TaskStorage;
  db: Knex;
  store: RelayStore;
  quotaPerUnit: number;
  logger: Logger;
  /** The relay's events (relay.events); emitted after the transaction commits. */
  events?: RelayEvents | undefined;
  /** The accounts, for the channel id a transition names. */
  accounts?: AccountPool | undefined;
}

function unixSeconds(ms: number): number {
  return Math.floor(ms / 1000);
}

/**
 * Records a new task and holds its quota in one transaction (under charge-on-success: checks the
 * balance covers it and the caller's other tasks in flight). A short balance is refused with 402/1102
 * and leaves nothing behind.
 */
export async function hold(deps: TaskLifeDeps, plan: HoldPlan): Promise<RelayTask> {
  const task = await deps.storage.hold(plan);
  if (!task) throw new RelayHttpError(402, 1102, `not enough quota: this request needs ${plan.amount}`);
  return task;
}

/** What Kling answered to a create, as read from its envelope's data. */
export interface CreateAnswer {
  klingTaskId: string | null;
  status: unknown;
  createdAt: unknown;
  updatedAt: unknown;
}

/**
 * Records Kling's answer to a create: its task id, and its status (submitted unless Kling said
 * processing) unless a callback moved the task on first; the reconciler checks it `checkAfterMs` later.
 */
export function accept(deps: TaskLifeDeps, task: RelayTask, answer: CreateAnswer, checkAfterMs: number): Promise<void> {
  const now = Date.now();
  const state = answer.status === 'processing' ? 'processing' : 'submitted';
  const patch = { kling_task_id: answer.klingTaskId, state, kling_created_at: Number(answer.createdAt) || now, kling_updated_at: Number(answer.updatedAt) || now, next_check_at: now + checkAfterMs } as const;
  return deps.storage.accept(task, { patch, now });
}

/** Moves a task to a later non-final status Kling reported; false when it already was there or beyond. */
export function progress(deps: TaskLifeDeps, task: RelayTask, status: 'submitted' | 'processing', klingTaskId?: string, klingUpdatedAt?: number): Promise<boolean> {
  const now = Date.now();
  const change: StateChange = {
    patch: { state: status, ...(klingTaskId ? { kling_task_id: klingTaskId } : {}), ...(klingUpdatedAt ? { kling_updated_at: klingUpdatedAt } : {}) },
    host: { status, ...(klingTaskId ? { task_id: klingTaskId } : {}), updated_at: unixSeconds(now) },
    from: earlierThan(status),
    now,
  };
  return deps.storage.progress(task, change);
}

/**
 * Sends a task Kling refused before accepting anything (still `pending`) to another account: its row
 * and its host row name that account from now on. False when the task has left `pending`.
 */
export function reassign(deps: TaskLifeDeps, task: RelayTask, accountId: string): Promise<boolean> {
  // The host row names the account by its channel id where the host gives one.
  return deps.storage.reassign(task, { accountId, channelId: deps.accounts?.get(accountId)?.channelId ?? accountId }, Date.now());
}

/** What a queued task shows as its task_status_msg while it waits. */
export const QUEUED_MESSAGE = 'queued: waiting for a free Kling slot';

/**
 * A queued task's turn: it moves to `pending` on `accountId`, to be sent now, checked by the reconciler
 * `checkAfterMs` later if Kling's answer never comes. False when another dispatcher took it first or it
 * left the queue: then it must not be sent.
 */
export function dequeue(deps: TaskLifeDeps, task: RelayTask, accountId: string, checkAfterMs: number): Promise<boolean> {
  const now = Date.now();
  const channelId = deps.accounts?.get(accountId)?.channelId ?? accountId;
  return deps.storage.shift(task, { patch: { state: 'pending', account_id: accountId, status_msg: null, next_check_at: now + checkAfterMs }, from: 'queued', channelId }, now);
}

/**
 * A dequeued task every account refused before accepting anything (over concurrency, or the account
 * itself): it waits in the queue again. The one move backwards, made by the dispatcher only.
 */
export function requeue(deps: TaskLifeDeps, task: RelayTask): Promise<boolean> {
  const channelId = deps.accounts?.get(task.account_id)?.channelId ?? task.account_id;
  return deps.storage.shift(task, { patch: { state: 'queued', status_msg: QUEUED_MESSAGE, next_check_at: null }, from: 'pending', channelId }, Date.now());
}

/** A create whose outcome is unknown: the reconciler looks it up at `at`, while it is still pending. */
export function checkAgainAt(deps: TaskLifeDeps, taskId: number, at: number): Promise<boolean> {
  return deps.storage.note(taskId, { next_check_at: at }, ['pending']);
}

/** Kling was asked about the task just now (the `checks`-th time by the reconciler, when given). */
export function markChecked(deps: TaskLifeDeps, taskId: number, checks?: number): Promise<boolean> {
  return deps.storage.note(taskId, { checked_at: Date.now(), ...(checks !== undefined ? { check_count: checks } : {}) });
}

/**
 * How a task ended. `deductions` is what Kling reported it deducted, kept with the task as reported;
 * absent when Kling said nothing (a refund of a task it never had, a timeout): none is made up.
 */
export type Outcome = (
  | { status: 'succeed'; klingTaskId?: string | undefined; result: unknown; klingUpdatedAt?: number | undefined }
  | { status: 'failed'; klingTaskId?: string | undefined; reason: string; klingUpdatedAt?: number | undefined }
) & { deductions?: KlingDeductions | undefined };

/** The settle terms kept with the task at submit (rows written before the terms grew hold `{type, unit}` only). */
export function storedPricing(task: RelayTask): SettleTerms | undefined {
  try {
    const p = JSON.parse(task.pricing) as Partial<SettleTerms>;
    return typeof p.type === 'string' && typeof p.unit === 'number' ? (p as SettleTerms) : undefined;
  } catch {
    return undefined;
  }
}

/** The id at `key` of a result item, unless the item is one of Kling's official voices or elements (every caller's). */
function ownId(item: unknown, key: string): string | undefined {
  if (typeof item !== 'object' || item === null) return undefined;
  const fields = item as Record<string, unknown>;
  if (fields.owned_by === 'kling') return undefined;
  const id = fields[key];
  return typeof id === 'string' || typeof id === 'number' ? String(id) : undefined;
}

/**
 * Ids a result names (videos, audios, voices, elements, a session, the voice an element is bound
 * to: a video element clones the speaker's voice), with their kind.
 */
export function resultResources(data: unknown): [string, string][] {
  if (typeof data !== 'object' || data === null) return [];
  const d = data as Record<string, unknown> & { task_result?: unknown };
  const found: [string, string][] = [];
  if (typeof d.session_id === 'string') found.push([d.session_id, 'session']);
  const lists: [string, string, string][] = [['videos', 'id', 'video'], ['audios', 'id', 'audio'], ['voices', 'voice_id', 'voice'], ['elements', 'element_id', 'element']];
  for (const source of [d, d.task_result]) {
    if (typeof source !== 'object' || source === null) continue;
    for (const [list, key, kind] of lists) {
      const items = (source as Record<string, unknown>)[list];
      if (!Array.isArray(items)) continue;
      for (const item of items) {
        const id = ownId(item, key);
        if (id !== undefined) found.push([id, kind]);
        const voice = kind === 'element' ? ownId((item as Record<string, unknown> | null)?.element_voice_info, 'voice_id') : undefined;
        if (voice !== undefined) found.push([voice, 'voice']);
      }
    }
  }
  return found;
}

/** The final transition as the host's `onTransition` hook sees it. */
function transition(deps: TaskLifeDeps, task: RelayTask, to: 'succeed' | 'failed', charge: number, refund: number, klingTaskId: string | null): HookTransition {
  return {
    taskId: task.id,
    externalTaskId: task.external_task_id,
    clientTaskId: task.client_task_id,
    klingTaskId,
    table: task.table_kind,
    hostRowId: task.host_row_id,
    userId: task.user_id,
    accountId: task.account_id,
    channelId: deps.accounts?.get(task.account_id)?.channelId ?? task.account_id,
    type: task.request_type,
    model: task.model,
    from: task.state,
    to,
    billing: task.billing,
    hold: task.hold_quota,
    charge,
    refund,
    createdAt: task.created_at,
  };
}

/** What a task's final state writes, decided from the task as the transaction read it. */
function settlement(deps: TaskLifeDeps, task: RelayTask, outcome: Outcome, from: readonly TaskState[], now: number): Settlement {
  const klingTaskId = outcome.klingTaskId ?? task.kling_task_id;
  const deductions = outcome.deductions ? JSON.stringify(outcome.deductions) : null;
  const common = { deductions, kling_task_id: klingTaskId, kling_updated_at: outcome.klingUpdatedAt ?? task.kling_updated_at, lease_owner: null, lease_until: null, next_check_at: null } as const satisfies Partial<NewRelayTask>;
  if (outcome.status === 'failed') {
    const refund = task.billing === 'hold' ? task.hold_quota : 0;
    const patch = { state: 'failed', charge_quota: 0, status_msg: outcome.reason, ...common } as const;
    return {
      change: {
        patch,
        host: { status: 'failed', task_id: klingTaskId ?? '', fail_reason: outcome.reason, quota: 0, updated_at: unixSeconds(now) },
        hostFacts: { kling: taskObject({ ...task, ...patch }) },
        from,
        now,
      },
      balance: { move: 'credit', amount: refund },
      ledger: { kind: 'refund', amount: refund },
      charge: 0,
      transition: transition(deps, task, 'failed', 0, refund, klingTaskId),
    };
  }
  const pricing = storedPricing(task);
  const { charge, units } = pricing ? actualCharge(task.hold_quota, pricing, outcome.result, deps.quotaPerUnit, outcome.deductions) : { charge: task.hold_quota, units: undefined };
  const result = JSON.stringify(outcome.result ?? null);
  const seconds = pricing?.type === 'per_second' ? units : parseDuration((outcome.result as { videos?: { duration?: unknown }[] } | undefined)?.videos?.[0]?.duration);
  const back = task.hold_quota - charge;
  const patch = { state: 'succeed', charge_quota: charge, result, ...common } as const;
  return {
    change: {
      patch,
      host: { status: 'succeed', task_id: klingTaskId ?? '', result, quota: charge, ...(seconds !== undefined ? { duration: seconds } : {}), updated_at: unixSeconds(now) },
      hostFacts: { kling: taskObject({ ...task, ...patch }) },
      from,
      now,
    },
    // Under billing 'hold' the unused part of the hold goes back; under charge-on-success the charge is taken now.
    balance: task.billing === 'hold' ? { move: 'credit', amount: back } : { move: 'debit', amount: charge },
    ledger: { kind: 'settle', amount: task.billing === 'hold' ? back : -charge },
    used: charge,
    charge,
    transition: transition(deps, task, 'succeed', charge, 0, klingTaskId),
  };
}

/**
 * Records who made the ids in a succeeded task's result: later requests naming them (video-extend,
 * lip-sync, ...) must reach the account that made them, and come from the caller whose task made them.
 * They are recorded before the task settles, since a settled task is never settled again: ids a
 * failed write left unrecorded after the settlement would stay unknown for good, and open to any
 * caller. A record is written once (the first wins), so a settlement that fails after it and is
 * tried again, or loses to another, leaves nothing wrong. Nothing is recorded for a task no longer in
 * `from` (a late or duplicate outcome); a caller that has the task at hand passes its `owner`, and
 * the task is not read for it (a record of a late outcome's ids is as true as the first one).
 */
async function recordResults(deps: TaskLifeDeps, taskId: number, from: readonly TaskState[], result: unknown, owner: TaskOwner | undefined): Promise<void> {
  const ids = resultResources(result);
  if (ids.length === 0) return;
  let made = owner;
  if (made === undefined) {
    const task = await deps.store.getTask(deps.db, taskId);
    if (task === undefined || !from.includes(task.state)) return;
    made = task;
  }
  for (const [id, kind] of ids) await deps.store.recordResource(deps.db, id, kind, made.account_id, made.user_id);
}

/** A task's Kling account and caller, which do not change once Kling has the task. */
export type TaskOwner = Pick<RelayTask, 'account_id' | 'user_id'>;

/**
 * The one move to a final state, shared by sync answers, refunds after a failed submit, the callback,
 * the query refresh and the reconciler: a compare-and-set on the task's state, the host row, and the
 * ledger movement with the balance change, in one transaction. Returns false when the task had
 * already left the expected states (a duplicate or late notice): then nothing changed.
 */
export async function finish(deps: TaskLifeDeps, taskId: number, outcome: Outcome, from: readonly TaskState[] = ACTIVE_STATES, owner?: TaskOwner): Promise<boolean> {
  const now = Date.now();
  // Kling's message may quote the request (and a base64 image); the host row and logs get it cut.
  const ended: Outcome = outcome.status === 'failed' ? { ...outcome, reason: loggable(outcome.reason) } : outcome;
  if (ended.status === 'succeed') await recordResults(deps, taskId, from, ended.result, owner);
  const applied = await deps.storage.finish(taskId, from, (task) => settlement(deps, task, ended, from, now));
  if (!applied) return false;
  const { task, settlement: { charge } } = applied;
  const meta = { taskId: task.id, externalTaskId: task.external_task_id, klingTaskId: ended.klingTaskId ?? task.kling_task_id, userId: task.user_id, accountId: task.account_id };
  if (ended.status === 'succeed') deps.logger.info('task settled', { ...meta, hold: task.hold_quota, charge });
  else deps.logger.info('task refunded', { ...meta, refund: task.billing === 'hold' ? task.hold_quota : 0, reason: ended.reason });
  deps.events?.emitFinished(task, ended.status === 'succeed' ? { charge } : { reason: ended.reason });
  return true;
}

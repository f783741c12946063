import type { Knex } from 'knex';
import type { HostTable } from '../../adapters/host-table.js';
import type { RelayStore } from '../../adapters/relay-store.js';
import type { KlingDeductions, QuotaStore, RelayTask, TaskState, TableKind } from '../../adapters/types.js';
import { actualCharge, parseDuration } from '../pricing/estimate.js';
import type { PricingType } from '../registry/types.js';
import { loggable, type Logger } from '../upstream/client.js';
import type { RelayEvents } from '../metrics/events.js';
import type { ClientNotices } from '../callbacks/notice.js';

/** What the relay needs to move a task and its money. */
export interface TransitionDeps {
  db: Knex;
  store: RelayStore;
  hosts: Record<TableKind, HostTable>;
  quota: QuotaStore;
  quotaPerUnit: number;
  logger: Logger;
  /** The relay's events (relay.events); emitted after the transaction commits. */
  events?: RelayEvents | undefined;
  /** Writes the caller's callback notice of each status change, in the transaction that applies it. */
  notices?: ClientNotices | undefined;
}

/**
 * How a task ended. `deductions` is what Kling reported it deducted, kept with the task as reported;
 * absent when Kling said nothing (a refund of a task it never had, a timeout): none is made up.
 */
export type Outcome = (
  | { status: 'succeed'; klingTaskId?: string | undefined; result: unknown; klingUpdatedAt?: number | undefined }
  | { status: 'failed'; klingTaskId?: string | undefined; reason: string; klingUpdatedAt?: number | undefined }
) & { deductions?: KlingDeductions | undefined };

export const ACTIVE_STATES: readonly TaskState[] = ['pending', 'submitted', 'processing'];

interface StoredPricing {
  type: PricingType;
  unit: number;
}

export function storedPricing(task: RelayTask): StoredPricing | undefined {
  try {
    const p = JSON.parse(task.pricing) as Partial<StoredPricing>;
    return typeof p.type === 'string' && typeof p.unit === 'number' ? (p as StoredPricing) : undefined;
  } catch {
    return undefined;
  }
}

function unixSeconds(ms: number): number {
  return Math.floor(ms / 1000);
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

/**
 * The one transition to a final state, shared by sync answers, refunds after a failed submit, the
 * callback, the query refresh and the reconciler: a compare-and-set on the task's state, the host
 * row, and the ledger movement with the balance change, in one transaction. Returns false when the
 * task had already left the expected states (a duplicate or late notice): then nothing changed.
 */
export async function finishTask(deps: TransitionDeps, taskId: number, outcome: Outcome, from: readonly TaskState[] = ACTIVE_STATES): Promise<boolean> {
  const now = Date.now();
  // Kling's message may quote the request (and a base64 image); the host row and logs get it cut.
  if (outcome.status === 'failed') outcome = { ...outcome, reason: loggable(outcome.reason) };
  const applied = await deps.db.transaction(async (trx) => {
    const task = await deps.store.getTask(trx, taskId);
    if (!task || !from.includes(task.state)) return undefined;
    const host = deps.hosts[task.table_kind];
    const klingTaskId = outcome.klingTaskId ?? task.kling_task_id;
    const deductions = outcome.deductions ? JSON.stringify(outcome.deductions) : null;
    if (outcome.status === 'succeed') {
      const pricing = storedPricing(task);
      const { charge, units } = pricing
        ? actualCharge(task.hold_quota, pricing.unit, pricing.type, outcome.result, deps.quotaPerUnit)
        : { charge: task.hold_quota, units: undefined };
      const result = JSON.stringify(outcome.result ?? null);
      const patch = { state: 'succeed', charge_quota: charge, result, deductions, kling_task_id: klingTaskId, kling_updated_at: outcome.klingUpdatedAt ?? task.kling_updated_at, lease_owner: null, lease_until: null, next_check_at: null } as const;
      const moved = await deps.store.updateTask(trx, task.id, patch, from);
      if (!moved) return undefined;
      await deps.notices?.enqueue(trx, { ...task, ...patch }, now);
      const seconds = pricing?.type === 'per_second' ? units : parseDuration((outcome.result as { videos?: { duration?: unknown }[] } | undefined)?.videos?.[0]?.duration);
      await host.update(trx, task.host_row_id, {
        status: 'succeed',
        task_id: klingTaskId ?? '',
        result,
        quota: charge,
        ...(seconds !== undefined ? { duration: seconds } : {}),
        updated_at: unixSeconds(now),
      });
      if (task.billing === 'hold') {
        const back = task.hold_quota - charge;
        await deps.quota.credit(trx, task.user_id, back);
        await deps.store.addLedger(trx, { task_id: task.id, user_id: task.user_id, kind: 'settle', amount: back });
      } else {
        await deps.quota.debit(trx, task.user_id, charge);
        await deps.store.addLedger(trx, { task_id: task.id, user_id: task.user_id, kind: 'settle', amount: -charge });
      }
      await deps.quota.addUsed(trx, task.user_id, charge);
      return { task, charge };
    }
    const patch = { state: 'failed', charge_quota: 0, status_msg: outcome.reason, deductions, kling_task_id: klingTaskId, kling_updated_at: outcome.klingUpdatedAt ?? task.kling_updated_at, lease_owner: null, lease_until: null, next_check_at: null } as const;
    const moved = await deps.store.updateTask(trx, task.id, patch, from);
    if (!moved) return undefined;
    await deps.notices?.enqueue(trx, { ...task, ...patch }, now);
    await host.update(trx, task.host_row_id, { status: 'failed', task_id: klingTaskId ?? '', fail_reason: outcome.reason, quota: 0, updated_at: unixSeconds(now) });
    const refund = task.billing === 'hold' ? task.hold_quota : 0;
    await deps.quota.credit(trx, task.user_id, refund);
    await deps.store.addLedger(trx, { task_id: task.id, user_id: task.user_id, kind: 'refund', amount: refund });
    return { task, charge: 0 };
  });
  if (!applied) return false;
  if (outcome.status === 'succeed') {
    // Later requests naming these ids (video-extend, lip-sync, ...) must reach the account that made
    // them, and come from the caller whose task made them.
    for (const [id, kind] of resultResources(outcome.result)) await deps.store.recordResource(deps.db, id, kind, applied.task.account_id, applied.task.user_id);
  }
  const meta = { taskId: applied.task.id, externalTaskId: applied.task.external_task_id, klingTaskId: outcome.klingTaskId ?? applied.task.kling_task_id, userId: applied.task.user_id, accountId: applied.task.account_id };
  if (outcome.status === 'succeed') deps.logger.info('task settled', { ...meta, hold: applied.task.hold_quota, charge: applied.charge });
  else deps.logger.info('task refunded', { ...meta, refund: applied.task.billing === 'hold' ? applied.task.hold_quota : 0, reason: outcome.reason });
  deps.events?.emitFinished(applied.task, outcome.status === 'succeed' ? { charge: applied.charge } : { reason: outcome.reason });
  return true;
}

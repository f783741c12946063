import { EventEmitter } from 'node:events';
import type { RelayTask } from '../../adapters/types.js';
import type { ReconcileReport } from '../completion/report.js';

/** What every task event names. */
export interface TaskEventBase {
  /** The relay's task row id. */
  taskId: number;
  externalTaskId: string;
  userId: string;
  accountId: string;
  /** The registry type, e.g. 'text2video'. */
  type: string;
}

/**
 * The relay's events, each emitted once the database transaction behind it has committed, so a
 * listener never sees a movement that was rolled back. `failed` and `refunded` come together for a
 * task that ends failed (refunded carries the amount given back; 0 with billing 'charge-on-success').
 */
export interface RelayEventMap {
  /** A task was recorded and its quota held; Kling is asked next. */
  submitted: [TaskEventBase & { path: string; hold: number }];
  /** A task succeeded and was charged (`charge` <= `hold`; the rest went back). */
  settled: [TaskEventBase & { hold: number; charge: number }];
  /** A task ended failed: Kling refused it, failed it, never got it, or it timed out. */
  failed: [TaskEventBase & { reason: string }];
  /** A failed task's hold went back to the caller. */
  refunded: [TaskEventBase & { amount: number }];
  /** A Kling callback for a known task, with the delay since Kling's `updated_at` (undefined when it sent none). */
  callback: [{ taskId: number; externalTaskId: string; status: string | undefined; delayMs: number | undefined }];
  /**
   * Kling refused a create for its account's sake before accepting anything, and the task moved to
   * another account (same task row and hold): `code` is Kling's (1303 over concurrency, 1100-1103 or
   * 1304 an account problem).
   */
  failover: [{ taskId: number; userId: string; from: string; to: string; code: number }];
  /** Kling answered a create with 1303: the account's slots for this model version and pack type were full at Kling while the relay ran `inUse` there. */
  concurrencyRefused: [{ accountId: string; model: string; pack: 'video' | 'image'; inUse: number }];
  /** Kling refused an account (arrears, exhausted packs, no permission, IP): it takes no new tasks for a while. Once per setting aside. */
  accountSetAside: [{ accountId: string; code: number }];
  /** No Kling slot was free for a task under the caps in force: it was held and waits in the queue. */
  queued: [TaskEventBase & { model: string; pack: 'video' | 'image' }];
  /** A queued task's turn came: it is being sent with `accountId` after waiting `waitedMs`. */
  dequeued: [TaskEventBase & { model: string; pack: 'video' | 'image'; waitedMs: number }];
  /** A dequeued task every account refused (1303, or the account itself): it waits in the queue again. */
  requeued: [TaskEventBase & { code: number }];
  /**
   * After each dispatch pass: how many tasks wait, how long the oldest has waited (0 when none), and
   * the slots in use per account, model version and pack type.
   */
  queue: [{ depth: number; oldestWaitMs: number; slots: { accountId: string; model: string; pack: 'video' | 'image'; inUse: number }[] }];
  /** One reconciler pass finished. */
  reconcile: [ReconcileReport & { durationMs: number }];
}

export type RelayEventName = keyof RelayEventMap;

/**
 * A typed EventEmitter. A listener that throws is logged and skipped: metrics must never fail a
 * request or a settlement that has already committed.
 */
export class RelayEvents extends EventEmitter<RelayEventMap> {
  constructor(private readonly onListenerError: (event: string, error: unknown) => void = () => undefined) {
    super();
  }

  override emit<K extends RelayEventName>(event: K, ...args: RelayEventMap[K]): boolean {
    const listeners = this.rawListeners(event) as ((...a: unknown[]) => void)[];
    for (const listener of listeners) {
      try {
        // once() listeners are wrappers that remove themselves when called.
        listener.apply(this, args);
      } catch (error) {
        this.onListenerError(event, error);
      }
    }
    return listeners.length > 0;
  }

  /** After the one transition committed: `settled`, or `failed` then `refunded`. */
  emitFinished(task: RelayTask, outcome: { charge: number } | { reason: string }): void {
    const base: TaskEventBase = { taskId: task.id, externalTaskId: task.external_task_id, userId: task.user_id, accountId: task.account_id, type: task.request_type };
    if ('charge' in outcome) {
      this.emit('settled', { ...base, hold: task.hold_quota, charge: outcome.charge });
      return;
    }
    this.emit('failed', { ...base, reason: outcome.reason });
    this.emit('refunded', { ...base, amount: task.billing === 'hold' ? task.hold_quota : 0 });
  }
}

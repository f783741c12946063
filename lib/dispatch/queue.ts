import type { RelayTask } from '../../adapters/types.js';
import { RelayHttpError } from '../errors.js';
import { loggableError } from '../loggable-error.js';
import type { RegistryEntry } from '../registry/types.js';
import type { RelayContext } from '../relay/context.js';
import { createdTask, servesFamily } from '../relay/standard.js';
import { acceptCreated, afterFailedPost, answerDeadlineMs, postCreate, resourceOwner } from '../relay/submit.js';
import { dequeue, finish, requeue } from '../task/life.js';
import type { KlingAccount } from '../upstream/accounts.js';
import { accountWithFreeSlot, hasRoom } from './choose.js';
import { refusedByAccount } from './send.js';
import type { SlotNeed } from './slots.js';

/** How many callers one round offers, and how many tasks of each. */
const CALLERS = 100;
const PER_CALLER = 5;
/** The most rounds of one pass: a pass ends sooner when a round sends nothing. */
const MAX_ROUNDS = 20;
/** The most queued tasks given up for waiting too long in one pass; the next pass takes the rest. */
const EXPIRE_BATCH = 100;

/** What one dispatch pass did. */
export interface DispatchReport {
  /** Queued tasks sent to Kling (or being sent when the pass ended). */
  sent: number;
  /** Sent tasks every account refused, back in the queue. */
  requeued: number;
  /** Queued tasks failed and refunded after waiting longer than `queue.maxWaitMs`. */
  expired: number;
  /** Sent tasks that ended failed (Kling refused the request itself, or the body could not be sent). */
  failed: number;
}

type Offer = 'sent' | 'full' | 'gone' | 'failed';

/**
 * Sends queued tasks to Kling as slots free up. Each pass gives up tasks that waited longer than
 * `queue.maxWaitMs` (failed, hold refunded), then offers the queued tasks round by round: each caller's
 * oldest, callers served least since they started waiting first (RelayStore.queuedRound), so one
 * caller's backlog never stands before another caller's first task. A task whose model version has no free slot left this pass waits; a
 * follow-up naming a resource waits for the account that owns it.
 *
 * The move from `queued` to `pending` is a compare-and-set: of several dispatchers (relay processes
 * sharing the database) exactly one wins a task, and only the winner sends it. Sending is the direct
 * submit's own (failover included, and an ambiguous Kling error looked up the same way); a task every
 * account refused before accepting it goes back to the queue.
 *
 * Passes run from the reconciler's loop, and at once (`kick`) when a task joins the queue or one
 * ends in this process, while the relay runs (`start`); the loop alone is enough for correctness.
 */
export class QueueDispatcher {
  #running: Promise<DispatchReport> | undefined;
  #again = false;
  #started = false;

  constructor(private readonly ctx: RelayContext) {
    // A task that ended freed its slots.
    ctx.events?.on('settled', () => this.kick());
    ctx.events?.on('failed', () => this.kick());
  }

  start(): void {
    this.#started = true;
  }

  async stop(): Promise<void> {
    this.#started = false;
    await this.#running?.catch(() => undefined);
  }

  /** A pass soon, while the relay runs: one now, or another right after the one running. */
  kick(): void {
    if (!this.#started) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    void this.pass();
  }

  /** One pass (or the one running); never rejects: a failure is logged, and the next pass tries again. */
  pass(): Promise<DispatchReport> {
    this.#running ??= this.#pass()
      .catch((error: unknown) => {
        this.ctx.logger.error('queue dispatch pass failed', { error: loggableError(error) });
        return { sent: 0, requeued: 0, expired: 0, failed: 0 };
      })
      .finally(() => {
        this.#running = undefined;
        if (this.#again && this.#started) {
          this.#again = false;
          void this.pass();
        }
      });
    return this.#running;
  }

  async #pass(): Promise<DispatchReport> {
    const { ctx } = this;
    const report: DispatchReport = { sent: 0, requeued: 0, expired: 0, failed: 0 };
    // Every task that ends kicks a pass: when nothing waits, one read is the whole pass.
    const oldest = await ctx.store.oldestQueuedAt(ctx.db);
    if (oldest !== undefined) await this.#offerAll(oldest, report);
    if (ctx.events && ctx.events.listenerCount('queue') > 0) await this.#announce();
    return report;
  }

  /** Gives up the tasks waited too long (when the oldest has), then offers the others round by round. */
  async #offerAll(oldest: number, report: DispatchReport): Promise<void> {
    const { ctx } = this;
    if (oldest < Date.now() - ctx.config.queue.maxWaitMs) await this.#expire(report);
    const sending: Promise<void>[] = [];
    // Model versions (and, for follow-ups, their accounts) without a free slot for the rest of the pass.
    const full = new Set<string>();
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const offered = await ctx.store.queuedRound(ctx.db, CALLERS, PER_CALLER, ctx.config.queue.maxWaitMs);
      let moved = false;
      for (const task of offered) {
        const need: SlotNeed = { pack: task.table_kind, model: task.model, slots: task.slots };
        if (full.has(needKey(need))) continue;
        if ((await this.#offer(task, need, full, report, sending)) !== 'full') moved = true;
      }
      if (!moved) break;
    }
    await Promise.all(sending);
    if (report.sent + report.requeued + report.expired + report.failed > 0) ctx.logger.info('queue dispatch pass', { ...report });
  }

  /**
   * Takes a queued task out of the queue when a slot is free for it, and starts sending it (pushed on
   * `sending`); 'full' when no slot is (noted in `full` for the rest of the pass), 'gone' when another
   * dispatcher took it or it left the queue.
   */
  async #offer(task: RelayTask, need: SlotNeed, full: Set<string>, report: DispatchReport, sending: Promise<void>[]): Promise<Offer> {
    const { ctx } = this;
    const entry = ctx.registry.byPath.get(task.endpoint);
    let body: Record<string, unknown>;
    try {
      if (!entry) throw new Error(`the relay no longer serves ${task.endpoint}`);
      body = JSON.parse(task.queued_body ?? '') as Record<string, unknown>;
    } catch (error) {
      return this.#giveUp(task, `the queued request cannot be sent: ${(error as Error).message}`, report);
    }
    let owner: KlingAccount | undefined;
    try {
      owner = await resourceOwner(ctx, entry, body, task.user_id);
    } catch (error) {
      if (!(error instanceof RelayHttpError)) throw error;
      return this.#giveUp(task, error.message, report);
    }
    if (owner && full.has(needKey(need, owner.id))) return 'full';
    const chosen = await ctx.gate.run(need, async () => {
      // The slots of submits placed before whose holds the database may not show yet.
      const inFlight = ctx.gate.inFlight(need);
      const account = owner ? ((await hasRoom(ctx, owner, need, inFlight)) ? owner : undefined) : await accountWithFreeSlot(ctx, need, new Set(), servesFamily(entry), inFlight);
      if (!account) return undefined;
      return (await dequeue(ctx, task, account.id, answerDeadlineMs(ctx))) ? account : null;
    });
    if (chosen === undefined) {
      // A follow-up waits for its own account only; others of the model version may go elsewhere.
      full.add(owner ? needKey(need, owner.id) : needKey(need));
      return 'full';
    }
    if (chosen === null) return 'gone';
    const waitedMs = Date.now() - task.created_at;
    ctx.events?.emit('dequeued', { taskId: task.id, externalTaskId: task.external_task_id, userId: task.user_id, accountId: chosen.id, type: task.request_type, model: need.model, pack: need.pack, waitedMs });
    report.sent++;
    const sent = this.#send({ ...task, state: 'pending', account_id: chosen.id, status_msg: null }, entry, body, need, chosen, owner !== undefined, report).catch((error: unknown) => {
      ctx.logger.error('could not send a queued task', { taskId: task.id, error: loggableError(error) });
    });
    sending.push(sent);
    return 'sent';
  }

  /** Sends a task just taken out of the queue, as a direct submit does; back to the queue when every account refused it. */
  async #send(task: RelayTask, entry: RegistryEntry, body: Record<string, unknown>, need: SlotNeed, account: KlingAccount, pinned: boolean, report: DispatchReport): Promise<void> {
    const { ctx } = this;
    const log = { taskId: task.id, externalTaskId: task.external_task_id, userId: task.user_id, accountId: account.id, type: entry.type, hold: task.hold_quota, queuedMs: Date.now() - task.created_at };
    ctx.logger.info('queued task sent', log);
    const sent = await postCreate(ctx, entry, task, body, need, account, pinned);
    if ('error' in sent && refusedByAccount(sent.error)) {
      if (await requeue(ctx, sent.task)) {
        report.sent--;
        report.requeued++;
        ctx.logger.info('queued task refused by every account; back in the queue', { ...log, accountId: sent.account.id, klingCode: sent.error.klingCode });
        ctx.events?.emit('requeued', { taskId: task.id, externalTaskId: task.external_task_id, userId: task.user_id, accountId: sent.account.id, type: task.request_type, code: sent.error.klingCode ?? 0 });
      }
      return;
    }
    let reply;
    try {
      reply = 'reply' in sent ? sent.reply : await afterFailedPost(ctx, entry, sent.account, sent.task, sent.error, { ...log, accountId: sent.account.id });
    } catch (error) {
      // Refunded, or left for the reconciler to look up: the caller learns of it by querying or its callback.
      if (!(error instanceof RelayHttpError)) throw error;
      report.sent--;
      report.failed++;
      return;
    }
    const created = createdTask(entry, (reply.envelope.data ?? {}) as Record<string, unknown>);
    ctx.logger.info('Kling accepted the request', { ...log, accountId: sent.account.id, klingTaskId: created.klingTaskId, klingRequestId: reply.envelope.request_id });
    await acceptCreated(ctx, sent.task, created, log);
  }

  /** Fails a queued task that cannot be sent at all, its hold refunded. */
  async #giveUp(task: RelayTask, reason: string, report: DispatchReport): Promise<Offer> {
    if (await finish(this.ctx, task.id, { status: 'failed', reason }, ['queued'])) report.failed++;
    return 'failed';
  }

  /** Fails the tasks that waited longer than `queue.maxWaitMs`, their holds refunded. */
  async #expire(report: DispatchReport): Promise<void> {
    const { ctx } = this;
    const { maxWaitMs } = ctx.config.queue;
    const reason = `no Kling slot came free within ${maxWaitMs} ms of queueing; the task was never sent to Kling`;
    for (const id of await ctx.store.queuedBefore(ctx.db, Date.now() - maxWaitMs, EXPIRE_BATCH)) {
      if (await finish(ctx, id, { status: 'failed', reason }, ['queued'])) report.expired++;
    }
  }

  /** The queue's depth, its oldest task's wait, and the slots in use, as a `queue` event. */
  async #announce(): Promise<void> {
    const { ctx } = this;
    const [depth, oldest, slots] = await Promise.all([ctx.store.queuedCount(ctx.db), ctx.store.oldestQueuedAt(ctx.db), ctx.store.slotsByAccount(ctx.db)]);
    ctx.events?.emit('queue', { depth, oldestWaitMs: oldest === undefined ? 0 : Math.max(0, Date.now() - oldest), slots });
  }
}

const needKey = (need: SlotNeed, accountId?: string): string => `${need.pack}\u0000${need.model}${accountId === undefined ? '' : `\u0000${accountId}`}`;

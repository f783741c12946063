import { randomBytes } from 'node:crypto';
import type { RelayTask } from '../../adapters/types.js';
import type { CallbackDelivery } from '../callbacks/delivery.js';
import { emptyReport, type ReconcileReport } from './report.js';
import type { RelayContext } from '../relay/context.js';
import { loggableError } from '../loggable-error.js';
import { UpstreamError } from '../upstream/client.js';
import { isTaskNotFound } from '../upstream/errors.js';
import { finish, markChecked } from '../task/life.js';
import { applyObservation, type Observation } from '../task/observe.js';
import { planChecks, type Lookup } from './batches.js';

/**
 * How many tasks one pass leases, and how many checks run at once. The checks of one pass share
 * Kling calls (batches.ts): 200 tasks of one account take a few calls, not 200.
 */
const BATCH = 200;
const CONCURRENCY = 4;
const MAX_BACKOFF_MS = 10 * 60_000;

/** The account that created a task is no longer in the relay's configuration. */
class AccountGone extends Error {
  constructor(accountId: string) {
    super(`account ${accountId} is no longer configured`);
  }
}

export class Reconciler {
  /** This process's name on leases: several host instances share one database. */
  readonly owner = `relay-${process.pid}-${randomBytes(4).toString('hex')}`;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<ReconcileReport> | undefined;

  constructor(
    private readonly ctx: RelayContext,
    private readonly delivery?: CallbackDelivery,
  ) {}

  /** One pass: lease due tasks, ask Kling about each, apply the answers through the one transition. */
  reconcile(): Promise<ReconcileReport> {
    this.running ??= this.pass().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      this.reconcile().catch((error: unknown) => this.ctx.logger.error('reconcile pass failed', { error: loggableError(error) }));
    }, this.ctx.config.reconciler.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => undefined);
  }

  private async pass(): Promise<ReconcileReport> {
    const { ctx } = this;
    const report = emptyReport();
    const now = Date.now();
    // The lease outlives the slowest Kling call of the pass, so no other instance takes a task mid-check.
    const tasks = await ctx.store.claimDue(ctx.db, this.owner, now, ctx.config.reconciler.leaseMs, BATCH);
    report.claimed = tasks.length;
    const checks = planChecks(ctx, tasks);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < checks.length) {
        const planned = checks[next++];
        if (planned) await this.check(planned.task, planned.lookup, report);
      }
    };
    await Promise.all(Array.from({ length: Math.min(CONCURRENCY, checks.length) }, worker));
    // The slots the checks freed go to queued tasks (lib/dispatch/queue.ts); its failures are its own.
    await ctx.queue?.pass();
    // After the tasks, so that the notices of the changes this pass applied go out in it too.
    if (this.delivery) {
      try {
        report.callbacks = await this.delivery.deliverDue(ctx.config.reconciler.intervalMs);
      } catch (error) {
        ctx.logger.error('client callback delivery pass failed', { error: loggableError(error) });
      }
    }
    // An idle pass every intervalMs is no news for an operator reading the logs at info.
    const idle = report.claimed === 0 && (report.callbacks?.claimed ?? 0) === 0;
    (idle ? ctx.logger.debug : ctx.logger.info).call(ctx.logger, 'reconcile pass', { ...report });
    ctx.events?.emit('reconcile', { ...report, durationMs: Date.now() - now });
    return report;
  }

  /** Learns a task's status from Kling through `lookup` (planChecks) and applies it, or reschedules the task. */
  private async check(task: RelayTask, lookup: Lookup, report: ReconcileReport): Promise<void> {
    const { ctx } = this;
    const account = ctx.accounts.get(task.account_id);
    const timeoutMs = ctx.config.reconciler.taskTimeoutMs;
    const expired = Date.now() - task.created_at > timeoutMs;
    try {
      if (!account) throw new AccountGone(task.account_id);
      // A task without a Kling id lost its create answer: lookup asks Kling by our external_task_id.
      let observed: Observation;
      try {
        observed = await applyObservation(ctx, account, task, await lookup(account), { strict: true, mustNameOurs: false, markChecked: false });
      } catch (error) {
        if (task.kling_task_id === null && isTaskNotFound(error)) {
          if (await finish(ctx, task.id, { status: 'failed', reason: 'Kling never received the task' })) report.expired++;
          return;
        }
        throw error;
      }
      const { applied, answer } = observed;
      // The answer's Kling task id was stored along with the status.
      if (task.kling_task_id === null && typeof answer?.task_id === 'string') report.adopted++;
      if (applied === 'settled') {
        report.finished++;
        return;
      }
      if (applied === 'progressed') report.progressed++;
      if (expired) {
        await this.expire(task, `no final status from Kling within ${timeoutMs} ms`, report);
        return;
      }
    } catch (error) {
      // Past the timeout, a check that cannot learn the task's status is the last one: a hold must not
      // wait for an account that is gone or an answer Kling keeps failing to give. A database error is
      // not Kling's answer; the next pass tries again.
      if (expired && (error instanceof AccountGone || error instanceof UpstreamError)) {
        await this.expire(task, `no final status from Kling within ${timeoutMs} ms; the last check failed: ${(error as Error).message}`, report);
        return;
      }
      report.errors++;
      ctx.logger.warn('reconcile check failed', { taskId: task.id, accountId: task.account_id, error: loggableError(error) });
    }
    await this.reschedule(task);
  }

  /** Gives a task past taskTimeoutMs up: failed and refunded through the one transition. */
  private async expire(task: RelayTask, reason: string, report: ReconcileReport): Promise<void> {
    const { ctx } = this;
    const meta = { taskId: task.id, externalTaskId: task.external_task_id, klingTaskId: task.kling_task_id, userId: task.user_id, accountId: task.account_id, reason };
    let ended: boolean;
    try {
      ended = await finish(ctx, task.id, { status: 'failed', reason });
    } catch (error) {
      report.errors++;
      ctx.logger.warn('reconcile check failed', { ...meta, error: loggableError(error) });
      await this.reschedule(task);
      return;
    }
    // A hold given up is worth an operator's look whatever the cause: Kling may still bill the task.
    if (ended) {
      report.expired++;
      ctx.logger.error('task expired: failed and refunded', meta);
    }
  }

  private async reschedule(task: RelayTask): Promise<void> {
    const { ctx } = this;
    const checks = task.check_count + 1;
    const backoff = Math.min(ctx.config.reconciler.intervalMs * 2 ** Math.min(checks - 1, 10), MAX_BACKOFF_MS);
    await markChecked(ctx, task.id, checks);
    await ctx.store.releaseLease(ctx.db, task.id, this.owner, Date.now() + backoff);
  }
}

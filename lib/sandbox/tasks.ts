import type { CallbackDispatcher } from './callbacks.js';
import { KlingError } from './codes.js';
import { type SlotBook, type SlotClaim, slotClaim } from './concurrency.js';
import { NO_BALANCE_DEDUCTION, newTaskId, succeededResult, taskObject } from './results.js';
import { standardTaskObject } from './standard-view.js';
import type { ApiFamily, SandboxDeductions, SandboxTask, Schedule, TaskOutcome, TaskStatus } from './types.js';

export interface TaskStoreConfig {
  schedule: Schedule;
  outcome: (task: SandboxTask) => TaskOutcome;
  /** Keep at most this many final tasks (oldest forgotten first) and cut long strings in their bodies. */
  history?: number;
}

/** Strings longer than this are kept as `[N characters]` when the history is bounded: a 10 MB image is not kept. */
const KEPT_STRING_CHARS = 1024;

/** A copy of a JSON value whose long strings are replaced by their length. */
export function boundedCopy(value: unknown): unknown {
  if (typeof value === 'string') return value.length > KEPT_STRING_CHARS ? `[${value.length} characters]` : value;
  if (Array.isArray(value)) return value.map(boundedCopy);
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, boundedCopy(item)]));
  }
  return value;
}

function externalKey(accessKey: string, externalTaskId: string): string {
  return `${accessKey}\u0000${externalTaskId}`;
}

function isFinal(status: TaskStatus): boolean {
  return status === 'succeed' || status === 'failed';
}

/** The sandbox's tasks: creation, look-up per access key, progress on the schedule. */
export class TaskStore {
  // Insertion order is creation order, which listing relies on.
  private readonly tasks = new Map<string, SandboxTask>();
  // By access key and external_task_id: a create checks uniqueness, and a scan would grow with every task.
  private readonly byExternal = new Map<string, SandboxTask>();
  private readonly timers = new Map<string, NodeJS.Timeout[]>();
  // The slots each running task holds, freed when it ends.
  private readonly claims = new Map<string, SlotClaim>();

  constructor(
    private readonly config: TaskStoreConfig,
    private readonly callbacks: CallbackDispatcher,
    private readonly slots: SlotBook,
  ) {}

  getTask(taskId: string): SandboxTask | undefined {
    return this.tasks.get(taskId);
  }

  findByExternalId(accessKey: string, externalTaskId: string): SandboxTask | undefined {
    return this.byExternal.get(externalKey(accessKey, externalTaskId));
  }

  /** Every task, oldest first. */
  all(): SandboxTask[] {
    return [...this.tasks.values()];
  }

  /** A task of this key and path, by Kling's task_id or by the key's external_task_id. */
  lookup(accessKey: string, path: string, id: string): SandboxTask | undefined {
    const byId = this.tasks.get(id);
    if (byId && byId.accessKey === accessKey && byId.path === path) return byId;
    const byExternal = this.findByExternalId(accessKey, id);
    return byExternal?.path === path ? byExternal : undefined;
  }

  /** This key's tasks of this path, newest first. */
  list(accessKey: string, path: string): SandboxTask[] {
    return this.all()
      .filter((t) => t.accessKey === accessKey && t.path === path)
      .reverse();
  }

  /**
   * Creates a task and starts its schedule. `gate` holds back its callbacks until the create
   * answer is out. `ids` are the task's external_task_id and callback_url, where the family keeps
   * them (v1: the body's top level; standard: `options`).
   */
  create(
    accessKey: string,
    path: string,
    body: Record<string, unknown>,
    gate?: Promise<unknown>,
    ids: { family: ApiFamily; externalTaskId: unknown; callbackUrl: unknown } = { family: 'v1', externalTaskId: body.external_task_id, callbackUrl: body.callback_url },
  ): SandboxTask {
    const { family, externalTaskId, callbackUrl } = ids;
    if (externalTaskId !== undefined && typeof externalTaskId !== 'string') {
      throw new KlingError(1201, 'external_task_id must be a string');
    }
    if (externalTaskId !== undefined && this.findByExternalId(accessKey, externalTaskId)) {
      throw new KlingError(1201, `external_task_id ${externalTaskId} already exists`);
    }
    if (callbackUrl !== undefined && typeof callbackUrl !== 'string') {
      throw new KlingError(1201, 'callback_url must be a string');
    }

    const claim = slotClaim(path, body);
    this.slots.take(accessKey, claim);

    let taskId = newTaskId();
    while (this.tasks.has(taskId)) taskId = newTaskId();
    this.claims.set(taskId, claim);
    const now = Date.now();
    const task: SandboxTask = {
      taskId,
      path,
      family,
      accessKey,
      body: this.config.history === undefined ? body : (boundedCopy(body) as Record<string, unknown>),
      externalTaskId,
      callbackUrl,
      status: 'submitted',
      statusMsg: '',
      createdAt: now,
      updatedAt: now,
      result: undefined,
      finalUnitDeduction: undefined,
      finalBalanceDeduction: undefined,
    };
    this.tasks.set(taskId, task);
    if (externalTaskId !== undefined) this.byExternal.set(externalKey(accessKey, externalTaskId), task);
    if (gate && callbackUrl) this.callbacks.gate(taskId, gate);
    this.announce(task);
    this.schedule(task);
    this.forgetOldest();
    return task;
  }

  /** Ends a task now, with callbacks. A final task cannot end twice. */
  complete(taskId: string, outcome: TaskOutcome): SandboxTask {
    const task = this.require(taskId);
    if (isFinal(task.status)) throw new Error(`kling sandbox: task ${taskId} is already ${task.status}`);
    this.finish(task, outcome);
    return task;
  }

  /** Forces a status, with a callback; no transition rule applies (a test tool). */
  setStatus(taskId: string, status: TaskStatus, message = 'failed by the sandbox'): SandboxTask {
    const task = this.require(taskId);
    if (status === 'succeed' || status === 'failed') {
      this.finish(task, status === 'succeed' ? { status } : { status, message });
    } else {
      this.move(task, status);
    }
    return task;
  }

  reset(): void {
    this.clearTimers();
    this.tasks.clear();
    this.byExternal.clear();
    this.claims.clear();
    this.slots.reset();
  }

  /** With a bounded history, forgets the oldest final tasks past the bound; a task still running is kept. */
  private forgetOldest(): void {
    const limit = this.config.history;
    if (limit === undefined) return;
    for (const task of this.tasks.values()) {
      if (this.tasks.size <= limit || !isFinal(task.status)) return;
      this.tasks.delete(task.taskId);
      if (task.externalTaskId !== undefined) this.byExternal.delete(externalKey(task.accessKey, task.externalTaskId));
    }
  }

  close(): void {
    this.clearTimers();
  }

  private require(taskId: string): SandboxTask {
    const task = this.tasks.get(taskId);
    if (!task) throw new Error(`kling sandbox: no task ${taskId}`);
    return task;
  }

  private schedule(task: SandboxTask): void {
    const { schedule } = this.config;
    if (schedule === 'manual') return;
    if (schedule === 'instant') {
      this.finish(task, this.config.outcome(task));
      return;
    }
    const processing = setTimeout(() => {
      if (task.status === 'submitted') this.move(task, 'processing');
    }, schedule.processingAfterMs);
    const final = setTimeout(() => {
      if (isFinal(task.status)) return;
      if (task.status === 'submitted') this.move(task, 'processing');
      this.finish(task, this.config.outcome(task));
    }, Math.max(schedule.finalAfterMs, schedule.processingAfterMs));
    processing.unref();
    final.unref();
    this.timers.set(task.taskId, [processing, final]);
  }

  private move(task: SandboxTask, status: TaskStatus): void {
    task.status = status;
    task.updatedAt = Math.max(Date.now(), task.updatedAt);
    this.announce(task);
  }

  private finish(task: SandboxTask, outcome: TaskOutcome): void {
    for (const timer of this.timers.get(task.taskId) ?? []) clearTimeout(timer);
    this.timers.delete(task.taskId);
    this.freeSlots(task);
    let deducted: SandboxDeductions;
    if (outcome.status === 'succeed') {
      const { result, units } = succeededResult(task, outcome.duration);
      task.result = result;
      task.statusMsg = '';
      deducted = { unit: units, balance: NO_BALANCE_DEDUCTION };
    } else {
      task.result = undefined;
      task.statusMsg = outcome.message;
      deducted = { unit: '0', balance: NO_BALANCE_DEDUCTION };
    }
    const deductions = outcome.deductions === undefined ? deducted : outcome.deductions;
    task.finalUnitDeduction = deductions?.unit;
    task.finalBalanceDeduction = deductions ? { ...deductions.balance } : undefined;
    this.move(task, outcome.status);
  }

  private freeSlots(task: SandboxTask): void {
    const claim = this.claims.get(task.taskId);
    if (!claim) return;
    this.claims.delete(task.taskId);
    this.slots.release(task.accessKey, claim);
  }

  private announce(task: SandboxTask): void {
    if (!task.callbackUrl) return;
    const body = task.family === 'standard' ? standardTaskObject(task) : taskObject(task);
    this.callbacks.notify({ taskId: task.taskId, accessKey: task.accessKey, url: task.callbackUrl, body }, isFinal(task.status));
  }

  private clearTimers(): void {
    for (const list of this.timers.values()) for (const timer of list) clearTimeout(timer);
    this.timers.clear();
  }
}

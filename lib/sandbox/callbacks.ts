import type { CallbackAttempt, CallbackMode, KlingTaskObject, SandboxAccount, StandardTaskObject } from './types.js';
import { callbackHeaders } from './webhooks.js';

interface Notice {
  taskId: string;
  /** The account whose task it is: its webhook secret signs the notice. */
  accessKey: string;
  url: string;
  body: KlingTaskObject | StandardTaskObject;
}

/**
 * Delivers status notices to `callback_url`, one task's notices in order (unless told to
 * reorder), never retrying: a relay must cope with a lost callback through its reconciler.
 */
export class CallbackDispatcher {
  readonly attempts: CallbackAttempt[] = [];
  private mode: Required<CallbackMode> = { duplicate: false, reorder: false, drop: false, signature: 'valid' };
  private readonly held = new Map<string, Notice[]>();
  private readonly chains = new Map<string, Promise<void>>();
  private readonly inflight = new Set<Promise<void>>();
  private abort = new AbortController();
  // Deliveries started before a reset() must not write into the emptied attempt list.
  private generation = 0;

  constructor(
    private readonly timeoutMs = 2000,
    private readonly accounts: readonly SandboxAccount[] = [],
  ) {}

  setMode(mode: CallbackMode): void {
    this.mode = { duplicate: mode.duplicate ?? false, reorder: mode.reorder ?? false, drop: mode.drop ?? false, signature: mode.signature ?? 'valid' };
  }

  /**
   * Delays the task's first delivery until `gate` settles, so that the create answer reaches the
   * client before the `submitted` notice does.
   */
  gate(taskId: string, gate: Promise<unknown>): void {
    this.chains.set(
      taskId,
      gate.then(
        () => undefined,
        () => undefined,
      ),
    );
  }

  notify(notice: Notice, final: boolean): void {
    if (this.mode.drop) return;
    let batch = [notice];
    if (this.mode.reorder) {
      const held = this.held.get(notice.taskId) ?? [];
      held.push(notice);
      if (!final) {
        this.held.set(notice.taskId, held);
        return;
      }
      this.held.delete(notice.taskId);
      batch = held.reverse();
    }
    if (this.mode.duplicate) batch = batch.flatMap((n) => [n, n]);
    this.enqueue(notice.taskId, batch);
  }

  /** Resolves once no delivery is queued or in flight. */
  async idle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
  }

  reset(): void {
    this.generation++;
    this.abort.abort();
    this.abort = new AbortController();
    this.held.clear();
    this.chains.clear();
    this.attempts.length = 0;
    this.setMode({});
  }

  close(): void {
    this.generation++;
    this.abort.abort();
    this.held.clear();
    this.chains.clear();
  }

  private enqueue(taskId: string, batch: Notice[]): void {
    const generation = this.generation;
    const previous = this.chains.get(taskId) ?? Promise.resolve();
    const next = previous.then(async () => {
      for (const notice of batch) {
        if (generation !== this.generation) return;
        await this.deliver(notice, generation);
      }
    });
    this.chains.set(taskId, next);
    this.inflight.add(next);
    void next.finally(() => {
      this.inflight.delete(next);
      if (this.chains.get(taskId) === next) this.chains.delete(taskId);
    });
  }

  private async deliver(notice: Notice, generation: number): Promise<void> {
    // Signed over the exact bytes sent; each delivery is a new callback request with its own id.
    const body = JSON.stringify(notice.body);
    const account = this.accounts.find((a) => a.accessKey === notice.accessKey);
    const headers = callbackHeaders(account, body, this.mode.signature);
    const attempt: CallbackAttempt = { taskId: notice.taskId, url: notice.url, body: notice.body, headers, at: 0 };
    try {
      const res = await fetch(notice.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json; charset=utf-8', ...headers },
        body,
        signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.timeoutMs)]),
      });
      attempt.status = res.status;
      await res.arrayBuffer().catch(() => undefined);
    } catch (err) {
      attempt.error = describe(err);
    }
    attempt.at = Date.now();
    if (generation === this.generation) this.attempts.push(attempt);
  }
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return `${err.message}${cause}`;
}

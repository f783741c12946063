import { loggableError } from '../loggable-error.js';
import type { Logger } from '../logger.js';

/** The waits before each later try of a write that failed: 21 s in all, within the answer deadline (30 s and more). */
const RETRY_DELAYS_MS: readonly number[] = [1_000, 5_000, 15_000];

/**
 * Writes of a task's life that failed after Kling was called or left out, tried again in the
 * background a few times instead of waiting for the reconciler: Kling's answer to a create (until it
 * is written, the task is known by its external_task_id only, and the reconciler looks it up at the
 * answer deadline) and the refund of a hold that committed after its submit's deadline. Each write is
 * a compare-and-set, so a try whose write committed before its error makes the next one change nothing.
 */
export class Retries {
  readonly #timers = new Set<NodeJS.Timeout>();
  #closed = false;

  constructor(
    private readonly logger: Logger,
    private readonly delaysMs: readonly number[] = RETRY_DELAYS_MS,
  ) {}

  /**
   * Runs `write` after each delay in turn until it succeeds. Logs a later success as info and a
   * failure as an error; after the last, the reconciler is the write's only way.
   */
  schedule(what: string, fields: Record<string, unknown>, write: () => Promise<unknown>): void {
    const attempt = (index: number): void => {
      const delay = this.delaysMs[index];
      if (this.#closed || delay === undefined) return;
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        write().then(
          () => this.logger.info(`${what}: written on a later try`, { ...fields, tries: index + 2 }),
          (error: unknown) => {
            const last = index + 1 >= this.delaysMs.length;
            this.logger.error(last ? `${what}: failed again, left to the reconciler` : `${what}: failed again, tried later`, { ...fields, tries: index + 2, error: loggableError(error) });
            attempt(index + 1);
          },
        );
      }, delay);
      // A pending try does not keep the host's process alive.
      timer.unref();
      this.#timers.add(timer);
    };
    attempt(0);
  }

  /** Drops the tries not yet made (the relay is closing); the reconciler finishes their writes. */
  close(): void {
    this.#closed = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
  }
}

import type { SlotNeed } from './slots.js';

/**
 * One decision at a time per model version and pack type in this process: counting the slots in use
 * and recording the task that takes one (held `pending`, or moved there from the queue) must not
 * interleave with another such decision, or two submits that both saw the last free slot would both
 * be sent. Relay processes sharing a database can still meet at Kling; its 1303 answer covers that
 * (failover, or back to the queue).
 */
export class SlotGate {
  readonly #tails = new Map<string, Promise<unknown>>();

  /** Runs `work` after every earlier one for the same model version and pack type has finished. */
  run<T>(need: SlotNeed, work: () => Promise<T>): Promise<T> {
    const key = `${need.pack}\u0000${need.model}`;
    const before = this.#tails.get(key) ?? Promise.resolve();
    const result = before.then(work, work);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return result;
  }
}

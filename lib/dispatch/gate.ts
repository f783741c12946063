import type { SlotNeed } from './slots.js';

/** A task a decision placed whose hold is on its way. */
interface Reservation {
  accountId: string;
  slots: number;
  queued: boolean;
  userId: string;
}

/**
 * What the decisions before this one placed whose holds had not committed when it began: a count it
 * reads from the database may not show them.
 */
export interface InFlight {
  /** Slots per account of the tasks placed to be sent now. */
  readonly slots: ReadonlyMap<string, number>;
  /** Tasks placed to wait in the queue. */
  readonly queued: number;
  /** The tasks of one caller among them. */
  ofCaller(userId: string): number;
}

/**
 * One decision at a time per model version and pack type in this process: counting the slots in use
 * and placing the task that takes one (held `pending`, or moved there from the queue) must not
 * interleave with another such decision, or two submits that both saw the last free slot would both
 * be sent. Relay processes sharing a database can still meet at Kling; its 1303 answer covers that
 * (failover, or back to the queue).
 *
 * A submit's decision leaves the gate as soon as its hold is on its way (`reserve`), not once it has
 * committed, so that the holds of decisions that follow each other commit together: a decision adds
 * the holds still on their way when it begins (`inFlight`) to what it reads from the database, and a
 * hold that committed before it began is in what it reads. A hold that commits while a decision reads
 * may be counted twice (then a task a slot was free for waits in the queue for its next pass), never
 * not at all.
 */
export class SlotGate {
  readonly #tails = new Map<string, Promise<unknown>>();
  readonly #reservations = new Map<string, Set<Reservation>>();

  /** Runs `work` after every earlier one for the same model version and pack type has finished. */
  run<T>(need: SlotNeed, work: () => Promise<T>): Promise<T> {
    const key = keyOf(need);
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

  /**
   * For a decision holding the gate, before it reads the counts: the tasks placed before it whose
   * holds are still on their way, as they are now.
   */
  inFlight(need: SlotNeed): InFlight {
    const slots = new Map<string, number>();
    const callers = new Map<string, number>();
    let queued = 0;
    for (const reservation of this.#reservations.get(keyOf(need)) ?? []) {
      if (reservation.queued) queued++;
      else slots.set(reservation.accountId, (slots.get(reservation.accountId) ?? 0) + reservation.slots);
      callers.set(reservation.userId, (callers.get(reservation.userId) ?? 0) + 1);
    }
    return { slots, queued, ofCaller: (userId) => callers.get(userId) ?? 0 };
  }

  /**
   * Notes a task a decision holding the gate placed, whose hold (`holding`) is on its way; once the
   * hold has committed (a read that begins then shows it) or failed (it placed nothing), it is no
   * longer counted.
   */
  reserve(need: SlotNeed, placed: Reservation, holding: Promise<unknown>): void {
    const key = keyOf(need);
    let reservations = this.#reservations.get(key);
    if (reservations === undefined) {
      reservations = new Set();
      this.#reservations.set(key, reservations);
    }
    const all = reservations;
    const reservation = { ...placed };
    all.add(reservation);
    const done = (): void => {
      all.delete(reservation);
    };
    holding.then(done, done);
  }
}

const keyOf = (need: SlotNeed): string => `${need.pack}\u0000${need.model}`;

/** Thrown when database work outlives its deadline; the router answers it as 503/5001. */
export class DeadlineExceeded extends Error {
  constructor(readonly ms: number) {
    super(`the database did not answer within ${ms} ms`);
    this.name = 'DeadlineExceeded';
  }
}

/**
 * Waits for `work` at most `ms`. A database that stops answering (a partition, a black-holed proxy)
 * leaves a query pending for as long as TCP keeps the socket open, which may be forever: the client
 * must not wait that long. Past the deadline this rejects with DeadlineExceeded and stops caring
 * about the result; if `work` still succeeds later, `onLate` gets its value (to undo it), and a late
 * failure is dropped, since the caller has already answered.
 */
export function withinDeadline<T>(work: Promise<T>, ms: number, onLate: (value: T) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      reject(new DeadlineExceeded(ms));
    }, ms);
    work.then(
      (value) => {
        clearTimeout(timer);
        if (late) onLate(value);
        else resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        if (!late) reject(error);
      },
    );
  });
}

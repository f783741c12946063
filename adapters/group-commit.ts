import { isDeadlock } from './dialect.js';

/** A statement of a group: its text, its values in order, and for pg the name it is prepared under. */
export interface GroupStatement {
  readonly text: string;
  readonly values: readonly unknown[];
  readonly name?: string;
  /** The part of the statement a driver's error came from, when the driver does not say. */
  readonly failed?: (error: object) => string | undefined;
  /**
   * The row this write locks that another group's writes may lock too (a hold: its caller's
   * balance row). A group runs such writes in the order of this key, so that groups at the
   * database at once take shared rows in one order and never wait for each other in a circle.
   */
  readonly locks?: string;
}

/** What a write answers: its statement's row (PostgreSQL), what its statements' OK packets say (MariaDB/MySQL). */
export type AnswerRow = Record<string, unknown>;

/** A database connection as the group commit uses it, running the writes it was given (`S`). */
export interface GroupConnection<S extends GroupStatement = GroupStatement> {
  /**
   * Runs the statements in order, stopping at the first that fails (then it throws), and answers the
   * row of each write (a `GroupStatement`) in order. Control statements (BEGIN, COMMIT, savepoints)
   * are plain strings and answer nothing.
   */
  run(statements: readonly (S | string)[]): Promise<AnswerRow[]>;
}

/** Where a group gets its connection: taken for one group, then given back (`broken` when it failed past a rollback). */
export interface GroupConnections<S extends GroupStatement = GroupStatement> {
  /** How many groups it serves at once, each on a connection of its own; one when absent. */
  readonly size?: number;
  acquire(): Promise<GroupConnection<S>>;
  release(connection: GroupConnection<S>, broken: boolean): Promise<void>;
}

interface Pending<S extends GroupStatement> {
  statement: S;
  resolve: (row: AnswerRow) => void;
  reject: (error: unknown) => void;
}

const SAVEPOINT = 'SAVEPOINT kling_relay_work';

/** How many times a group runs one by one when deadlocks keep ending its transaction. */
const ONE_BY_ONE_RUNS = 3;

/**
 * A group the database did not answer in time: its connection hangs (a server gone without closing it,
 * a partition) and is dropped, and whether its writes committed is not known.
 */
export class GroupTimeout extends Error {
  constructor(readonly ms: number) {
    super(`the database did not answer a group of writes within ${ms} ms; its connection was dropped`);
    this.name = 'GroupTimeout';
  }
}

/** The connection's answer, or a GroupTimeout once `ms` passed without one. */
function answered<T>(work: Promise<T>, ms: number | undefined): Promise<T> {
  if (ms === undefined) return work;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new GroupTimeout(ms)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/** How a group ended: answered, to run again one by one, or with its connection in an unknown state. */
type Outcome = 'done' | 'again' | 'broken';

/**
 * Group commit of short writes on a server database: every write queued while the previous group is
 * at the database goes in the next group, and a group is one transaction, `BEGIN`, the writes,
 * `COMMIT`. On a server database a commit waits for its log to reach the disk (several ms on a
 * shared machine), and a caller's conditional hold locks its balance row until then: in one group
 * the holds of one caller follow each other inside one transaction instead of each waiting for the
 * commit of the one before.
 *
 * Each write is answered after its group's COMMIT. When a write fails, the group is rolled back and
 * its writes run again one by one in one transaction, each after a savepoint, so only the failing
 * one is refused (a server database stops a transaction's work at its first error: PostgreSQL
 * refuses every later statement, MySQL stops a multi-statement text). A write the database failed to
 * break a deadlock did nothing and runs again, with its group (a deadlock ends the transaction, so
 * the whole one-by-one run starts over, a few times at most). If the rollback or the COMMIT
 * fails, every write of the group fails, and nothing of it is known to remain: the connection is
 * dropped. So it is when the connection does not answer within `deadlineMs` (a server gone without
 * closing it): the group's writes fail with a GroupTimeout and the next group opens another
 * connection, instead of every later write waiting behind one that never returns.
 */
export class GroupCommit<S extends GroupStatement = GroupStatement> {
  readonly #queue: Pending<S>[] = [];
  #running = 0;
  #scheduled = false;

  /**
   * How many groups may be at the database at once (the connections' `size`); with two, the next
   * group's statements are at the server when the one before commits, instead of waiting for its
   * answer to come back first.
   */
  private readonly inFlight: number;

  /**
   * @param deadlineMs how long a group's connection may take to answer before it is dropped; none
   *   when undefined.
   */
  constructor(
    private readonly connections: GroupConnections<S>,
    private readonly deadlineMs?: number,
  ) {
    this.inFlight = connections.size ?? 1;
  }

  /** Runs one write in the next group; its row once the group committed. */
  run(statement: S): Promise<AnswerRow> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ statement, resolve, reject });
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#scheduled || this.#running >= this.inFlight) return;
    this.#scheduled = true;
    // After this turn's I/O callbacks, so that the requests read in one turn share a commit.
    setImmediate(() => {
      this.#scheduled = false;
      if (this.#queue.length === 0 || this.#running >= this.inFlight) return;
      this.#running++;
      void this.#flush().then(() => {
        this.#running--;
        if (this.#queue.length > 0) this.#schedule();
      });
      if (this.#queue.length > 0) this.#schedule();
    });
  }

  async #flush(): Promise<void> {
    // Writes queued while a connection was awaited join this group too.
    let connection: GroupConnection<S>;
    try {
      connection = await this.connections.acquire();
    } catch (error) {
      for (const pending of this.#queue.splice(0)) pending.reject(error);
      return;
    }
    const group = inLockOrder(this.#queue.splice(0));
    // Another group took them while this one waited for its connection.
    if (group.length === 0) {
      await this.connections.release(connection, false).catch(() => undefined);
      return;
    }
    let outcome: Outcome = 'broken';
    try {
      outcome = await this.#together(connection, group);
      if (outcome === 'again') outcome = await this.#oneByOne(connection, group);
    } finally {
      await this.connections.release(connection, outcome === 'broken').catch(() => undefined);
    }
  }

  /** The group in one transaction; 'again' when it was rolled back and must run one by one. */
  async #together(connection: GroupConnection<S>, group: readonly Pending<S>[]): Promise<Outcome> {
    let rows: AnswerRow[];
    try {
      rows = await answered(connection.run(['BEGIN', ...group.map((p) => p.statement), 'COMMIT']), this.deadlineMs);
    } catch (error) {
      if (error instanceof GroupTimeout) {
        for (const pending of group) pending.reject(error);
        return 'broken';
      }
      const clean = await rolledBack(connection, this.deadlineMs);
      // A deadlock's victim did nothing: a group of one runs again as a group of many does.
      if (clean && (group.length > 1 || isDeadlock(error))) return 'again';
      for (const pending of group) pending.reject(error);
      return clean ? 'done' : 'broken';
    }
    group.forEach((pending, i) => pending.resolve(rows[i] ?? {}));
    return 'done';
  }

  /**
   * The group again, each write after a savepoint. A deadlock the database breaks by failing one of
   * these writes ends the transaction (MariaDB/MySQL roll all of it back, PostgreSQL keeps the other
   * side waiting for the locks this transaction holds), so the group is rolled back and runs one by one
   * anew, up to ONE_BY_ONE_RUNS times, once the other side could go on.
   */
  async #oneByOne(connection: GroupConnection<S>, group: readonly Pending<S>[]): Promise<Outcome> {
    for (let runs = 1; ; runs++) {
      const outcome = await this.#savepointed(connection, group, runs < ONE_BY_ONE_RUNS);
      if (outcome !== 'deadlock') return outcome;
    }
  }

  /**
   * One run of the group one by one; 'deadlock' when a deadlock failed a write, `again` allowed
   * another run, and the transaction was rolled back with nothing of it answered. Without `again`
   * a deadlock refuses its write, or every write when it ended the transaction.
   */
  async #savepointed(connection: GroupConnection<S>, group: readonly Pending<S>[], again: boolean): Promise<Outcome | 'deadlock'> {
    const done: { pending: Pending<S>; row: AnswerRow }[] = [];
    const refused: { pending: Pending<S>; error: unknown }[] = [];
    const run = (statements: readonly (S | string)[]): Promise<AnswerRow[]> => answered(connection.run(statements), this.deadlineMs);
    let deadlocked = false;
    try {
      await run(['BEGIN']);
      for (const pending of group) {
        try {
          const [row] = await run([SAVEPOINT, pending.statement]);
          done.push({ pending, row: row ?? {} });
        } catch (error) {
          if (error instanceof GroupTimeout) throw error;
          if (again && isDeadlock(error)) {
            deadlocked = true;
            break;
          }
          // The savepoint is gone when the write ended the transaction: its error is then the group's.
          await run([`ROLLBACK TO ${SAVEPOINT}`]).catch((undo: unknown) => {
            throw undo instanceof GroupTimeout ? undo : error;
          });
          refused.push({ pending, error });
        }
      }
      if (!deadlocked) await run(['COMMIT']);
    } catch (error) {
      if (error instanceof GroupTimeout) {
        for (const pending of group) pending.reject(error);
        return 'broken';
      }
      const clean = await rolledBack(connection, this.deadlineMs);
      for (const pending of group) pending.reject(error);
      return clean ? 'done' : 'broken';
    }
    if (deadlocked) {
      if (await rolledBack(connection, this.deadlineMs)) return 'deadlock';
      for (const pending of group) pending.reject(new Error('the database broke a deadlock with this group of writes, and the rollback after it failed'));
      return 'broken';
    }
    // The refused hear of it after the COMMIT too: a submit refused for a duplicate of a write in
    // its own group then finds that write committed.
    for (const { pending, row } of done) pending.resolve(row);
    for (const { pending, error } of refused) pending.reject(error);
    return 'done';
  }
}

/** A connection a writer opened for itself: logged in when a group needs it, closed when it failed. */
export interface OwnConnection<S extends GroupStatement = GroupStatement> extends GroupConnection<S> {
  /** Logs in if it is not (a refused login rejects, and the next call tries again). */
  ready(): Promise<void>;
  /** Closes it (`broken`: at once, without a goodbye); the next `ready` opens another. */
  close(broken: boolean): void;
}

/**
 * A writer's own connections, one for each group at the database at once: two by default, so that
 * while one group commits the next one's statements are already at the server.
 */
export class OwnConnections<S extends GroupStatement = GroupStatement> implements GroupConnections<S> {
  readonly #all: OwnConnection<S>[];
  readonly #free: OwnConnection<S>[];

  constructor(open: () => OwnConnection<S>, count = 2) {
    this.#all = Array.from({ length: count }, open);
    this.#free = [...this.#all];
  }

  get size(): number {
    return this.#all.length;
  }

  /** A free connection, logged in (the group commit never asks for more than `size` at once). */
  async acquire(): Promise<GroupConnection<S>> {
    const connection = this.#free.pop();
    if (connection === undefined) throw new Error('GroupCommit: more groups at once than connections');
    try {
      await connection.ready();
      return connection;
    } catch (error) {
      this.#free.push(connection);
      throw error;
    }
  }

  release(connection: GroupConnection<S>, broken: boolean): Promise<void> {
    const own = connection as OwnConnection<S>;
    if (broken) own.close(true);
    this.#free.push(own);
    return Promise.resolve();
  }

  close(): void {
    for (const connection of this.#all) connection.close(false);
  }
}

/** The writes that lock a shared row first, in the order of their keys; the others after them as they came. */
function inLockOrder<S extends GroupStatement>(group: Pending<S>[]): Pending<S>[] {
  if (!group.some((pending) => pending.statement.locks !== undefined)) return group;
  const keyed = group.filter((pending) => pending.statement.locks !== undefined);
  keyed.sort((a, b) => compareKeys(a.statement.locks as string, b.statement.locks as string));
  return [...keyed, ...group.filter((pending) => pending.statement.locks === undefined)];
}

/** Numeric keys by value (user ids), others as strings. */
function compareKeys(a: string, b: string): number {
  const x = Number(a);
  const y = Number(b);
  if (Number.isFinite(x) && Number.isFinite(y) && x !== y) return x - y;
  return a < b ? -1 : a > b ? 1 : 0;
}

async function rolledBack<S extends GroupStatement>(connection: GroupConnection<S>, deadlineMs: number | undefined): Promise<boolean> {
  return answered(connection.run(['ROLLBACK']), deadlineMs).then(
    () => true,
    () => false,
  );
}

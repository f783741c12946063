import type { Knex } from 'knex';
import { keepPrepared } from './sqlite-tuning.js';
import { bindingsOf, isTemplate, TemplateCache, type Template, type TemplateSource } from './statement-template.js';

export type { Template } from './statement-template.js';

/** What better-sqlite3 answers for a statement that writes. */
export interface RunResult {
  changes: number;
  lastInsertRowid: number | bigint;
}

/**
 * Runs one statement in the transaction and answers at once: a query built with knex's query builder,
 * or a template with its values.
 */
export type RunStatement = (statement: Knex.QueryBuilder | Template, values?: Readonly<Record<string, unknown>>) => RunResult;

/** The parts of a better-sqlite3 connection and statement used here. */
interface Statement {
  readonly reader: boolean;
  run(bindings: unknown[]): RunResult;
}
interface Connection {
  prepare(sql: string): Statement;
  readonly inTransaction: boolean;
}
interface PoolClient {
  driverName?: string;
  acquireConnection(): Promise<Connection>;
  releaseConnection(connection: Connection): Promise<unknown>;
}

/**
 * Short write transactions on a better-sqlite3 host, run on the pooled connection without knex's
 * runner, and committed in groups. better-sqlite3 answers every statement synchronously, and knex
 * wraps each one in a runner, a promise chain and, for a transaction, a new knex object: on a submit
 * that cost about as much CPU as SQLite itself (docs/performance.md). Here the statements are still
 * built and compiled by knex (so identifiers are quoted and `wrapIdentifier` applies as everywhere
 * else), once per shape (`template`), then run by better-sqlite3; the transactions of concurrent
 * requests share one BEGIN and one COMMIT (`transaction`).
 *
 * The work is synchronous by type and checked at run time: nothing else can run on the connection
 * while it runs, and the connection, taken from knex's pool for a batch, is never held across an
 * await. knex's `query` events do not fire for these statements.
 */
export class DirectSqlite implements TemplateSource {
  readonly #client: PoolClient;
  readonly #templates = new TemplateCache();

  private constructor(readonly db: Knex) {
    this.#client = db.client as PoolClient;
  }

  /** For a knex instance on better-sqlite3 (not a transaction); undefined for any other database. */
  static for(db: Knex): DirectSqlite | undefined {
    const client = db.client as PoolClient;
    if (client.driverName !== 'better-sqlite3' || (db as { isTransaction?: boolean }).isTransaction === true) return undefined;
    return new DirectSqlite(db);
  }

  /**
   * The statement `build` makes, compiled by knex once per `key` (which must name everything the
   * statement's shape depends on: table, columns, the number of values in a list). `build` gets
   * `param(name)` for every value; compiling a statement is most of what knex costs per statement,
   * and the relay's writes come in a few shapes.
   */
  /** The statement `build` makes, compiled by knex once per `key` (adapters/statement-template.ts). */
  template(key: string, build: (param: (name: string) => string) => Knex.QueryBuilder): Template {
    return this.#templates.get(key, build);
  }

  /**
   * Runs `work` atomically: its writes are committed when it returns and undone when it throws (the
   * error goes on to the caller), and the promise settles once that is durable in SQLite's sense.
   * `work` gets the statement runner; builders for it come from `this.db` and must not be awaited.
   *
   * Group commit: the work of every call made before the connection is free again (at the least, of
   * one turn of the event loop) runs in one SQLite transaction, each in a savepoint of its own, so
   * one call's failure undoes only its own writes. A commit is most of what a short transaction
   * costs (its pages written to the log, locks taken and dropped, the pool's round trip), and under
   * load a dozen submits share one. Work runs in the order of the calls and sees the writes of the
   * work before it, as it would one transaction after another. Should the COMMIT itself fail, every
   * call of that batch fails and nothing of it remains.
   */
  transaction<T>(work: (run: RunStatement) => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ work, resolve: resolve as (value: unknown) => void, reject });
      this.#schedule();
    });
  }

  readonly #queue: Pending[] = [];
  #flushing = false;

  #schedule(): void {
    if (this.#flushing) return;
    this.#flushing = true;
    // After this turn's I/O callbacks, so that the requests read in one turn share a commit.
    setImmediate(() => {
      this.#flush().then(
        () => {
          this.#flushing = false;
          if (this.#queue.length > 0) this.#schedule();
        },
        (error: unknown) => {
          // Only acquiring or releasing the connection gets here; the waiting calls learn of it.
          for (const pending of this.#queue.splice(0)) pending.reject(error);
          this.#flushing = false;
        },
      );
    });
  }

  async #flush(): Promise<void> {
    const connection = await this.#client.acquireConnection();
    try {
      // Calls made while the pool was busy join this batch too.
      const batch = this.#queue.splice(0);
      const run: RunStatement = (statement, values) => runOn(connection, statement, values);
      const done: { pending: Pending; value: unknown }[] = [];
      try {
        prepare(connection, 'BEGIN').run([]);
        for (const pending of batch) {
          prepare(connection, 'SAVEPOINT kling_relay_work').run([]);
          try {
            const value = pending.work(run);
            if (isThenable(value)) throw new TypeError('DirectSqlite.transaction: the work must be synchronous; it returned a promise');
            prepare(connection, 'RELEASE kling_relay_work').run([]);
            done.push({ pending, value });
          } catch (error) {
            prepare(connection, 'ROLLBACK TO kling_relay_work').run([]);
            prepare(connection, 'RELEASE kling_relay_work').run([]);
            pending.reject(error);
          }
        }
        prepare(connection, 'COMMIT').run([]);
      } catch (error) {
        // BEGIN, a savepoint or COMMIT failed: nothing of this batch stays, and every call hears of it
        // (a call already refused keeps its own error: a promise settles once).
        if (connection.inTransaction) prepare(connection, 'ROLLBACK').run([]);
        for (const pending of batch) pending.reject(error);
        return;
      }
      for (const { pending, value } of done) pending.resolve(value);
    } finally {
      await this.#client.releaseConnection(connection);
    }
  }
}

interface Pending {
  work: (run: RunStatement) => unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

function runOn(connection: Connection, statement: Knex.QueryBuilder | Template, values: Readonly<Record<string, unknown>> = {}): RunResult {
  let sql: string;
  let bindings: readonly unknown[];
  if (isTemplate(statement)) {
    sql = statement.sql;
    bindings = bindingsOf(statement, values);
  } else {
    ({ sql, bindings } = statement.toSQL().toNative());
  }
  try {
    const prepared = prepare(connection, sql);
    if (prepared.reader) throw new TypeError(`DirectSqlite runs writes only, not: ${sql}`);
    // As knex's better-sqlite3 client formats them: dates as epoch milliseconds, booleans as 0/1.
    return prepared.run(bindings.map((value: unknown) => (value instanceof Date ? value.valueOf() : typeof value === 'boolean' ? Number(value) : value)));
  } catch (error) {
    // The statement's text (placeholders, no values) goes with SQLite's error, as mysql2's errors carry
    // theirs, so that a log line can say which statement failed.
    if (typeof error === 'object' && error !== null && !('sql' in error)) Object.defineProperty(error, 'sql', { value: sql, enumerable: false });
    throw error;
  }
}

/**
 * Statements prepared once per connection and SQL text, whether or not the host's pool keeps them
 * (sqliteAfterCreate does): the direct statements come in a few shapes. better-sqlite3 runs one
 * statement to the end before the next, and SQLite re-prepares a statement after a schema change.
 */
const prepared = new WeakMap<Connection, (sql: string) => Statement>();

function prepare(connection: Connection, sql: string): Statement {
  let kept = prepared.get(connection);
  if (kept === undefined) {
    kept = keepPrepared((text) => connection.prepare(text));
    prepared.set(connection, kept);
  }
  return kept(sql);
}

function isThenable(value: unknown): boolean {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as { then?: unknown }).then === 'function';
}

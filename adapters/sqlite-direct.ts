import type { Knex } from 'knex';

/** What better-sqlite3 answers for a statement that writes. */
export interface RunResult {
  changes: number;
  lastInsertRowid: number | bigint;
}

/**
 * A write statement knex compiled once, its bindings named: `run(template, values)` binds
 * `values[name]` for each name, in order. Made by `DirectSqlite.template`.
 */
export interface Template {
  readonly sql: string;
  readonly names: readonly string[];
}

/**
 * Runs one statement in the transaction and answers at once: a query built with knex's query builder,
 * or a template with its values.
 */
export type RunStatement = (statement: Knex.QueryBuilder | Template, values?: Readonly<Record<string, unknown>>) => RunResult;

/** Stands for a named value while knex compiles a template; never reaches the database. */
const PARAMETER = '\u0000kling-relay-parameter:';

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
 * runner. better-sqlite3 answers every statement synchronously, and knex wraps each one in a runner,
 * a promise chain and, for a transaction, a new knex object: on a submit that was 45 % of the CPU the
 * database work cost (docs/performance.md). Here the statements are still built and compiled by knex
 * (so identifiers are quoted and `wrapIdentifier` applies as everywhere else), then run by
 * better-sqlite3 between one BEGIN and one COMMIT.
 *
 * The work is synchronous by type and checked at run time: nothing else can run on the connection
 * between BEGIN and COMMIT, and the connection, taken from knex's pool for the duration, is never held
 * across an await. knex's `query` events do not fire for these statements.
 */
export class DirectSqlite {
  readonly #client: PoolClient;
  readonly #templates = new Map<string, Template>();

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
  template(key: string, build: (param: (name: string) => string) => Knex.QueryBuilder): Template {
    let template = this.#templates.get(key);
    if (template === undefined) {
      const { sql, bindings } = build((name) => PARAMETER + name).toSQL().toNative();
      const names = bindings.map((binding: unknown) => {
        if (typeof binding !== 'string' || !binding.startsWith(PARAMETER)) {
          throw new TypeError(`DirectSqlite.template("${key}"): every value must be a param(), found ${String(binding)} in ${sql}`);
        }
        return binding.slice(PARAMETER.length);
      });
      template = { sql, names };
      this.#templates.set(key, template);
    }
    return template;
  }

  /**
   * Runs `work` in one transaction: committed when it returns, rolled back when it throws (the error
   * goes on to the caller). `work` gets the statement runner; builders for it come from `this.db` and
   * must not be awaited.
   */
  async transaction<T>(work: (run: RunStatement) => T): Promise<T> {
    const connection = await this.#client.acquireConnection();
    try {
      connection.prepare('BEGIN').run([]);
      let result: T;
      try {
        result = work((statement, values) => runOn(connection, statement, values));
        if (isThenable(result)) throw new TypeError('DirectSqlite.transaction: the work must be synchronous; it returned a promise');
      } catch (error) {
        if (connection.inTransaction) connection.prepare('ROLLBACK').run([]);
        throw error;
      }
      connection.prepare('COMMIT').run([]);
      return result;
    } finally {
      await this.#client.releaseConnection(connection);
    }
  }
}

function runOn(connection: Connection, statement: Knex.QueryBuilder | Template, values: Readonly<Record<string, unknown>> = {}): RunResult {
  let sql: string;
  let bindings: unknown[];
  if (isTemplate(statement)) {
    sql = statement.sql;
    bindings = statement.names.map((name) => {
      if (!(name in values)) throw new TypeError(`DirectSqlite: no value for "${name}" in ${sql}`);
      return values[name] ?? null;
    });
  } else {
    const native = statement.toSQL().toNative();
    sql = native.sql;
    bindings = [...native.bindings];
  }
  const prepared = connection.prepare(sql);
  if (prepared.reader) throw new TypeError(`DirectSqlite runs writes only, not: ${sql}`);
  // As knex's better-sqlite3 client formats them: dates as epoch milliseconds, booleans as 0/1.
  return prepared.run(bindings.map((value: unknown) => (value instanceof Date ? value.valueOf() : typeof value === 'boolean' ? Number(value) : value)));
}

function isTemplate(statement: Knex.QueryBuilder | Template): statement is Template {
  return Array.isArray((statement as Partial<Template>).names) && typeof (statement as Partial<Template>).sql === 'string';
}

function isThenable(value: unknown): boolean {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as { then?: unknown }).then === 'function';
}

import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import type { AcceptWrite, DirectWrites, FinishWrite, HoldWrite, PoolClient } from './direct-writes.js';
import { acceptShape, finishShape, holdLedgerValues, holdValues, poolClientOf, type FinishShape } from './direct-writes.js';
import { GroupCommit, OwnConnections, type AnswerRow, type GroupConnection, type GroupConnections, type GroupStatement, type OwnConnection } from './group-commit.js';
import type { HostTable } from './host-table.js';
import type { RelayStore } from './relay-store.js';
import type { HostColumn, NewHostRow, RelayTask } from './types.js';
import { toNumber } from './dialect.js';

/** The parts of a pg client used here. */
interface PgConnection {
  query(config: string | { name?: string; text: string; values: unknown[] }): Promise<{ rows: Record<string, unknown>[] }>;
}

/** A statement and the order of its values. */
interface Statement {
  readonly name: string;
  readonly text: string;
  readonly values: readonly string[];
  /** Its CTEs' statements, for naming the one that failed. */
  readonly parts: readonly { at: number; sql: string }[];
}

/** A statement as written, with the statements of its CTEs. */
interface Text {
  readonly text: string;
  readonly values: readonly string[];
  readonly parts: readonly string[];
}

/** The data-modifying statements of a statement's CTEs, by where each starts in its text. */
function partsOf(text: string, parts: readonly string[]): { at: number; sql: string }[] {
  return parts.map((sql) => ({ at: text.indexOf(sql) + 1, sql }));
}

/**
 * The CTE a PostgreSQL error came from, without values: the one at the error's position (a
 * statement PostgreSQL refused), else the one writing the error's table (a constraint), else none.
 */
function failedPart(parts: readonly { at: number; sql: string }[], error: { position?: unknown; table?: unknown }): string | undefined {
  const position = Number(error.position);
  if (Number.isFinite(position) && position > 0) return parts.filter((part) => part.at <= position).at(-1)?.sql;
  if (typeof error.table !== 'string') return undefined;
  const table = error.table;
  return parts.find((part) => new RegExp(`^(?:INSERT INTO|UPDATE) "?${table}"?\\s`).test(part.sql))?.sql;
}

/**
 * The submit's writes and a task's settlement on PostgreSQL outside knex's runner, each ONE statement run as a named prepared
 * statement on a connection of knex's pool:
 *
 * - the hold is a chain of data-modifying CTEs: the conditional balance update, then the host row,
 *   the task row and the ledger's hold row, each inserted `SELECT ... FROM` the step before it, so
 *   when the balance does not cover the amount the update matches no row and nothing is inserted;
 * - the write after Kling's answer updates the task while it is pending, else only its Kling id, and
 *   the host row, as CTEs of one statement;
 * - a settlement updates the task while it is in the states it may leave and, only when it did, the
 *   host row, the balance with the used-quota statistic and the ledger row, as CTEs of one statement.
 *
 * The statements of concurrent submits are committed in groups (adapters/group-commit.ts): `BEGIN`,
 * one statement per write, `COMMIT`, written at once on a pipelined connection of its own (one round
 * trip for the group), else one round trip each on a connection of knex's pool. Autocommitted one by one, each hold would
 * keep its caller's balance row locked until its own commit reached the disk, and the next hold of
 * that caller would wait for it. Values are cast to their column's type (read once per table from
 * the catalog): a parameter of `INSERT ... SELECT` has no type of its own. The type is cast without
 * its length, so a value too long for its column is refused as through knex, not cut.
 */
export class PgDirect implements DirectWrites {
  readonly #group: GroupCommit;
  readonly #statements = new Map<string, Promise<Statement>>();
  readonly #types = new Map<string, Promise<Map<string, string>>>();

  readonly #connections: GroupConnections;

  private constructor(
    readonly db: Knex,
    readonly store: RelayStore,
    connections: GroupConnections,
    deadlineMs: number | undefined,
  ) {
    this.#connections = connections;
    this.#group = new GroupCommit(connections, deadlineMs);
  }

  /**
   * For a knex instance on pg (not a transaction); undefined for any other database. Groups go out
   * on a pipelined connection of its own where knex's settings allow one (an object, no
   * `afterCreate` of the host's), else on connections of knex's pool, one statement at a time.
   * `deadlineMs`: how long a group may wait for the server's answer before its connection is dropped
   * (GroupCommit).
   */
  static for(db: Knex, store: RelayStore, deadlineMs?: number): PgDirect | undefined {
    const client = poolClientOf<PgConnection>(db, 'pg');
    if (!client) return undefined;
    return new PgDirect(db, store, pipelinedConnections(db) ?? new PooledConnections(client), deadlineMs);
  }

  /** Closes its connection of its own, if it has one; a write after this opens another. */
  close(): void {
    if (this.#connections instanceof OwnConnections) this.#connections.close();
  }

  async hold(write: HoldWrite): Promise<RelayTask | undefined> {
    const { quota, host } = write;
    const statement = await this.#statement(`hold:${quota.options.table}:${host.name}`, () => this.#holdText(write));
    const row = await this.#run(statement, holdValues(this.store, write), write.userId);
    if (row.id === null || row.id === undefined) return undefined;
    return { ...write.task, id: toNumber(row.id), host_row_id: String(row.host_row_id), external_task_id: String(row.external_task_id) };
  }

  async accept(write: AcceptWrite): Promise<boolean> {
    const shape = acceptShape(write);
    const statement = await this.#statement(shape.key, () => this.#acceptText(write.host, shape.columns, shape.hostColumns, shape.moved, shape.kept));
    const row = await this.#run(statement, shape.values);
    return row.moved === true;
  }

  async finish(write: FinishWrite): Promise<boolean> {
    const shape = finishShape(write);
    const statement = await this.#statement(shape.key, () => this.#finishText(write, shape));
    const row = await this.#run(statement, shape.values, write.userId);
    return row.moved === true;
  }

  async #holdText(write: HoldWrite): Promise<Text> {
    const { quota, host } = write;
    const { table, idColumn, quotaColumn } = quota.options;
    const { tasks, ledger } = this.store.tables;
    const p = new Parameters();
    const users = await this.#typesOf(table);
    const hostTypes = await this.#typesOf(host.name);
    const taskTypes = await this.#typesOf(tasks);
    const ledgerTypes = await this.#typesOf(ledger);
    const id = this.#ident;
    const amount = p.cast('amount', users, quotaColumn);
    const held = `UPDATE ${id(table)} SET ${id(quotaColumn)} = ${id(quotaColumn)} - ${amount} WHERE ${id(idColumn)} = ${p.cast('user_id', users, idColumn)} AND ${id(quotaColumn)} >= ${amount} RETURNING 1`;
    const hostColumns = [...host.columns].filter(([logical]) => logical !== 'id');
    const hostRow = `INSERT INTO ${id(host.name)} (${hostColumns.map(([, physical]) => id(physical)).join(', ')}) SELECT ${hostColumns.map(([logical, physical]) => p.cast(`host_${logical}`, hostTypes, physical)).join(', ')} FROM held RETURNING ${id(host.idColumn)}::text AS id`;
    const taskColumns = Object.keys(write.task);
    const taskValue = (column: string): string =>
      column === 'host_row_id' ? 'host_row.id' : column === 'external_task_id' ? `${p.text('id_before')} || host_row.id || ${p.text('id_after')}` : p.cast(`task_${column}`, taskTypes, column);
    const task = `INSERT INTO ${id(tasks)} (${taskColumns.map(id).join(', ')}) SELECT ${taskColumns.map(taskValue).join(', ')} FROM host_row RETURNING id, host_row_id, external_task_id`;
    const ledgerColumns = Object.keys(holdLedgerValues(this.store, write, 0));
    const ledgerValue = (column: string): string => (column === 'task_id' ? 'task.id' : p.cast(`ledger_${column}`, ledgerTypes, column));
    const ledgerRow = `INSERT INTO ${id(ledger)} (${ledgerColumns.map(id).join(', ')}) SELECT ${ledgerColumns.map(ledgerValue).join(', ')} FROM task RETURNING 1`;
    return {
      // One row whether or not the balance covered the amount: its id is NULL when it did not.
      text: `WITH held AS (${held}), host_row AS (${hostRow}), task AS (${task}), ledger_row AS (${ledgerRow}) SELECT task.id, task.host_row_id, task.external_task_id FROM (SELECT 1) AS one LEFT JOIN task ON true`,
      values: p.names,
      parts: [held, hostRow, task, ledgerRow],
    };
  }

  async #acceptText(host: HostTable, columns: readonly string[], hostColumns: readonly HostColumn[], moved: Partial<NewHostRow>, kept: Partial<NewHostRow>): Promise<Text> {
    const { tasks } = this.store.tables;
    const p = new Parameters();
    const taskTypes = await this.#typesOf(tasks);
    const hostTypes = await this.#typesOf(host.name);
    const id = this.#ident;
    const set = (names: readonly string[]): string => names.map((column) => `${id(column)} = ${p.cast(`task_${column}`, taskTypes, column)}`).join(', ');
    const taskId = p.cast('task_id', taskTypes, 'id');
    const movedTask = `UPDATE ${id(tasks)} SET ${set(columns)} WHERE id = ${taskId} AND state = ${p.cast('state_pending', taskTypes, 'state')} RETURNING 1`;
    const keptTask = `UPDATE ${id(tasks)} SET ${set(['kling_task_id', 'updated_at'])} WHERE id = ${taskId} AND NOT EXISTS (SELECT 1 FROM moved) RETURNING 1`;
    const parts = [`moved AS (${movedTask})`, `kept AS (${keptTask})`];
    const statements = [movedTask, keptTask];
    if (hostColumns.length > 0) {
      const hostValue = (column: HostColumn, patch: Partial<NewHostRow>, prefix: string): string => {
        const physical = host.columns.get(column) as string;
        return column in patch ? p.cast(`${prefix}_${column}`, hostTypes, physical) : id(physical);
      };
      const assignments = hostColumns.map((column) => `${id(host.columns.get(column) as string)} = CASE WHEN EXISTS (SELECT 1 FROM moved) THEN ${hostValue(column, moved, 'moved')} ELSE ${hostValue(column, kept, 'kept')} END`);
      const hostId = host.idColumn;
      const hostUpdate = `UPDATE ${id(host.name)} SET ${assignments.join(', ')} WHERE ${id(hostId)} = ${p.cast('host_id', hostTypes, hostId)} RETURNING 1`;
      parts.push(`host_row AS (${hostUpdate})`);
      statements.push(hostUpdate);
    }
    return { text: `WITH ${parts.join(', ')} SELECT EXISTS (SELECT 1 FROM moved) AS moved`, values: p.names, parts: statements };
  }

  async #finishText(write: FinishWrite, shape: FinishShape): Promise<Text> {
    const { table, idColumn, quotaColumn, usedColumn } = write.quota.options;
    const { tasks, ledger } = this.store.tables;
    const p = new Parameters();
    const taskTypes = await this.#typesOf(tasks);
    const hostTypes = await this.#typesOf(write.host.name);
    const users = await this.#typesOf(table);
    const ledgerTypes = await this.#typesOf(ledger);
    const id = this.#ident;
    const from = write.from.map((_, i) => p.cast(`from_${i}`, taskTypes, 'state')).join(', ');
    const moved = `UPDATE ${id(tasks)} SET ${shape.columns.map((column) => `${id(column)} = ${p.cast(`task_${column}`, taskTypes, column)}`).join(', ')} WHERE id = ${p.cast('task_id', taskTypes, 'id')} AND state IN (${from}) RETURNING 1`;
    const parts = [`moved AS (${moved})`];
    const statements = [moved];
    if (shape.hostColumns.length > 0) {
      const hostId = write.host.idColumn;
      const assignments = shape.hostColumns.map((column) => `${id(column)} = ${p.cast(`host_${column}`, hostTypes, column)}`);
      const hostUpdate = `UPDATE ${id(write.host.name)} SET ${assignments.join(', ')} WHERE ${id(hostId)} = ${p.cast('host_id', hostTypes, hostId)} AND EXISTS (SELECT 1 FROM moved) RETURNING 1`;
      parts.push(`host_row AS (${hostUpdate})`);
      statements.push(hostUpdate);
    }
    const balance = [`${id(quotaColumn)} = ${id(quotaColumn)} + ${p.cast('delta', users, quotaColumn)}`];
    if (usedColumn !== false) balance.push(`${id(usedColumn)} = ${id(usedColumn)} + ${p.cast('used', users, usedColumn)}`);
    const balanceUpdate = `UPDATE ${id(table)} SET ${balance.join(', ')} WHERE ${id(idColumn)} = ${p.cast('user_id', users, idColumn)} AND EXISTS (SELECT 1 FROM moved) RETURNING 1`;
    const ledgerRow = `INSERT INTO ${id(ledger)} (${shape.ledgerColumns.map(id).join(', ')}) SELECT ${shape.ledgerColumns.map((c) => p.cast(`ledger_${c}`, ledgerTypes, c)).join(', ')} FROM moved RETURNING 1`;
    parts.push(`balance AS (${balanceUpdate})`, `ledger_row AS (${ledgerRow})`);
    statements.push(balanceUpdate, ledgerRow);
    return { text: `WITH ${parts.join(', ')} SELECT EXISTS (SELECT 1 FROM moved) AS moved`, values: p.names, parts: statements };
  }

  /** A statement made once per key; its name is its text's hash, so a connection prepares it once. */
  #statement(key: string, make: () => Promise<Omit<Statement, 'name' | 'parts'> & { parts: readonly string[] }>): Promise<Statement> {
    let statement = this.#statements.get(key);
    if (statement === undefined) {
      statement = make().then(({ text, values, parts }) => ({ name: `kling_relay_${createHash('sha256').update(text).digest('hex').slice(0, 32)}`, text, values, parts: partsOf(text, parts) }));
      // A failure (a table not there yet) is not kept: the next call tries again.
      statement.catch(() => this.#statements.delete(key));
      this.#statements.set(key, statement);
    }
    return statement;
  }

  /** `locks`: the caller whose balance row the write locks (a hold, a settlement). */
  #run(statement: Statement, values: Readonly<Record<string, unknown>>, locks?: string): Promise<AnswerRow> {
    const bound = statement.values.map((name) => {
      if (!(name in values)) throw new TypeError(`PgDirect: no value for "${name}" in ${statement.text}`);
      return values[name] ?? null;
    });
    return this.#group.run({
      name: statement.name,
      text: statement.text,
      values: bound,
      failed: (error) => failedPart(statement.parts, error as { position?: unknown; table?: unknown }),
      ...(locks !== undefined ? { locks } : {}),
    });
  }

  /** Each column's type without its length (`character varying`, `bigint`), read once per table. */
  #typesOf(table: string): Promise<Map<string, string>> {
    let types = this.#types.get(table);
    if (types === undefined) {
      types = this.db
        .raw('SELECT attname AS name, format_type(atttypid, NULL) AS type FROM pg_attribute WHERE attrelid = to_regclass(?) AND attnum > 0 AND NOT attisdropped', [this.#ident(table)])
        .then((result: { rows: { name: string; type: string }[] }) => {
          if (result.rows.length === 0) throw new Error(`PgDirect: table ${table} not found`);
          return new Map(result.rows.map((row) => [row.name, row.type]));
        });
      types.catch(() => this.#types.delete(table));
      this.#types.set(table, types);
    }
    return types;
  }

  /** An identifier quoted as knex quotes it for this instance (its `wrapIdentifier` included). */
  readonly #ident = (name: string): string => this.db.raw('??', [name]).toQuery();
}

/** A connection of knex's pool for each group; one that failed past its rollback is marked for knex to drop. */
class PooledConnections implements GroupConnections {
  readonly #connections = new WeakMap<GroupConnection, PgConnection>();

  constructor(private readonly client: PoolClient<PgConnection>) {}

  async acquire(): Promise<GroupConnection> {
    const connection = await this.client.acquireConnection();
    const group: GroupConnection = { run: (statements) => runInOrder(connection, statements) };
    this.#connections.set(group, connection);
    return group;
  }

  async release(group: GroupConnection, broken: boolean): Promise<void> {
    const connection = this.#connections.get(group);
    if (connection === undefined) return;
    // knex's pool validates a connection before handing it out again, and drops one marked so.
    if (broken) (connection as { __knex__disposed?: unknown }).__knex__disposed = new Error('a group commit failed past its rollback');
    await this.client.releaseConnection(connection);
  }
}

/** The parts of a pg `Client` used for a connection of the writer's own. */
interface PgClient extends PgConnection {
  readonly pipeline?: boolean;
  connect(): Promise<unknown>;
  end(): Promise<void>;
  on(event: 'error', listener: (error: Error) => void): void;
  unref?(): void;
  /** Its protocol connection, whose socket the group's messages are written to. */
  readonly connection?: { readonly stream?: { cork?(): void; uncork?(): void; destroy?(): void } };
}

/** knex's pg client: the driver, the settings its pool connects with, and its hooks. */
interface KnexPgClient {
  driver?: { Client?: new (settings: Record<string, unknown>) => PgClient };
  connectionSettings?: unknown;
  connectionConfigProvider?: unknown;
  config?: { pool?: { afterCreate?: unknown } };
  setSchemaSearchPath?(connection: PgClient): Promise<unknown>;
}

/**
 * A connection of the group commit's own, opened with the settings of knex's pool and node-postgres's
 * `pipeline` option: a group's statements (`BEGIN`, one per write, `COMMIT`) are all written at
 * once and answered in order, one round trip for the group, where a pooled connection waits for
 * each answer before sending the next statement. When a statement fails, PostgreSQL refuses those
 * after it in the same transaction and the `COMMIT` ends it as a rollback, so nothing of the group
 * remains; the first error is the group's. A connection that failed is replaced when it is next used.
 */
class PipelinedConnection implements OwnConnection {
  #connection: PgClient | undefined;
  #ready: Promise<void> | undefined;

  constructor(
    private readonly open: () => PgClient,
    private readonly prepare: (connection: PgClient) => Promise<unknown>,
  ) {}

  /** Logs in if it is not; a refused login fails the group with the server's error, and the next group tries again. */
  async ready(): Promise<void> {
    if (this.#connection === undefined || this.#ready === undefined) {
      const connection = this.open();
      connection.on('error', () => {
        if (this.#connection === connection) this.close(true);
      });
      this.#connection = connection;
      const ready = connection.connect().then(async () => {
        // Like a pool's idle connection, it does not keep the process alive.
        connection.unref?.();
        await this.prepare(connection);
      });
      this.#ready = ready;
      ready.catch(() => {
        if (this.#connection === connection) this.close(true);
      });
    }
    await this.#ready;
  }

  async run(statements: readonly (GroupStatement | string)[]): Promise<AnswerRow[]> {
    const connection = this.#connection;
    if (connection === undefined) throw new Error('PgDirect: the connection closed');
    // node-postgres writes each protocol message of each statement to the socket by itself; corked,
    // the group's messages leave in one write.
    const socket = connection.connection?.stream;
    socket?.cork?.();
    let sent: Promise<AnswerRow | undefined>[];
    try {
      sent = statements.map((statement) => runStatement(connection, statement));
    } finally {
      socket?.uncork?.();
    }
    const answers = await Promise.allSettled(sent);
    const failed = answers.find((answer) => answer.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    return answers.flatMap((answer) => (answer.status === 'fulfilled' && answer.value !== undefined ? [answer.value] : []));
  }

  /**
   * Ends the connection; the next group opens another. PostgreSQL rolls back whatever a connection
   * left open when it goes, and node-postgres closes a connection that failed at once. A broken one
   * may hang (a server gone without closing it), where a polite end would wait for ever: its socket
   * is destroyed too.
   */
  close(broken: boolean): void {
    const connection = this.#connection;
    this.#connection = undefined;
    this.#ready = undefined;
    if (connection === undefined) return;
    void connection.end().catch(() => undefined);
    if (broken) connection.connection?.stream?.destroy?.();
  }
}

/**
 * Pipelined connections of the writer's own, where knex connects with an object of settings and the
 * host added no hook of its own to a new connection (`pool.afterCreate`), and the driver pipelines
 * (the `pipeline` option; node-postgres 8.23 has it); undefined otherwise.
 */
function pipelinedConnections(db: Knex): OwnConnections | undefined {
  const client = db.client as KnexPgClient;
  const settings = client.connectionSettings;
  const Client = client.driver?.Client;
  if (Client === undefined || settings === null || typeof settings !== 'object') return undefined;
  if (client.connectionConfigProvider !== undefined || client.config?.pool?.afterCreate !== undefined) return undefined;
  // knex keeps the password as a property that a spread does not copy (so that it is not logged).
  const { password } = settings as { password?: unknown };
  const open = (): PgClient => new Client({ ...settings, ...(password !== undefined ? { password } : {}), pipeline: true });
  if (open().pipeline !== true) return undefined;
  // The schema search path knex sets on each of its connections (its `searchPath` option).
  const prepare = (connection: PgClient): Promise<unknown> => client.setSchemaSearchPath?.(connection) ?? Promise.resolve();
  return new OwnConnections(() => new PipelinedConnection(open, prepare));
}

/** The error with its `sql` the failing CTE's statement (placeholders, no values), as knex's errors name theirs. */
function named(error: unknown, statement: GroupStatement): unknown {
  const sql = typeof error === 'object' && error !== null ? statement.failed?.(error) : undefined;
  if (sql !== undefined) Object.defineProperty(error, 'sql', { value: sql, enumerable: false, configurable: true, writable: true });
  return error;
}

/** One statement: a write's row (its error named by the part that failed), nothing for a control statement. */
function runStatement(connection: PgConnection, statement: GroupStatement | string): Promise<AnswerRow | undefined> {
  if (typeof statement === 'string') return connection.query(statement).then(() => undefined);
  return connection.query({ name: statement.name, text: statement.text, values: [...statement.values] }).then(
    (result) => result.rows[0] ?? {},
    (error: unknown) => Promise.reject(named(error, statement)),
  );
}

/** The statements one after the other (node-postgres sends the next once the previous answered). */
async function runInOrder(connection: PgConnection, statements: readonly (GroupStatement | string)[]): Promise<AnswerRow[]> {
  const rows: AnswerRow[] = [];
  for (const statement of statements) {
    const row = await runStatement(connection, statement);
    if (row !== undefined) rows.push(row);
  }
  return rows;
}

/** The numbered parameters of a statement being written, one per name however often it is used. */
class Parameters {
  readonly names: string[] = [];

  /**
   * `$n::type` of the column's type; `$n` alone for a column the table does not have, which
   * PostgreSQL then refuses by name (42703), as it would through knex.
   */
  cast(name: string, types: ReadonlyMap<string, string>, column: string): string {
    const type = types.get(column);
    return type === undefined ? this.#number(name) : `${this.#number(name)}::${type}`;
  }

  text(name: string): string {
    return `${this.#number(name)}::text`;
  }

  #number(name: string): string {
    let index = this.names.indexOf(name);
    if (index < 0) index = this.names.push(name) - 1;
    return `$${index + 1}`;
  }
}

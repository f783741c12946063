import type { Knex } from 'knex';
import type { AcceptWrite, DirectWrites, FinishWrite, HoldWrite } from './direct-writes.js';
import { acceptShape, finishShape, holdLedgerValues, holdValues, type FinishShape } from './direct-writes.js';
import { GroupCommit, OwnConnections, type AnswerRow, type GroupStatement, type OwnConnection } from './group-commit.js';
import type { HostTable } from './host-table.js';
import type { RelayStore } from './relay-store.js';
import type { HostColumn, NewHostRow, RelayTask } from './types.js';
import { toNumber } from './dialect.js';

/**
 * The parts of a mysql2 connection (callback API) used here. A query emits 'fields' once for each
 * statement of its text whose result began: an OK packet (a write, a SET), a result set's columns.
 */
interface MysqlConnection {
  query(sql: string, values: unknown[], callback: (error: Error | null, result: unknown) => void): { on(event: 'fields', listener: () => void): unknown };
  on(event: 'error', listener: (error: Error) => void): void;
  connect(callback: (error: Error | null) => void): void;
  destroy(): void;
  end(callback: (error?: Error | null) => void): void;
  readonly stream?: { unref(): void };
}

/** knex's mysql2 client: the driver and the settings its pool connects with. */
interface Mysql2Client {
  driverName?: string;
  driver?: { createConnection(settings: Record<string, unknown>): MysqlConnection };
  connectionSettings?: unknown;
  connectionConfigProvider?: unknown;
  config?: { connectionPool?: unknown; pool?: { afterCreate?: unknown } };
}

/** A statement text and the names of its values, in order; `;`-separated statements, one round trip. */
interface Script {
  readonly sql: string;
  readonly values: readonly string[];
  /** Its statements, in order. */
  readonly steps: readonly Step[];
}

/** A statement of a script: its name, and what of its result goes in the write's answer. */
interface Step {
  /** Kind and table (`INSERT INTO \`kling_relay_tasks\``), no values: an error names the statement so. */
  readonly name: string;
  /** The answer's field for the rows the statement matched (an UPDATE) or inserted. */
  readonly rows?: string;
  /** The answer's field for the id the statement's insert generated. */
  readonly id?: string;
}

/** What mysql2 answers for a statement that returns no rows (its OK packet). */
interface Done {
  readonly affectedRows?: unknown;
  readonly insertId?: unknown;
}

/** A write as the group commit runs it: its script's text with the values, and the script. */
interface ScriptStatement extends GroupStatement {
  readonly script: Script;
}

/**
 * The submit's writes and a task's settlement on MariaDB/MySQL outside knex's runner, in group commits of one round trip.
 * Each write is a script of statements sent as one text, answered from its statements' OK packets
 * (the rows an UPDATE matched, the id an INSERT generated), so none of them selects the answer:
 *
 * - the hold, five statements: the conditional balance update (the rows it matched say whether it
 *   held); `SET @kling_relay_held` from its ROW_COUNT(); then the host row, the task row and the
 *   ledger row, each `INSERT ... SELECT ... FROM DUAL WHERE @kling_relay_held`, the task row taking
 *   the host row's id and the ledger row the task row's from LAST_INSERT_ID();
 * - the write after Kling's answer, four: the task's compare-and-set while it is pending (the rows it
 *   matched are the answer); `SET @kling_relay_moved` from its ROW_COUNT(); the task's Kling id alone
 *   unless it moved; the host row, each column's value chosen by `@kling_relay_moved`;
 * - a settlement, five: the task's compare-and-set from the states it may leave (the rows it matched
 *   are the answer); `SET @kling_relay_moved`; then, each `WHERE @kling_relay_moved`, the host row,
 *   the balance with the used-quota statistic, and the ledger row.
 *
 * The outcome goes on in a session variable rather than as ROW_COUNT() in each later statement: a
 * statement that reads ROW_COUNT() is unsafe for statement-based binary logging, while a variable's
 * value is logged with the statement that reads it.
 *
 * The scripts of every submit that arrives while the previous group is at the database go out
 * together as ONE text, `BEGIN; ...; COMMIT` (adapters/group-commit.ts), so a group costs one round
 * trip and one commit. MySQL does not say which statement of a text failed: the connection counts the
 * statements whose result began before the error and names the error by the one after them.
 *
 * mysql2 sends several statements in one text only on a connection opened with
 * `multipleStatements`, which knex's pool connections are not: the group commit opens connections of
 * its own with the settings of knex's pool, one for each of the two groups that may be at the
 * database at once (holds run in the order of their callers' ids, so that two groups take the
 * callers' balance rows in one order). Values are escaped by mysql2, as knex has it do
 * everywhere, and identifiers are quoted by knex.
 */
export class MysqlDirect implements DirectWrites {
  readonly #connections: OwnConnections<ScriptStatement>;
  readonly #group: GroupCommit<ScriptStatement>;
  readonly #scripts = new Map<string, Script>();

  private constructor(
    readonly db: Knex,
    readonly store: RelayStore,
    connect: () => MysqlConnection,
    deadlineMs: number | undefined,
  ) {
    this.#connections = new OwnConnections(() => new TextConnection(connect));
    this.#group = new GroupCommit(this.#connections, deadlineMs);
  }

  /**
   * For a knex instance on mysql2 (not a transaction) whose connection settings are an object;
   * undefined otherwise (another database, settings from a function, a pool of the host's own, a
   * `pool.afterCreate` of the host's). `deadlineMs`: how long a group may wait for the server's answer
   * before its connection is dropped (GroupCommit).
   */
  static for(db: Knex, store: RelayStore, deadlineMs?: number): MysqlDirect | undefined {
    const client = db.client as Mysql2Client;
    const settings = client.connectionSettings;
    if (client.driverName !== 'mysql2' || (db as { isTransaction?: boolean }).isTransaction === true) return undefined;
    if (client.driver === undefined || client.connectionConfigProvider !== undefined || client.config?.connectionPool !== undefined) return undefined;
    // A host's hook on each new connection (a session setting) would not run on the writer's own.
    if (client.config?.pool?.afterCreate !== undefined) return undefined;
    if (settings === null || typeof settings !== 'object') return undefined;
    const driver = client.driver;
    // FOUND_ROWS: an UPDATE's count (ROW_COUNT(), the OK packet's affectedRows) is the rows matched,
    // so a hold of 0 is seen to match.
    // knex keeps the password as a property that a spread does not copy (so that it is not logged).
    const { password } = settings as { password?: unknown };
    const connect = (): MysqlConnection => driver.createConnection({ ...settings, ...(password !== undefined ? { password } : {}), multipleStatements: true, flags: ['FOUND_ROWS'] });
    return new MysqlDirect(db, store, connect, deadlineMs);
  }

  /** Closes its connections; a write after this opens another. */
  close(): void {
    this.#connections.close();
  }

  async hold(write: HoldWrite): Promise<RelayTask | undefined> {
    const script = this.#script(`hold:${write.quota.options.table}:${write.host.name}`, () => this.#holdScript(write));
    const row = await this.#run(script, holdValues(this.store, write), write.userId);
    if (toNumber(row.held) <= 0) return undefined;
    const hostRowId = String(row.host_id);
    return { ...write.task, id: toNumber(row.task_id), host_row_id: hostRowId, external_task_id: `${write.externalId.before}${hostRowId}${write.externalId.after}` };
  }

  async accept(write: AcceptWrite): Promise<boolean> {
    const shape = acceptShape(write);
    const script = this.#script(shape.key, () => this.#acceptScript(write.host, shape.columns, shape.hostColumns, shape.moved, shape.kept));
    const row = await this.#run(script, shape.values);
    return toNumber(row.moved) > 0;
  }

  async finish(write: FinishWrite): Promise<boolean> {
    const shape = finishShape(write);
    const script = this.#script(shape.key, () => this.#finishScript(write, shape));
    const row = await this.#run(script, shape.values, write.userId);
    return toNumber(row.moved) > 0;
  }

  #holdScript(write: HoldWrite): Script {
    const { table, idColumn, quotaColumn } = write.quota.options;
    const { tasks, ledger } = this.store.tables;
    const s = new ScriptWriter();
    const id = this.#ident;
    // LAST_INSERT_ID() is the id the insert before generated: the task row's host row, the ledger
    // row's task. A hold the balance does not cover inserts nothing, and nothing reads it then.
    const only = 'FROM DUAL WHERE @kling_relay_held';
    s.add(`UPDATE ${id(table)} SET ${id(quotaColumn)} = ${id(quotaColumn)} - ${s.value('amount')} WHERE ${id(idColumn)} = ${s.value('user_id')} AND ${id(quotaColumn)} >= ${s.value('amount')}`, { rows: 'held' });
    s.add('SET @kling_relay_held = ROW_COUNT() > 0');
    const hostColumns = [...write.host.columns].filter(([logical]) => logical !== 'id');
    s.add(`INSERT INTO ${id(write.host.name)} (${hostColumns.map(([, physical]) => id(physical)).join(', ')}) SELECT ${hostColumns.map(([logical]) => s.value(`host_${logical}`)).join(', ')} ${only}`, { id: 'host_id' });
    const taskColumns = Object.keys(write.task);
    const taskValue = (column: string): string =>
      column === 'host_row_id' ? 'LAST_INSERT_ID()' : column === 'external_task_id' ? `CONCAT(${s.value('id_before')}, LAST_INSERT_ID(), ${s.value('id_after')})` : s.value(`task_${column}`);
    s.add(`INSERT INTO ${id(tasks)} (${taskColumns.map(id).join(', ')}) SELECT ${taskColumns.map(taskValue).join(', ')} ${only}`, { id: 'task_id' });
    const ledgerColumns = Object.keys(holdLedgerValues(this.store, write, 0));
    s.add(`INSERT INTO ${id(ledger)} (${ledgerColumns.map(id).join(', ')}) SELECT ${ledgerColumns.map((c) => (c === 'task_id' ? 'LAST_INSERT_ID()' : s.value(`ledger_${c}`))).join(', ')} ${only}`);
    return s.script();
  }

  #acceptScript(host: HostTable, columns: readonly string[], hostColumns: readonly HostColumn[], moved: Partial<NewHostRow>, kept: Partial<NewHostRow>): Script {
    const { tasks } = this.store.tables;
    const s = new ScriptWriter();
    const id = this.#ident;
    const set = (names: readonly string[]): string => names.map((column) => `${id(column)} = ${s.value(`task_${column}`)}`).join(', ');
    s.add(`UPDATE ${id(tasks)} SET ${set(columns)} WHERE id = ${s.value('task_id')} AND state = ${s.value('state_pending')}`, { rows: 'moved' });
    s.add('SET @kling_relay_moved = ROW_COUNT() > 0');
    s.add(`UPDATE ${id(tasks)} SET ${set(['kling_task_id', 'updated_at'])} WHERE id = ${s.value('task_id')} AND NOT @kling_relay_moved`);
    if (hostColumns.length > 0) {
      const hostValue = (column: HostColumn, patch: Partial<NewHostRow>, prefix: string): string => (column in patch ? s.value(`${prefix}_${column}`) : id(host.columns.get(column) as string));
      const assignments = hostColumns.map((column) => `${id(host.columns.get(column) as string)} = IF(@kling_relay_moved, ${hostValue(column, moved, 'moved')}, ${hostValue(column, kept, 'kept')})`);
      s.add(`UPDATE ${id(host.name)} SET ${assignments.join(', ')} WHERE ${id(host.idColumn)} = ${s.value('host_id')}`);
    }
    return s.script();
  }

  #finishScript(write: FinishWrite, shape: FinishShape): Script {
    const { table, idColumn, quotaColumn, usedColumn } = write.quota.options;
    const { tasks, ledger } = this.store.tables;
    const s = new ScriptWriter();
    const id = this.#ident;
    // Placeholders take their values in the order they are written.
    const set = shape.columns.map((column) => `${id(column)} = ${s.value(`task_${column}`)}`).join(', ');
    const taskId = s.value('task_id');
    const from = write.from.map((_, i) => s.value(`from_${i}`)).join(', ');
    s.add(`UPDATE ${id(tasks)} SET ${set} WHERE id = ${taskId} AND state IN (${from})`, { rows: 'moved' });
    s.add('SET @kling_relay_moved = ROW_COUNT() > 0');
    if (shape.hostColumns.length > 0) {
      const assignments = shape.hostColumns.map((column) => `${id(column)} = ${s.value(`host_${column}`)}`);
      s.add(`UPDATE ${id(write.host.name)} SET ${assignments.join(', ')} WHERE ${id(write.host.idColumn)} = ${s.value('host_id')} AND @kling_relay_moved`);
    }
    const balance = [`${id(quotaColumn)} = ${id(quotaColumn)} + ${s.value('delta')}`];
    if (usedColumn !== false) balance.push(`${id(usedColumn)} = ${id(usedColumn)} + ${s.value('used')}`);
    s.add(`UPDATE ${id(table)} SET ${balance.join(', ')} WHERE ${id(idColumn)} = ${s.value('user_id')} AND @kling_relay_moved`);
    s.add(`INSERT INTO ${id(ledger)} (${shape.ledgerColumns.map(id).join(', ')}) SELECT ${shape.ledgerColumns.map((c) => s.value(`ledger_${c}`)).join(', ')} FROM DUAL WHERE @kling_relay_moved`);
    return s.script();
  }

  /** `locks`: the caller whose balance row the write locks (a hold, a settlement). */
  #run(script: Script, values: Readonly<Record<string, unknown>>, locks?: string): Promise<AnswerRow> {
    return this.#group.run({ text: script.sql, values: bindings(script, values), script, ...(locks !== undefined ? { locks } : {}) });
  }

  #script(key: string, make: () => Script): Script {
    let script = this.#scripts.get(key);
    if (script === undefined) {
      script = make();
      this.#scripts.set(key, script);
    }
    return script;
  }

  /** An identifier quoted as knex quotes it for this instance (its `wrapIdentifier` included). */
  readonly #ident = (name: string): string => this.db.raw('??', [name]).toQuery();
}


/** Writes a script: its statements, the names of their values, and each statement's name and answer. */
class ScriptWriter {
  readonly #statements: string[] = [];
  readonly #steps: Step[] = [];
  readonly #values: string[] = [];

  /** A statement; `answer` names the fields of the write's answer its result gives. */
  add(statement: string, answer: Omit<Step, 'name'> = {}): void {
    this.#statements.push(statement);
    this.#steps.push({ name: stepOf(statement), ...answer });
  }

  /** A placeholder for the value of this name, in the order the statements use them. */
  value(name: string): string {
    this.#values.push(name);
    return '?';
  }

  script(): Script {
    return { sql: this.#statements.join(';\n'), values: [...this.#values], steps: [...this.#steps] };
  }
}

/** A statement's name: the kind and table of a write (`UPDATE \`t\``, `INSERT INTO \`t\``), else its first word. */
function stepOf(statement: string): string {
  return /^(?:UPDATE|INSERT INTO) \S+/.exec(statement)?.[0] ?? statement.split(' ', 1)[0] ?? statement;
}

/**
 * A connection of the group commit's own, opened with `multipleStatements`: a group goes out as one
 * text. A connection that failed (killed, timed out by the server) is replaced at the next group.
 */
class TextConnection implements OwnConnection<ScriptStatement> {
  #connection: MysqlConnection | undefined;
  /** Settles when #connection has logged in, or failed to (then the next group opens another). */
  #ready: Promise<void> | undefined;

  constructor(private readonly connect: () => MysqlConnection) {}

  /**
   * The connection, logged in: a refused login (a wrong password, an unknown database) fails the
   * group with the server's error, as knex's pool fails a query, and the next group tries again.
   */
  async ready(): Promise<void> {
    if (this.#connection === undefined || this.#ready === undefined) {
      const connection = this.#open();
      const ready = new Promise<void>((resolve, reject) => connection.connect((error) => (error ? reject(error) : resolve())));
      this.#ready = ready;
      ready.catch(() => {
        if (this.#connection !== connection) return;
        this.close(true);
      });
    }
    await this.#ready;
  }

  /**
   * One text, one round trip. No timer of its own: the server runs a text it received to its end
   * whatever the client does, so a group is over only when the server says so (or the connection
   * dies); the submit's own deadline answers the caller meanwhile.
   */
  run(statements: readonly (ScriptStatement | string)[]): Promise<AnswerRow[]> {
    const connection = this.#open();
    const text = statements.map((s) => (typeof s === 'string' ? s : s.text)).join(';\n');
    const values = statements.flatMap((s) => (typeof s === 'string' ? [] : s.values));
    const steps = statements.flatMap((s): readonly Step[] => (typeof s === 'string' ? [{ name: s }] : s.script.steps));
    return new Promise((resolve, reject) => {
      // MySQL does not say which statement of a text failed; the statements whose result began
      // before the error are those before it. (A SELECT that failed after its columns would count
      // itself: the scripts have none.)
      let begun = 0;
      connection
        .query(text, values, (error, result) => {
          if (error) reject(named(error, steps[begun]?.name));
          // mysql2 answers one result per statement of a text of several, a lone statement's by itself.
          else resolve(answers(statements, steps.length > 1 ? (result as Done[]) : [result as Done]));
        })
        .on('fields', () => {
          begun += 1;
        });
    });
  }

  close(broken: boolean): void {
    const connection = this.#connection;
    this.#connection = undefined;
    this.#ready = undefined;
    if (connection === undefined) return;
    if (broken) connection.destroy();
    else connection.end(() => undefined);
  }

  #open(): MysqlConnection {
    if (this.#connection === undefined) {
      const connection = this.connect();
      connection.on('error', () => {
        if (this.#connection !== connection) return;
        this.#connection = undefined;
        this.#ready = undefined;
      });
      // Like a pool's idle connection, it does not keep the process alive (a host that destroys its
      // knex instance without relay.close() still exits); a write in flight belongs to a request,
      // whose socket does.
      connection.stream?.unref();
      this.#connection = connection;
    }
    return this.#connection;
  }
}

/**
 * The error with its `sql` the name of the statement that failed, without values: mysql2's own `sql`
 * is the whole text with the values written into it.
 */
function named(error: Error, step: string | undefined): Error {
  // A connection that died (a lost link) did not stop at a statement's error: the error goes on unnamed.
  if ((error as { fatal?: boolean }).fatal === true) return error;
  Object.defineProperty(error, 'sql', { value: step, enumerable: false, configurable: true, writable: true });
  return error;
}

/** Each write's answer, from the results of its statements, which follow each other in the text's results. */
function answers(statements: readonly (ScriptStatement | string)[], results: readonly Done[]): AnswerRow[] {
  const rows: AnswerRow[] = [];
  let at = 0;
  for (const statement of statements) {
    if (typeof statement === 'string') {
      at += 1;
      continue;
    }
    const row: AnswerRow = {};
    for (const step of statement.script.steps) {
      const result = results[at];
      at += 1;
      if (step.rows !== undefined) row[step.rows] = result?.affectedRows;
      if (step.id !== undefined) row[step.id] = result?.insertId;
    }
    rows.push(row);
  }
  return rows;
}

function bindings(script: Script, values: Readonly<Record<string, unknown>>): unknown[] {
  return script.values.map((name) => {
    if (!(name in values)) throw new TypeError(`MysqlDirect: no value for "${name}" in ${script.sql}`);
    return values[name] ?? null;
  });
}

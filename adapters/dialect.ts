import type { Knex } from 'knex';

/** The three databases the relay supports, by the knex client family. */
export type Dialect = 'sqlite' | 'mysql' | 'pg';

/**
 * The database family behind a knex instance or transaction. knex's own `dialect` is shared within a
 * family (mysql2 reports 'mysql', better-sqlite3 reports 'sqlite3').
 */
export function dialectOf(db: Knex | Knex.Transaction): Dialect {
  const dialect = (db.client as { dialect?: unknown }).dialect;
  if (dialect === 'postgresql' || dialect === 'cockroachdb' || dialect === 'redshift') return 'pg';
  if (dialect === 'mysql') return 'mysql';
  if (dialect === 'sqlite3') return 'sqlite';
  throw new Error(`kling-relay supports knex clients better-sqlite3, mysql2 and pg; this knex instance uses "${String(dialect)}".`);
}

/**
 * Inserts one row and returns its generated id. PostgreSQL needs `returning`; MySQL and SQLite answer
 * the insert id directly, and knex warns if `returning` is used on MySQL.
 */
export async function insertReturningId(
  db: Knex | Knex.Transaction,
  table: string,
  idColumn: string,
  row: Record<string, unknown>,
): Promise<string> {
  const query = db(table).insert(row);
  const result: unknown[] = dialectOf(db) === 'pg' ? await query.returning(idColumn) : await query;
  const first = result[0];
  const id = first !== null && typeof first === 'object' ? (first as Record<string, unknown>)[idColumn] : first;
  if (id === undefined || id === null) throw new Error(`insert into ${table} returned no id`);
  return String(id);
}

/**
 * Whether an error is a unique-constraint violation: the database refusing a second ledger movement,
 * a duplicate external_task_id, ... Recognises better-sqlite3, mysql2 and pg errors, also when wrapped.
 */
export function isUniqueViolation(err: unknown): boolean {
  return someCause(err, ({ code, errno }) => code === '23505' /* PostgreSQL unique_violation */ || code === 'ER_DUP_ENTRY' || errno === 1062 || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY');
}

/**
 * Whether an error is the database breaking a deadlock (or refusing a serializable transaction): the
 * write did nothing and may run again. MariaDB/MySQL have then rolled back the whole transaction;
 * PostgreSQL fails the statement, and the transaction until it is rolled back (to a savepoint).
 */
export function isDeadlock(err: unknown): boolean {
  return someCause(err, ({ code, errno }) => code === '40P01' /* deadlock_detected */ || code === '40001' /* serialization_failure */ || code === 'ER_LOCK_DEADLOCK' || errno === 1213);
}

/** Whether the error, or an error it wraps (`cause`), has a driver code `test` accepts. */
function someCause(err: unknown, test: (codes: { code?: unknown; errno?: unknown }) => boolean): boolean {
  for (let e: unknown = err, depth = 0; e !== null && typeof e === 'object' && depth < 5; depth++) {
    if (test(e as { code?: unknown; errno?: unknown })) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/** PostgreSQL answers bigint (and MySQL answers SUM) as strings; the relay works in JS numbers. */
export function toNumber(value: unknown): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint') return Number(value);
  if (typeof value === 'string' && value.trim() !== '') return Number(value);
  return 0;
}

export function toNumberOrNull(value: unknown): number | null {
  return value === null || value === undefined ? null : toNumber(value);
}

export function toStringOrNull(value: unknown): string | null {
  return value === null || value === undefined ? null : String(value);
}

/** knex's update answers the affected row count on every client, typed loosely. */
export function affectedRows(result: unknown): number {
  return typeof result === 'number' ? result : toNumber(result);
}

/**
 * Creates a table unless it exists; tolerates another process creating it at the same moment. knex
 * issues the table and its indexes as separate statements: on PostgreSQL and SQLite they run in one
 * transaction, so a crash cannot leave a ledger without its unique keys. MySQL commits each DDL
 * statement by itself, so there a table that exists gets the indexes it lacks: a migrate that died
 * between the CREATE TABLE and its indexes is finished by the next one.
 */
export async function createTableIfAbsent(db: Knex, name: string, build: (t: Knex.CreateTableBuilder) => void): Promise<void> {
  const mysql = dialectOf(db) === 'mysql';
  if (await db.schema.hasTable(name)) {
    if (mysql) await addMissingMysqlIndexes(db, name, build);
    return;
  }
  try {
    if (mysql) await db.schema.createTable(name, build);
    else await db.transaction(async (trx) => void (await trx.schema.createTable(name, build)));
  } catch (err) {
    // Two instances migrating at once: the loser's create fails, and the table is there.
    if (!(await db.schema.hasTable(name))) throw err;
    if (mysql) await addMissingMysqlIndexes(db, name, build);
  }
}

/** knex's MySQL statement for one index of a new table: alter table `t` add unique|index `name`(...). */
const MYSQL_ADD_INDEX = /^alter table `[^`]+` add (?:unique|index) `([^`]+)`/i;

async function addMissingMysqlIndexes(db: Knex, name: string, build: (t: Knex.CreateTableBuilder) => void): Promise<void> {
  for (const statement of db.schema.createTable(name, build).toSQL()) {
    const index = MYSQL_ADD_INDEX.exec(statement.sql)?.[1];
    if (index === undefined || (await indexExists(db, name, index))) continue;
    try {
      await db.raw(statement.sql, statement.bindings);
    } catch (err) {
      // Another instance added it at the same moment.
      if (!(await indexExists(db, name, index))) throw err;
    }
  }
}

/** Adds an index unless one of that name exists; tolerates another process adding it at the same moment. */
export async function addIndexIfAbsent(db: Knex, table: string, columns: string[], name: string): Promise<void> {
  if (await indexExists(db, table, name)) return;
  try {
    await db.schema.alterTable(table, (t) => void t.index(columns, name));
  } catch (err) {
    if (!(await indexExists(db, table, name))) throw err;
  }
}

/** Whether an index of this name exists on the table, on any of the three databases. */
export async function indexExists(db: Knex, table: string, index: string): Promise<boolean> {
  const dialect = dialectOf(db);
  let rows: unknown[];
  if (dialect === 'mysql') {
    rows = await db('information_schema.statistics').select('index_name').where({ table_schema: db.raw('DATABASE()'), table_name: table, index_name: index }).limit(1);
  } else if (dialect === 'pg') {
    rows = await db('pg_indexes').select('indexname').where({ schemaname: db.raw('current_schema()'), tablename: table, indexname: index }).limit(1);
  } else {
    rows = await db('sqlite_master').select('name').where({ type: 'index', tbl_name: table, name: index }).limit(1);
  }
  return rows.length > 0;
}

/**
 * Adds a column to a table that an earlier version of the relay created without it. Safe to run on
 * every migrate and from two instances at once: the loser of a race finds the column there.
 */
export async function addColumnIfAbsent(db: Knex, table: string, column: string, build: (t: Knex.AlterTableBuilder) => void): Promise<void> {
  if (await db.schema.hasColumn(table, column)) return;
  try {
    await db.schema.alterTable(table, build);
  } catch (err) {
    if (!(await db.schema.hasColumn(table, column))) throw err;
  }
}

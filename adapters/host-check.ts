import type { Knex } from 'knex';
import { KlingRelayConfigError } from '../lib/errors.js';
import { dialectOf, type Dialect } from './dialect.js';
import type { HostTable } from './host-table.js';
import type { ResolvedQuotaStoreOptions } from './quota-store.js';
import type { HostColumn, HostExtraColumn } from './types.js';

/** What can be wrong with a host table, for a host that sorts the problems. */
export type HostSchemaProblemKind = 'missing-table' | 'missing-column' | 'type' | 'not-null' | 'json';

/** One way a host table does not fit the relay's writes, with the fix. */
export interface HostSchemaProblem {
  kind: HostSchemaProblemKind;
  /** The host's table. */
  table: string;
  /** The host's column; null when the table itself is missing. */
  column: string | null;
  /** The option naming the table or column (`tables.video.columns.channel_id`, `quota.quotaColumn`), if one does. */
  option: string | null;
  /** One sentence: the table, the column, what the relay writes, and how to fix it. */
  message: string;
}

/** The host tables to check: the Video and Image tables, and the built-in quota store's users table when it is used. */
export interface HostTablesToCheck {
  video?: HostTable | undefined;
  image?: HostTable | undefined;
  users?: ResolvedQuotaStoreOptions | undefined;
  /** Whether every account has a `channelId`, so that `channel_id` receives integers rather than account ids. */
  integerChannels?: boolean | undefined;
}

/** What the relay writes into a column, for the type check: text or a number, and how the message says it. */
interface Written {
  value: 'text' | 'number';
  what: string;
}

/** A column as the database declares it. */
interface DeclaredColumn {
  name: string;
  type: string;
  nullable: boolean;
  hasDefault: boolean;
  /** MariaDB's JSON is LONGTEXT with a `json_valid` CHECK; SQLite can carry the same CHECK. */
  jsonChecked: boolean;
}

type ColumnClass = 'text' | 'integer' | 'decimal' | 'boolean' | 'temporal' | 'uuid' | 'json' | 'other';

/** The declared type's family. Unknown types (enum, bit, citext, ...) are `other` and never reported. */
function classify(type: string): ColumnClass {
  const t = type.toLowerCase().trim();
  if (t === 'json' || t === 'jsonb') return 'json';
  if (/^(tiny|small|medium|big)?int(eger)?( unsigned)?$|^int[248]$|^(small|big)?serial$/.test(t)) return 'integer';
  if (/^(decimal|numeric|real|float|float4|float8|double|double precision|money)$/.test(t)) return 'decimal';
  if (t === 'bool' || t === 'boolean') return 'boolean';
  if (/^(date|datetime|time|timestamp|timestamptz|timetz|year|interval)$|^(time|timestamp) with(out)? time zone$/.test(t)) return 'temporal';
  if (t === 'uuid') return 'uuid';
  if (/^(n?varchar|n?char|character|character varying|tinytext|text|mediumtext|longtext|clob|string)$/.test(t)) return 'text';
  return 'other';
}

/** What the relay writes into each logical column: text, or a number, as the messages describe it. */
const WRITES: Record<Exclude<HostColumn, 'id' | 'user_id'>, Written> = {
  task_id: { value: 'text', what: "Kling's task id (text, '' until Kling answers)" },
  username: { value: 'text', what: "the caller's username (text)" },
  channel_id: { value: 'text', what: "the Kling account id (text, e.g. 'main')" },
  model: { value: 'text', what: "the model name (text, e.g. 'kling-v1')" },
  provider: { value: 'text', what: "'kling' (text)" },
  type: { value: 'text', what: "the request type (text, e.g. 'text2video')" },
  status: { value: 'text', what: "the task status (text: '', 'submitted', 'processing', 'succeed', 'failed')" },
  mode: { value: 'text', what: "the mode (text, e.g. 'std')" },
  result: { value: 'text', what: "'' when it records a task, the JSON text of Kling's task_result once it succeeds" },
  fail_reason: { value: 'text', what: "'' when it records a task, then Kling's failure message (text)" },
  quota: { value: 'number', what: 'the hold, then the charge (an integer)' },
  duration: { value: 'number', what: 'the seconds of video (an integer)' },
  created_at: { value: 'number', what: 'unix seconds (an integer)' },
  updated_at: { value: 'number', what: 'unix seconds (an integer)' },
};

/** What this table's settings make the relay write into a logical column. */
function writtenInto(host: HostTable, logical: Exclude<HostColumn, 'id' | 'user_id'>, integerChannels: boolean): Written {
  if (logical === 'channel_id' && integerChannels) return { value: 'number', what: "the account's channelId (an integer)" };
  if (logical === 'duration' && host.settings.duration === 'text') return { value: 'text', what: 'the seconds as Kling writes them (text, e.g. "5.1")' };
  return WRITES[logical];
}

/** What an extra column receives. */
function extraWritten(extra: HostExtraColumn): Written {
  if ('from' in extra) {
    if (extra.from === 'now') return { value: 'number', what: 'unix seconds (an integer)' };
    if (extra.from === 'requestedCount') return { value: 'number', what: "the request's n (an integer)" };
    return { value: 'text', what: extra.from === 'url' ? "the result's first URL (text)" : "the result's first video id (text)" };
  }
  const values = 'values' in extra ? Object.values(extra.values) : [extra.value];
  return values.some((v) => typeof v === 'string') ? { value: 'text', what: `the configured text ${JSON.stringify(values)}` } : { value: 'number', what: `the configured number ${JSON.stringify(values)}` };
}

/** Columns the relay writes as '' when it records a task, before Kling has answered. */
const EMPTY_AT_INSERT: ReadonlySet<HostColumn> = new Set<HostColumn>(['task_id', 'status', 'result', 'fail_reason']);

/** Column classes that refuse each kind of value the relay writes (JSON columns are their own problem). */
const REFUSES: Record<'text' | 'number', ReadonlySet<ColumnClass>> = {
  text: new Set<ColumnClass>(['integer', 'decimal', 'boolean', 'temporal', 'uuid']),
  number: new Set<ColumnClass>(['boolean', 'temporal', 'uuid']),
};

/** The table's columns as declared, or undefined when there is no such table. */
async function declaredColumns(db: Knex, dialect: Dialect, table: string): Promise<DeclaredColumn[] | undefined> {
  if (!(await db.schema.hasTable(table))) return undefined;
  const info = (await db(table).columnInfo()) as unknown as Record<string, Knex.ColumnInfo>;
  const jsonChecks = await jsonCheckedColumns(db, dialect, table);
  return Object.entries(info).map(([name, column]) => ({
    name,
    type: String(column.type ?? ''),
    nullable: column.nullable,
    hasDefault: column.defaultValue !== null && column.defaultValue !== undefined,
    jsonChecked: jsonChecks.includes(name.toLowerCase()),
  }));
}

/**
 * The table's columns (lowercased) a CHECK constraint holds to `json_valid(...)`. MariaDB declares a JSON column as
 * LONGTEXT with `CHECK (json_valid(col))`, so the type alone does not tell; MySQL reports `json` itself.
 */
async function jsonCheckedColumns(db: Knex, dialect: Dialect, table: string): Promise<string[]> {
  if (dialect === 'pg') return [];
  if (dialect === 'sqlite') {
    const rows = (await db.raw('select sql from sqlite_master where type = ? and name = ?', ['table', table])) as { sql: string | null }[];
    return jsonValidCalls(rows[0]?.sql ?? '');
  }
  const [version] = (await db.raw('select version() as v'))[0] as { v: string }[];
  if (!/mariadb/i.test(version?.v ?? '')) return [];
  const [rows] = (await db.raw('select CHECK_CLAUSE as clause from information_schema.CHECK_CONSTRAINTS where CONSTRAINT_SCHEMA = database() and TABLE_NAME = ?', [table])) as [
    { clause: string }[],
  ];
  return rows.flatMap((row) => jsonValidCalls(row.clause));
}

function jsonValidCalls(sql: string): string[] {
  return [...sql.toLowerCase().matchAll(/json_valid\s*\(\s*[`"[]?([a-z0-9_]+)[`"\]]?\s*\)/g)].map((m) => m[1] as string);
}

/** Finds a column by name: exact on PostgreSQL (the relay quotes names), case-insensitive elsewhere. */
function find(columns: DeclaredColumn[], dialect: Dialect, name: string): DeclaredColumn | undefined {
  return columns.find((c) => c.name === name) ?? (dialect === 'pg' ? undefined : columns.find((c) => c.name.toLowerCase() === name.toLowerCase()));
}

function problem(kind: HostSchemaProblemKind, table: string, column: string | null, option: string | null, message: string): HostSchemaProblem {
  return { kind, table, column, option, message };
}

function missingTable(table: string, option: string): HostSchemaProblem {
  return problem(
    'missing-table',
    table,
    null,
    option,
    `Table ${table} does not exist: create it (kling-relay migrate --host-tables creates the default videos, images and users tables), or set ${option} to the host's table.`,
  );
}

/** The problems of the Video or Image table against its column mapping. */
async function checkTaskTable(db: Knex, dialect: Dialect, host: HostTable, integerChannels: boolean): Promise<HostSchemaProblem[]> {
  const columns = await declaredColumns(db, dialect, host.name);
  if (columns === undefined) return [missingTable(host.name, `${host.optionName}.name`)];
  const problems: HostSchemaProblem[] = [];
  const written = new Set<string>();
  for (const [logical, physical] of host.columns) {
    const option = `${host.optionName}.columns.${logical}`;
    const column = find(columns, dialect, physical);
    if (column === undefined) {
      problems.push(
        problem('missing-column', host.name, physical, option, `${host.name}.${physical} does not exist (${option}): map ${logical} to the host's column, or to false when the table has none.`),
      );
      continue;
    }
    written.add(column.name);
    if (logical === 'id' || logical === 'user_id') continue;
    const writes = writtenInto(host, logical, integerChannels);
    const declared = classify(column.type);
    // A JSON result column is NULL until the result, then the result's JSON text.
    const jsonFits = logical === 'result' && host.settings.resultColumn === 'json';
    if (writes.value === 'text' && !jsonFits && (declared === 'json' || column.jsonChecked)) {
      problems.push(
        problem(
          'json',
          host.name,
          column.name,
          option,
          `${host.name}.${column.name} is a JSON column, but the relay writes ${EMPTY_AT_INSERT.has(logical) ? "''" : writes.what} into it when it records a task (${option}), which is not JSON: ` +
            `map ${logical} to a text column or to false${logical === 'result' ? ` (the result stays in kling_relay_tasks and the caller's query), set ${host.optionName}.resultColumn to 'json'` : ''}, or change the column to TEXT.`,
        ),
      );
    } else if (REFUSES[writes.value].has(declared)) {
      problems.push(
        problem(
          'type',
          host.name,
          column.name,
          option,
          `${host.name}.${column.name} is ${column.type}, but the relay writes ${writes.what} into it (${option}): ` +
            `map ${logical} to ${writes.value === 'text' ? 'a text' : 'an integer'} column or to false, ${logical === 'channel_id' ? 'give every account its integer channelId, ' : ''}or change the column's type.`,
        ),
      );
    }
  }
  problems.push(...checkExtraColumns(columns, dialect, host, written));
  for (const column of columns) {
    if (written.has(column.name) || column.nullable || column.hasDefault) continue;
    problems.push(
      problem(
        'not-null',
        host.name,
        column.name,
        null,
        `${host.name}.${column.name} is NOT NULL without a default, and the relay does not write it, so every insert fails: ` +
          `give it a default, allow NULL, or map the logical column that belongs there to it (${host.optionName}.columns).`,
      ),
    );
  }
  return problems;
}

/** The problems of the table's extra columns; adds the columns found to `written`. */
function checkExtraColumns(columns: DeclaredColumn[], dialect: Dialect, host: HostTable, written: Set<string>): HostSchemaProblem[] {
  const problems: HostSchemaProblem[] = [];
  for (const [name, extra] of Object.entries(host.settings.extraColumns)) {
    const option = `${host.optionName}.extraColumns.${name}`;
    const column = find(columns, dialect, name);
    if (column === undefined) {
      problems.push(problem('missing-column', host.name, name, option, `${host.name}.${name} does not exist (${option}): remove the extra column or name one the table has.`));
      continue;
    }
    written.add(column.name);
    const writes = extraWritten(extra);
    if (REFUSES[writes.value].has(classify(column.type))) {
      problems.push(problem('type', host.name, column.name, option, `${host.name}.${column.name} is ${column.type}, but the relay writes ${writes.what} into it (${option}): write a value of the column's type, or change the column's type.`));
    }
  }
  return problems;
}

/** The problems of the users table the built-in quota store holds, credits and debits. */
async function checkUsersTable(db: Knex, dialect: Dialect, users: ResolvedQuotaStoreOptions): Promise<HostSchemaProblem[]> {
  const columns = await declaredColumns(db, dialect, users.table);
  if (columns === undefined) return [missingTable(users.table, 'quota.table')];
  const problems: HostSchemaProblem[] = [];
  const wanted: [string, string, string][] = [
    [users.idColumn, 'quota.idColumn', "the caller's id"],
    [users.quotaColumn, 'quota.quotaColumn', 'the balance'],
  ];
  if (users.usedColumn !== false) wanted.push([users.usedColumn, 'quota.usedColumn', 'the used quota']);
  for (const [name, option, what] of wanted) {
    const column = find(columns, dialect, name);
    if (column === undefined) {
      const orFalse = option === 'quota.usedColumn' ? ', or false when it keeps none' : '';
      problems.push(problem('missing-column', users.table, name, option, `${users.table}.${name} does not exist (${option}): set ${option} to the column holding ${what}${orFalse}.`));
      continue;
    }
    const declared = classify(column.type);
    if (option !== 'quota.idColumn' && declared !== 'integer' && declared !== 'decimal' && declared !== 'other') {
      problems.push(
        problem(
          'type',
          users.table,
          column.name,
          option,
          `${users.table}.${column.name} is ${column.type}, but the relay adds quota to it and takes quota from it (${option}): it must be a numeric column (bigint).`,
        ),
      );
    }
  }
  return problems;
}

/**
 * Reads the host tables' declared columns and lists every way the relay's writes would fail on them:
 * a missing table or mapped column, a column whose type refuses what the relay writes, a NOT NULL
 * column without a default the relay does not write, a JSON column the relay writes plain text into.
 * Never alters a table. Resolves to an empty list when the tables fit.
 */
export async function checkHostTables(db: Knex, tables: HostTablesToCheck): Promise<HostSchemaProblem[]> {
  const dialect = dialectOf(db);
  const problems: HostSchemaProblem[] = [];
  for (const host of [tables.video, tables.image]) if (host) problems.push(...(await checkTaskTable(db, dialect, host, tables.integerChannels ?? false)));
  if (tables.users) problems.push(...(await checkUsersTable(db, dialect, tables.users)));
  // new-api keeps video and image tasks in one table: the same problem found twice is reported once.
  const seen = new Set<string>();
  return problems.filter((p) => (seen.has(p.message) ? false : (seen.add(p.message), true)));
}

/** The coded error listing the problems, one a line, for callers that refuse to go on. */
export function hostSchemaError(problems: readonly HostSchemaProblem[]): KlingRelayConfigError {
  return new KlingRelayConfigError(
    'ERR_KLING_RELAY_HOST_SCHEMA',
    `The host tables do not fit the relay's writes (${problems.length} problem${problems.length === 1 ? '' : 's'}); submits fail until they are fixed:\n` +
      problems.map((p) => `  - ${p.message}`).join('\n'),
  );
}

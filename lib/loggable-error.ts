import { loggable } from './upstream/client.js';

/**
 * What a log line says about an error. A database error says only its driver's code and what the
 * statement was (`insert kling_relay_tasks`): knex puts the SQL with its bound values in the message,
 * and the drivers quote values in theirs ("Duplicate entry 'x'", "invalid input syntax: \"x\""), and
 * those values are callers' data: a callback URL with its token, a prompt. Any other error says its
 * message, cut as `loggable` cuts it, and its code when it has one.
 */
export interface LoggedError {
  /** The driver's or the system's code: `ER_BAD_FIELD_ERROR`, `42703`, `SQLITE_ERROR`, `ECONNREFUSED`. */
  code?: string;
  /** A database statement's kind and table, e.g. `insert kling_relay_tasks`; never its text. */
  statement?: string;
  /** The message of an error that is not a database statement's. */
  message?: string;
}

/** How deep the cause chain is followed: knex and the relay wrap an error once or twice. */
const CAUSE_DEPTH = 5;

/** Leading keyword of SQL text, as knex puts it first in a failed query's message. */
const SQL_START = /^\s*(insert|update|delete|select|with|replace|begin|commit|rollback|savepoint|release|create|alter|drop|truncate|set|pragma|show)\b/i;

/** The table a statement works on, by its kind; identifiers only, which are never a caller's. */
const TABLE_OF: Record<string, RegExp> = {
  insert: /^\s*insert\s+(?:ignore\s+|or\s+\w+\s+)?into\s+[`"[]?([\w$.]+)/i,
  replace: /^\s*replace\s+into\s+[`"[]?([\w$.]+)/i,
  update: /^\s*update\s+[`"[]?([\w$.]+)/i,
  delete: /^\s*delete\s+from\s+[`"[]?([\w$.]+)/i,
  select: /\bfrom\s+[`"[]?([\w$.]+)/i,
};

/** SQLSTATE (PostgreSQL), MySQL/MariaDB's ER_ names and SQLite's result codes. */
const DATABASE_CODE = /^(?:[0-9A-Z]{5}|ER_\w+|SQLITE_\w+)$/;

/** The error and its causes, outermost first. */
function chain(error: unknown): object[] {
  const links: object[] = [];
  let current: unknown = error;
  for (let depth = 0; depth < CAUSE_DEPTH && typeof current === 'object' && current !== null; depth++) {
    links.push(current);
    current = (current as { cause?: unknown }).cause;
  }
  return links;
}

/** `insert kling_relay_tasks` for SQL text; the kind alone when no table follows it. */
function statementOf(sql: string): string | undefined {
  const kind = SQL_START.exec(sql)?.[1]?.toLowerCase();
  if (kind === undefined) return undefined;
  const table = TABLE_OF[kind]?.exec(sql)?.[1];
  return table === undefined ? kind : `${kind} ${table}`;
}

/** The SQL a database error carries: the drivers' `sql` property, else the start of knex's message. */
function sqlOf(link: object): string | undefined {
  const sql = (link as { sql?: unknown }).sql;
  if (typeof sql === 'string' && statementOf(sql) !== undefined) return sql;
  // knex's message for a failed query: `<the SQL with its values> - <the driver's message>`.
  const message = (link as { message?: unknown }).message;
  return typeof message === 'string' && message.includes(' - ') && statementOf(message) !== undefined ? message : undefined;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The fields to log for an error, e.g. `logger.error('request failed', { path, error: loggableError(error) })`:
 * for a database error its code and statement kind, never the SQL or the values bound to it.
 */
export function loggableError(error: unknown): LoggedError {
  const links = chain(error);
  let code: string | undefined;
  let statement: string | undefined;
  for (const link of links) {
    const own = (link as { code?: unknown }).code;
    if (code === undefined && typeof own === 'string' && own !== '') code = own;
    const sql = sqlOf(link);
    if (statement === undefined && sql !== undefined) statement = statementOf(sql);
  }
  const fromDatabase = statement !== undefined || (code !== undefined && DATABASE_CODE.test(code)) || links.some((link) => 'sqlState' in link || 'severity' in link);
  const logged: LoggedError = {};
  if (code !== undefined) logged.code = code;
  if (statement !== undefined) logged.statement = statement;
  if (!fromDatabase) logged.message = loggable(messageOf(error));
  return logged;
}

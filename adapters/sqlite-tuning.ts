/**
 * Connection set-up for a better-sqlite3 knex pool (`pool: { afterCreate: sqliteAfterCreate() }`), as
 * the demo host and the benchmark use it and docs/performance.md recommends for SQLite hosts.
 */

/** The part of a better-sqlite3 Database this touches. */
export interface SqliteConnection {
  pragma(sql: string): unknown;
  prepare(sql: string): unknown;
}

/** Prepared statements kept per connection: the relay's statements are a few dozen shapes. */
const STATEMENT_CACHE = 256;

/**
 * knex prepares every statement anew on better-sqlite3, and preparing was a tenth of the relay's CPU
 * time per submit. The relay sends the same few shapes over and over, so each connection keeps its
 * prepared statements by SQL text (oldest dropped past 256). Safe because knex runs a statement to the
 * end (`all()` or `run()`) before it prepares the next one on that connection, and SQLite re-prepares a
 * statement by itself after a schema change. Not for hosts that pass knex's `safeIntegers` query option:
 * it changes the statement, and the change would stick to the cached one.
 */
export function cachePreparedStatements(conn: SqliteConnection): void {
  const prepare = conn.prepare.bind(conn);
  const cache = new Map<string, unknown>();
  conn.prepare = (sql: string) => {
    let statement = cache.get(sql);
    if (statement === undefined) {
      statement = prepare(sql);
      if (cache.size >= STATEMENT_CACHE) cache.delete(cache.keys().next().value as string);
      cache.set(sql, statement);
    }
    return statement;
  };
}

export interface SqliteTuning {
  /** Keep prepared statements per connection (see cachePreparedStatements). Default true. */
  cacheStatements?: boolean;
}

/**
 * The pool's `afterCreate`. WAL lets readers (task queries) run beside the one writer instead of
 * waiting for it, and synchronous=NORMAL syncs the WAL at checkpoints instead of at every commit: a
 * power cut can lose the last commits but never corrupts the file. Then the statement cache above.
 */
export function sqliteAfterCreate(tuning: SqliteTuning = {}): (conn: SqliteConnection, done: (error: Error | null, conn: SqliteConnection) => void) => void {
  return (conn, done) => {
    try {
      conn.pragma('journal_mode = WAL');
      conn.pragma('synchronous = NORMAL');
      if (tuning.cacheStatements ?? true) cachePreparedStatements(conn);
      done(null, conn);
    } catch (error) {
      done(error as Error, conn);
    }
  };
}

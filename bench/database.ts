import knex, { type Knex } from 'knex';

/** The part of a better-sqlite3 Database the pool set-up touches. */
interface SqliteConnection {
  pragma(sql: string): unknown;
  prepare(sql: string): unknown;
}

/** Prepared statements kept per connection; the relay's statements are a few dozen shapes. */
const STATEMENT_CACHE = 256;

/**
 * knex prepares every statement anew on better-sqlite3; the relay sends the same few shapes over and
 * over, so each connection keeps its prepared statements by SQL text. Safe because knex runs a statement
 * to completion (all() or run()) before it prepares the next one on that connection.
 */
function cachePreparedStatements(conn: SqliteConnection): void {
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

/** knex for a bench database: a SQLite file path, or a mysql:// or postgres:// URL. */
export function connect(database: string): Knex {
  if (database.startsWith('mysql://')) return knex({ client: 'mysql2', connection: database, pool: { min: 0, max: 10 } });
  if (database.startsWith('postgres://') || database.startsWith('postgresql://')) return knex({ client: 'pg', connection: database, pool: { min: 0, max: 10 } });
  return knex({
    client: 'better-sqlite3',
    connection: { filename: database },
    useNullAsDefault: true,
    pool: {
      afterCreate: (conn: SqliteConnection, done: (err: Error | null, conn: unknown) => void) => {
        // What docs/performance.md recommends for SQLite hosts: WAL lets readers run beside the writer, and
        // synchronous=NORMAL syncs at checkpoints instead of at every commit (safe against corruption).
        conn.pragma('journal_mode = WAL');
        conn.pragma('synchronous = NORMAL');
        if (process.env.BENCH_NO_STATEMENT_CACHE !== '1') cachePreparedStatements(conn);
        done(null, conn);
      },
    },
  });
}

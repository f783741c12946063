import knex, { type Knex } from 'knex';

/** knex for a bench database: a SQLite file path, or a mysql:// or postgres:// URL. */
export function connect(database: string): Knex {
  if (database.startsWith('mysql://')) return knex({ client: 'mysql2', connection: database, pool: { min: 0, max: 10 } });
  if (database.startsWith('postgres://') || database.startsWith('postgresql://')) return knex({ client: 'pg', connection: database, pool: { min: 0, max: 10 } });
  return knex({
    client: 'better-sqlite3',
    connection: { filename: database },
    useNullAsDefault: true,
    // What docs/performance.md recommends for SQLite hosts: WAL lets readers run beside the writer, and
    // synchronous=NORMAL syncs at checkpoints instead of at every commit (safe against corruption).
    pool: { afterCreate: (conn: { pragma(sql: string): unknown }, done: (err: Error | null, conn: unknown) => void) => {
      conn.pragma('journal_mode = WAL');
      conn.pragma('synchronous = NORMAL');
      done(null, conn);
    } },
  });
}

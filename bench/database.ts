import knex, { type Knex } from 'knex';
import { sqliteAfterCreate } from '../adapters/sqlite-tuning.js';

/** knex for a bench database: a SQLite file path, or a mysql:// or postgres:// URL. */
export function connect(database: string): Knex {
  if (database.startsWith('mysql://')) return knex({ client: 'mysql2', connection: database, pool: { min: 0, max: 10 } });
  if (database.startsWith('postgres://') || database.startsWith('postgresql://')) return knex({ client: 'pg', connection: database, pool: { min: 0, max: 10 } });
  return knex({
    client: 'better-sqlite3',
    connection: { filename: database },
    useNullAsDefault: true,
    // WAL, synchronous=NORMAL and prepared statements kept (BENCH_NO_STATEMENT_CACHE=1 measures without,
    // BENCH_SQLITE_DEFAULTS=1 measures SQLite's own defaults: rollback journal, synchronous=FULL, no cache).
    ...(process.env.BENCH_SQLITE_DEFAULTS === '1' ? {} : { pool: { afterCreate: sqliteAfterCreate({ cacheStatements: process.env.BENCH_NO_STATEMENT_CACHE !== '1', backgroundCheckpoint: process.env.BENCH_NO_BG_CHECKPOINT !== '1' }) } }),
  });
}

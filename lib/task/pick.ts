import { MysqlDirect } from '../../adapters/mysql-direct.js';
import { PgDirect } from '../../adapters/pg-direct.js';
import { DirectSqlite } from '../../adapters/sqlite-direct.js';
import { KnexTaskStorage } from './knex-storage.js';
import { ServerTaskStorage } from './server-storage.js';
import { SqliteTaskStorage } from './sqlite-storage.js';
import type { TaskStorage, TaskStorageParts } from './storage.js';

/** The task storage for the host's database: better-sqlite3's, the server databases' (mysql2, pg), else knex's. */
export function taskStorage(parts: TaskStorageParts): TaskStorage {
  const sqlite = DirectSqlite.for(parts.db);
  if (sqlite) return new SqliteTaskStorage(parts, sqlite);
  const server = MysqlDirect.for(parts.db, parts.store, parts.groupDeadlineMs) ?? PgDirect.for(parts.db, parts.store, parts.groupDeadlineMs);
  return server ? new ServerTaskStorage(parts, server) : new KnexTaskStorage(parts);
}

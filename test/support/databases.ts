import knex, { type Knex } from 'knex';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestDatabase {
  /** 'sqlite' | 'mysql' | 'pg' */
  name: 'sqlite' | 'mysql' | 'pg';
  /** A fresh knex instance; the caller destroys it. */
  connect(): Knex;
}

let sqliteDir: string | undefined;

/**
 * knex's own log, minus the "Connection Error" warnings its pool prints when a connection dies: the
 * reliability suites kill connections on purpose, and the relay's behaviour is what they assert.
 */
const knexLog = {
  warn(message: string) {
    if (!String(message).startsWith('Connection Error')) console.warn(message);
  },
};

function sqliteDatabase(): TestDatabase {
  return {
    name: 'sqlite',
    connect() {
      sqliteDir ??= mkdtempSync(join(tmpdir(), 'kling-relay-test-'));
      const file = join(sqliteDir, `db-${process.pid}-${Math.random().toString(36).slice(2)}.sqlite`);
      return knex({ client: 'better-sqlite3', connection: { filename: file }, useNullAsDefault: true });
    },
  };
}

/**
 * The databases this run can reach: SQLite always, MariaDB when TEST_MYSQL_URL is set, PostgreSQL
 * when TEST_PG_URL is set. Suites loop over this list so that every storage test runs on all three.
 */
export function testDatabases(): TestDatabase[] {
  const list: TestDatabase[] = [sqliteDatabase()];
  const mysqlUrl = process.env.TEST_MYSQL_URL;
  if (mysqlUrl) list.push({ name: 'mysql', connect: () => knex({ client: 'mysql2', connection: mysqlUrl, pool: { min: 0, max: 10 }, log: knexLog }) });
  const pgUrl = process.env.TEST_PG_URL;
  if (pgUrl) list.push({ name: 'pg', connect: () => knex({ client: 'pg', connection: pgUrl, pool: { min: 0, max: 10 }, log: knexLog }) });
  return list;
}

export function skippedDatabases(): string[] {
  const skipped: string[] = [];
  if (!process.env.TEST_MYSQL_URL) skipped.push('MariaDB/MySQL (set TEST_MYSQL_URL)');
  if (!process.env.TEST_PG_URL) skipped.push('PostgreSQL (set TEST_PG_URL)');
  return skipped;
}

import type { Knex } from 'knex';
import { createTableIfAbsent } from './dialect.js';
import { HostTable } from './host-table.js';
import { resolveQuotaStoreOptions } from './quota-store.js';
import type { KnexQuotaStoreOptions } from './quota-store.js';
import type { HostColumn, HostTableOptions } from './types.js';

export interface DefaultHostTablesOptions {
  /** The Video table; `false` to leave it out. Default `{name: 'videos'}`. */
  video?: HostTableOptions | false;
  /** The Image table; `false` to leave it out. Default `{name: 'images'}`. */
  image?: HostTableOptions | false;
  /** The users table; `false` to leave it out. Default `users(id, username, quota, used_quota)`. */
  users?: KnexQuotaStoreOptions | false;
}

/**
 * Creates the host tables a one-api/new-api host would already have: the Video and Image tables of the
 * relay's default column names, and a users table with a balance. For the demo and the tests only; a real host owns its
 * schema, and `migrate()` never calls this. Honours column mappings (a renamed or absent column), so tests
 * can build a host table that differs from the defaults. Tables that exist are left alone.
 */
export async function createDefaultHostTables(db: Knex, options: DefaultHostTablesOptions = {}): Promise<void> {
  if (options.video !== false) await createHostTable(db, new HostTable(options.video ?? { name: 'videos' }, 'video', 'video'));
  if (options.image !== false) await createHostTable(db, new HostTable(options.image ?? { name: 'images' }, 'image', 'image'));
  if (options.users !== false) {
    const users = resolveQuotaStoreOptions(options.users ?? {}, 'users');
    await createTableIfAbsent(db, users.table, (t) => {
      t.increments(users.idColumn).primary();
      if (users.idColumn !== 'username' && users.quotaColumn !== 'username' && users.usedColumn !== 'username') {
        t.string('username', 255).notNullable().defaultTo('');
      }
      t.bigInteger(users.quotaColumn).notNullable().defaultTo(0);
      if (users.usedColumn !== false) t.bigInteger(users.usedColumn).notNullable().defaultTo(0);
    });
  }
}

async function createHostTable(db: Knex, table: HostTable): Promise<void> {
  await createTableIfAbsent(db, table.name, (t) => {
    const column = (logical: HostColumn): string | undefined => table.columns.get(logical);
    const string = (logical: HostColumn): void => {
      const name = column(logical);
      if (name !== undefined) t.string(name, 255).notNullable().defaultTo('');
    };
    const bigint = (logical: HostColumn): void => {
      const name = column(logical);
      if (name !== undefined) t.bigInteger(name).notNullable().defaultTo(0);
    };
    const text = (logical: HostColumn): void => {
      const name = column(logical);
      if (name !== undefined) t.text(name, 'mediumtext').nullable();
    };
    t.increments(column('id')).primary();
    string('task_id');
    const taskId = column('task_id');
    if (taskId !== undefined) t.index([taskId]);
    const userId = column('user_id');
    if (userId !== undefined) t.integer(userId).notNullable().defaultTo(0);
    string('username');
    string('channel_id');
    string('model');
    string('provider');
    string('type');
    string('status');
    bigint('quota');
    string('mode');
    const duration = column('duration');
    if (duration !== undefined) t.integer(duration).notNullable().defaultTo(0);
    text('result');
    text('fail_reason');
    bigint('created_at');
    bigint('updated_at');
  });
}

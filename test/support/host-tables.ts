import type { Knex } from 'knex';
import { createDefaultHostTables } from '../../adapters/host-schema.js';

/** The host tables the schema checks look at, dropped before each case builds its own. */
export const HOST_TABLES = ['videos', 'images', 'users'] as const;

export async function dropHostTables(db: Knex): Promise<void> {
  for (const table of HOST_TABLES) await db.schema.dropTableIfExists(table);
}

/**
 * Host tables a one-api-like host might already have, wrong for the default mapping in five ways:
 * `videos` has no fail_reason, a BIGINT channel_id, a JSON result and a NOT NULL column without a
 * default the relay does not write; `users` keeps its balance as text and has no used_quota.
 * `images` is the default one.
 */
export async function createMismatchedHostTables(db: Knex): Promise<void> {
  await dropHostTables(db);
  await db.schema.createTable('videos', (t) => {
    t.increments('id').primary();
    t.string('task_id', 255).notNullable().defaultTo('');
    t.integer('user_id').notNullable().defaultTo(0);
    t.string('username', 255).notNullable().defaultTo('');
    t.bigInteger('channel_id').notNullable().defaultTo(0);
    for (const name of ['model', 'provider', 'type', 'status', 'mode']) t.string(name, 255).notNullable().defaultTo('');
    t.bigInteger('quota').notNullable().defaultTo(0);
    t.integer('duration').notNullable().defaultTo(0);
    t.json('result');
    t.bigInteger('created_at').notNullable().defaultTo(0);
    t.bigInteger('updated_at').notNullable().defaultTo(0);
    t.string('properties', 255).notNullable();
  });
  await db.schema.createTable('users', (t) => {
    t.increments('id').primary();
    t.string('username', 255).notNullable().defaultTo('');
    t.string('quota', 32).notNullable().defaultTo('0');
  });
  await createDefaultHostTables(db, { video: false, users: false });
}

/** What the relay's check reports for createMismatchedHostTables, in order: `[kind, table, column, option, message]`. */
export function mismatchProblems(dbName: 'sqlite' | 'mysql' | 'pg'): [string, string, string | null, string | null, string][] {
  const users = dbName === 'pg' ? 'character varying' : 'varchar';
  return [
    [
      'type',
      'videos',
      'channel_id',
      'tables.video.columns.channel_id',
      "videos.channel_id is bigint, but the relay writes the Kling account id (text, e.g. 'main') into it (tables.video.columns.channel_id): map channel_id to a text column or to false, give every account its integer channelId, or change the column's type.",
    ],
    [
      'json',
      'videos',
      'result',
      'tables.video.columns.result',
      "videos.result is a JSON column, but the relay writes '' into it when it records a task (tables.video.columns.result), which is not JSON: map result to a text column or to false (the result stays in kling_relay_tasks and the caller's query), set tables.video.resultColumn to 'json', or change the column to TEXT.",
    ],
    [
      'missing-column',
      'videos',
      'fail_reason',
      'tables.video.columns.fail_reason',
      "videos.fail_reason does not exist (tables.video.columns.fail_reason): map fail_reason to the host's column, or to false when the table has none.",
    ],
    [
      'not-null',
      'videos',
      'properties',
      null,
      'videos.properties is NOT NULL without a default, and the relay does not write it, so every insert fails: give it a default, allow NULL, or map the logical column that belongs there to it (tables.video.columns).',
    ],
    [
      'type',
      'users',
      'quota',
      'quota.quotaColumn',
      `users.quota is ${users}, but the relay adds quota to it and takes quota from it (quota.quotaColumn): it must be a numeric column (bigint).`,
    ],
    ['missing-column', 'users', 'used_quota', 'quota.usedColumn', 'users.used_quota does not exist (quota.usedColumn): set quota.usedColumn to the column holding the used quota, or false when it keeps none.'],
  ];
}

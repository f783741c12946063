import type { Knex } from 'knex';
import { KlingRelayConfigError } from '../lib/errors.js';
import { assertIdentifier } from './identifiers.js';
import type { Template, TemplateSource } from './statement-template.js';
import { OUTBOX_INDEX_SUFFIXES, OutboxStore } from './outbox-store.js';
import { addColumnIfAbsent, addIndexIfAbsent, affectedRows, createTableIfAbsent, dialectOf, indexExists, insertReturningId, isUniqueViolation, toNumber, toNumberOrNull, toStringOrNull } from './dialect.js';
import { ACTIVE_STATES, SENT_STATES } from '../lib/task/states.js';
import type { LedgerKind, LedgerRow, NewRelayTask, RelayTask, TaskState } from './types.js';

export { isUniqueViolation } from './dialect.js';

/** Where migrate reports what it could not do and what it did instead. */
export interface MigrateLogger {
  warn(message: string, fields?: Record<string, unknown>): void;
}

/** Which of a user's tasks `pageForUser` reads. */
export interface TaskPageQuery {
  endpoints: readonly string[];
  /** Only tasks in these states; all states when absent. */
  states?: readonly TaskState[];
  /** Created within [start, end], unix ms. */
  start: number;
  end: number;
  /** The last task of the previous page. */
  after?: { createdAt: number; id: number };
  limit: number;
}

export interface RelayStoreOptions {
  /** Prefix of the relay's own tables. Default `kling_relay_`. */
  prefix?: string;
}

/** A balance movement to record; `created_at` defaults to now. */
export interface NewLedgerRow {
  task_id: number;
  user_id: string;
  kind: LedgerKind;
  amount: number;
  created_at?: number;
}

/** Which kind of Kling resource a recorded id is (the account that created it must serve later calls). */
export type ResourceKind = 'video' | 'session' | 'audio' | 'element' | 'voice' | 'task' | (string & {});

type Db = Knex | Knex.Transaction;

// A record, not a list, so that the compiler insists on every RelayTask field.
const TASK_COLUMN_SET: Record<keyof RelayTask, true> = {
  id: true,
  external_task_id: true,
  client_task_id: true,
  request_hash: true,
  kling_task_id: true,
  account_id: true,
  endpoint: true,
  client_endpoint: true,
  request_type: true,
  table_kind: true,
  host_row_id: true,
  user_id: true,
  state: true,
  billing: true,
  hold_quota: true,
  charge_quota: true,
  model: true,
  slots: true,
  pricing: true,
  status_msg: true,
  result: true,
  deductions: true,
  kling_created_at: true,
  kling_updated_at: true,
  client_callback_url: true,
  queued_body: true,
  lease_owner: true,
  lease_until: true,
  next_check_at: true,
  check_count: true,
  checked_at: true,
  created_at: true,
  updated_at: true,
};
const TASK_COLUMNS = Object.keys(TASK_COLUMN_SET) as (keyof RelayTask)[];

/** The columns a new task row is written with: all but the id the database assigns. */
const NEW_TASK_COLUMNS = TASK_COLUMNS.filter((column): column is keyof NewRelayTask => column !== 'id');

function ledgerRow(entry: NewLedgerRow): Record<string, unknown> {
  return {
    task_id: entry.task_id,
    user_id: String(entry.user_id),
    kind: entry.kind,
    amount: entry.amount,
    terminal: entry.kind === 'hold' ? null : 1,
    created_at: entry.created_at ?? Date.now(),
  };
}

const NUMBER_COLUMNS = new Set<string>(['id', 'hold_quota', 'slots', 'check_count', 'created_at', 'updated_at']);
const NULLABLE_NUMBER_COLUMNS = new Set<string>(['charge_quota', 'kling_created_at', 'kling_updated_at', 'lease_until', 'next_check_at', 'checked_at']);
const STRING_COLUMNS = new Set<string>(['host_row_id', 'user_id']);

/** Longest suffix the store appends to the prefix, for table and index names alike. */
const LONGEST_SUFFIX = 'resources';
const INDEX_SUFFIXES = ['tasks_due', 'tasks_user_list', 'tasks_kling_id', 'tasks_user_client', 'tasks_client_once', 'tasks_user_kling', 'ledger_user', 'ledger_task_kind', 'ledger_task_terminal', ...OUTBOX_INDEX_SUFFIXES];

/**
 * The columns holding ids (callers', Kling's, accounts', resources'), by table suffix. They must compare
 * byte for byte: MariaDB's and MySQL's default collations fold case and accents and ignore trailing
 * spaces, so `ALICE`, `alíce` and `alice ` would all read `alice`'s rows.
 */
const ID_COLUMNS: Record<string, readonly string[]> = {
  tasks: ['external_task_id', 'client_task_id', 'kling_task_id', 'account_id', 'host_row_id', 'user_id', 'lease_owner'],
  ledger: ['user_id'],
  resources: ['resource_id', 'account_id', 'user_id'],
};

/**
 * A binary NO PAD collation of utf8mb4: MariaDB's utf8mb4_nopad_bin or MySQL 8's utf8mb4_0900_bin
 * (utf8mb4_bin is PAD SPACE: 'alice ' = 'alice' there). MariaDB's own name first: migrate compares
 * the name a column reports with this one, and a MariaDB that also knows the MySQL name may know it as
 * an alias, reported under another name. Versions with neither get utf8mb4_bin, exact but for trailing
 * spaces.
 */
async function exactCollation(db: Knex): Promise<string> {
  const rows = (await db('information_schema.collations').select('collation_name as name').whereIn('collation_name', ['utf8mb4_0900_bin', 'utf8mb4_nopad_bin'])) as { name: string }[];
  const names = rows.map((row) => row.name);
  return names.find((name) => name === 'utf8mb4_nopad_bin') ?? names[0] ?? 'utf8mb4_bin';
}

/**
 * Gives the id columns of a MySQL table the exact collation where they have another one (tables an
 * earlier version created with the database's default): one ALTER per table, keeping each column's
 * type and nullability; MySQL rebuilds the indexes over them.
 */
async function exactIdCollations(db: Knex, table: string, columns: readonly string[], collation: string): Promise<void> {
  const found = (await db('information_schema.columns')
    .select('column_name as name', 'column_type as type', 'is_nullable as nullable', 'collation_name as collation')
    .where({ table_schema: db.raw('DATABASE()'), table_name: table })
    .whereIn('column_name', [...columns])) as { name: string; type: string; nullable: string; collation: string | null }[];
  const wrong = found.filter((column) => column.collation !== collation);
  if (wrong.length === 0) return;
  const changes = wrong.map((column) => `MODIFY ?? ${column.type} CHARACTER SET utf8mb4 COLLATE ${collation} ${column.nullable === 'YES' ? 'NULL' : 'NOT NULL'}`);
  await db.raw(`ALTER TABLE ?? ${changes.join(', ')}`, [table, ...wrong.map((column) => column.name)]);
}

/**
 * The relay's own tables: tasks (what the host tables cannot hold), the ledger (one row per balance
 * movement, its unique keys the last guard against a double settle), and resources (which Kling
 * account created a video, session, audio or element id), with the outbox of callers' callback notices
 * beside them (`outbox`, migrated with them). Every method takes the knex instance or the
 * transaction to run in. Times are unix milliseconds.
 */
export class RelayStore {
  readonly prefix: string;
  readonly tables: { readonly tasks: string; readonly ledger: string; readonly resources: string; readonly outbox: string };
  /** The outbox of notices to callers' callback URLs, under the same prefix. */
  readonly outbox: OutboxStore;

  constructor(options: RelayStoreOptions = {}, optionName = 'tablePrefix') {
    const prefix = options.prefix ?? 'kling_relay_';
    assertIdentifier(prefix, optionName);
    // Every derived name must fit PostgreSQL's 63-character limit, or it would be cut silently there.
    const longest = [LONGEST_SUFFIX, ...INDEX_SUFFIXES].reduce((a, b) => (b.length > a.length ? b : a));
    if (prefix.length + longest.length > 63) {
      throw new KlingRelayConfigError(
        'ERR_KLING_RELAY_IDENTIFIER',
        `${optionName} "${prefix}" is too long: the relay derives names like "${prefix}${longest}", and they must fit in 63 characters. ` +
          `Use a prefix of at most ${63 - longest.length} characters.`,
      );
    }
    this.prefix = prefix;
    this.outbox = new OutboxStore(prefix);
    this.tables = { tasks: `${prefix}tasks`, ledger: `${prefix}ledger`, resources: `${prefix}resources`, outbox: this.outbox.table };
  }

  /**
   * Creates the relay's tables when absent, and brings tables an earlier version created up to date.
   * Safe to run on every start; never touches host tables. `logger` hears what could not be migrated.
   */
  async migrate(db: Knex, logger?: MigrateLogger): Promise<void> {
    const p = this.prefix;
    const collation = dialectOf(db) === 'mysql' ? await exactCollation(db) : undefined;
    // Ids compare byte for byte; SQLite's and PostgreSQL's default comparisons already do.
    const exact = (column: Knex.ColumnBuilder): Knex.ColumnBuilder => (collation === undefined ? column : column.collate(collation));
    await createTableIfAbsent(db, this.tables.tasks, (t) => {
      t.increments('id').primary();
      exact(t.string('external_task_id', 191)).notNullable().unique({ indexName: `${p}tasks_external_id` });
      exact(t.string('client_task_id', 191)).nullable();
      t.string('request_hash', 64).nullable();
      exact(t.string('kling_task_id', 191)).nullable();
      exact(t.string('account_id', 191)).notNullable();
      t.string('endpoint', 191).notNullable();
      t.string('client_endpoint', 191).nullable();
      t.string('request_type', 64).notNullable();
      t.string('table_kind', 16).notNullable();
      exact(t.string('host_row_id', 64)).notNullable();
      exact(t.string('user_id', 64)).notNullable();
      t.string('state', 16).notNullable();
      t.string('billing', 32).notNullable();
      t.bigInteger('hold_quota').notNullable().defaultTo(0);
      t.bigInteger('charge_quota').nullable();
      t.string('model', 191).notNullable().defaultTo('');
      t.integer('slots').notNullable().defaultTo(1);
      t.string('pricing', 191).notNullable().defaultTo('');
      t.text('status_msg').nullable();
      // MySQL's TEXT stops at 64 KB; a task_result with many URLs can pass that.
      t.text('result', 'mediumtext').nullable();
      t.text('deductions').nullable();
      t.bigInteger('kling_created_at').nullable();
      t.bigInteger('kling_updated_at').nullable();
      t.text('client_callback_url').nullable();
      // A request body may carry base64 images: MySQL's MEDIUMTEXT stops at 16 MB.
      t.text('queued_body', 'longtext').nullable();
      exact(t.string('lease_owner', 191)).nullable();
      t.bigInteger('lease_until').nullable();
      t.bigInteger('next_check_at').nullable();
      t.integer('check_count').notNullable().defaultTo(0);
      t.bigInteger('checked_at').nullable();
      t.bigInteger('created_at').notNullable();
      t.bigInteger('updated_at').notNullable();
      t.index(['state', 'next_check_at'], `${p}tasks_due`);
      t.index(['user_id', 'endpoint', 'created_at'], `${p}tasks_user_list`);
      t.index(['kling_task_id'], `${p}tasks_kling_id`);
      t.index(['user_id', 'kling_task_id'], `${p}tasks_user_kling`);
    });
    await addColumnIfAbsent(db, this.tables.tasks, 'request_hash', (t) => void t.string('request_hash', 64).nullable());
    await addColumnIfAbsent(db, this.tables.tasks, 'deductions', (t) => void t.text('deductions').nullable());
    await addColumnIfAbsent(db, this.tables.tasks, 'slots', (t) => void t.integer('slots').notNullable().defaultTo(1));
    await addColumnIfAbsent(db, this.tables.tasks, 'client_endpoint', (t) => void t.string('client_endpoint', 191).nullable());
    await addColumnIfAbsent(db, this.tables.tasks, 'queued_body', (t) => void t.text('queued_body', 'longtext').nullable());
    // A caller's tasks waiting or running (the queue's per-caller limit), without a walk over its history.
    await addIndexIfAbsent(db, this.tables.tasks, ['user_id', 'state'], `${p}tasks_user_state`);
    await createTableIfAbsent(db, this.tables.ledger, (t) => {
      t.increments('id').primary();
      t.integer('task_id').notNullable();
      exact(t.string('user_id', 64)).notNullable();
      t.string('kind', 16).notNullable();
      t.bigInteger('amount').notNullable();
      // 1 for settle and refund, NULL for hold: UNIQUE(task_id, terminal) then allows one final movement
      // per task, whichever kind, because NULLs never collide on SQLite, MySQL and PostgreSQL.
      t.smallint('terminal').nullable();
      t.bigInteger('created_at').notNullable();
      t.unique(['task_id', 'kind'], { indexName: `${p}ledger_task_kind` });
      t.unique(['task_id', 'terminal'], { indexName: `${p}ledger_task_terminal` });
      t.index(['user_id'], `${p}ledger_user`);
    });
    await createTableIfAbsent(db, this.tables.resources, (t) => {
      exact(t.string('resource_id', 191)).primary();
      t.string('kind', 32).notNullable();
      exact(t.string('account_id', 191)).notNullable();
      // Who created the resource: only that caller may name it. NULL in rows recorded before the column.
      exact(t.string('user_id', 64)).nullable();
      t.bigInteger('created_at').notNullable();
    });
    await this.outbox.migrate(db);
    await addColumnIfAbsent(db, this.tables.resources, 'user_id', (t) => void exact(t.string('user_id', 64)).nullable());
    // MySQL's createTableIfAbsent adds the indexes an existing table lacks; here the same for the others.
    if (collation === undefined) await db.raw('CREATE INDEX IF NOT EXISTS ?? ON ?? (??, ??)', [`${p}tasks_user_kling`, this.tables.tasks, 'user_id', 'kling_task_id']);
    if (collation !== undefined) {
      for (const [suffix, columns] of Object.entries(ID_COLUMNS)) await exactIdCollations(db, `${p}${suffix}`, columns, collation);
    }
    // After the collations: ids that differ only in case or accents are distinct once compared exactly.
    await this.migrateClientIdIndex(db, logger);
  }

  /**
   * UNIQUE(user_id, client_task_id), so that two submits of one caller with one external_task_id
   * cannot both create a task; NULLs never collide on SQLite, MySQL and PostgreSQL, so tasks without
   * the caller's id are not limited. It replaces the plain index of earlier versions. Should a table
   * hold duplicates from before, the unique index cannot be built: the plain index stays, the
   * logger hears of it, and concurrent duplicates are then not refused by the database.
   */
  private async migrateClientIdIndex(db: Knex, logger: MigrateLogger | undefined): Promise<void> {
    const table = this.tables.tasks;
    const unique = `${this.prefix}tasks_client_once`;
    const plain = `${this.prefix}tasks_user_client`;
    if (!(await indexExists(db, table, unique))) {
      try {
        await db.schema.alterTable(table, (t) => void t.unique(['user_id', 'client_task_id'], { indexName: unique }));
      } catch (error) {
        if (await indexExists(db, table, unique)) {
          // Another instance built it at the same moment.
        } else if (isUniqueViolation(error)) {
          logger?.warn('kling_relay_tasks has tasks of one user sharing an external_task_id; the index that makes resent submits safe under concurrency was not built', { table, index: unique });
          if (!(await indexExists(db, table, plain))) await db.schema.alterTable(table, (t) => void t.index(['user_id', 'client_task_id'], plain));
          return;
        } else {
          throw error;
        }
      }
    }
    if (await indexExists(db, table, plain)) {
      try {
        await db.schema.alterTable(table, (t) => void t.dropIndex(['user_id', 'client_task_id'], plain));
      } catch (error) {
        if (await indexExists(db, table, plain)) throw error;
      }
    }
  }

  // ---- tasks ----

  /** This user's task submitted with this external_task_id of its own, if any. */
  async findByClientId(db: Db, userId: string, clientTaskId: string): Promise<RelayTask | undefined> {
    return this.one(db(this.tables.tasks).where({ user_id: String(userId), client_task_id: clientTaskId }).orderBy('id', 'asc'));
  }

  async insertTask(trx: Db, task: NewRelayTask): Promise<number> {
    const row: Record<string, unknown> = {};
    for (const column of NEW_TASK_COLUMNS) row[column] = task[column];
    return Number(await insertReturningId(trx, this.tables.tasks, 'id', row));
  }

  /** The insert of a task as a template of the direct writes; run it with the task. */
  insertTaskTemplate(direct: TemplateSource): Template {
    return direct.template(`${this.tables.tasks}:insert`, (param) => direct.db(this.tables.tasks).insert(Object.fromEntries(NEW_TASK_COLUMNS.map((c) => [c, param(c)]))));
  }

  async getTask(db: Db, id: number): Promise<RelayTask | undefined> {
    return this.one(db(this.tables.tasks).where('id', id));
  }

  async getByExternalId(db: Db, externalTaskId: string): Promise<RelayTask | undefined> {
    return this.one(db(this.tables.tasks).where('external_task_id', externalTaskId));
  }

  /** The newest task carrying Kling's task id, in one host table when `tableKind` is given. */
  async getByKlingTaskId(db: Db, klingTaskId: string, tableKind?: 'video' | 'image'): Promise<RelayTask | undefined> {
    const query = db(this.tables.tasks).where('kling_task_id', klingTaskId);
    if (tableKind) void query.andWhere('table_kind', tableKind);
    return this.one(query.orderBy('id', 'desc'));
  }

  /**
   * One task of this user, by Kling's task id, the caller's own external_task_id, or the relay's
   * external_task_id (the id a task that waited for a slot was answered with), newest first. Never
   * another user's: the user filter is part of the query, not a check afterwards. Two lookups, each
   * served by an index that names the task ((user_id, kling_task_id), (user_id, client_task_id), and the
   * unique external_task_id): an OR
   * across both columns, an ORDER BY or an endpoint filter in the query would let SQLite pick
   * (user_id, endpoint, created_at) instead and walk every task of the caller. An id names one task
   * (or a few), so the endpoint (the one the caller posted to) and the order are applied to the matches here.
   */
  async findForUser(db: Db, userId: string, idOrClientId: string, endpoint?: string): Promise<RelayTask | undefined> {
    const matches = async (column: 'kling_task_id' | 'client_task_id' | 'external_task_id'): Promise<RelayTask[]> => {
      const rows: unknown[] = await db(this.tables.tasks).select(TASK_COLUMNS).where('user_id', String(userId)).andWhere(column, idOrClientId);
      return rows.map((row) => toTask(row as Record<string, unknown>));
    };
    const found = [...(await matches('kling_task_id')), ...(await matches('client_task_id')), ...(await matches('external_task_id'))].filter((task) => endpoint === undefined || (task.client_endpoint ?? task.endpoint) === endpoint);
    return found.reduce<RelayTask | undefined>((newest, task) => (newest === undefined || task.created_at > newest.created_at || (task.created_at === newest.created_at && task.id > newest.id) ? task : newest), undefined);
  }

  /**
   * The sum of the estimates (`hold_quota`) of this user's charge-on-success tasks not yet final:
   * quota the user will be charged at most once they succeed, which no balance movement shows yet.
   */
  async inFlightEstimate(db: Db, userId: string): Promise<number> {
    const row: unknown = await db(this.tables.tasks)
      .sum({ total: 'hold_quota' })
      .where('user_id', String(userId))
      .whereIn('state', ACTIVE_STATES)
      .andWhere('billing', 'charge-on-success')
      .first();
    return toNumber((row as { total?: unknown } | undefined)?.total);
  }

  /** A page of this user's tasks of one endpoint as the caller posted them (`client_endpoint`, else `endpoint`), newest first. `pageNum` starts at 1. */
  async listForUser(db: Db, userId: string, endpoint: string, pageNum: number, pageSize: number): Promise<RelayTask[]> {
    const size = Math.max(1, Math.floor(pageSize));
    const page = Math.max(1, Math.floor(pageNum));
    const rows: unknown[] = await db(this.tables.tasks)
      .select(TASK_COLUMNS)
      .where('user_id', String(userId))
      // A translated task's endpoint is another family's path, so the two never match one path together.
      .andWhere((q) => void q.where('endpoint', endpoint).orWhere('client_endpoint', endpoint))
      .orderBy([{ column: 'created_at', order: 'desc' }, { column: 'id', order: 'desc' }])
      .limit(size)
      .offset((page - 1) * size);
    return rows.map((row) => toTask(row as Record<string, unknown>));
  }

  /**
   * A page of this user's tasks of these endpoints created in [start, end], newest first by
   * (created_at, id), strictly after `after` in that order when given: a keyset page, so tasks made or
   * finished between two pages neither repeat nor skip a task. `states` narrows to those states.
   * Served by the (user_id, endpoint, created_at) index.
   */
  async pageForUser(db: Db, userId: string, page: TaskPageQuery): Promise<RelayTask[]> {
    if (page.endpoints.length === 0 || page.states?.length === 0) return [];
    const query = db(this.tables.tasks)
      .select(TASK_COLUMNS)
      .where('user_id', String(userId))
      .whereIn('endpoint', page.endpoints)
      // A /v1 request served through the standard family is the caller's /v1 task.
      .whereNull('client_endpoint')
      .andWhere('created_at', '>=', page.start)
      .andWhere('created_at', '<=', page.end);
    if (page.states) void query.whereIn('state', page.states);
    const after = page.after;
    if (after) void query.andWhere((older) => void older.where('created_at', '<', after.createdAt).orWhere((tie) => void tie.where('created_at', after.createdAt).andWhere('id', '<', after.id)));
    const rows: unknown[] = await query.orderBy([{ column: 'created_at', order: 'desc' }, { column: 'id', order: 'desc' }]).limit(Math.max(1, Math.floor(page.limit)));
    return rows.map((row) => toTask(row as Record<string, unknown>));
  }

  /**
   * Compare-and-set: writes `patch` only while the task is in one of `expectedStates` (when given), in
   * the same statement as the check, so of two racing transitions exactly one wins. Sets `updated_at` to
   * now unless the patch has one. Returns whether the row changed.
   */
  async updateTask(trx: Db, id: number, patch: Partial<NewRelayTask>, expectedStates?: readonly TaskState[]): Promise<boolean> {
    if (expectedStates !== undefined && expectedStates.length === 0) return false;
    const values: Record<string, unknown> = {};
    for (const [column, value] of Object.entries(patch)) {
      if (column === 'id' || value === undefined) continue;
      if (!(TASK_COLUMNS as readonly string[]).includes(column)) throw new Error(`kling_relay_tasks has no column ${column}`);
      values[column] = value;
    }
    values.updated_at ??= Date.now();
    const query = trx(this.tables.tasks).where('id', id);
    if (expectedStates !== undefined) query.whereIn('state', expectedStates);
    return affectedRows(await query.update(values)) > 0;
  }

  /**
   * `updateTask` as a template of the direct writes, for a patch of these columns (plus
   * `updated_at`) and, when `expectedStates` is given, only from those states. Run it with
   * `updateTaskValues`.
   */
  updateTaskTemplate(direct: TemplateSource, columns: readonly (keyof NewRelayTask)[], expectedStates?: readonly TaskState[]): Template {
    if (expectedStates !== undefined && expectedStates.length === 0) throw new Error('updateTaskTemplate: expectedStates is empty, so nothing may change');
    const set = [...new Set([...columns, 'updated_at' as const])];
    const key = `${this.tables.tasks}:update:${set.join(',')}:${expectedStates?.join(',') ?? '*'}`;
    return direct.template(key, (param) => {
      for (const column of set) if (!(NEW_TASK_COLUMNS as readonly string[]).includes(column)) throw new Error(`kling_relay_tasks has no column ${column} to update`);
      const query = direct.db(this.tables.tasks).where('id', param('id'));
      if (expectedStates !== undefined) void query.whereIn('state', expectedStates.map((_, i) => param(`expected_state_${i}`)));
      return query.update(Object.fromEntries(set.map((c) => [c, param(c)])));
    });
  }

  /** The values `updateTaskTemplate`'s template binds. */
  updateTaskValues(id: number, patch: Partial<NewRelayTask>, expectedStates?: readonly TaskState[]): Record<string, unknown> {
    const values: Record<string, unknown> = { ...patch, id };
    values.updated_at ??= Date.now();
    expectedStates?.forEach((state, i) => (values[`expected_state_${i}`] = state));
    return values;
  }

  // ---- ledger ----

  /**
   * Records one balance movement. A second movement of the same kind, or a second final one (settle after
   * refund, refund after settle), is refused by the database: the error satisfies `isUniqueViolation`.
   */
  async addLedger(trx: Db, entry: NewLedgerRow): Promise<number> {
    return Number(await insertReturningId(trx, this.tables.ledger, 'id', ledgerRow(entry)));
  }

  /** The insert of a balance movement as a template of the direct writes; run it with `ledgerValues(entry)`. */
  addLedgerTemplate(direct: TemplateSource): Template {
    return direct.template(`${this.tables.ledger}:insert`, (param) =>
      direct.db(this.tables.ledger).insert(Object.fromEntries(Object.keys(ledgerRow({ task_id: 0, user_id: '', kind: 'hold', amount: 0 })).map((c) => [c, param(c)]))),
    );
  }

  /** The values `addLedgerTemplate`'s template binds. */
  ledgerValues(entry: NewLedgerRow): Record<string, unknown> {
    return ledgerRow(entry);
  }

  async ledgerFor(db: Db, taskId: number): Promise<LedgerRow[]> {
    const rows: unknown[] = await db(this.tables.ledger)
      .select('id', 'task_id', 'user_id', 'kind', 'amount', 'created_at')
      .where('task_id', taskId)
      .orderBy('id', 'asc');
    return rows.map((raw) => {
      const row = raw as Record<string, unknown>;
      return {
        id: toNumber(row.id),
        task_id: toNumber(row.task_id),
        user_id: String(row.user_id),
        kind: row.kind as LedgerKind,
        amount: toNumber(row.amount),
        created_at: toNumber(row.created_at),
      };
    });
  }

  /** The sum of a user's movements: its quota minus its quota before the relay's first movement. */
  async ledgerSum(db: Db, userId: string): Promise<number> {
    const row: unknown = await db(this.tables.ledger).sum({ total: 'amount' }).where('user_id', String(userId)).first();
    return toNumber((row as { total?: unknown } | undefined)?.total);
  }

  // ---- reconciler ----

  /**
   * Claims up to `limit` due tasks (sent to Kling and not final, `next_check_at <= now`, lease free or expired) for
   * `owner` until `now + leaseMs`. The claim is one conditional UPDATE of the batch whose rows only one
   * instance can each win, the same statement on every database (no SKIP LOCKED); the answer holds
   * only the tasks won, oldest due first.
   */
  async claimDue(db: Db, owner: string, now: number, leaseMs: number, limit: number): Promise<RelayTask[]> {
    const leaseFree = (q: Knex.QueryBuilder): void => {
      q.whereNull('lease_until').orWhere('lease_until', '<', now);
    };
    // The states listed rather than `NOT IN (final)`, so that the (state, next_check_at) index serves.
    const candidates: unknown[] = await db(this.tables.tasks)
      .select('id')
      .whereIn('state', SENT_STATES)
      .andWhere('next_check_at', '<=', now)
      .andWhere(leaseFree)
      .orderBy([{ column: 'next_check_at', order: 'asc' }, { column: 'id', order: 'asc' }])
      .limit(Math.max(0, Math.floor(limit)));
    const ids = candidates.map((candidate) => toNumber((candidate as { id: unknown }).id));
    if (ids.length === 0) return [];
    const until = now + leaseMs;
    // One statement for the batch (one commit, not one per task): each row is leased only while it is
    // still due and free, so of owners claiming at once each row goes to one. The rows this owner won
    // are those now carrying this lease; an owner claims one batch at a time.
    await db(this.tables.tasks).whereIn('id', ids).whereIn('state', SENT_STATES).andWhere(leaseFree).update({ lease_owner: owner, lease_until: until });
    const rows: unknown[] = await db(this.tables.tasks).select(TASK_COLUMNS).whereIn('id', ids).andWhere({ lease_owner: owner, lease_until: until });
    const byId = new Map(rows.map((raw) => toTask(raw as Record<string, unknown>)).map((task) => [task.id, task]));
    return ids.map((id) => byId.get(id)).filter((task): task is RelayTask => task !== undefined);
  }

  /** Gives a claimed task back, due again at `nextCheckAt` (null: not due). Only the lease owner can. */
  async releaseLease(db: Db, id: number, owner: string, nextCheckAt: number | null): Promise<boolean> {
    const changed = await db(this.tables.tasks)
      .where({ id, lease_owner: owner })
      .update({ lease_owner: null, lease_until: null, next_check_at: nextCheckAt });
    return affectedRows(changed) > 0;
  }

  // ---- queue ----

  /** How many tasks wait for a free Kling slot: of every caller, or of one model version and pack type. */
  async queuedCount(db: Db, of?: { pack: string; model: string }): Promise<number> {
    const query = db(this.tables.tasks).count({ n: '*' }).where('state', 'queued');
    if (of) void query.andWhere({ table_kind: of.pack, model: of.model });
    const row: unknown = await query.first();
    return toNumber((row as { n?: unknown } | undefined)?.n);
  }

  /** How many of this user's tasks wait for a slot or run (queued, pending, submitted, processing). */
  async activeCount(db: Db, userId: string): Promise<number> {
    const row: unknown = await db(this.tables.tasks).count({ n: '*' }).where('user_id', String(userId)).whereIn('state', ACTIVE_STATES).first();
    return toNumber((row as { n?: unknown } | undefined)?.n);
  }

  /**
   * Queued tasks in the order a fair dispatcher offers them, in rounds: each caller's oldest first,
   * then each caller's second oldest, and so on, up to `perCaller` each. Within a round, callers Kling
   * accepted fewer tasks of since their oldest queued task was queued come first, then those with fewer
   * tasks running, then the one whose oldest task waits longest. One caller's backlog thus never stands
   * before another caller's first task: each task of it sent moves the caller back. `maxWaitMs` bounds
   * how far back a caller's tasks are read (older ones left the queue by then).
   */
  async queuedRound(db: Db, callers: number, perCaller: number, maxWaitMs: number): Promise<RelayTask[]> {
    const heads = (await db(this.tables.tasks).select('user_id').min({ first: 'id' }).where('state', 'queued').groupBy('user_id').orderBy('first', 'asc').limit(callers)) as { user_id: unknown; first: unknown }[];
    const order: { user: string; first: number; served: number; runs: number }[] = [];
    for (const head of heads) {
      const user = String(head.user_id);
      const first = toNumber(head.first);
      const since = toNumber(((await db(this.tables.tasks).select('created_at').where('id', first).first()) as { created_at?: unknown } | undefined)?.created_at);
      const counts = (await db(this.tables.tasks)
        .where('user_id', user)
        .andWhere('created_at', '>=', since - maxWaitMs)
        .select(db.raw('SUM(CASE WHEN kling_created_at >= ? THEN 1 ELSE 0 END) AS served', [since]), db.raw(`SUM(CASE WHEN state IN (${SENT_STATES.map(() => '?').join(', ')}) THEN 1 ELSE 0 END) AS runs`, [...SENT_STATES]))
        .first()) as { served?: unknown; runs?: unknown } | undefined;
      order.push({ user, first, served: toNumber(counts?.served), runs: toNumber(counts?.runs) });
    }
    order.sort((x, y) => x.served - y.served || x.runs - y.runs || x.first - y.first);
    const lines: RelayTask[][] = [];
    for (const { user } of order) {
      const rows: unknown[] = await db(this.tables.tasks).select(TASK_COLUMNS).where({ state: 'queued', user_id: user }).orderBy('id', 'asc').limit(perCaller);
      lines.push(rows.map((row) => toTask(row as Record<string, unknown>)));
    }
    const round: RelayTask[] = [];
    for (let i = 0; i < perCaller; i++) for (const line of lines) if (line[i]) round.push(line[i] as RelayTask);
    return round;
  }

  /** Ids of up to `limit` tasks queued since before `before`, oldest first. */
  async queuedBefore(db: Db, before: number, limit: number): Promise<number[]> {
    const rows = (await db(this.tables.tasks).select('id').where('state', 'queued').andWhere('created_at', '<', before).orderBy('id', 'asc').limit(limit)) as { id: unknown }[];
    return rows.map((row) => toNumber(row.id));
  }

  /** Slots in use per account, model version and pack type: the sent tasks' slots, as `slotsInUse` counts them. */
  async slotsByAccount(db: Db): Promise<{ accountId: string; model: string; pack: 'video' | 'image'; inUse: number }[]> {
    const rows = (await db(this.tables.tasks)
      .select('account_id', 'model', 'table_kind')
      .sum({ used: 'slots' })
      .whereIn('state', SENT_STATES)
      .groupBy('account_id', 'model', 'table_kind')) as { account_id: unknown; model: unknown; table_kind: unknown; used: unknown }[];
    return rows.map((row) => ({ accountId: String(row.account_id), model: String(row.model), pack: row.table_kind === 'image' ? 'image' : 'video', inUse: toNumber(row.used) }));
  }

  /** When the oldest queued task was recorded; undefined when none waits. */
  async oldestQueuedAt(db: Db): Promise<number | undefined> {
    const row: unknown = await db(this.tables.tasks).min({ at: 'created_at' }).where('state', 'queued').first();
    return toNumberOrNull((row as { at?: unknown } | undefined)?.at) ?? undefined;
  }

  // ---- resources ----

  /**
   * Remembers which account created a Kling resource id, and for which caller. The first record wins;
   * duplicates are ignored.
   */
  async recordResource(db: Db, resourceId: string, kind: ResourceKind, accountId: string, userId: string): Promise<void> {
    await db(this.tables.resources)
      .insert({ resource_id: resourceId, kind, account_id: accountId, user_id: String(userId), created_at: Date.now() })
      .onConflict('resource_id')
      .ignore();
  }

  /**
   * For ids a request names: the account that created the first of them the relay knows (undefined
   * when it knows none), and the first of them another caller created (undefined when none). Rows
   * recorded before the owner column existed belong to no one and serve every caller.
   */
  async accountForResources(db: Db, ids: readonly string[], userId: string): Promise<{ account: string | undefined; foreign: string | undefined }> {
    const wanted = [...new Set(ids.filter((id) => typeof id === 'string' && id !== ''))];
    if (wanted.length === 0) return { account: undefined, foreign: undefined };
    const rows = (await db(this.tables.resources).select('resource_id', 'account_id', 'user_id').whereIn('resource_id', wanted)) as Record<string, unknown>[];
    const byId = new Map(rows.map((row) => [String(row.resource_id), { account: String(row.account_id), user: toStringOrNull(row.user_id) }]));
    const known = wanted.map((id) => [id, byId.get(id)] as const).filter((pair): pair is readonly [string, { account: string; user: string | null }] => pair[1] !== undefined);
    const foreign = known.find(([, owner]) => owner.user !== null && owner.user !== String(userId))?.[0];
    return { account: known[0]?.[1].account, foreign };
  }

  private async one(query: Knex.QueryBuilder): Promise<RelayTask | undefined> {
    const row: unknown = await query.select(TASK_COLUMNS).first();
    return row === undefined ? undefined : toTask(row as Record<string, unknown>);
  }
}

function toTask(raw: Record<string, unknown>): RelayTask {
  const task: Record<string, unknown> = {};
  for (const column of TASK_COLUMNS) {
    const value = raw[column];
    if (NUMBER_COLUMNS.has(column)) task[column] = toNumber(value);
    else if (NULLABLE_NUMBER_COLUMNS.has(column)) task[column] = toNumberOrNull(value);
    else if (STRING_COLUMNS.has(column)) task[column] = String(value ?? '');
    else task[column] = toStringOrNull(value);
  }
  return task as unknown as RelayTask;
}

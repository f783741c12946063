import type { Knex } from 'knex';
import { KlingRelayConfigError } from '../lib/errors.js';
import { assertIdentifier } from './identifiers.js';
import { insertReturningId, toNumber } from './dialect.js';
import type { Template, TemplateSource } from './statement-template.js';
import { HOST_COLUMNS, REQUIRED_HOST_COLUMNS } from './types.js';
import type { HostColumn, HostExtraColumn, HostResultShape, HostRow, HostTableOptions, HostWriteMoment, NewHostRow, TableKind, HostState } from './types.js';
import { hostTableSettings, type HostTableSettings } from './host-table-options.js';

/** What a write knows beyond the row's own columns. */
export interface HostWriteFacts {
  /** Kling's task object as the relay shows it (task_result included on success), when the task became final. */
  kling?: Record<string, unknown> | undefined;
  /** The request's `n` (images asked for), 1 when it has none. */
  requestedCount?: number | undefined;
}

const FINAL: ReadonlySet<string> = new Set(['succeed', 'failed']);

/** The first item of a result list that has a value under `key`. */
function firstOf(result: unknown, lists: readonly string[], keys: readonly string[]): string | undefined {
  if (typeof result !== 'object' || result === null) return undefined;
  for (const list of lists) {
    const items = (result as Record<string, unknown>)[list];
    if (!Array.isArray(items)) continue;
    for (const item of items as Record<string, unknown>[]) {
      for (const key of keys) {
        const value = item?.[key];
        if (typeof value === 'string' || typeof value === 'number') return String(value);
      }
    }
  }
  return undefined;
}

/** Kling's result in the shape the host keeps. */
function resultText(shape: HostResultShape, kling: Record<string, unknown>): string {
  if (shape === 'task') return JSON.stringify(kling);
  return JSON.stringify({ code: 0, message: 'SUCCEED', request_id: '', data: kling });
}

const NUMERIC_COLUMNS: ReadonlySet<HostColumn> = new Set<HostColumn>(['quota', 'duration', 'created_at', 'updated_at']);

/**
 * The host's Video or Image table seen through its column mapping. The relay reads and writes rows in
 * logical column names (HOST_COLUMNS); columns the host lacks are never written and
 * read back as empty values. It never alters the table.
 */
export class HostTable {
  readonly name: string;
  /** Logical column -> the host's column name, only for columns the host has. */
  readonly columns: ReadonlyMap<HostColumn, string>;
  /** The host's name for its id column (required, so always mapped). */
  readonly idColumn: string;

  readonly kind: TableKind;

  /** Where the options came from (`tables.video`), for messages naming the option to change. */
  readonly optionName: string;

  /** How values are written: status words, result shape, duration form, extra columns. */
  readonly settings: HostTableSettings;

  /**
   * @param kind the Image table has no `duration` column by default; map it explicitly if it has one.
   * @param optionName where these options came from, for error messages.
   */
  constructor(options: HostTableOptions, kind: TableKind = 'video', optionName = `tables.${kind}`) {
    this.kind = kind;
    this.optionName = optionName;
    if (options === null || typeof options !== 'object') {
      throw new KlingRelayConfigError('ERR_KLING_RELAY_HOST_TABLE', `${optionName} must be an object like {name: 'videos', columns: {...}}.`);
    }
    this.name = assertIdentifier(options.name, `${optionName}.name`);
    const mapping = options.columns ?? {};
    if (mapping === null || typeof mapping !== 'object') {
      throw new KlingRelayConfigError('ERR_KLING_RELAY_HOST_TABLE', `${optionName}.columns must map logical column names to the host's column names or false.`);
    }
    for (const key of Object.keys(mapping)) {
      if (!(HOST_COLUMNS as readonly string[]).includes(key)) {
        throw new KlingRelayConfigError(
          'ERR_KLING_RELAY_HOST_TABLE',
          `${optionName}.columns.${key} is not a column the relay knows. Map only these: ${HOST_COLUMNS.join(', ')}.`,
        );
      }
    }
    const columns = new Map<HostColumn, string>();
    const seen = new Map<string, HostColumn>();
    for (const logical of HOST_COLUMNS) {
      const mapped = mapping[logical] ?? (kind === 'image' && logical === 'duration' ? false : undefined);
      const option = `${optionName}.columns.${logical}`;
      if (mapped === false) {
        if (REQUIRED_HOST_COLUMNS.includes(logical)) {
          throw new KlingRelayConfigError(
            'ERR_KLING_RELAY_HOST_TABLE',
            `${option} is false, but the relay cannot work without the ${logical} column (required: ${REQUIRED_HOST_COLUMNS.join(', ')}). ` +
              `Map it to the name of the host's column instead.`,
          );
        }
        continue;
      }
      const physical = assertIdentifier(mapped ?? logical, option);
      const clash = seen.get(physical.toLowerCase());
      if (clash !== undefined) {
        throw new KlingRelayConfigError(
          'ERR_KLING_RELAY_HOST_TABLE',
          `${option} and ${optionName}.columns.${clash} both name the column "${physical}". Give each its own column, or false when the table has none.`,
        );
      }
      seen.set(physical.toLowerCase(), logical);
      columns.set(logical, physical);
    }
    this.columns = columns;
    this.idColumn = this.column('id');
    this.settings = hostTableSettings(options, optionName, new Set([...columns.values()].map((c) => c.toLowerCase())));
  }

  /** Whether the host table has this logical column. */
  has(column: HostColumn): boolean {
    return this.columns.has(column);
  }

  /** The host's name for a required column (always present). */
  private column(column: (typeof REQUIRED_HOST_COLUMNS)[number]): string {
    const physical = this.columns.get(column);
    if (physical === undefined) throw new Error(`host table ${this.name} has no ${column} column`);
    return physical;
  }

  /** Inserts a row and returns the new row's id as a string. */
  async insert(trx: Knex | Knex.Transaction, row: NewHostRow, facts: HostWriteFacts = {}): Promise<string> {
    return insertReturningId(trx, this.name, this.idColumn, this.toPhysical(row, facts, 'insert'));
  }

  /**
   * Whether SQLite's direct templates can write this table: they bind the logical columns only, so a
   * table with extra columns or a result of another shape is written through knex.
   */
  get templatable(): boolean {
    // Asked on every submit; the settings never change after construction.
    if (this.#templatable === undefined) {
      const { extraColumns, result, resultColumn } = this.settings;
      this.#templatable = Object.keys(extraColumns).length === 0 && result === 'task_result' && resultColumn === 'text';
    }
    return this.#templatable;
  }

  #templatable: boolean | undefined;

  /** Writes the given logical columns of one row; absent columns are skipped. Returns whether a row matched. */
  async update(trx: Knex | Knex.Transaction, id: string | number, patch: Partial<NewHostRow>, facts: HostWriteFacts = {}): Promise<boolean> {
    const values = this.updateValues(patch, facts);
    if (Object.keys(values).length === 0) return false;
    const changed = await trx(this.name).where(this.idColumn, id).update(values);
    return changed > 0;
  }

  /** What `update` writes for this patch, by physical column: the direct writes of a settlement write the same. */
  updateValues(patch: Partial<NewHostRow>, facts: HostWriteFacts = {}): Record<string, unknown> {
    const moment = patch.status === undefined || patch.status === 'pending' ? undefined : (patch.status as HostWriteMoment);
    return this.toPhysical(patch, facts, moment);
  }

  /** The insert of a row as a template of the direct writes; run it with `directValues(row)`. */
  insertTemplate(direct: TemplateSource): Template {
    return direct.template(`host:${this.name}:insert`, (param) => {
      const values: Record<string, string> = {};
      for (const [logical, physical] of this.columns) if (logical !== 'id') values[physical] = param(logical);
      return direct.db(this.name).insert(values);
    });
  }

  /**
   * The update of one row's given columns (those the host has) as a template of the direct
   * transactions, or undefined when the host has none of them; run it with `directValues({...patch, id})`.
   */
  updateTemplate(direct: TemplateSource, columns: readonly HostColumn[]): Template | undefined {
    const present = columns.filter((logical) => logical !== 'id' && this.columns.has(logical));
    if (present.length === 0) return undefined;
    return direct.template(`host:${this.name}:update:${present.join(',')}`, (param) => {
      const values: Record<string, string> = {};
      for (const logical of present) values[this.columns.get(logical) as string] = param(logical);
      return direct.db(this.name).where(this.idColumn, param('id')).update(values);
    });
  }

  /** A row's values as the templates bind them: by logical name, as `insert` and `update` would write them. */
  directValues(row: Partial<HostRow>): Record<string, unknown> {
    const values: Record<string, unknown> = { ...row };
    for (const logical of ['status', 'duration', 'result'] as const) if (row[logical] !== undefined) values[logical] = this.written(logical, row[logical]);
    return values;
  }

  async get(db: Knex | Knex.Transaction, id: string | number): Promise<HostRow | undefined> {
    const row: unknown = await db(this.name).select(this.selection()).where(this.idColumn, id).first();
    return row === undefined ? undefined : this.toLogical(row as Record<string, unknown>);
  }

  /** The newest row carrying Kling's task id, for a lookup by Kling's task id alone. */
  async findByTaskId(db: Knex | Knex.Transaction, klingTaskId: string): Promise<HostRow | undefined> {
    const row: unknown = await db(this.name)
      .select(this.selection())
      .where(this.column('task_id'), klingTaskId)
      .orderBy(this.idColumn, 'desc')
      .first();
    return row === undefined ? undefined : this.toLogical(row as Record<string, unknown>);
  }

  /** `{logical: physical}`: knex aliases each column, so rows come back in logical names. */
  private selection(): Record<string, string> {
    return Object.fromEntries(this.columns);
  }

  /** A logical column's value as this table keeps it. */
  private written(logical: HostColumn, value: unknown): unknown {
    const { statuses, duration, resultColumn } = this.settings;
    if (logical === 'status') return statuses[value as HostState] ?? value;
    if (logical === 'result' && value === '' && resultColumn === 'json') return null;
    if (logical !== 'duration') return value;
    // Kling reports "5.1"; an integer column on PostgreSQL refuses it, a text column keeps it.
    if (duration === 'text') return typeof value === 'number' ? String(value) : value;
    const seconds = typeof value === 'string' ? Number.parseFloat(value) : (value as number);
    return Number.isFinite(seconds) ? Math.round(seconds) : 0;
  }

  private toPhysical(row: Partial<NewHostRow>, facts: HostWriteFacts = {}, moment?: HostWriteMoment): Record<string, unknown> {
    const values: Record<string, unknown> = {};
    const patch: Partial<NewHostRow> = { ...row };
    if (moment !== undefined && FINAL.has(moment)) {
      if (moment === 'failed' && this.settings.failedQuota === 'estimate') delete patch.quota;
      if (this.settings.result !== 'task_result' && facts.kling) patch.result = resultText(this.settings.result, facts.kling);
    }
    for (const [logical, value] of Object.entries(patch) as [HostColumn, unknown][]) {
      // The id is the database's to assign; an update never moves a row to another id.
      if (logical === 'id' || value === undefined) continue;
      const physical = this.columns.get(logical);
      if (physical === undefined) continue;
      values[physical] = this.written(logical, value);
    }
    if (moment !== undefined) Object.assign(values, this.extraValues(moment, facts));
    return values;
  }

  /** The extra columns written at this moment, with their values. */
  private extraValues(moment: HostWriteMoment, facts: HostWriteFacts): Record<string, unknown> {
    const values: Record<string, unknown> = {};
    for (const [column, extra] of Object.entries(this.settings.extraColumns)) {
      const value = this.extraValue(extra, moment, facts);
      if (value !== undefined) values[column] = value;
    }
    return values;
  }

  /** The extra column's value at this moment; undefined when it is not written then. */
  private extraValue(extra: HostExtraColumn, moment: HostWriteMoment, facts: HostWriteFacts): unknown {
    if ('values' in extra) return extra.values[moment];
    if (!(extra.on ?? ['insert']).includes(moment)) return undefined;
    if ('value' in extra) return extra.value;
    const result = facts.kling?.task_result;
    switch (extra.from) {
      case 'now':
        return Math.floor(Date.now() / 1000);
      case 'requestedCount':
        return facts.requestedCount ?? 1;
      case 'url':
        return firstOf(result, ['videos', 'images', 'audios'], ['url', 'url_mp3']);
      case 'resourceId':
        return firstOf(result, ['videos', 'audios'], ['id']);
    }
  }

  private toLogical(raw: Record<string, unknown>): HostRow {
    const row: Record<string, string | number> = {};
    for (const logical of HOST_COLUMNS) {
      const value = raw[logical];
      row[logical] = NUMERIC_COLUMNS.has(logical) && !(logical === 'duration' && this.settings.duration === 'text') ? toNumber(value) : value === null || value === undefined ? '' : String(value);
    }
    return row as unknown as HostRow;
  }
}

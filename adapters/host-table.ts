import type { Knex } from 'knex';
import { KlingRelayConfigError } from '../lib/errors.js';
import { assertIdentifier } from './identifiers.js';
import { insertReturningId, toNumber } from './dialect.js';
import type { Template, TemplateSource } from './statement-template.js';
import { HOST_COLUMNS, REQUIRED_HOST_COLUMNS } from './types.js';
import type { HostColumn, HostRow, HostTableOptions, NewHostRow, TableKind } from './types.js';

/** A logical column's value as the relay writes it. */
function written(logical: HostColumn, value: unknown): unknown {
  // The host's duration is whole seconds; Kling reports "5.1", which an integer column on PostgreSQL refuses.
  return logical === 'duration' && typeof value === 'number' ? Math.round(value) : value;
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

  readonly kind: TableKind;

  /** Where the options came from (`tables.video`), for messages naming the option to change. */
  readonly optionName: string;

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
  async insert(trx: Knex | Knex.Transaction, row: NewHostRow): Promise<string> {
    return insertReturningId(trx, this.name, this.column('id'), this.toPhysical(row));
  }

  /** Writes the given logical columns of one row; absent columns are skipped. Returns whether a row matched. */
  async update(trx: Knex | Knex.Transaction, id: string | number, patch: Partial<NewHostRow>): Promise<boolean> {
    const values = this.toPhysical(patch);
    if (Object.keys(values).length === 0) return false;
    const changed = await trx(this.name).where(this.column('id'), id).update(values);
    return changed > 0;
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
      return direct.db(this.name).where(this.column('id'), param('id')).update(values);
    });
  }

  /** A row's values as the templates bind them: by logical name, as `insert` and `update` would write them. */
  directValues(row: Partial<HostRow>): Record<string, unknown> {
    return row.duration === undefined ? row : { ...row, duration: written('duration', row.duration) };
  }

  async get(db: Knex | Knex.Transaction, id: string | number): Promise<HostRow | undefined> {
    const row: unknown = await db(this.name).select(this.selection()).where(this.column('id'), id).first();
    return row === undefined ? undefined : this.toLogical(row as Record<string, unknown>);
  }

  /** The newest row carrying Kling's task id, for a lookup by Kling's task id alone. */
  async findByTaskId(db: Knex | Knex.Transaction, klingTaskId: string): Promise<HostRow | undefined> {
    const row: unknown = await db(this.name)
      .select(this.selection())
      .where(this.column('task_id'), klingTaskId)
      .orderBy(this.column('id'), 'desc')
      .first();
    return row === undefined ? undefined : this.toLogical(row as Record<string, unknown>);
  }

  /** `{logical: physical}`: knex aliases each column, so rows come back in logical names. */
  private selection(): Record<string, string> {
    return Object.fromEntries(this.columns);
  }

  private toPhysical(row: Partial<NewHostRow>): Record<string, unknown> {
    const values: Record<string, unknown> = {};
    for (const [logical, value] of Object.entries(row) as [HostColumn, unknown][]) {
      // The id is the database's to assign; an update never moves a row to another id.
      if (logical === 'id' || value === undefined) continue;
      const physical = this.columns.get(logical);
      if (physical === undefined) continue;
      values[physical] = written(logical, value);
    }
    return values;
  }

  private toLogical(raw: Record<string, unknown>): HostRow {
    const row: Record<string, string | number> = {};
    for (const logical of HOST_COLUMNS) {
      const value = raw[logical];
      row[logical] = NUMERIC_COLUMNS.has(logical) ? toNumber(value) : value === null || value === undefined ? '' : String(value);
    }
    return row as unknown as HostRow;
  }
}

import type { Knex } from 'knex';
import { KlingRelayConfigError } from '../lib/errors.js';
import { assertIdentifier } from './identifiers.js';
import { toNumber } from './dialect.js';
import type { Template, TemplateSource } from './statement-template.js';
import type { QuotaStore } from './types.js';

/** Where the host keeps balances. Defaults follow one-api/new-api: `users(id, quota, used_quota)`. */
export interface KnexQuotaStoreOptions {
  /** The users table. Default `users`. */
  table?: string;
  /** Its primary key column. Default `id`. */
  idColumn?: string;
  /** The balance column, in quota units. Default `quota`. */
  quotaColumn?: string;
  /** The used-quota statistic, or `false` when the host keeps none. Default `used_quota`. */
  usedColumn?: string | false;
}

/** Option keys, for hosts that check unknown keys (and for the error below). */
export const QUOTA_STORE_OPTION_KEYS = ['table', 'idColumn', 'quotaColumn', 'usedColumn'] as const;

export interface ResolvedQuotaStoreOptions {
  table: string;
  idColumn: string;
  quotaColumn: string;
  usedColumn: string | false;
}

/** Fills defaults and checks every name, so nothing unchecked reaches a query. */
export function resolveQuotaStoreOptions(options: KnexQuotaStoreOptions = {}, optionName = 'quota'): ResolvedQuotaStoreOptions {
  if (options === null || typeof options !== 'object') {
    throw new KlingRelayConfigError('ERR_KLING_RELAY_QUOTA_STORE', `${optionName} must be {table, idColumn, quotaColumn, usedColumn} or an object implementing QuotaStore.`);
  }
  for (const key of Object.keys(options)) {
    if (!(QUOTA_STORE_OPTION_KEYS as readonly string[]).includes(key)) {
      throw new KlingRelayConfigError(
        'ERR_KLING_RELAY_QUOTA_STORE',
        `${optionName}.${key} is not an option of the built-in quota store; use ${QUOTA_STORE_OPTION_KEYS.join(', ')}.`,
      );
    }
  }
  const usedColumn = options.usedColumn === false ? false : assertIdentifier(options.usedColumn ?? 'used_quota', `${optionName}.usedColumn`);
  return {
    table: assertIdentifier(options.table ?? 'users', `${optionName}.table`),
    idColumn: assertIdentifier(options.idColumn ?? 'id', `${optionName}.idColumn`),
    quotaColumn: assertIdentifier(options.quotaColumn ?? 'quota', `${optionName}.quotaColumn`),
    usedColumn,
  };
}

/** The default `QuotaStore` over the host's users table, through the host's knex instance. */
export class KnexQuotaStore implements QuotaStore {
  readonly options: ResolvedQuotaStoreOptions;

  constructor(options: KnexQuotaStoreOptions = {}, optionName = 'quota') {
    this.options = resolveQuotaStoreOptions(options, optionName);
  }

  async hold(trx: Knex.Transaction, userId: string, amount: number): Promise<boolean> {
    checkAmount(amount);
    if (amount === 0) {
      // An update that changes nothing may report 0 rows on MySQL (without FOUND_ROWS); a read is exact.
      const balance = await this.balance(trx, userId);
      return balance !== null && balance >= 0;
    }
    const changed = (await this.holdQuery(trx, userId, amount)) as unknown as number;
    return changed > 0;
  }

  /**
   * The hold as one conditional statement, built but not run: the balance check and the decrement
   * cannot be split by a concurrent hold. It changes one row when the balance covers `amount`, none
   * otherwise (on SQLite and PostgreSQL also for 0; MySQL may report 0 rows for an update that changes
   * nothing, which is why `hold` reads the balance instead).
   */
  holdQuery(db: Knex | Knex.Transaction, userId: string, amount: number): Knex.QueryBuilder {
    checkAmount(amount);
    const { table, idColumn, quotaColumn } = this.options;
    return db(table).where(idColumn, userId).andWhere(quotaColumn, '>=', amount).decrement(quotaColumn, amount);
  }

  /**
   * `holdQuery` as a template of the direct writes, compiled by knex once: compiling the statement
   * again for every submit was most of what knex still cost a direct hold. Run it with `holdValues`.
   */
  holdTemplate(direct: TemplateSource): Template {
    const { table, idColumn, quotaColumn } = this.options;
    return direct.template(`quota:${table}:${idColumn}:${quotaColumn}:hold`, (param) =>
      direct.db(table).where(idColumn, param('user_id')).andWhere(quotaColumn, '>=', param('amount')).update({ [quotaColumn]: direct.db.raw('?? - ?', [quotaColumn, param('amount')]) }),
    );
  }

  /** The values `holdTemplate`'s template binds, the amount checked as `hold` checks it. */
  holdValues(userId: string, amount: number): Record<string, unknown> {
    checkAmount(amount);
    return { user_id: userId, amount };
  }

  async credit(trx: Knex.Transaction, userId: string, amount: number): Promise<void> {
    checkAmount(amount);
    if (amount === 0) return;
    await trx(this.options.table).where(this.options.idColumn, userId).increment(this.options.quotaColumn, amount);
  }

  async debit(trx: Knex.Transaction, userId: string, amount: number): Promise<void> {
    checkAmount(amount);
    if (amount === 0) return;
    await trx(this.options.table).where(this.options.idColumn, userId).decrement(this.options.quotaColumn, amount);
  }

  async addUsed(trx: Knex.Transaction, userId: string, amount: number): Promise<void> {
    checkAmount(amount);
    const { usedColumn } = this.options;
    if (usedColumn === false || amount === 0) return;
    await trx(this.options.table).where(this.options.idColumn, userId).increment(usedColumn, amount);
  }

  async balance(db: Knex | Knex.Transaction, userId: string): Promise<number | null> {
    const { table, idColumn, quotaColumn } = this.options;
    const row: unknown = await db(table).select({ quota: quotaColumn }).where(idColumn, userId).first();
    return row === undefined ? null : toNumber((row as { quota: unknown }).quota);
  }
}

/** The methods whose SQL the SQLite direct path runs in place of the store's own (`holdTemplate` included). */
const DIRECT_METHODS = ['hold', 'holdQuery', 'holdTemplate', 'holdValues', 'credit', 'debit', 'addUsed', 'balance'] as const;

/**
 * True when `store` is a KnexQuotaStore whose methods are all KnexQuotaStore's own: only then may a
 * caller run `holdTemplate` in place of `hold()` (the SQLite direct path does). A subclass or an
 * instance that overrides any of them (a frozen-user check in `hold`, say) must be called.
 */
export function isBuiltInQuotaStore(store: unknown): store is KnexQuotaStore {
  if (!(store instanceof KnexQuotaStore)) return false;
  const own = KnexQuotaStore.prototype as unknown as Record<string, unknown>;
  return DIRECT_METHODS.every((method) => (store as unknown as Record<string, unknown>)[method] === own[method]);
}

/** Refuses an amount that is not a non-negative safe integer, as every method of the store does. */
export function checkAmount(amount: number): void {
  // Quota is integral in one-api hosts; a fraction or a negative here is a bug upstream of the store.
  if (!Number.isSafeInteger(amount) || amount < 0) {
    throw new RangeError(`quota amount must be a non-negative integer, got ${amount}`);
  }
}

const QUOTA_STORE_METHODS = [
  ['hold', 'hold(trx, userId, amount): Promise<boolean>'],
  ['credit', 'credit(trx, userId, amount): Promise<void>'],
  ['debit', 'debit(trx, userId, amount): Promise<void>'],
  ['addUsed', 'addUsed(trx, userId, amount): Promise<void>'],
  ['balance', 'balance(db, userId): Promise<number | null>'],
] as const;

/** Run-time check of a host's own `QuotaStore`, so a missing method fails at start-up, not at the first settle. */
export function assertQuotaStore(value: unknown, optionName: string): asserts value is QuotaStore {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) {
    throw new KlingRelayConfigError(
      'ERR_KLING_RELAY_QUOTA_STORE',
      `${optionName} must be an object implementing QuotaStore (${QUOTA_STORE_METHODS.map(([, sig]) => sig).join('; ')}).`,
    );
  }
  for (const [method, signature] of QUOTA_STORE_METHODS) {
    if (typeof (value as Record<string, unknown>)[method] !== 'function') {
      throw new KlingRelayConfigError(
        'ERR_KLING_RELAY_QUOTA_STORE',
        `${optionName} does not implement QuotaStore: method "${method}" is missing. Add ${signature}, ` +
          `or pass {table, idColumn, quotaColumn, usedColumn} to use the built-in knex store.`,
      );
    }
  }
}

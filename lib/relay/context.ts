import type { HostTable } from '../../adapters/host-table.js';
import type { RelayStore } from '../../adapters/relay-store.js';
import type { DirectWrites } from '../../adapters/direct-writes.js';
import type { DirectSqlite } from '../../adapters/sqlite-direct.js';
import type { QuotaStore, TableKind } from '../../adapters/types.js';
import type { TransitionDeps } from '../completion/transition.js';
import type { Configuration } from '../options.js';
import type { PriceBook } from '../pricing/rules.js';
import type { Registry } from '../registry/types.js';
import type { AccountPool } from '../upstream/accounts.js';
import type { KlingClient, Logger } from '../upstream/client.js';
import type { Validator } from '../validation/validator.js';

/** Everything a request handler needs, built once by createKlingRelay. */
export interface RelayContext extends TransitionDeps {
  config: Configuration;
  registry: Registry;
  validator: Validator;
  prices: PriceBook;
  store: RelayStore;
  hosts: Record<TableKind, HostTable>;
  quota: QuotaStore;
  accounts: AccountPool;
  client: KlingClient;
  logger: Logger;
  /** Set on better-sqlite3: the submit's writes run without knex's runner (adapters/sqlite-direct.ts). */
  direct?: DirectSqlite;
  /** Set on MariaDB/MySQL and PostgreSQL: the submit's writes without knex's runner (adapters/mysql-direct.ts, adapters/pg-direct.ts). */
  fast?: DirectWrites;
}

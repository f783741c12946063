import type { RelayStore } from '../../adapters/relay-store.js';
import type { SlotBoard } from '../dispatch/slots.js';
import type { Configuration } from '../options.js';
import type { PriceBook } from '../pricing/rules.js';
import type { Registry } from '../registry/types.js';
import type { TaskLifeDeps } from '../task/life.js';
import type { AccountPool } from '../upstream/accounts.js';
import type { KlingClient, Logger } from '../upstream/client.js';
import type { Validator } from '../validation/validator.js';

/** Everything a request handler needs, built once by createKlingRelay. */
export interface RelayContext extends TaskLifeDeps {
  config: Configuration;
  registry: Registry;
  validator: Validator;
  prices: PriceBook;
  store: RelayStore;
  accounts: AccountPool;
  /** The concurrency caps in force per account and model version. */
  slots: SlotBoard;
  client: KlingClient;
  logger: Logger;
}

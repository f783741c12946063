import type { RelayStore } from '../../adapters/relay-store.js';
import type { SlotGate } from '../dispatch/gate.js';
import type { SlotBoard } from '../dispatch/slots.js';
import type { Configuration } from '../options.js';
import type { PriceBook } from '../pricing/rules.js';
import type { Registry } from '../registry/types.js';
import type { TaskLifeDeps } from '../task/life.js';
import type { Retries } from '../task/retries.js';
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
  /** One slot decision at a time per model version and pack type in this process. */
  gate: SlotGate;
  /** The dispatcher of queued tasks, woken when a task joins the queue or a slot frees. */
  queue?: { kick(): void; pass(): Promise<unknown> } | undefined;
  client: KlingClient;
  logger: Logger;
  /** Writes that failed after Kling was called, tried again in the background. */
  retries: Retries;
}

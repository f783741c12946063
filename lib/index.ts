import { checkHostTables, type HostSchemaProblem } from '../adapters/host-check.js';
import { HostTable } from '../adapters/host-table.js';
import { assertQuotaStore, KnexQuotaStore } from '../adapters/quota-store.js';
import { withQueryDeadline } from '../adapters/query-deadline.js';
import { RelayStore } from '../adapters/relay-store.js';
import type { QuotaStore } from '../adapters/types.js';
import { KlingAccountApi } from './billing/account-api.js';
import { accountPacks, type AccountPacks } from './billing/packs.js';
import { packsRangeOf, timeRangeOf, type Period } from './billing/period.js';
import { reconcileBilling, type BillingReport } from './billing/reconcile.js';
import { CallbackDelivery } from './callbacks/delivery.js';
import { ClientNotices } from './callbacks/notice.js';
import { createCallbackHandler, type CallbackHandler } from './completion/callback.js';
import { Reconciler } from './completion/reconciler.js';
import type { ReconcileReport } from './completion/report.js';
import { defaultLogger } from './logger.js';
import { RelayEvents } from './metrics/events.js';
import { attachPrometheus, type MetricsRegistry } from './metrics/prometheus.js';
import { openApiDocument, type OpenApiOptions } from './openapi.js';
import { normalizeOptions, type KlingRelayOptions } from './options.js';
import { loadPricingRules, PriceBook } from './pricing/rules.js';
import { loadRegistry } from './registry/load.js';
import type { RelayContext } from './relay/context.js';
import { createRouter, type RelayRouter } from './relay/router.js';
import { taskStorage } from './task/pick.js';
import { AccountPool } from './upstream/accounts.js';
import { SlotGate } from './dispatch/gate.js';
import { QueueDispatcher } from './dispatch/queue.js';
import { SlotBoard } from './dispatch/slots.js';
import { loggableError } from './loggable-error.js';
import { Retries } from './task/retries.js';
import { KlingClient } from './upstream/client.js';
import { createValidator } from './validation/validator.js';

export interface KlingRelay {
  /** Mount under any prefix: `app.use('/kling', tokenAuth, relay.router)`. Works with Express 4 and 5. */
  router: RelayRouter;
  /** Kling's notices: `app.post('/kling/callback', relay.callback)`, outside the host's token check. */
  callback: CallbackHandler;
  /** Creates the relay's own tables, the client callback outbox included (idempotent); never alters a host table. */
  migrate(): Promise<void>;
  /**
   * One reconciler pass over due tasks, then one delivery pass over due client callback notices
   * (several host instances may run it at once); resolves to its report.
   */
  reconcile(): Promise<ReconcileReport>;
  /**
   * Runs `reconcile()` every `reconciler.intervalMs` in the background. Also checks, once, that the
   * relay's tables exist and that the host tables fit the relay's writes, and logs an error naming
   * what does not (the relay keeps running).
   */
  start(): void;
  /**
   * Reads the host's Video and Image tables (and the users table of the built-in quota store) and
   * resolves to every way a submit's writes would fail on them: a missing table or mapped column, a
   * column of an incompatible type, a NOT NULL column without a default the relay does not write, a
   * JSON column the relay writes plain text into. Empty when they fit. A host that refuses to start
   * on a mismatch throws when the list is not empty.
   */
  checkHostTables(): Promise<HostSchemaProblem[]>;
  /** Stops the background reconciler and waits for a pass in progress. */
  stop(): Promise<void>;
  /** Closes the upstream connections (keep-alive sockets). */
  close(): void;
  /** The OpenAPI 3.1 document of every registered route (also served at `GET <mount>/openapi.json`). */
  openapi(options?: OpenApiOptions): Record<string, unknown>;
  /**
   * Each configured Kling account's resource packs and what remains of them (Kling's `GET
   * /account/costs`), the packs valid at some time in the period (default: the year up to now). An
   * account whose packs could not be read (a bad key, Kling down) has `error` instead of `packs`.
   * Calls for one account keep to Kling's one a second, however often this is called.
   */
  accounts(period?: Partial<Period>): Promise<AccountPacks[]>;
  /**
   * Compares what Kling billed per task (units and balance, `/account/billing/package` and
   * `/account/billing/balance`) with what the relay charged the callers, for the tasks the relay
   * created in the period; lists every task and those where they disagree (README, "Kling accounts and billing").
   */
  reconcileBilling(period: Period): Promise<BillingReport>;
  /** Typed events (submitted, settled, failed, refunded, callback, reconcile), emitted after each commit. */
  events: RelayEvents;
  /**
   * Counters and histograms of the events in a prom-client registry (a new one unless given). prom-client
   * is an optional peer dependency, loaded on the first call; without it this rejects with a coded error.
   */
  metrics(registry?: MetricsRegistry): Promise<MetricsRegistry>;
}

function isQuotaStore(value: object): value is QuotaStore {
  return typeof (value as { hold?: unknown }).hold === 'function';
}

/**
 * How long a group of writes, or a knex query or transaction of the relay's, on MariaDB/MySQL or
 * PostgreSQL may keep its connection before the connection is taken to hang and is dropped (so that
 * later work does not wait behind it): twice the hold's deadline, past which every hold of a group
 * was answered 503 already, and 5 s at least, so that a host's tight deadline does not drop
 * connections that are merely slow.
 */
const connectionDeadlineMs = (dbTimeoutMs: number): number => Math.max(2 * dbTimeoutMs, 5_000);

/**
 * Creates the relay: checks every option, loads and compiles the registry's schemas, prepares the
 * pricing rules. Synchronous; throws a KlingRelayConfigError naming the problem and the fix.
 */
export function createKlingRelay(options: KlingRelayOptions): KlingRelay {
  const config = normalizeOptions(options);
  const registry = loadRegistry(config.registry);
  const validator = createValidator(registry);
  const prices = new PriceBook(loadPricingRules(config.pricing));
  prices.prepare(registry.entries.map((e) => e.type));
  const accounts = new AccountPool(config.accounts);
  const slots = new SlotBoard(config.accounts);
  const logger = config.logger ?? defaultLogger();
  const client = new KlingClient({ accounts, timeoutMs: config.upstreamTimeoutMs, logger, ...(config.fetch ? { fetch: config.fetch } : {}) });
  let quota: QuotaStore;
  if (isQuotaStore(config.quota)) {
    assertQuotaStore(config.quota, 'quota');
    quota = config.quota;
  } else {
    quota = new KnexQuotaStore(config.quota, 'quota');
  }
  const store = new RelayStore();
  // The relay's own queries; migrations, the host-table check and billing reconciliation (long reads an
  // operator asks for) use the host's instance as given.
  const deadlineMs = connectionDeadlineMs(config.dbTimeoutMs);
  const db = withQueryDeadline(config.db, deadlineMs);
  const delivery = new CallbackDelivery(db, store.outbox, config.clientCallbacks, logger);
  const events = new RelayEvents((event, error) => logger.error('relay event listener failed', { event, error: loggableError(error) }));
  const hosts = { video: new HostTable(config.tables.video, 'video'), image: new HostTable(config.tables.image, 'image') };
  // A committed notice goes out at once while the relay runs; the reconciler's passes retry the rest.
  const notices = new ClientNotices(store.outbox, registry, () => delivery.kick());
  const ctx: RelayContext = {
    events,
    config,
    registry,
    validator,
    prices,
    store,
    storage: taskStorage({ db, store, hosts, quota, notices, onTransition: config.onTransition, groupDeadlineMs: deadlineMs }),
    accounts,
    slots,
    gate: new SlotGate(),
    client,
    logger,
    retries: new Retries(logger),
    db,
    quotaPerUnit: config.quotaPerUnit,
  };
  const queue = new QueueDispatcher(ctx);
  ctx.queue = queue;
  const reconciler = new Reconciler(ctx, delivery);
  const accountApi = new KlingAccountApi(client);
  const hostProblems = (): Promise<HostSchemaProblem[]> =>
    checkHostTables(config.db, {
      video: hosts.video,
      image: hosts.image,
      users: quota instanceof KnexQuotaStore ? quota.options : undefined,
      integerChannels: accounts.all().every((account) => account.channelId !== undefined),
    });
  return {
    router: createRouter(ctx),
    reconcile: () => reconciler.reconcile(),
    start: () => {
      delivery.start(config.reconciler.intervalMs);
      queue.start();
      reconciler.start();
      // A host that upgraded without migrating would fail every settle of a task with a callback_url.
      Promise.all(Object.values(store.tables).map(async (table) => ((await config.db.schema.hasTable(table)) ? undefined : table))).then(
        (absent) => {
          const names = absent.filter((t): t is string => t !== undefined);
          if (names.length > 0) logger.error('the relay tables are not all there: run relay.migrate() (or kling-relay migrate) before serving', { missing: names });
        },
        (error: unknown) => logger.error('could not check the relay tables', { error: loggableError(error) }),
      );
      // A host table that does not fit (a BIGINT channel_id, a JSON result) fails every submit with 503/5001.
      hostProblems().then(
        (problems) => {
          if (problems.length > 0) {
            logger.error("the host tables do not fit the relay's writes: submits fail until they are fixed (relay.checkHostTables() lists the problems)", {
              code: 'ERR_KLING_RELAY_HOST_SCHEMA',
              problems: problems.map((p) => p.message),
            });
          }
        },
        (error: unknown) => logger.error('could not check the host tables', { error: loggableError(error) }),
      );
    },
    checkHostTables: hostProblems,
    stop: async () => {
      await delivery.stop();
      await queue.stop();
      await reconciler.stop();
    },
    callback: createCallbackHandler(ctx),
    migrate: () => store.migrate(config.db, logger),
    close: () => {
      ctx.retries.close();
      client.close();
      ctx.storage.close?.();
      delivery.close();
    },
    openapi: (openApiOptions) => openApiDocument(registry, openApiOptions?.serverUrl),
    accounts: async (period) => accountPacks(accountApi, accounts.all(), packsRangeOf(period)),
    reconcileBilling: async (period) => {
      const range = timeRangeOf(period);
      return reconcileBilling({ db: config.db, store, api: accountApi, accounts: accounts.all() }, range.from, range.to);
    },
    events,
    metrics: (metricsRegistry) => attachPrometheus(events, metricsRegistry),
  };
}

export { KlingRelayConfigError, RelayHttpError } from './errors.js';
export { klingJwtAuth, klingJwtIdentify, type KlingJwtAuthOptions, type KlingJwtIdentifyOptions, type KlingKey, type KlingKeyLookup } from './auth/kling-jwt.js';
export type { KlingRelayOptions, Caller } from './options.js';
export type { ReconcileReport } from './completion/report.js';
export type { CallbackReport } from './callbacks/delivery.js';
export type { ClientCallbacksOptions } from './options.js';
export { RelayEvents } from './metrics/events.js';
export type { RelayEventMap, RelayEventName, TaskEventBase } from './metrics/events.js';
export type { MetricsRegistry } from './metrics/prometheus.js';
export type { OpenApiOptions } from './openapi.js';
export type { AccountPacks, AccountError } from './billing/packs.js';
export type { ResourcePack } from './billing/account-api.js';
export type { Period } from './billing/period.js';
export type { BillingReport, BillingStatus, TaskBilling, AccountBilling } from './billing/reconcile.js';
export type { RelayBilledTask } from './billing/relay-rows.js';
export type { PricingRule, PriceList } from './pricing/rules.js';
export type { QuotaStore, HostTableOptions, HostColumn, HostExtraColumn, HostExtraSource, HostResultShape, HostWriteMoment, TaskTransition, TransitionHook, TaskState } from '../adapters/types.js';
export { PROFILE_DEFAULTS as hostProfiles, type Profile, type ProfileName } from './profiles.js';
export type { HostSchemaProblem, HostSchemaProblemKind } from '../adapters/host-check.js';
export { createDefaultHostTables } from '../adapters/host-schema.js';
export { sqliteAfterCreate, type SqliteTuning } from '../adapters/sqlite-tuning.js';
export { startKlingSandbox, signKlingToken } from './sandbox/index.js';
export type { KlingSandbox, SandboxOptions } from './sandbox/index.js';
export type * from './generated/index.js';

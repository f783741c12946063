import type * as PromClientModule from 'prom-client';
import { KlingRelayConfigError } from '../errors.js';
import type { RelayEvents } from './events.js';

type PromClient = typeof PromClientModule;
type Registry = PromClientModule.Registry;

/**
 * A prom-client Registry, described by what the relay and a /metrics route use, so that the package's
 * types do not require prom-client to be installed.
 */
export interface MetricsRegistry {
  metrics(): Promise<string>;
  readonly contentType: string;
  getSingleMetric(name: string): unknown;
}

/** Seconds buckets for the callback delay: Kling usually calls within a second, late ones matter. */
const DELAY_BUCKETS = [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300];
/** Seconds buckets for a queued task's wait: from a slot freeing soon to the default 10 minute limit. */
const WAIT_BUCKETS = [0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600];
const PASS_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30];

async function loadPromClient(): Promise<PromClient> {
  try {
    const loaded = (await import('prom-client')) as PromClient & { default?: PromClient };
    // prom-client is CommonJS: its named exports may sit on `default` depending on the loader.
    return typeof loaded.Counter === 'function' ? loaded : (loaded.default as PromClient);
  } catch (cause) {
    throw new KlingRelayConfigError('ERR_KLING_RELAY_PROM_CLIENT_MISSING', "relay.metrics() needs prom-client, an optional peer dependency: run `npm install prom-client` (version 15).", { cause });
  }
}

const attached = new WeakMap<Registry, WeakSet<RelayEvents>>();

/**
 * Counters and histograms for an operator's monitoring (failure rate, callback delay), fed by
 * the relay's events. The failure rate is
 * `rate(kling_relay_tasks_failed_total[5m]) / (rate(kling_relay_tasks_failed_total[5m]) + rate(kling_relay_tasks_settled_total[5m]))`.
 * Attaching the same relay to the same registry twice is a no-op.
 */
export async function attachPrometheus(events: RelayEvents, given?: MetricsRegistry): Promise<MetricsRegistry> {
  const prom = await loadPromClient();
  const target = (given as Registry | undefined) ?? new prom.Registry();
  let seen = attached.get(target);
  if (!seen) attached.set(target, (seen = new WeakSet()));
  if (seen.has(events)) return target;
  seen.add(events);

  // Several relays (or a second attach after a test) may share one registry: reuse what is registered.
  const metric = <T>(name: string, make: () => T): T => (target.getSingleMetric(name) as T | undefined) ?? make();
  const registers = [target];
  const counter = (name: string, help: string, labelNames: string[]) => metric(name, () => new prom.Counter({ name, help, labelNames, registers }));
  const histogram = (name: string, help: string, labelNames: string[], buckets: number[]) => metric(name, () => new prom.Histogram({ name, help, labelNames, buckets, registers }));

  const submitted = counter('kling_relay_tasks_submitted_total', 'Tasks recorded with their quota held, by type and Kling account.', ['type', 'account']);
  const settled = counter('kling_relay_tasks_settled_total', 'Tasks that succeeded and were charged, by type.', ['type']);
  const failed = counter('kling_relay_tasks_failed_total', 'Tasks that ended failed (refused, failed at Kling, lost or timed out), by type.', ['type']);
  const held = counter('kling_relay_quota_held_total', 'Quota held at submit, by type.', ['type']);
  const charged = counter('kling_relay_quota_charged_total', 'Quota charged for succeeded tasks, by type.', ['type']);
  const refunded = counter('kling_relay_quota_refunded_total', 'Quota given back for failed tasks, by type.', ['type']);
  const callbacks = counter('kling_relay_callbacks_total', "Kling callbacks for known tasks, by the status they announced.", ['status']);
  const delay = histogram('kling_relay_callback_delay_seconds', "Delay between Kling's updated_at and the callback's arrival.", ['status'], DELAY_BUCKETS);
  const passes = counter('kling_relay_reconcile_passes_total', 'Reconciler passes.', []);
  const passTasks = counter('kling_relay_reconcile_tasks_total', 'Tasks the reconciler looked at, by what came of them.', ['outcome']);
  const passSeconds = histogram('kling_relay_reconcile_duration_seconds', 'Duration of one reconciler pass.', [], PASS_BUCKETS);
  const failovers = counter('kling_relay_failovers_total', 'Creates Kling refused for the account, moved to another account before acceptance, by accounts and Kling code.', ['from', 'to', 'code']);
  const refusals = counter('kling_relay_concurrency_refusals_total', "Creates Kling refused with 1303 (over the account's concurrency), by account and model version.", ['account', 'model']);
  const setAside = counter('kling_relay_accounts_set_aside_total', 'Accounts set aside after Kling refused them (arrears, exhausted packs, no permission), by account and Kling code.', ['account', 'code']);
  const gauge = (name: string, help: string, labelNames: string[]) => metric(name, () => new prom.Gauge({ name, help, labelNames, registers }));
  const queued = counter('kling_relay_tasks_queued_total', 'Tasks held and queued because no Kling slot was free under the caps in force, by type.', ['type']);
  const requeued = counter('kling_relay_tasks_requeued_total', 'Queued tasks sent and refused by every account (1303, or the account), back in the queue, by Kling code.', ['code']);
  const queueWait = histogram('kling_relay_queue_wait_seconds', 'How long a queued task waited for a free slot before it was sent, by type.', ['type'], WAIT_BUCKETS);
  const queueDepth = gauge('kling_relay_queue_depth', 'Tasks waiting in the queue, after the last dispatch pass.', []);
  const queueOldest = gauge('kling_relay_queue_oldest_wait_seconds', 'How long the oldest queued task has waited, after the last dispatch pass (0 when none waits).', []);
  const slotsInUse = gauge('kling_relay_slots_in_use', 'Slots taken at Kling by the tasks sent, per account, model version and pack type, after the last dispatch pass.', ['account', 'model', 'pack']);
  const clientCallbacks = counter('kling_relay_client_callback_attempts_total', "Attempts to deliver notices to callers' callback URLs, by outcome (delivered, retrying, gave_up).", ['outcome']);

  events.on('submitted', (e) => {
    submitted.inc({ type: e.type, account: e.accountId });
    held.inc({ type: e.type }, e.hold);
  });
  events.on('settled', (e) => {
    settled.inc({ type: e.type });
    charged.inc({ type: e.type }, e.charge);
  });
  events.on('failed', (e) => failed.inc({ type: e.type }));
  events.on('refunded', (e) => refunded.inc({ type: e.type }, e.amount));
  events.on('failover', (e) => failovers.inc({ from: e.from, to: e.to, code: String(e.code) }));
  events.on('concurrencyRefused', (e) => refusals.inc({ account: e.accountId, model: e.model }));
  events.on('accountSetAside', (e) => setAside.inc({ account: e.accountId, code: String(e.code) }));
  events.on('queued', (e) => queued.inc({ type: e.type }));
  events.on('dequeued', (e) => queueWait.observe({ type: e.type }, Math.max(0, e.waitedMs) / 1000));
  events.on('requeued', (e) => requeued.inc({ code: String(e.code) }));
  events.on('queue', (e) => {
    queueDepth.set(e.depth);
    queueOldest.set(e.oldestWaitMs / 1000);
    // Accounts and models no longer running anything read 0, not their last count.
    slotsInUse.reset();
    for (const s of e.slots) slotsInUse.set({ account: s.accountId, model: s.model, pack: s.pack }, s.inUse);
  });
  events.on('callback', (e) => {
    const status = e.status ?? 'unknown';
    callbacks.inc({ status });
    // A clock skewed behind Kling's would give a negative delay: count it as none.
    if (e.delayMs !== undefined) delay.observe({ status }, Math.max(0, e.delayMs) / 1000);
  });
  events.on('reconcile', (e) => {
    passes.inc();
    passSeconds.observe(e.durationMs / 1000);
    for (const outcome of ['claimed', 'finished', 'progressed', 'adopted', 'expired', 'errors'] as const) {
      if (e[outcome] > 0) passTasks.inc({ outcome }, e[outcome]);
    }
    const sent = e.callbacks;
    if (sent) for (const [outcome, n] of [['delivered', sent.delivered], ['retrying', sent.retrying], ['gave_up', sent.gaveUp]] as const) if (n > 0) clientCallbacks.inc({ outcome }, n);
  });
  return target;
}

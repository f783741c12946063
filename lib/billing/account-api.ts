import type { KlingAccount } from '../upstream/accounts.js';
import { UpstreamError, type KlingClient } from '../upstream/client.js';
import { isObject, type Json } from '../json.js';

/** Kling asks callers of `GET /account/costs` to keep to one request a second per account. */
export const COSTS_INTERVAL_MS = 1_000;
/** The largest page Kling's billing detail endpoints give. */
const BILLING_PAGE_LIMIT = 500;
/** A bound on the pages of one listing, so that a cursor that never ends cannot loop forever. */
const MAX_BILLING_PAGES = 10_000;

/** A time range in unix milliseconds, `from` included, `to` included. */
export interface TimeRange {
  from: number;
  to: number;
}

/** One resource pack of an account, as `GET /account/costs` reports it. */
export interface ResourcePack {
  name: string;
  id: string;
  /** `decreasing_total` or `constant_period`. */
  type: string;
  total: number;
  /** Kling's statistics of what remains run up to 12 hours late. */
  remaining: number;
  /** `toBeOnline`, `online`, `expired` or `runOut`. */
  status: string;
  /** Unix milliseconds. */
  purchaseTime: number | undefined;
  effectiveTime: number | undefined;
  invalidTime: number | undefined;
}

/** One deduction of a task from Kling's billing detail: units from a pack, or balance. */
export interface KlingDeduction {
  taskId: string;
  amount: number;
  /** Unix milliseconds. */
  at: number;
  /** Units: the pack's product type (`video`, `image`, `try-on`). Balance: the currency (`USD`, `CNY`). */
  kind: string;
}

function numberOf(value: unknown): number | undefined {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  return typeof n === 'number' && Number.isFinite(n) ? n : undefined;
}

function textOf(value: unknown): string {
  return typeof value === 'string' ? value : value === undefined || value === null ? '' : String(value);
}

/** An answer that is a Kling envelope but not the shape the endpoint documents. */
function unexpected(account: KlingAccount, method: 'GET' | 'POST', path: string, what: string): UpstreamError {
  return new UpstreamError(`Kling answered ${path} without ${what}`, { kind: 'bad_response', ambiguous: false, accountId: account.id, method, path });
}

function toPack(raw: unknown): ResourcePack | undefined {
  if (!isObject(raw)) return undefined;
  return {
    name: textOf(raw.resource_pack_name),
    id: textOf(raw.resource_pack_id),
    type: textOf(raw.resource_pack_type),
    total: numberOf(raw.total_quantity) ?? 0,
    remaining: numberOf(raw.remaining_quantity) ?? 0,
    status: textOf(raw.status),
    purchaseTime: numberOf(raw.purchase_time),
    effectiveTime: numberOf(raw.effective_time),
    invalidTime: numberOf(raw.invalid_time),
  };
}

function toDeduction(raw: unknown, kindField: string): KlingDeduction | undefined {
  if (!isObject(raw) || raw.task_id === undefined || raw.task_id === null) return undefined;
  return { taskId: textOf(raw.task_id), amount: numberOf(raw.deduction_amount) ?? 0, at: numberOf(raw.deduction_time) ?? 0, kind: textOf(raw[kindField]) };
}

/**
 * Spaces calls per key: each call starts at least `intervalMs` after the previous one of the same key
 * ended, however many callers ask at once, so the server never sees two closer than that.
 */
class Spacing {
  readonly #last = new Map<string, Promise<unknown>>();
  readonly #endedAt = new Map<string, number>();

  constructor(readonly intervalMs: number) {}

  run<T>(key: string, call: () => Promise<T>): Promise<T> {
    const previous = this.#last.get(key) ?? Promise.resolve();
    const next = previous
      .catch(() => undefined)
      .then(async () => {
        const wait = (this.#endedAt.get(key) ?? -Infinity) + this.intervalMs - Date.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        try {
          return await call();
        } finally {
          this.#endedAt.set(key, Date.now());
        }
      });
    this.#last.set(key, next);
    return next;
  }
}

/**
 * Kling's account endpoints (no `/v1` prefix): resource packs, and the per-task unit and balance
 * deductions. One instance per relay, so that its spacing of `/account/costs` holds across callers.
 */
export class KlingAccountApi {
  readonly #client: KlingClient;
  readonly #costs: Spacing;

  constructor(client: KlingClient, costsIntervalMs = COSTS_INTERVAL_MS) {
    this.#client = client;
    this.#costs = new Spacing(costsIntervalMs);
  }

  /** The account's resource packs valid at some time in `range`. */
  async packs(account: KlingAccount, range: TimeRange): Promise<ResourcePack[]> {
    const path = `/account/costs?start_time=${Math.floor(range.from)}&end_time=${Math.floor(range.to)}`;
    const reply = await this.#costs.run(account.id, () => this.#client.get(account, path));
    const data = reply.envelope.data;
    if (!isObject(data)) throw unexpected(account, 'GET', '/account/costs', 'data');
    // The answer nests a code of its own (with `msg`) inside data.
    const code = numberOf(data.code) ?? 0;
    if (code !== 0) {
      throw new UpstreamError(`Kling answered /account/costs with code ${code}: ${textOf(data.msg)}`, {
        kind: 'kling', ambiguous: false, accountId: account.id, method: 'GET', path: '/account/costs', httpStatus: reply.httpStatus, klingCode: code, klingMessage: textOf(data.msg),
      });
    }
    const infos = data.resource_pack_subscribe_infos ?? [];
    if (!Array.isArray(infos)) throw unexpected(account, 'GET', '/account/costs', 'a list of resource packs');
    return infos.map(toPack).filter((pack): pack is ResourcePack => pack !== undefined);
  }

  /** Units Kling took from the account's packs for tasks, `POST /account/billing/package`, every page. */
  unitDeductions(account: KlingAccount, range: TimeRange): Promise<KlingDeduction[]> {
    return this.#detail(account, '/account/billing/package', range, 'product_type');
  }

  /** Balance Kling took from the account for tasks, `POST /account/billing/balance`, every page. */
  balanceDeductions(account: KlingAccount, range: TimeRange): Promise<KlingDeduction[]> {
    return this.#detail(account, '/account/billing/balance', range, 'currency');
  }

  async #detail(account: KlingAccount, path: string, range: TimeRange, kindField: string): Promise<KlingDeduction[]> {
    const rows: KlingDeduction[] = [];
    // The cursor of a next page stands for the whole query, so it is sent alone.
    let body: Json = { start_time: Math.floor(range.from), end_time: Math.floor(range.to), limit: BILLING_PAGE_LIMIT };
    for (let page = 0; page < MAX_BILLING_PAGES; page++) {
      const data = (await this.#client.post(account, path, body)).envelope.data;
      if (!isObject(data) || !isObject(data.result) || !Array.isArray(data.result.detail)) throw unexpected(account, 'POST', path, 'result.detail');
      for (const raw of data.result.detail) {
        const row = toDeduction(raw, kindField);
        if (row) rows.push(row);
      }
      if (data.has_more !== true || typeof data.next_cursor !== 'string' || data.next_cursor === '') return rows;
      body = { cursor: data.next_cursor };
    }
    throw unexpected(account, 'POST', path, `an end to its pages after ${MAX_BILLING_PAGES}`);
  }
}

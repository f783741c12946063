import type { Knex } from 'knex';
import type { TableKind } from '../../adapters/types.js';
import { imageCount } from '../pricing/estimate.js';
import type { RegistryEntry } from '../registry/types.js';
import { SENT_STATES } from '../task/states.js';
import { type ConcurrencyInit, configuredCap } from './caps.js';

/**
 * What a task occupies at Kling while it runs. Kling counts concurrency per account, model version
 * and pack type (video or image, the task's table here); an image task takes one slot per image.
 */
export interface SlotNeed {
  pack: TableKind;
  model: string;
  slots: number;
}

/**
 * The slots a request needs: none for a synchronous call (Kling counts only task creation), one per
 * image for an image task (the most a series may make when Kling chooses its size), one otherwise.
 */
export function slotNeed(entry: RegistryEntry, body: Record<string, unknown>, model: string): SlotNeed {
  if (entry.kind === 'sync') return { pack: entry.table, model, slots: 0 };
  return { pack: entry.table, model, slots: entry.table === 'image' ? imageCount(entry, body) : 1 };
}

/**
 * Slots in use per account for one model version and pack type, counted from the relay's tasks that
 * are being sent to Kling or run there, so that every relay process sharing the database agrees. A
 * queued task takes none: it waits for one.
 */
export async function slotsInUse(db: Knex, tasksTable: string, need: SlotNeed): Promise<Map<string, number>> {
  const rows = (await db(tasksTable)
    .select('account_id')
    .sum({ used: 'slots' })
    .whereIn('state', SENT_STATES)
    .andWhere({ table_kind: need.pack, model: need.model })
    .groupBy('account_id')) as { account_id: string; used: number | string | null }[];
  return new Map(rows.map((row) => [String(row.account_id), Number(row.used ?? 0)]));
}

/** How long a cap learned from Kling's 1303 answer holds before the configured one applies again. */
export const LEARNED_CAP_MS = 60_000;
/** How long an account Kling refused (arrears, exhausted packs, no permission) takes no new tasks. */
export const ACCOUNT_ASIDE_MS = 300_000;

interface LearnedCap {
  cap: number;
  until: number;
}

/** An account as the board needs it: its id and configured caps. */
export interface SlotAccount {
  id: string;
  concurrency?: ConcurrencyInit | undefined;
}

/**
 * The caps in force per account, model version and pack type: the configured one, lowered for a
 * while when Kling refuses a create with 1303 (it knows of tasks the relay does not, or the packs
 * allow fewer than configured) and raised back by one with each create Kling accepts.
 */
export class SlotBoard {
  readonly #configured: ReadonlyMap<string, ConcurrencyInit | undefined>;
  readonly #learned = new Map<string, LearnedCap>();
  /** Accounts set aside, until when. */
  readonly #aside = new Map<string, number>();
  readonly #now: () => number;

  constructor(accounts: readonly SlotAccount[], now: () => number = Date.now) {
    this.#configured = new Map(accounts.map((a) => [a.id, a.concurrency]));
    this.#now = now;
  }

  /** The cap in force; Infinity when neither configuration nor Kling set one. */
  cap(accountId: string, need: SlotNeed): number {
    const configured = configuredCap(this.#configured.get(accountId), need.model) ?? Infinity;
    const learned = this.#current(accountId, need);
    return learned === undefined ? configured : Math.min(configured, learned.cap);
  }

  /** Whether any account has a cap in force for this model version and pack type: if none, slots in use need not be counted. */
  limited(need: SlotNeed): boolean {
    if (need.slots === 0) return false;
    for (const [accountId, concurrency] of this.#configured) {
      if (configuredCap(concurrency, need.model) !== undefined || this.#current(accountId, need) !== undefined) return true;
    }
    return false;
  }

  /** Whether the account can take the task now: not set aside, and room for it beside the slots in use there. */
  fits(accountId: string, need: SlotNeed, inUse: number): boolean {
    if (this.isAside(accountId)) return false;
    return need.slots === 0 || inUse + need.slots <= this.cap(accountId, need);
  }

  /**
   * Kling refused the account itself (arrears, an exhausted pack): it takes no new tasks for a while.
   * True when it was not already set aside, so the caller logs it once.
   */
  setAside(accountId: string): boolean {
    const fresh = !this.isAside(accountId);
    this.#aside.set(accountId, this.#now() + ACCOUNT_ASIDE_MS);
    return fresh;
  }

  isAside(accountId: string): boolean {
    return (this.#aside.get(accountId) ?? 0) > this.#now();
  }

  /** Kling refused a create with 1303 while `inUse` of the relay's slots ran there: no more than that fit for a while. */
  refused(accountId: string, need: SlotNeed, inUse: number): void {
    const cap = Math.min(this.cap(accountId, need), inUse);
    this.#learned.set(key(accountId, need), { cap, until: this.#now() + LEARNED_CAP_MS });
  }

  /** Kling accepted a create: a lowered cap rises by the task's slots, and goes once it reaches the configured one. */
  accepted(accountId: string, need: SlotNeed): void {
    const learned = this.#current(accountId, need);
    if (!learned) return;
    learned.cap += Math.max(1, need.slots);
    const configured = configuredCap(this.#configured.get(accountId), need.model) ?? Infinity;
    if (learned.cap >= configured) this.#learned.delete(key(accountId, need));
  }

  #current(accountId: string, need: SlotNeed): LearnedCap | undefined {
    const name = key(accountId, need);
    const learned = this.#learned.get(name);
    if (learned && learned.until <= this.#now()) {
      this.#learned.delete(name);
      return undefined;
    }
    return learned;
  }
}

const key = (accountId: string, need: SlotNeed): string => `${accountId}\u0000${need.pack}\u0000${need.model}`;

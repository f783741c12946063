import { KlingError } from './codes.js';
import { imagesMade } from './results.js';
import type { SandboxAccount, SandboxConcurrency } from './types.js';

/** Kling counts concurrency per account, model version and resource pack type. */
export type PackType = 'video' | 'image';

/** What one task occupies while it runs: how many slots, of which model version and pack type. */
export interface SlotClaim {
  pack: PackType;
  model: string;
  slots: number;
}

/** Slots in use and the most ever in use at once, per account, pack type and model version. */
export interface SlotUsage extends SlotClaim {
  accessKey: string;
  /** The most slots this account, pack type and model held at once since the last reset. */
  peak: number;
}

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

/**
 * The slots a new task takes: an image task one per image it makes (`n`, or the series' amount), any
 * other task one. The model version is the body's `model_name` (or `input.model_name`), else the path.
 */
export function slotClaim(path: string, body: Record<string, unknown>): SlotClaim {
  const named = body.model_name ?? record(body.input).model_name;
  const model = typeof named === 'string' && named !== '' ? named : path;
  if (path.startsWith('/v1/images/')) return { pack: 'image', model, slots: imagesMade(path, body) };
  return { pack: 'video', model, slots: 1 };
}

/** The account's cap for this model version: the number given, the map's entry or its `default`; undefined: no cap. */
export function capOf(concurrency: SandboxConcurrency | undefined, model: string): number | undefined {
  if (concurrency === undefined || typeof concurrency === 'number') return concurrency;
  return concurrency[model] ?? concurrency.default;
}

function isCap(value: unknown): boolean {
  return Number.isSafeInteger(value) && (value as number) >= 1;
}

/** A cap is an integer >= 1, or a map of model version (or `default`) to one. */
export function checkConcurrency(account: SandboxAccount): void {
  const { concurrency } = account;
  if (concurrency === undefined || isCap(concurrency)) return;
  const entries = typeof concurrency === 'object' && concurrency !== null && !Array.isArray(concurrency) ? Object.entries(concurrency) : undefined;
  if (entries && entries.every(([model, cap]) => model !== '' && isCap(cap))) return;
  throw new TypeError(
    `kling sandbox: concurrency of account "${account.accessKey}" must be an integer >= 1 or an object of model version (or "default") to an integer >= 1`,
  );
}

const slotKey = (accessKey: string, claim: SlotClaim): string => `${accessKey}\u0000${claim.pack}\u0000${claim.model}`;

/**
 * The sandbox's running tasks counted as Kling counts concurrency: a create over the account's cap is
 * refused with 1303, and a task's slots free the moment it ends, failed or not.
 */
export class SlotBook {
  private readonly usage = new Map<string, SlotUsage>();

  constructor(private readonly accounts: readonly SandboxAccount[]) {}

  /** Takes the task's slots, or throws Kling's 429/1303 when they would exceed the account's cap. */
  take(accessKey: string, claim: SlotClaim): void {
    const key = slotKey(accessKey, claim);
    const used = this.usage.get(key);
    const inUse = used?.slots ?? 0;
    const cap = capOf(this.accounts.find((a) => a.accessKey === accessKey)?.concurrency, claim.model);
    if (cap !== undefined && inUse + claim.slots > cap) throw new KlingError(1303);
    const slots = inUse + claim.slots;
    this.usage.set(key, { accessKey, ...claim, slots, peak: Math.max(used?.peak ?? 0, slots) });
  }

  /** Frees a task's slots when it ends. */
  release(accessKey: string, claim: SlotClaim): void {
    const used = this.usage.get(slotKey(accessKey, claim));
    if (used) used.slots = Math.max(0, used.slots - claim.slots);
  }

  all(): SlotUsage[] {
    return [...this.usage.values()].map((u) => ({ ...u }));
  }

  reset(): void {
    this.usage.clear();
  }
}

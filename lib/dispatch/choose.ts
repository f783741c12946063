import type { RelayContext } from '../relay/context.js';
import type { KlingAccount } from '../upstream/accounts.js';
import type { InFlight } from './gate.js';
import { type SlotNeed, slotsInUse } from './slots.js';

/**
 * A weighted random account, among those that take new tasks and are not in `skip`, with room for
 * the task under the cap in force; undefined when none has. Slots in use are read from the database,
 * plus those of the tasks placed before (`inFlight`) that it may not show yet.
 */
export async function accountWithFreeSlot(ctx: RelayContext, need: SlotNeed, skip: ReadonlySet<string> = new Set(), eligible: (account: KlingAccount) => boolean = () => true, inFlight?: InFlight): Promise<KlingAccount | undefined> {
  // Without a cap in force anywhere, the count is not needed: a submit then costs no extra query.
  const used = usedSlots(ctx.slots.limited(need) ? await slotsInUse(ctx.db, ctx.store.tables.tasks, need) : new Map<string, number>(), inFlight);
  return ctx.accounts.pickAmong((account) => eligible(account) && !skip.has(account.id) && ctx.slots.fits(account.id, need, used(account.id)));
}

/** Whether this account has room for the task now under the caps in force (always, when none is in force). */
export async function hasRoom(ctx: RelayContext, account: KlingAccount, need: SlotNeed, inFlight?: InFlight): Promise<boolean> {
  if (!ctx.slots.limited(need)) return true;
  const used = usedSlots(await slotsInUse(ctx.db, ctx.store.tables.tasks, need), inFlight);
  return ctx.slots.fits(account.id, need, used(account.id));
}

/** An account's slots in use: those read from the database (`inUse`) and those of the tasks placed before whose holds it may not show yet. */
function usedSlots(inUse: ReadonlyMap<string, number>, inFlight: InFlight | undefined): (accountId: string) => number {
  return (accountId) => (inUse.get(accountId) ?? 0) + (inFlight?.slots.get(accountId) ?? 0);
}

import type { RelayTask } from '../../adapters/types.js';
import type { RegistryEntry } from '../registry/types.js';
import type { RelayContext } from '../relay/context.js';
import { reassign } from '../task/life.js';
import type { KlingAccount } from '../upstream/accounts.js';
import { type KlingReply, UpstreamError } from '../upstream/client.js';
import { accountWithFreeSlot } from './choose.js';
import { type SlotNeed, slotsInUse } from './slots.js';

/** Kling's codes for an account that cannot take tasks now: abnormal, in arrears, pack exhausted, model not enabled, IP not allowed. */
const ACCOUNT_REFUSALS = new Set([1100, 1101, 1102, 1103, 1304]);
/** Kling's code for a create over the account's concurrency. */
const OVER_CONCURRENCY = 1303;

/** A create to send: the task as held, the account chosen, and the body for an account (the callback URL names it). */
export interface CreateToSend {
  entry: RegistryEntry;
  task: RelayTask;
  need: SlotNeed;
  account: KlingAccount;
  /** The account owns a resource the request names: the task cannot move. */
  pinned: boolean;
  /** Which accounts may serve the entry at all (the standard family takes API-key accounts only). */
  eligible: (account: KlingAccount) => boolean;
  /** Sends the create to Kling with an account (the body's callback URL names the account). */
  call(account: KlingAccount): Promise<KlingReply>;
}

/** How a create ended: Kling's reply, or the error of the last account tried; with the task and account as they are now. */
export type SentCreate = { task: RelayTask; account: KlingAccount } & ({ reply: KlingReply } | { error: UpstreamError });

/** Whether Kling refused the create for a reason of the account, before accepting anything. */
export function refusedByAccount(error: UpstreamError): boolean {
  return error.kind === 'kling' && !error.ambiguous && error.klingCode !== undefined && (error.klingCode === OVER_CONCURRENCY || ACCOUNT_REFUSALS.has(error.klingCode));
}

/**
 * Posts a create to Kling. When Kling refuses it for the account's sake (1303 over concurrency, or
 * 1100-1103/1304 an account problem) it accepted nothing, so the task moves to another eligible
 * account with a free slot, the same task row and hold, and is posted again; the caller hears of the
 * refusal only when no account is left. A 1303 lowers the account's cap for that model version for a
 * while; an account problem sets the account aside for a while, logged once.
 */
export async function sendCreate(ctx: RelayContext, create: CreateToSend): Promise<SentCreate> {
  const tried = new Set<string>();
  let { task, account } = create;
  for (;;) {
    tried.add(account.id);
    try {
      const reply = await create.call(account);
      ctx.slots.accepted(account.id, create.need);
      return { task, account, reply };
    } catch (error) {
      if (!(error instanceof UpstreamError)) throw error;
      if (!refusedByAccount(error)) return { task, account, error };
      await noteRefusal(ctx, account, create.need, error);
      const next = create.pinned ? undefined : await accountWithFreeSlot(ctx, create.need, tried, create.eligible);
      if (!next || !(await reassign(ctx, task, next.id))) return { task, account, error };
      ctx.logger.info('create moved to another account', { taskId: task.id, from: account.id, to: next.id, klingCode: error.klingCode });
      ctx.events?.emit('failover', { taskId: task.id, userId: task.user_id, from: account.id, to: next.id, code: error.klingCode ?? 0 });
      task = { ...task, account_id: next.id };
      account = next;
    }
  }
}

async function noteRefusal(ctx: RelayContext, account: KlingAccount, need: SlotNeed, error: UpstreamError): Promise<void> {
  if (error.klingCode === OVER_CONCURRENCY) {
    // The refused task is counted there too, pending: Kling had room for the others only.
    const others = Math.max(0, ((await slotsInUse(ctx.db, ctx.store.tables.tasks, need)).get(account.id) ?? 0) - need.slots);
    ctx.slots.refused(account.id, need, others);
    ctx.events?.emit('concurrencyRefused', { accountId: account.id, model: need.model, pack: need.pack, inUse: others });
    return;
  }
  if (ctx.slots.setAside(account.id)) {
    ctx.logger.error('Kling refused the account; it takes no new tasks for a while', { accountId: account.id, klingCode: error.klingCode, klingMessage: error.klingMessage, klingRequestId: error.requestId });
    ctx.events?.emit('accountSetAside', { accountId: account.id, code: error.klingCode ?? 0 });
  }
}

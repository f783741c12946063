import type { KlingAccount } from '../upstream/accounts.js';
import { UpstreamError, type UpstreamErrorKind } from '../upstream/client.js';
import type { KlingAccountApi, ResourcePack, TimeRange } from './account-api.js';

/** Why one account's data could not be read; the other accounts are read all the same. */
export interface AccountError {
  /** The upstream failure (`kling`: Kling answered an error code), or `error` for anything else. */
  kind: UpstreamErrorKind | 'error';
  message: string;
  httpStatus?: number;
  klingCode?: number;
}

/** One configured account and its resource packs, or why they could not be read. */
export type AccountPacks = { account: string; packs: ResourcePack[]; error?: undefined } | { account: string; packs?: undefined; error: AccountError };

/** How far back `accounts()` looks for packs by default: a year, the usual life of a pack. */
export const PACKS_LOOKBACK_MS = 365 * 86_400_000;

export function accountError(error: unknown): AccountError {
  if (!(error instanceof UpstreamError)) return { kind: 'error', message: error instanceof Error ? error.message : String(error) };
  return {
    kind: error.kind,
    message: error.message,
    ...(error.httpStatus !== undefined ? { httpStatus: error.httpStatus } : {}),
    ...(error.klingCode !== undefined ? { klingCode: error.klingCode } : {}),
  };
}

/**
 * Every account's resource packs valid at some time in `range`, in configuration order. The accounts
 * are read at once; each account's `/account/costs` calls keep to Kling's one a second.
 */
export function accountPacks(api: KlingAccountApi, accounts: readonly KlingAccount[], range: TimeRange): Promise<AccountPacks[]> {
  return Promise.all(
    accounts.map(async (account): Promise<AccountPacks> => {
      try {
        return { account: account.id, packs: await api.packs(account, range) };
      } catch (error) {
        return { account: account.id, error: accountError(error) };
      }
    }),
  );
}

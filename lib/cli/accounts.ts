import { readFileSync } from 'node:fs';
import { RelayStore } from '../../adapters/relay-store.js';
import { KlingAccountApi } from '../billing/account-api.js';
import { accountPacks, type AccountError, type AccountPacks } from '../billing/packs.js';
import { packsRangeOf } from '../billing/period.js';
import { reconcileBilling, type BillingReport, type TaskBilling } from '../billing/reconcile.js';
import { KlingRelayConfigError } from '../errors.js';
import { accountsFromEnv } from '../options.js';
import { AccountPool, type KlingAccount, type KlingAccountInit } from '../upstream/accounts.js';
import { KlingClient, type Logger } from '../upstream/client.js';
import { openDatabase } from './migrate.js';

/** The deadline of one Kling call, as the relay's default. */
const UPSTREAM_TIMEOUT_MS = 30_000;
const SILENT: Logger = { error: () => undefined, warn: () => undefined, info: () => undefined, debug: () => undefined };

function accountsFileError(file: string, message: string, cause?: unknown): KlingRelayConfigError {
  return new KlingRelayConfigError('ERR_KLING_RELAY_CLI_ACCOUNTS', `${file}: ${message}. Give a JSON list of accounts as createKlingRelay's accounts option takes them ([{"id": "main", "apiKey": "..."}]), or {"accounts": [...]}.`, { cause });
}

/**
 * The Kling accounts the account commands read: those of `--accounts <file>` (the `accounts` option
 * of createKlingRelay as JSON), else the environment's as createKlingRelay reads it (KLING_API_KEY,
 * or KLING_ACCESS_KEY with KLING_SECRET_KEY, and KLING_BASE_URL).
 */
export function cliAccounts(file: string | undefined, env: NodeJS.ProcessEnv): readonly KlingAccount[] {
  let inits: KlingAccountInit[] | undefined;
  if (file !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8'));
    } catch (cause) {
      throw accountsFileError(file, `Cannot read it as JSON (${(cause as Error).message})`, cause);
    }
    const list = Array.isArray(parsed) ? parsed : (parsed as { accounts?: unknown } | null)?.accounts;
    if (!Array.isArray(list)) throw accountsFileError(file, 'No list of accounts');
    inits = list as KlingAccountInit[];
  } else {
    inits = accountsFromEnv(env);
  }
  if (inits === undefined) {
    throw new KlingRelayConfigError('ERR_KLING_RELAY_CLI_ACCOUNTS', 'No Kling account: give --accounts <file>, or set KLING_API_KEY (or KLING_ACCESS_KEY and KLING_SECRET_KEY) and KLING_BASE_URL as for the relay.');
  }
  return new AccountPool(inits).all();
}

function clientFor(accounts: readonly KlingAccount[]): KlingClient {
  return new KlingClient({ accounts: new AccountPool(accounts), timeoutMs: UPSTREAM_TIMEOUT_MS, logger: SILENT });
}

/** `kling-relay accounts`: every account's packs, read once. */
export async function readAccountPacks(accounts: readonly KlingAccount[]): Promise<AccountPacks[]> {
  const client = clientFor(accounts);
  try {
    return await accountPacks(new KlingAccountApi(client), accounts, packsRangeOf(undefined));
  } finally {
    client.close();
  }
}

/** `kling-relay reconcile-billing`: the report for tasks created in `[from, to]` (unix ms). */
export async function readBillingReport(dbUrl: string, accounts: readonly KlingAccount[], from: number, to: number): Promise<BillingReport> {
  const db = await openDatabase(dbUrl);
  const client = clientFor(accounts);
  try {
    return await reconcileBilling({ db, store: new RelayStore(), api: new KlingAccountApi(client), accounts }, from, to);
  } finally {
    client.close();
    await db.destroy();
  }
}

function day(ms: number | undefined): string {
  return ms === undefined ? '?' : new Date(ms).toISOString().slice(0, 10);
}

function describeError(error: AccountError): string {
  return `error: ${error.message}`;
}

export function formatPacks(reports: readonly AccountPacks[]): string {
  const lines: string[] = [];
  for (const report of reports) {
    lines.push(`Account ${report.account}`);
    if (report.error) {
      lines.push(`  ${describeError(report.error)}`);
    } else if (report.packs.length === 0) {
      lines.push('  no resource packs');
    } else {
      for (const p of report.packs) {
        lines.push(`  ${p.name} (${p.id}, ${p.type}, ${p.status}): ${p.remaining} of ${p.total} left, valid ${day(p.effectiveTime)} to ${day(p.invalidTime)}`);
      }
    }
  }
  return lines.join('\n');
}

function money(balance: Record<string, number>): string {
  const parts = Object.entries(balance).map(([currency, amount]) => `${amount} ${currency || '(no currency)'}`);
  return parts.length === 0 ? 'no balance' : parts.join(', ');
}

function taskLine(t: TaskBilling): string {
  const id = t.klingTaskId ?? '(no Kling id)';
  const relay = t.relay ? `relay task ${t.relay.id}, ${t.relay.state}` : 'no relay task';
  const balance = t.klingBalance > 0 ? ` + ${t.klingBalance} ${t.currency}` : '';
  return `  ${id}  ${t.accountId}  ${relay}  Kling ${t.klingUnits} units${balance}  caller ${t.callerCharged} quota  ${t.status}`;
}

export function formatBilling(report: BillingReport): string {
  const t = report.totals;
  const lines = [`Billing of the tasks created ${new Date(report.from).toISOString()} to ${new Date(report.to).toISOString()}: ${t.tasks} tasks, ${t.disagreements} disagree.`, ''];
  for (const a of report.accounts) lines.push(`Account ${a.account}: ${a.error ? describeError(a.error) : `${a.unitRows} unit and ${a.balanceRows} balance deductions`}`);
  lines.push('', ...report.tasks.map(taskLine), '');
  lines.push(`Total: Kling ${t.klingUnits} units and ${money(t.klingBalance)}; callers charged ${t.callerCharged} quota; ${t.disagreements} disagreements, ${t.open} open, ${t.unchecked} unchecked.`);
  if (report.disagreements.length > 0) {
    lines.push('', 'Disagreements:');
    for (const d of report.disagreements) lines.push(`  ${d.klingTaskId ?? '(no Kling id)'} (account ${d.accountId}${d.relay ? `, relay task ${d.relay.id}, user ${d.relay.userId}` : ''}): ${d.status}: ${d.reason}`);
  }
  return lines.join('\n');
}

/**
 * A date of `--from`/`--to`: `YYYY-MM-DD` (UTC; as `--to`, the whole day is included) or an ISO date
 * and time. Undefined when it is neither.
 */
export function parseDay(value: string, end: boolean): number | undefined {
  if (/^\d{4}-\d{2}-\d{2}$/.test(value)) {
    const start = Date.parse(`${value}T00:00:00.000Z`);
    return Number.isNaN(start) ? undefined : end ? start + 86_400_000 - 1 : start;
  }
  if (!/^\d{4}-\d{2}-\d{2}T/.test(value)) return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}

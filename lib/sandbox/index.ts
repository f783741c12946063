import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AccountBook } from './account.js';
import { signKlingToken } from './auth.js';
import { CallbackDispatcher } from './callbacks.js';
import { SlotBook, type SlotUsage, checkConcurrency } from './concurrency.js';
import { FaultSwitches } from './faults.js';
import { builtInEndpoints } from './registry.js';
import { SandboxResources } from './resources.js';
import { type SandboxContext, createHandler } from './server.js';
import { TaskStore } from './tasks.js';
import type {
  CallbackAttempt,
  CallbackMode,
  EndpointKind,
  KlingFault,
  QueryFault,
  RecordedRequest,
  SandboxAccount,
  SandboxOptions,
  SandboxTask,
  TaskOutcome,
  TaskStatus,
} from './types.js';

export { signKlingToken } from './auth.js';
export type { PackType, SlotUsage } from './concurrency.js';
export type { SignOptions } from './auth.js';
export type {
  ApiFamily,
  BalanceDeduction,
  CallbackAttempt,
  CallbackMode,
  CallbackSignature,
  EndpointKind,
  KlingFault,
  KlingTaskObject,
  QueryFault,
  RecordedRequest,
  SandboxAccount,
  SandboxConcurrency,
  SandboxDeductions,
  SandboxEndpoint,
  SandboxOptions,
  SandboxTask,
  Schedule,
  StandardBilling,
  StandardStatus,
  StandardTaskObject,
  StandardVideoOutput,
  TaskOutcome,
  TaskStatus,
} from './types.js';

export const DEFAULT_SANDBOX_ACCOUNT: Readonly<SandboxAccount> = Object.freeze({
  accessKey: 'sandbox-access-key',
  secretKey: 'sandbox-secret-key-0123456789abcdef',
  apiKeys: Object.freeze(['sandbox-api-key-0123456789abcdef']) as string[],
});

export interface SandboxTasks {
  getTask(taskId: string): SandboxTask | undefined;
  findByExternalId(accessKey: string, externalTaskId: string): SandboxTask | undefined;
  /** Every task, oldest first. */
  all(): SandboxTask[];
}

export interface KlingSandbox {
  /** Base URL without a trailing slash, e.g. `http://127.0.0.1:12345`. */
  readonly url: string;
  readonly accounts: readonly SandboxAccount[];
  /** Every request received, in order. Emptied by reset(). */
  readonly requests: RecordedRequest[];
  /** Every callback delivery attempt, in the order they ended. Emptied by reset(). */
  readonly callbacks: CallbackAttempt[];
  readonly tasks: SandboxTasks;
  /** A valid token for an account (default: the first). */
  token(account?: SandboxAccount): Promise<string>;
  /** Ends a task now, with callbacks; throws if it is unknown or already final. */
  complete(taskId: string, outcome: TaskOutcome): SandboxTask;
  /** Forces a status (with a callback); 'failed' takes `message` as task_status_msg. */
  setStatus(taskId: string, status: TaskStatus, message?: string): SandboxTask;
  /** The next POST to a known path answers this Kling error and creates nothing. */
  failNextCreate(fault: KlingFault): void;
  /** The next successful create makes its task but answers only after `ms` (default: never). */
  hangNextCreate(ms?: number): void;
  /** The next successful create makes its task, then drops the connection without answering. */
  resetNextCreate(): void;
  /** The next successful create makes its task, then answers this Kling error (an ambiguous 5000). */
  failNextCreateAfterCreating(fault: KlingFault): void;
  /** The next single-task GET (or /v1 list query, or standard-family `GET /tasks`) answers this broken response. */
  failNextQuery(kind: QueryFault): void;
  /** The next `count` (default 1) single-task GETs (or list queries, or `GET /tasks`) are read and never answered, until close(). */
  hangNextQueries(count?: number): void;
  /**
   * From now until reset(), a single-task GET of this task (named by Kling's task id or its
   * external_task_id), or of every task when none is given, answers Kling's not-found (HTTP 404,
   * code 1203), and `GET /tasks` and the /v1 list query leave it out, although the task goes on in the sandbox: Kling
   * losing track of a task it accepted.
   */
  loseTask(taskId?: string): void;
  /** How callbacks are delivered from now on; reset() restores normal delivery. */
  callbackMode(mode: CallbackMode): void;
  /**
   * Concurrency slots per account, pack type and model version: those in use now and the most in use
   * at once, since the last reset(); only combinations that have had a task are listed.
   */
  slots(): SlotUsage[];
  /** Resolves once no callback delivery is queued or in flight. */
  callbacksIdle(): Promise<void>;
  /** Forgets tasks, requests, callback attempts and every switch. */
  reset(): void;
  close(): Promise<void>;
}

const DEFAULT_SCHEDULE = { processingAfterMs: 100, finalAfterMs: 300 };

/** Each API key a non-empty string without spaces, and no key shared by two accounts (it names one account). */
function checkApiKeys(accounts: readonly SandboxAccount[]): void {
  const owners = new Map<string, string>();
  for (const account of accounts) {
    const keys: unknown = account.apiKeys ?? [];
    if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string' && /^\S+$/.test(k))) {
      throw new TypeError(`kling sandbox: apiKeys of account "${account.accessKey}" must be an array of non-empty strings without spaces`);
    }
    for (const key of keys as string[]) {
      const owner = owners.get(key);
      if (owner !== undefined && owner !== account.accessKey) {
        throw new TypeError(`kling sandbox: API key "${key}" is given to two accounts ("${owner}" and "${account.accessKey}"); a key acts as one account`);
      }
      owners.set(key, account.accessKey);
    }
  }
}

/** Webhook secrets in Kling's form, `whsec_` and base64, so that a typo fails here rather than as a bad signature. */
function checkWebhookSecrets(accounts: readonly SandboxAccount[]): void {
  for (const account of accounts) {
    for (const field of ['webhookSecret', 'previousWebhookSecret'] as const) {
      const secret: unknown = account[field];
      if (secret !== undefined && !(typeof secret === 'string' && /^whsec_[A-Za-z0-9+/]+={0,2}$/.test(secret))) {
        throw new TypeError(`kling sandbox: ${field} of account "${account.accessKey}" must be whsec_ followed by base64`);
      }
    }
    if (account.previousWebhookSecret !== undefined && account.webhookSecret === undefined) {
      throw new TypeError(`kling sandbox: account "${account.accessKey}" has a previousWebhookSecret but no webhookSecret`);
    }
  }
}

function checkOptions(options: SandboxOptions): void {
  if (options.accounts !== undefined && options.accounts.length === 0) {
    throw new TypeError('kling sandbox: `accounts` must hold at least one account, or be left out');
  }
  if (options.accounts !== undefined) {
    checkApiKeys(options.accounts);
    checkWebhookSecrets(options.accounts);
    options.accounts.forEach(checkConcurrency);
  }
  const { schedule } = options;
  if (typeof schedule === 'object') {
    for (const key of ['processingAfterMs', 'finalAfterMs'] as const) {
      if (!(Number.isFinite(schedule[key]) && schedule[key] >= 0)) {
        throw new TypeError(`kling sandbox: schedule.${key} must be a number of milliseconds >= 0`);
      }
    }
  } else if (schedule !== undefined && schedule !== 'manual' && schedule !== 'instant') {
    throw new TypeError("kling sandbox: `schedule` must be 'manual', 'instant' or { processingAfterMs, finalAfterMs }");
  }
  if (options.history !== undefined && !(Number.isSafeInteger(options.history) && options.history >= 1)) {
    throw new TypeError('kling sandbox: `history` must be an integer >= 1 (how many requests and final tasks to keep), or be left out');
  }
}

/** Starts a local stand-in for Kling's API (its keys, envelope, codes, tasks and callbacks) on an ephemeral port by default. */
export async function startKlingSandbox(options: SandboxOptions = {}): Promise<KlingSandbox> {
  checkOptions(options);
  const accounts = (options.accounts ?? [DEFAULT_SANDBOX_ACCOUNT]).map((a) => ({ ...a, ...(a.apiKeys ? { apiKeys: [...a.apiKeys] } : {}) }));
  const endpoints = new Map<string, EndpointKind>();
  const standardPaths = new Set<string>();
  for (const e of [...builtInEndpoints(), ...(options.endpoints ?? [])]) {
    if (e.family === 'standard') standardPaths.add(e.path);
    else endpoints.set(e.path, e.kind);
  }

  const dispatcher = new CallbackDispatcher(undefined, accounts);
  const slots = new SlotBook(accounts);
  const store = new TaskStore(
    {
      schedule: options.schedule ?? DEFAULT_SCHEDULE,
      outcome: options.outcome ?? (() => ({ status: 'succeed' })),
      ...(options.history !== undefined ? { history: options.history } : {}),
    },
    dispatcher,
    slots,
  );
  const faults = new FaultSwitches();
  const accountBook = new AccountBook(accounts, () => store.all(), options.history);
  const ctx: SandboxContext = { accounts, endpoints, standardPaths, store, resources: new SandboxResources(store), faults, requests: [], hung: new Set(), history: options.history, accountBook };

  const server = createServer(createHandler(ctx));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;

  let closed: Promise<void> | undefined;
  return {
    url: `http://${host}:${address.port}`,
    accounts,
    requests: ctx.requests,
    callbacks: dispatcher.attempts,
    tasks: {
      getTask: (taskId) => store.getTask(taskId),
      findByExternalId: (accessKey, externalTaskId) => store.findByExternalId(accessKey, externalTaskId),
      all: () => store.all(),
    },
    token: (account = accounts[0] ?? DEFAULT_SANDBOX_ACCOUNT) => signKlingToken(account),
    complete: (taskId, outcome) => store.complete(taskId, outcome),
    setStatus: (taskId, status, message) => store.setStatus(taskId, status, message),
    failNextCreate: (fault) => faults.failNextCreate(fault),
    hangNextCreate: (ms) => faults.hangNextCreate(ms),
    resetNextCreate: () => faults.resetNextCreate(),
    failNextCreateAfterCreating: (fault) => faults.failNextCreateAfterCreating(fault),
    failNextQuery: (kind) => faults.failNextQuery(kind),
    hangNextQueries: (count = 1) => faults.hangNextQueries(count),
    loseTask: (taskId) => faults.loseTask(taskId),
    callbackMode: (mode) => dispatcher.setMode(mode),
    slots: () => slots.all(),
    callbacksIdle: () => dispatcher.idle(),
    reset() {
      store.reset();
      ctx.resources.reset();
      faults.reset();
      accountBook.reset();
      dispatcher.reset();
      ctx.requests.length = 0;
    },
    close() {
      closed ??= new Promise<void>((resolve) => {
        store.close();
        dispatcher.close();
        for (const res of ctx.hung) res.destroy();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closed;
    },
  };
}

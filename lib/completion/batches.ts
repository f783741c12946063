import type { RelayTask } from '../../adapters/types.js';
import type { Logger } from '../logger.js';
import { loggableError } from '../loggable-error.js';
import type { KlingAccount } from '../upstream/accounts.js';
import { UpstreamError } from '../upstream/client.js';
import { getStandardTasks, isStandardPath, standardTaskNotFound } from '../upstream/standard.js';
import { fetchKlingTask, listKlingTasks, type KlingTaskObject, type ObserveDeps } from '../task/observe.js';

/**
 * How the reconciler learns Kling's task object for one task, with the account that created it:
 * the object, undefined for an answer without it, or the error of the call (Kling's not-found, 1203,
 * when Kling does not know the task).
 */
export type Lookup = (account: KlingAccount) => Promise<KlingTaskObject | undefined>;

/** A claimed task and how to learn its status. */
export interface PlannedCheck {
  task: RelayTask;
  lookup: Lookup;
}

/**
 * Ids per `GET /tasks` call: Kling documents no bound, and 50 keeps the answer (each task object with
 * its outputs and billing) small.
 */
export const STANDARD_BATCH = 50;
/** Bound on the ids of one `GET /tasks` query string, in characters, well under the usual 8 KB URL limits. */
const MAX_IDS_CHARS = 4000;
/** Kling's largest pageSize for a /v1 list query. */
export const LIST_PAGE_SIZE = 500;
/**
 * Pages one listing reads at most (5000 tasks): due tasks further down are asked about alone, and a
 * listing's pages, asked one after the other, stay few against the pass's lease.
 */
const MAX_LIST_PAGES = 10;
/**
 * Kling stamps a task's created_at after the relay stamped its own; a Kling clock behind the relay's
 * makes Kling's earlier. Listing stops only past the oldest due task's creation time minus this.
 */
const CLOCK_SKEW_MS = 10 * 60_000;

/** What planning needs: a Kling client, the configured accounts and a logger. */
export interface PlanDeps extends Pick<ObserveDeps, 'client'> {
  accounts: { get(id: string): KlingAccount | undefined };
  logger: Logger;
}

/**
 * How to check each claimed task with as few Kling calls as the families allow:
 * - standard family: one `GET /tasks?task_ids=a,b,...` per account and up to STANDARD_BATCH tasks with
 *   a Kling id, one `?external_task_ids=...` per account and batch of tasks whose create answer was lost;
 * - /v1 family: when several due tasks share an account and endpoint, Kling's list query of that
 *   endpoint, newest first, in pages of LIST_PAGE_SIZE (see `listDue`); a task not found there (or a
 *   listing that failed) falls back to the single query;
 * - a lone /v1 task, or one whose account is no longer configured: the single query.
 * Each shared call starts when the first of its tasks is checked and is made once.
 */
export function planChecks(deps: PlanDeps, tasks: readonly RelayTask[]): PlannedCheck[] {
  const planned = new Map<RelayTask, Lookup>();
  const groups = new Map<string, RelayTask[]>();
  for (const task of tasks) {
    if (!deps.accounts.get(task.account_id)) continue;
    const key = isStandardPath(task.endpoint) ? `standard ${task.account_id} ${task.kling_task_id === null ? 'external' : 'kling'}` : `v1 ${task.account_id} ${task.endpoint}`;
    const group = groups.get(key) ?? [];
    group.push(task);
    groups.set(key, group);
  }
  for (const [key, group] of groups) {
    if (key.startsWith('standard ')) {
      for (const batch of standardBatches(group)) {
        const byExternal = batch[0]?.kling_task_id === null;
        const call = once((account: KlingAccount) => readTwice(() => getStandardTasks(deps.client, account, batch.map((t) => idOf(t)), byExternal)));
        for (const task of batch) {
          planned.set(task, async (account) => {
            const answer = await call(account);
            if (!answer) return undefined;
            const found = answer.found.get(idOf(task));
            if (found) return found;
            throw standardTaskNotFound(account, idOf(task), answer.path, answer.requestId);
          });
        }
      }
    } else if (group.length > 1) {
      const listing = once(async (account: KlingAccount) => {
        try {
          return await listDue(deps, account, group);
        } catch (error) {
          deps.logger.warn('reconcile list query failed; asking about each task alone', { accountId: account.id, endpoint: group[0]?.endpoint, tasks: group.length, error: loggableError(error) });
          return new Map<RelayTask, KlingTaskObject>();
        }
      });
      for (const task of group) planned.set(task, async (account) => (await listing(account)).get(task) ?? fetchKlingTask(deps, account, task, idOf(task)));
    }
  }
  return tasks.map((task) => ({ task, lookup: planned.get(task) ?? ((account) => fetchKlingTask(deps, account, task, idOf(task))) }));
}

/** The id Kling knows a task by: its own, or our external_task_id for a task whose create answer was lost. */
function idOf(task: RelayTask): string {
  return task.kling_task_id ?? task.external_task_id;
}

/** Tasks cut into batches of at most STANDARD_BATCH ids and MAX_IDS_CHARS characters of ids. */
function standardBatches(tasks: readonly RelayTask[]): RelayTask[][] {
  const batches: RelayTask[][] = [];
  let current: RelayTask[] = [];
  let chars = 0;
  for (const task of tasks) {
    const length = encodeURIComponent(idOf(task)).length + 1;
    if (current.length === STANDARD_BATCH || (current.length > 0 && chars + length > MAX_IDS_CHARS)) {
      batches.push(current);
      current = [];
      chars = 0;
    }
    current.push(task);
    chars += length;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

/**
 * A query that speaks for many tasks, asked again at once when the connection failed (a keep-alive
 * connection Kling closed while idle drops the next request): a read is safe to repeat, and one lost
 * connection should not put off a whole batch.
 */
async function readTwice<T>(query: () => Promise<T>): Promise<T> {
  try {
    return await query();
  } catch (error) {
    if (error instanceof UpstreamError && error.kind === 'network') return query();
    throw error;
  }
}

/** `fn` run at its first call only; later calls share its promise. */
function once<T>(fn: (account: KlingAccount) => Promise<T>): (account: KlingAccount) => Promise<T> {
  let result: Promise<T> | undefined;
  return (account) => (result ??= fn(account));
}

/**
 * Kling's task objects for due /v1 tasks of one account and endpoint, from its list query: pages of
 * LIST_PAGE_SIZE, newest first, matched by task_id or task_info.external_task_id. Listing stops when
 * every task is found, the pages run out, a page reaches past the oldest task's creation time, after
 * MAX_LIST_PAGES, or when more pages would cost more calls than asking about each task still missing alone.
 */
async function listDue(deps: Pick<ObserveDeps, 'client'>, account: KlingAccount, tasks: readonly RelayTask[]): Promise<Map<RelayTask, KlingTaskObject>> {
  const endpoint = tasks[0]?.endpoint ?? '';
  const byKlingId = new Map(tasks.filter((t) => t.kling_task_id !== null).map((t) => [t.kling_task_id, t]));
  const byExternalId = new Map(tasks.map((t) => [t.external_task_id, t]));
  const oldest = Math.min(...tasks.map((t) => t.created_at)) - CLOCK_SKEW_MS;
  const found = new Map<RelayTask, KlingTaskObject>();
  for (let page = 1; page <= MAX_LIST_PAGES; page++) {
    const items = await readTwice(() => listKlingTasks(deps, account, endpoint, page, LIST_PAGE_SIZE));
    if (!items) throw new Error(`no task list in the answer to ${endpoint}?pageNum=${page}`);
    for (const item of items) {
      const external = item.task_info?.external_task_id;
      const task = (typeof item.task_id === 'string' ? byKlingId.get(item.task_id) : undefined) ?? (typeof external === 'string' ? byExternalId.get(external) : undefined);
      if (task) found.set(task, item);
    }
    const missing = tasks.length - found.size;
    const times = items.map((item) => item.created_at).filter((at): at is number => typeof at === 'number');
    if (missing === 0 || items.length < LIST_PAGE_SIZE || Math.min(...times) < oldest || page >= missing) break;
  }
  return found;
}

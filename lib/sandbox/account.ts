import { KlingError } from './codes.js';
import type { BalanceDeduction, SandboxAccount, SandboxTask } from './types.js';

/**
 * Kling's account endpoints in the sandbox: `GET /account/costs` (resource packs and what remains),
 * `POST /account/billing/package` (units taken from packs, per task) and `POST /account/billing/balance`
 * (balance taken, per task). Nothing is stored twice: the deductions are read from the final tasks'
 * `final_unit_deduction` and `final_balance_deduction` (and from the answers of the synchronous
 * endpoints that name a task), so the three answers always agree with what Kling reported, and a
 * pack's remaining quantity falls as tasks end.
 */

export type ProductType = 'video' | 'image' | 'try-on';

/** A resource pack of an account, as `/account/costs` lists it. */
export interface SandboxPack {
  id: string;
  name: string;
  productType: ProductType;
  total: number;
  /** Unix milliseconds. */
  purchaseTime: number;
  effectiveTime: number;
  invalidTime: number;
}

/** Units of the packs every sandbox account starts with (one of each product type). */
export const SANDBOX_PACK_UNITS: Readonly<Record<ProductType, number>> = Object.freeze({ video: 10_000, image: 100_000, 'try-on': 1_000 });
/** The balance every sandbox account starts with, in USD. */
export const SANDBOX_BALANCE_USD = 1_000;

const DAY_MS = 86_400_000;
/** Kling asks callers of `/account/costs` to stay at or under one request a second; the sandbox refuses faster ones with 1302. */
export const COSTS_INTERVAL_MS = 1_000;
const MAX_LIMIT = 500;
const FILTER_KEYS: Record<'package' | 'balance', readonly string[]> = {
  package: ['api_key_name', 'product_type', 'package_name', 'package_id'],
  balance: ['api_key_name'],
};
/** The sandbox names no API keys; every deduction is listed under this key name. */
const API_KEY_NAME = 'default';

interface Deduction {
  task: SandboxTask;
  productType: ProductType;
  units: number;
  balance: number;
  listPrice: number;
  at: number;
}

interface Filter {
  key: string;
  values: string[];
}

interface PageRequest {
  start: number;
  end: number;
  limit: number;
  filters: Filter[];
  offset: number;
}

/** Decimal arithmetic of Kling's deduction strings ("0.5", "1.2") without binary drift. */
function round(value: number): number {
  return Math.round(value * 1e6) / 1e6;
}

function amount(value: unknown): number {
  const n = typeof value === 'string' ? Number(value) : value;
  return typeof n === 'number' && Number.isFinite(n) && n > 0 ? n : 0;
}

export function productTypeOf(path: string): ProductType {
  if (path.endsWith('kolors-virtual-try-on')) return 'try-on';
  return path.startsWith('/v1/images/') || path === '/v1/general/ai-multi-shot' ? 'image' : 'video';
}

function defaultPacks(accessKey: string, startedAt: number): SandboxPack[] {
  const types: ProductType[] = ['video', 'image', 'try-on'];
  return types.map((productType, index) => ({
    id: `${accessKey}-pack-${index + 1}`,
    name: `Sandbox ${productType} pack`,
    productType,
    total: SANDBOX_PACK_UNITS[productType],
    purchaseTime: startedAt - DAY_MS,
    effectiveTime: startedAt - DAY_MS,
    invalidTime: startedAt + 365 * DAY_MS,
  }));
}

function productFunction(path: string): string {
  const last = path.slice(path.lastIndexOf('/') + 1);
  return last.replace(/[-_]/g, ' ').replace(/2/g, ' to ').replace(/\b\w/g, (c) => c.toUpperCase()).replace(/\s+/g, ' ').trim();
}

function resolutionOf(body: Record<string, unknown>): string {
  const modes: Record<string, string> = { std: '720p', pro: '1080p', '4k': '4k' };
  if (typeof body.mode === 'string') return modes[body.mode] ?? body.mode;
  return typeof body.resolution === 'string' ? body.resolution : '';
}

function resultDuration(task: SandboxTask): string {
  const videos = task.result?.videos;
  const first: unknown = Array.isArray(videos) ? videos[0] : undefined;
  const duration = typeof first === 'object' && first !== null ? (first as Record<string, unknown>).duration : undefined;
  return typeof duration === 'string' ? duration : '';
}

/** The fields of a detail row that describe the task, common to both billing endpoints. */
function taskFields(task: SandboxTask, at: number): Record<string, unknown> {
  const body = task.body;
  return {
    task_id: task.taskId,
    api_key_name: API_KEY_NAME,
    product_function: productFunction(task.path),
    model_name: typeof body.model_name === 'string' ? body.model_name : '',
    resolution: resolutionOf(body),
    duration: resultDuration(task),
    refer_video_input: Array.isArray(body.video_list) && body.video_list.length > 0,
    video_sound: body.sound === 'on' ? 'native' : 'off',
    voice_control: Array.isArray(body.voice_list) && body.voice_list.length > 0,
    deduction_time: String(at),
  };
}

function integerParam(value: unknown, name: string): number {
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new KlingError(1201, `${name} must be a Unix time in milliseconds`);
  return n;
}

function timeRange(start: unknown, end: unknown): { start: number; end: number } {
  if (start === undefined || start === null || start === '') throw new KlingError(1201, 'start_time is required');
  if (end === undefined || end === null || end === '') throw new KlingError(1201, 'end_time is required');
  const range = { start: integerParam(start, 'start_time'), end: integerParam(end, 'end_time') };
  if (range.start >= range.end) throw new KlingError(1201, 'start_time must be earlier than end_time');
  return range;
}

function filtersOf(raw: unknown, kind: 'package' | 'balance'): Filter[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) throw new KlingError(1201, 'filters must be an array');
  const filters = raw.map((item: unknown): Filter => {
    const f = (typeof item === 'object' && item !== null ? item : {}) as Record<string, unknown>;
    if (typeof f.key !== 'string' || !FILTER_KEYS[kind].includes(f.key)) throw new KlingError(1201, `filters[].key must be one of ${FILTER_KEYS[kind].join(', ')}`);
    if (!Array.isArray(f.values) || !f.values.every((v) => typeof v === 'string')) throw new KlingError(1201, 'filters[].values must be an array of strings');
    return { key: f.key, values: f.values as string[] };
  });
  const keys = new Set(filters.map((f) => f.key));
  if (keys.has('package_name') && keys.has('package_id')) throw new KlingError(1201, 'package_name and package_id cannot be used together');
  return filters;
}

function encodeCursor(page: PageRequest): string {
  return Buffer.from(JSON.stringify(page)).toString('base64url');
}

function decodeCursor(cursor: string): PageRequest {
  try {
    const page = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as PageRequest;
    if (Number.isSafeInteger(page.offset) && Number.isSafeInteger(page.limit) && Array.isArray(page.filters)) return page;
  } catch {
    // Falls through to the error below.
  }
  throw new KlingError(1201, 'cursor is invalid');
}

/** The page a billing request asks for: from its cursor when it has one (which overrides the rest), else from its fields. */
function pageRequest(body: unknown, kind: 'package' | 'balance'): PageRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new KlingError(1200, 'request body must be a JSON object');
  const fields = body as Record<string, unknown>;
  if (typeof fields.cursor === 'string' && fields.cursor !== '') return decodeCursor(fields.cursor);
  const { start, end } = timeRange(fields.start_time, fields.end_time);
  const limit = fields.limit === undefined ? MAX_LIMIT : fields.limit;
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) throw new KlingError(1201, `limit must be an integer in [1, ${MAX_LIMIT}]`);
  return { start, end, limit, filters: filtersOf(fields.filters, kind), offset: 0 };
}

function paged<T>(rows: T[], page: PageRequest): { result: { detail: T[]; count: number }; next_cursor: string; has_more: boolean } {
  const detail = rows.slice(page.offset, page.offset + page.limit);
  const hasMore = page.offset + page.limit < rows.length;
  return { result: { detail, count: detail.length }, next_cursor: hasMore ? encodeCursor({ ...page, offset: page.offset + page.limit }) : '', has_more: hasMore };
}

/** The account endpoints of the sandbox for its accounts; `tasks` lists every task, oldest first. */
export class AccountBook {
  private readonly packs = new Map<string, SandboxPack[]>();
  private readonly lastCosts = new Map<string, number>();
  /** The answered synchronous calls that name a task, as tasks that ended when they were answered. */
  private readonly syncCalls: SandboxTask[] = [];

  /** `history`: keep at most this many synchronous calls (the oldest forgotten first), as the task store does. */
  constructor(
    accounts: readonly SandboxAccount[],
    private readonly tasks: () => SandboxTask[],
    private readonly history?: number,
    startedAt = Date.now(),
  ) {
    for (const account of accounts) this.packs.set(account.accessKey, defaultPacks(account.accessKey, startedAt));
  }

  /** Records what a synchronous endpoint's answer says it deducted, when the answer names a task. */
  recordSync(accessKey: string, path: string, body: Record<string, unknown>, data: Record<string, unknown>): void {
    if (typeof data.task_id !== 'string') return;
    const now = Date.now();
    const balance = data.final_balance_deduction as BalanceDeduction | undefined;
    this.syncCalls.push({
      taskId: data.task_id, path, family: 'v1', accessKey, body, externalTaskId: undefined, callbackUrl: undefined, status: 'succeed', statusMsg: '',
      createdAt: now, updatedAt: now, result: undefined,
      finalUnitDeduction: typeof data.final_unit_deduction === 'string' ? data.final_unit_deduction : undefined,
      finalBalanceDeduction: balance,
    });
    if (this.history !== undefined && this.syncCalls.length > this.history) this.syncCalls.splice(0, this.syncCalls.length - this.history);
  }

  /** Whether a path is one of the account endpoints. */
  static serves(path: string): boolean {
    return path.startsWith('/account/');
  }

  /** The `data` of an account endpoint's answer, or a KlingError. */
  answer(accessKey: string, method: string, url: URL, body: unknown, malformed: boolean): unknown {
    const path = url.pathname;
    if (path === '/account/costs' && method === 'GET') return this.costs(accessKey, url.searchParams);
    if ((path === '/account/billing/package' || path === '/account/billing/balance') && method === 'POST') {
      if (malformed) throw new KlingError(1200, 'request body is not valid JSON');
      return path.endsWith('package') ? this.unitDetail(accessKey, pageRequest(body, 'package')) : this.balanceDetail(accessKey, pageRequest(body, 'balance'));
    }
    throw new KlingError(1202);
  }

  /** Forgets the request times and the synchronous calls (tasks are forgotten by the task store). */
  reset(): void {
    this.lastCosts.clear();
    this.syncCalls.length = 0;
  }

  private costs(accessKey: string, params: URLSearchParams): unknown {
    const now = Date.now();
    const last = this.lastCosts.get(accessKey);
    if (last !== undefined && now - last < COSTS_INTERVAL_MS) throw new KlingError(1302);
    this.lastCosts.set(accessKey, now);
    const { start, end } = timeRange(params.get('start_time') ?? undefined, params.get('end_time') ?? undefined);
    const name = params.get('resource_pack_name');
    const remaining = this.remaining(accessKey);
    const infos = (this.packs.get(accessKey) ?? [])
      .filter((pack) => pack.effectiveTime <= end && pack.invalidTime >= start && (name === null || pack.name === name))
      .map((pack) => {
        const left = remaining.get(pack.id) ?? pack.total;
        const status = pack.invalidTime < now ? 'expired' : pack.effectiveTime > now ? 'toBeOnline' : left <= 0 ? 'runOut' : 'online';
        return {
          resource_pack_name: pack.name,
          resource_pack_id: pack.id,
          resource_pack_type: 'decreasing_total',
          total_quantity: pack.total,
          remaining_quantity: left,
          purchase_time: pack.purchaseTime,
          effective_time: pack.effectiveTime,
          invalid_time: pack.invalidTime,
          status,
        };
      });
    return { code: 0, msg: 'success', resource_pack_subscribe_infos: infos };
  }

  /** Every deduction of this account's final tasks, in the order they ended. */
  private deductions(accessKey: string): Deduction[] {
    return [...this.tasks(), ...this.syncCalls]
      .filter((task) => task.accessKey === accessKey && (task.status === 'succeed' || task.status === 'failed'))
      .map((task) => ({
        task,
        productType: productTypeOf(task.path),
        units: amount(task.finalUnitDeduction),
        balance: amount(task.finalBalanceDeduction?.quota),
        listPrice: amount(task.finalBalanceDeduction?.list_price),
        at: task.updatedAt,
      }))
      .sort((a, b) => a.at - b.at);
  }

  /** Unit deductions, each drawn from the first pack of its product type that has units left (else the last one). */
  private unitRows(accessKey: string): Record<string, unknown>[] {
    const packs = this.packs.get(accessKey) ?? [];
    const left = new Map(packs.map((pack) => [pack.id, pack.total]));
    const rows: Record<string, unknown>[] = [];
    for (const d of this.deductions(accessKey)) {
      if (d.units === 0) continue;
      const ofType = packs.filter((pack) => pack.productType === d.productType);
      const pack = ofType.find((p) => (left.get(p.id) ?? 0) > 0) ?? ofType[ofType.length - 1];
      if (!pack) continue;
      const before = left.get(pack.id) ?? 0;
      const after = round(Math.max(0, before - d.units));
      left.set(pack.id, after);
      rows.push({
        package_id: pack.id,
        package_name: pack.name,
        product_type: d.productType,
        ...taskFields(d.task, d.at),
        unit_before_deduction: before,
        deduction_amount: d.units,
        unit_after_deduction: after,
      });
    }
    return rows;
  }

  private remaining(accessKey: string): Map<string, number> {
    const left = new Map<string, number>();
    for (const row of this.unitRows(accessKey)) left.set(String(row.package_id), row.unit_after_deduction as number);
    return left;
  }

  private unitDetail(accessKey: string, page: PageRequest): unknown {
    const rows = this.unitRows(accessKey).filter((row) => {
      const at = Number(row.deduction_time);
      return at >= page.start && at <= page.end && page.filters.every((f) => f.values.includes(String(row[f.key])));
    });
    // The package name is a filter, not a field of Kling's detail rows.
    return paged(rows.map(({ package_name: _name, ...row }) => row), page);
  }

  private balanceDetail(accessKey: string, page: PageRequest): unknown {
    let balance = SANDBOX_BALANCE_USD;
    const rows: Record<string, unknown>[] = [];
    for (const d of this.deductions(accessKey)) {
      if (d.balance === 0) continue;
      const before = balance;
      balance = round(balance - d.balance);
      rows.push({
        ...taskFields(d.task, d.at),
        cash_type: 'balance',
        balance_before_deduction: before,
        deduction_amount: d.balance,
        balance_after_deduction: balance,
        list_price: d.listPrice,
        currency: 'USD',
      });
    }
    const inRange = rows.filter((row) => {
      const at = Number(row.deduction_time);
      return at >= page.start && at <= page.end && page.filters.every((f) => f.values.includes(String(row[f.key])));
    });
    return paged(inRange, page);
  }
}

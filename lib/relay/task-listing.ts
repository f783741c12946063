import { Ajv2020 } from 'ajv/dist/2020.js';
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RelayTask, TaskState } from '../../adapters/types.js';
import { RelayHttpError, type FieldError } from '../errors.js';
import type { RegistryEntry } from '../registry/types.js';
import { TASK_STATES } from '../task/states.js';
import { taskObject } from '../task/task-object.js';
import { asStandardTask } from '../upstream/standard.js';
import { addKlingKeywords } from '../validation/keywords.js';
import { toFieldErrors } from '../validation/validator.js';
import { isJsonRequest, readJsonBody } from './body.js';
import { identifyCaller } from './caller.js';
import type { RelayContext } from './context.js';
import { sendSuccess } from './respond.js';

/**
 * `POST /tasks`: Kling's cursor listing of the standard family's tasks, over the caller's own tasks,
 * answered from the relay's database (Kling's own listing would hold every caller's tasks of the
 * account). Rules as Kling's (docs/kling.md): a window of creation times (default the last 30 days),
 * `limit` 1–500 (default 100), filters by status and product type, newest first, and an opaque
 * `next_cursor` for the next page.
 */

type Json = Record<string, unknown>;

const DAY_MS = 24 * 60 * 60 * 1000;
export const LISTING_LIMIT = { default: 100, max: 500 } as const;
export const LISTING_STATUSES = ['submitted', 'processing', 'succeeded', 'failed'] as const;
export const PRODUCT_TYPES = ['video', 'image', 'try_on'] as const;

/** Unix milliseconds, as a number or (as most of Kling's pages send them) a string of digits; "" is none. */
const TIME = {
  type: ['integer', 'string'],
  minimum: 0,
  maxLength: 16,
  pattern: '^[0-9]*$',
  errorMessage: 'must be Unix milliseconds, a number or a string of digits',
  description: 'Unix milliseconds, a number or a string of digits.',
};

/** The body of `POST /tasks`; also the OpenAPI document's request body. */
export const LISTING_BODY_SCHEMA = {
  type: 'object',
  properties: {
    start_time: { ...TIME, description: `${TIME.description} Default: end_time − 30 days. Ignored with a cursor.` },
    end_time: { ...TIME, description: `${TIME.description} Default: now. Ignored with a cursor.` },
    cursor: { type: 'string', description: "The previous page's next_cursor; empty or absent for the first page. It carries the window and the filters." },
    limit: { type: 'integer', minimum: 1, maximum: LISTING_LIMIT.max, default: LISTING_LIMIT.default, description: 'Tasks per page.' },
    filters: {
      type: 'array',
      description: 'Ignored with a cursor. Filters with different keys all apply; values of one key are alternatives.',
      items: {
        type: 'object',
        required: ['key', 'values'],
        properties: {
          key: { enum: ['status', 'product_type'] },
          values: { type: 'array', minItems: 1, items: { type: 'string' } },
        },
        allOf: [
          { if: { properties: { key: { const: 'status' } } }, then: { properties: { values: { type: 'array', items: { enum: [...LISTING_STATUSES] } } } } },
          { if: { properties: { key: { const: 'product_type' } } }, then: { properties: { values: { type: 'array', items: { enum: [...PRODUCT_TYPES] } } } } },
        ],
      },
    },
  },
} as const;

const ajv = new Ajv2020({ strict: true, strictRequired: false, allowUnionTypes: true, useDefaults: true, verbose: true });
addKlingKeywords(ajv);
const validBody = ajv.compile(LISTING_BODY_SCHEMA);

/** What a listing reads, the same on every page of it. */
interface Window {
  start: number;
  end: number;
  status?: string[];
  product?: string[];
}

/** A cursor's content: the caller, the window, and the last task shown. */
interface CursorContent extends Window {
  user: string;
  createdAt: number;
  id: number;
}

/** 400/1201 naming the field; `errors` when a schema found several. */
function badField(path: string, message: string, errors: FieldError[] = [{ path, message }]): RelayHttpError {
  return new RelayHttpError(400, 1201, `invalid request: ${path || '/'} ${message}`, { errors });
}

/** A payload's HMAC with the relay's callback secret, as the cursor spells it (base64url). */
function signature(secret: string, payload: string): string {
  return createHmac('sha256', secret).update(`kling-relay task listing\n${payload}`).digest('base64url');
}

/** A cursor: its content, base64url, and an HMAC of it with the relay's callback secret. */
function writeCursor(secret: string, content: CursorContent): string {
  const payload = Buffer.from(JSON.stringify(content)).toString('base64url');
  return `${payload}.${signature(secret, payload)}`;
}

/**
 * The content of a cursor this relay made for this caller. A cursor is signed so that nobody can make
 * one (or alter one) by hand, and names its caller so that one caller's cursor is refused to another.
 */
function readCursor(secret: string, cursor: string, user: string): CursorContent {
  const refused = badField('/cursor', "is not a next_cursor of one of your listings; start again without a cursor");
  const [payload, mac, extra] = cursor.split('.');
  if (payload === undefined || mac === undefined || extra !== undefined) throw refused;
  // The signature's text, not its decoded bytes: base64url decoding ignores the unused low bits of
  // the last character, so several spellings decode alike, and a cursor is only the one written.
  const expected = Buffer.from(signature(secret, payload));
  const given = Buffer.from(mac);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw refused;
  let content: CursorContent;
  try {
    content = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as CursorContent;
  } catch {
    throw refused;
  }
  if (content.user !== user) throw refused;
  return content;
}

function millis(value: unknown, fallback: number): number {
  return value === undefined || value === '' ? fallback : Number(value);
}

/** The window and filters a first page asks for. */
function windowOf(body: Json): Window {
  const end = millis(body.end_time, Date.now());
  const start = millis(body.start_time, end - 30 * DAY_MS);
  if (!Number.isSafeInteger(end)) throw badField('/end_time', 'is too large');
  if (!Number.isSafeInteger(start)) throw badField('/start_time', 'is too large');
  if (start >= end) throw badField('/start_time', 'must be earlier than end_time');
  const window: Window = { start, end };
  for (const filter of (body.filters ?? []) as { key: string; values: string[] }[]) {
    const key = filter.key === 'status' ? 'status' : 'product';
    window[key] = [...new Set([...(window[key] ?? []), ...filter.values])];
  }
  return window;
}

/** The status a caller sees of a task in this state: Kling's words; the relay's own waiting states are `submitted`. */
function shownStatus(state: TaskState): string {
  if (state === 'succeed') return 'succeeded';
  return state === 'processing' || state === 'failed' ? state : 'submitted';
}

/** What Kling's `product_type` calls what an entry makes. */
function productOf(entry: RegistryEntry): string {
  return entry.type.includes('try-on') ? 'try_on' : entry.table;
}

/** `POST /tasks`: one page of the caller's standard-family tasks, as `{result, count, next_cursor, has_more}`. */
export async function listStandardTasks(ctx: RelayContext, req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
  if (!isJsonRequest(req)) throw new RelayHttpError(415, 1200, 'the request body must be JSON (Content-Type: application/json)');
  const caller = await identifyCaller(ctx, req, res);
  const user = String(caller.id);
  const body = await readJsonBody(req, ctx.config.bodyLimit);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badField('', 'the request body must be a JSON object');
  if (!validBody(body)) {
    const errors = toFieldErrors(validBody.errors ?? []);
    throw badField(errors[0]?.path ?? '', errors[0]?.message ?? '', errors);
  }
  const fields = body as Json;
  const cursor = typeof fields.cursor === 'string' && fields.cursor !== '' ? readCursor(ctx.config.callbackSecret, fields.cursor, user) : undefined;
  const window = cursor ?? windowOf(fields);
  const limit = fields.limit as number;

  const entries = ctx.registry.entries.filter((entry) => entry.family === 'standard' && (!window.product || window.product.includes(productOf(entry))));
  const states = window.status ? TASK_STATES.filter((state) => window.status?.includes(shownStatus(state))) : undefined;
  const after = cursor ? { createdAt: cursor.createdAt, id: cursor.id } : undefined;
  // One task more than the page tells whether there is a next page.
  const found = await ctx.store.pageForUser(ctx.db, user, { endpoints: entries.map((e) => e.path), states, start: window.start, end: window.end, after, limit: limit + 1 });
  const page = found.slice(0, limit);
  const last: RelayTask | undefined = page[page.length - 1];
  const hasMore = found.length > limit && last !== undefined;
  const next = hasMore ? writeCursor(ctx.config.callbackSecret, { user, start: window.start, end: window.end, status: window.status, product: window.product, createdAt: last.created_at, id: last.id }) : '';
  sendSuccess(res, { result: page.map((task) => asStandardTask(taskObject(task))), count: page.length, next_cursor: next, has_more: hasMore }, requestId);
}

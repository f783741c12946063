import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from './paths.js';
import { bundleSchemas } from './registry/bundle.js';
import type { Registry, RegistryEntry } from './registry/types.js';
import { LISTING_BODY_SCHEMA, LISTING_STATUSES } from './relay/task-listing.js';
import { MAX_TASKS_PER_QUERY } from './relay/standard-query.js';
import { KLING_STATUSES } from './task/states.js';
import { CUSTOM_KEYWORDS } from './validation/keywords.js';

type Json = Record<string, unknown>;

export interface OpenApiOptions {
  /** Where the host mounts `relay.router`, e.g. '/kling' or 'https://api.example.com/kling'. Default: '/'. */
  serverUrl?: string;
}

/** One row of ERROR_TABLE. */
interface ErrorCase {
  status: number;
  codes: string;
  when: string;
}

/** The relay's errors, as every route may answer them; the OpenAPI document lists them. */
export const ERROR_TABLE: readonly ErrorCase[] = [
  { status: 400, codes: '1201', when: 'the body fails the schema or a cross-field rule (with `errors: [{path, message}]`), a bad pageNum/pageSize, a bad `GET /tasks` query, or a bad `POST /tasks` body or cursor' },
  { status: 400, codes: '1200', when: 'the body is not JSON or is malformed' },
  { status: 415, codes: '1200', when: 'wrong content type (not application/json)' },
  { status: 413, codes: '1200', when: 'the body is over the relay\'s body limit' },
  { status: 401, codes: '1000', when: 'the host identified no caller' },
  { status: 402, codes: '1102', when: 'not enough quota for the request\'s price' },
  { status: 404, codes: '1202 / 1203', when: 'unknown endpoint / unknown task (another caller\'s task is unknown too)' },
  { status: 400, codes: '1200-1203, 1300-1301', when: 'Kling refused the request: Kling\'s code and message' },
  { status: 429, codes: '1302, 1303', when: 'Kling\'s rate or concurrency limit, with `Retry-After`' },
  { status: 503, codes: '5001', when: 'Kling refused the relay\'s account (1000-1004, 1100-1103, 1304), no price is configured for the request, or the database is unreachable' },
  { status: 502, codes: '5000', when: 'Kling failed (5xx)' },
  { status: 504, codes: '5002', when: 'Kling did not answer in time' },
];

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad request', 401: 'No caller', 402: 'Not enough quota', 404: 'Not found', 413: 'Body too large', 415: 'Not JSON',
  429: 'Rate limited by Kling', 502: 'Kling failed', 503: 'Unavailable', 504: 'Kling timed out',
};

function errorResponses(statuses: number[]): Json {
  return Object.fromEntries(statuses.map((s) => [String(s), { $ref: `#/components/responses/Error${s}` }]));
}

/** The package's version and SPDX license, from its package.json. */
function packageInfo(): { version: string; license: string } {
  try {
    const manifest = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version?: unknown; license?: unknown };
    return { version: String(manifest.version ?? '0.0.0'), license: String(manifest.license ?? 'MIT') };
  } catch {
    return { version: '0.0.0', license: 'MIT' };
  }
}

function components(standard: boolean): Json {
  const envelope = (data: Json | undefined, description: string): Json => ({
    type: 'object',
    description,
    required: ['code', 'message', 'request_id'],
    properties: {
      code: { type: 'integer', const: 0 },
      message: { type: 'string', examples: ['SUCCEED'] },
      request_id: { type: 'string' },
      ...(data ? { data } : {}),
    },
  });
  const taskObject: Json = {
    type: 'object',
    description: "Kling's task object, answered from the relay's database (refreshed from Kling when the task is not final).",
    required: ['task_id', 'task_status'],
    properties: {
      task_id: { type: 'string', description: "Kling's task id ('' until Kling answered the create)." },
      task_status: { type: 'string', enum: [...KLING_STATUSES] },
      task_status_msg: { type: 'string' },
      task_info: { type: 'object', properties: { external_task_id: { type: 'string', description: "The caller's own id, if it sent one." } } },
      task_result: { type: 'object', description: "Kling's task_result (videos, images, audios, ...) once the task succeeded, as Kling gave it (watermark_url included).", additionalProperties: true },
      final_unit_deduction: { type: 'string', description: 'Resource-pack units Kling reported it deducted; on a final task, when Kling reported it.' },
      final_balance_deduction: {
        type: 'object',
        description: 'The balance Kling reported it deducted (discounted price and list price); on a final task, when Kling reported it.',
        properties: { quota: { type: 'string' }, list_price: { type: 'string' } },
        additionalProperties: true,
      },
      created_at: { type: 'integer', description: 'Unix milliseconds.' },
      updated_at: { type: 'integer', description: 'Unix milliseconds.' },
    },
  };
  const responses: Json = {};
  for (const status of [...new Set(ERROR_TABLE.map((e) => e.status))]) {
    const cases = ERROR_TABLE.filter((e) => e.status === status);
    responses[`Error${status}`] = {
      description: `${STATUS_TEXT[status] ?? 'Error'}: ${cases.map((c) => `code ${c.codes} when ${c.when}`).join('; ')}.`,
      ...(status === 429 ? { headers: { 'Retry-After': { description: 'Seconds to wait before trying again.', schema: { type: 'integer' } } } } : {}),
      content: { 'application/json': { schema: { $ref: '#/components/schemas/KlingError' } } },
    };
  }
  const family = standard ? standardComponents(envelope) : { schemas: {}, requestBodies: {} };
  return {
    securitySchemes: SECURITY_SCHEMES,
    requestBodies: family.requestBodies,
    schemas: {
      ...family.schemas,
      KlingTask: taskObject,
      KlingTaskSubmitted: {
        type: 'object',
        description: "The create answer: Kling's task id and status; task_info shows the caller's own external_task_id, never the relay's.",
        required: ['task_id', 'task_status'],
        properties: {
          task_id: { type: 'string' },
          task_status: { type: 'string', enum: [...KLING_STATUSES] },
          task_info: { type: 'object', properties: { external_task_id: { type: 'string' } } },
          created_at: { type: 'integer' },
          updated_at: { type: 'integer' },
        },
      },
      KlingSubmitEnvelope: envelope({ $ref: '#/components/schemas/KlingTaskSubmitted' }, "Kling's envelope around a create answer."),
      KlingSyncEnvelope: envelope({ type: ['object', 'array'] }, "Kling's envelope around an endpoint's immediate answer (e.g. a session, or a preset list)."),
      KlingTaskEnvelope: envelope({ $ref: '#/components/schemas/KlingTask' }, "Kling's envelope around one task."),
      KlingTaskListEnvelope: envelope({ type: 'array', items: { $ref: '#/components/schemas/KlingTask' } }, "Kling's envelope around the caller's tasks, newest first."),
      KlingError: {
        type: 'object',
        required: ['code', 'message', 'request_id'],
        properties: {
          code: { type: 'integer', description: 'A Kling error code (see the error table in info.description).' },
          message: { type: 'string' },
          request_id: { type: 'string' },
          errors: {
            type: 'array',
            description: 'For code 1201: every field that failed, by JSON path.',
            items: { type: 'object', required: ['path', 'message'], properties: { path: { type: 'string', examples: ['/duration'] }, message: { type: 'string' } } },
          },
        },
      },
    },
    responses,
    parameters: {
      TaskId: { name: 'id', in: 'path', required: true, description: "Kling's task_id, or the caller's own external_task_id.", schema: { type: 'string', minLength: 1 } },
    },
  };
}

/** The relay's own keywords renamed `x-<keyword>`, as the bundled registry schemas have them: OpenAPI allows those. */
function withExtensionKeywords(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withExtensionKeywords);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(
    Object.entries(value as Json).map(([key, child]) => {
      if (key === 'properties') return [key, Object.fromEntries(Object.entries(child as Json).map(([name, sub]) => [name, withExtensionKeywords(sub)]))];
      return [(CUSTOM_KEYWORDS as readonly string[]).includes(key) ? `x-${key}` : key, withExtensionKeywords(child)];
    }),
  );
}

/** The standard family's answers (docs/kling.md): its create answer, its task object, and `/tasks`' answers. */
function standardComponents(envelope: (data: Json, description: string) => Json): { schemas: Json; requestBodies: Json } {
  const text = (description: string): Json => ({ type: 'string', description });
  const millis = { type: 'integer', description: 'Unix milliseconds.' };
  const status = { type: 'string', enum: [...LISTING_STATUSES] };
  const output: Json = {
    type: 'object',
    description: 'One result, by type: video {id, url, watermark_url, duration}, image {url, watermark_url}, audio {id, mp3_url, wav_url, mp3_duration, wav_duration}.',
    required: ['type'],
    properties: {
      type: { type: 'string', enum: ['video', 'image', 'audio'] },
      id: { type: 'string' },
      url: { type: 'string' },
      watermark_url: { type: 'string', description: 'When the request turned options.watermark_info on.' },
      duration: text('Seconds of video, a decimal string.'),
      mp3_url: { type: 'string' },
      wav_url: { type: 'string' },
      mp3_duration: { type: 'string' },
      wav_duration: { type: 'string' },
    },
  };
  const billing: Json = {
    type: 'object',
    description: 'One charge Kling reported: resource-pack units (`unit`) or money from the balance (`cash`); amounts are decimal strings.',
    required: ['charge_type', 'amount'],
    properties: {
      charge_type: { type: 'string', enum: ['unit', 'cash'] },
      amount: { type: 'string' },
      package_type: text('With `unit`: the pack the units came from.'),
      cash_type: text('With `cash`: `balance` or `test_balance`.'),
      currency: text('With `cash`, when Kling gave it: `USD` or `CNY`.'),
      list_price: text('With `cash`: the list price.'),
    },
  };
  const listingBody = withExtensionKeywords(LISTING_BODY_SCHEMA) as Json;
  return {
    schemas: {
      StandardTaskSubmitted: {
        type: 'object',
        description: "The standard family's create answer: Kling's task id and status; external_id is the caller's own options.external_task_id (absent when it sent none), never the relay's.",
        required: ['id', 'status'],
        properties: { id: { type: 'string' }, status, create_time: millis, update_time: millis, external_id: { type: 'string' } },
      },
      StandardSubmitEnvelope: envelope({ $ref: '#/components/schemas/StandardTaskSubmitted' }, "Kling's envelope around a standard-family create answer."),
      StandardTask: {
        type: 'object',
        description: "The standard family's task object, answered from the relay's database; external_id is the caller's own id, if it sent one.",
        required: ['id', 'status', 'outputs', 'billing'],
        properties: {
          id: { type: 'string' },
          status,
          message: text('Why the task failed; empty otherwise.'),
          create_time: millis,
          update_time: millis,
          external_id: { type: 'string' },
          outputs: { type: 'array', items: output },
          billing: { type: 'array', items: billing, description: 'On a final task, what Kling reported it charged.' },
        },
      },
      StandardTaskListEnvelope: envelope({ type: 'array', items: { $ref: '#/components/schemas/StandardTask' } }, "Kling's envelope around the caller's tasks named, in the order asked; ids of no task of the caller's are left out."),
      StandardTaskPageEnvelope: envelope(
        {
          type: 'object',
          required: ['result', 'count', 'next_cursor', 'has_more'],
          properties: {
            result: { type: 'array', items: { $ref: '#/components/schemas/StandardTask' }, description: 'Newest first.' },
            count: { type: 'integer', description: 'Tasks in result.' },
            next_cursor: text("The next page's cursor; empty on the last page."),
            has_more: { type: 'boolean' },
          },
        },
        "Kling's envelope around one page of the caller's standard-family tasks.",
      ),
    },
    requestBodies: {
      StandardTaskListing: { description: 'The body of POST /tasks.', required: true, content: { 'application/json': { schema: { title: 'StandardTaskListing', ...listingBody } } } },
    },
  };
}

/**
 * How a caller authenticates: the host's own token check in front of the relay (any bearer token the
 * host issues), or a Kling-style JWT where the host mounts `klingJwtAuth` (HS256, `iss` the access key
 * the host issued, signed with its secret key), so that a Kling SDK works with the base URL changed.
 */
const SECURITY_SCHEMES: Json = {
  hostToken: { type: 'http', scheme: 'bearer', description: "The host's own token for its callers; the host checks it before the relay sees the request." },
  klingJwt: {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description: 'Where the host mounts klingJwtAuth: a JWT as Kling\'s SDKs sign one (HS256, iss = the access key the host issued, exp, nbf), signed with the matching secret key.',
  },
};
/** Either scheme: a host uses its token check, klingJwtAuth, or both (one falling back on the other). */
const SECURITY = [{ hostToken: [] }, { klingJwt: [] }];

/** v1 paths by their product (`/v1/videos/...` → videos), standard ones by their first segment (text-to-video). */
function tag(entry: RegistryEntry): string {
  return entry.path.split('/')[entry.family === 'standard' ? 1 : 2] ?? 'other';
}

/** The relay's POST to a caller's callback_url (README, "Client callbacks"), as an OpenAPI callback. */
function clientCallback(entry: RegistryEntry): Json {
  const standard = entry.family === 'standard';
  const header = (name: string, description: string, required = true): Json => ({ name, in: 'header', required, description, schema: { type: 'string' } });
  return {
    clientCallback: {
      [standard ? '{$request.body#/options/callback_url}' : '{$request.body#/callback_url}']: {
        post: {
          summary: "The relay's notice of a status change",
          description:
            "Sent after every status change of the task (Kling's callback body, not wrapped in the envelope), at least once and in order; " +
            'retried with backoff until a 2xx (a redirect is not followed). Verify it with any Standard Webhooks library and drop repeats by webhook-id.',
          parameters: [
            header('webhook-id', 'The notice id, the same on every retry.'),
            header('webhook-timestamp', 'Unix seconds of this attempt.'),
            header('webhook-signature', 'v1,<base64 HMAC-SHA256 of "id.timestamp.body">, when the host configured a secret.', false),
          ],
          requestBody: { required: true, content: { 'application/json': { schema: { $ref: `#/components/schemas/${standard ? 'StandardTask' : 'KlingTask'}` } } } },
          responses: {
            '2XX': { description: 'Received.' },
            '4XX': { description: 'Not received: retried with backoff, as any answer other than a 2xx.' },
          },
        },
      },
    },
  };
}

function submitOperation(entry: RegistryEntry, schemaName: string, acceptsCallbackUrl: boolean): Json {
  const isTask = entry.kind === 'task';
  return {
    operationId: `submit_${entry.type.replace(/[^A-Za-z0-9]+/g, '_')}_${entry.path.replace(/[^A-Za-z0-9]+/g, '_')}`,
    summary: isTask ? `Submit a ${entry.type} task` : `Call ${entry.type}`,
    description:
      `Validates the body, prices it (${entry.pricingType}), holds the caller's quota, records the task in the host's ${entry.table} table and forwards it to Kling ${entry.path}. ` +
      (!isTask ? "Kling's answer is the result; the hold is settled at once." : entry.family === 'standard' ? 'The result comes later: query it with GET /tasks, or wait for it to settle.' : 'The result comes later: query the task, or wait for it to settle.'),
    tags: [tag(entry)],
    'x-kling-relay': { type: entry.type, table: entry.table, pricing_type: entry.pricingType, kind: entry.kind },
    requestBody: { $ref: `#/components/requestBodies/${schemaName}` },
    ...(isTask && acceptsCallbackUrl ? { callbacks: clientCallback(entry) } : {}),
    responses: {
      '200': {
        description: isTask ? "Accepted by Kling: Kling's envelope with the task id." : "Kling's answer in its envelope.",
        content: { 'application/json': { schema: { $ref: `#/components/schemas/${entry.family === 'standard' ? 'StandardSubmitEnvelope' : isTask ? 'KlingSubmitEnvelope' : 'KlingSyncEnvelope'}` } } },
      },
      ...errorResponses([400, 401, 402, 404, 413, 415, 429, 502, 503, 504]),
    },
  };
}

/** A GET entry's call: the schema's properties are its query parameters (strings), the answer Kling's. */
function getCallOperation(entry: RegistryEntry, schemaName: string, properties: Record<string, unknown>): Json {
  // The parameters carry the bundled property schemas themselves: a query has no body to name.
  return {
    operationId: `call_${entry.type.replace(/[^A-Za-z0-9]+/g, '_')}_${entry.path.replace(/[^A-Za-z0-9]+/g, '_')}`,
    summary: `Call ${entry.type}`,
    description:
      `Validates the query string (schema ${schemaName}), prices the call (${entry.pricingType}), holds the caller's quota, records it in the host's ${entry.table} table and forwards it to Kling GET ${entry.path}. ` +
      "Kling's answer is the result; the hold is settled at once.",
    tags: [tag(entry)],
    'x-kling-relay': { type: entry.type, table: entry.table, pricing_type: entry.pricingType, kind: entry.kind, method: 'GET' },
    parameters: Object.entries(properties).map(([name, schema]) => ({ name, in: 'query', schema })),
    responses: {
      '200': { description: "Kling's answer in its envelope.", content: { 'application/json': { schema: { $ref: '#/components/schemas/KlingSyncEnvelope' } } } },
      ...errorResponses([400, 401, 402, 404, 429, 502, 503, 504]),
    },
  };
}

function listOperation(entry: RegistryEntry): Json {
  return {
    operationId: `list_${entry.path.replace(/[^A-Za-z0-9]+/g, '_')}`,
    summary: `The caller's ${entry.type} tasks, newest first`,
    tags: [tag(entry)],
    parameters: [
      { name: 'pageNum', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 1 } },
      { name: 'pageSize', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 500, default: 30 } },
      { name: 'external_task_id', in: 'query', description: "Only the task with this external_task_id of the caller's (a list of zero or one).", schema: { type: 'string' } },
    ],
    responses: { '200': { description: 'The tasks.', content: { 'application/json': { schema: { $ref: '#/components/schemas/KlingTaskListEnvelope' } } } }, ...errorResponses([400, 401, 503]) },
  };
}

/** `GET /tasks` and `POST /tasks`: the standard family's queries, over the caller's own tasks. */
function standardTasksPath(): Json {
  const ids = (name: string, what: string): Json => ({
    name,
    in: 'query',
    description: `${what}, comma-separated, at most ${MAX_TASKS_PER_QUERY}; give task_ids or external_task_ids, not both.`,
    schema: { type: 'string', minLength: 1 },
  });
  return {
    get: {
      operationId: 'get_standard_tasks',
      summary: "The caller's standard-family tasks named by id",
      description: "Each task is refreshed from Kling first when it is not final and was not checked lately. Another caller's task, a v1 task and an unknown id are left out.",
      tags: ['tasks'],
      parameters: [ids('task_ids', "Kling's task ids"), ids('external_task_ids', "The caller's own external_task_ids")],
      responses: { '200': { description: 'The tasks found.', content: { 'application/json': { schema: { $ref: '#/components/schemas/StandardTaskListEnvelope' } } } }, ...errorResponses([400, 401, 503]) },
    },
    post: {
      operationId: 'list_standard_tasks',
      summary: "A page of the caller's standard-family tasks, newest first",
      description:
        "Kling's cursor listing over the caller's own tasks, answered from the relay's database (not refreshed from Kling): the tasks the relay received in [start_time, end_time], " +
        'filtered by status and product type. Pass next_cursor back as cursor for the next page; a cursor is only good for the caller it was given to.',
      tags: ['tasks'],
      requestBody: { $ref: '#/components/requestBodies/StandardTaskListing' },
      responses: {
        '200': { description: 'One page.', content: { 'application/json': { schema: { $ref: '#/components/schemas/StandardTaskPageEnvelope' } } } },
        ...errorResponses([400, 401, 413, 415, 503]),
      },
    },
  };
}

function getOperation(operationId: string, summary: string, tags: string[]): Json {
  return {
    operationId,
    summary,
    tags,
    parameters: [{ $ref: '#/components/parameters/TaskId' }],
    responses: { '200': { description: 'The task.', content: { 'application/json': { schema: { $ref: '#/components/schemas/KlingTaskEnvelope' } } } }, ...errorResponses([401, 404, 503]) },
  };
}

function describe(): string {
  const rows = ERROR_TABLE.map((e) => `| ${e.status} | ${e.codes} | ${e.when} |`).join('\n');
  return [
    "Kling AI's video, image and audio APIs, resold through the host's kling-relay. Every body and error is Kling's envelope " +
      '(`{"code": 0, "message": "SUCCEED", "request_id": "...", "data": {...}}`), so a Kling client works by changing its base URL. ' +
      'The host authenticates callers (its own token check); a caller only ever sees its own tasks. ' +
      "Kling's standard family (the model in the path, e.g. `/text-to-video/kling-3.0-turbo`) answers in its own shape (`{id, status, ...}`) and is queried through `/tasks`.",
    '',
    '| HTTP | code | when |',
    '|---|---|---|',
    rows,
  ].join('\n');
}

/**
 * The OpenAPI 3.1 document of every route the relay answers for this registry (built-in and an
 * integrator's entries alike): a submit per entry with its request schema, the queries of queryable
 * entries, `/v1/tasks/{id}`, and the relay's error table. The request schemas are
 * the registry's own (JSON Schema 2020-12 is OpenAPI 3.1's schema dialect), bundled into
 * `components.schemas`.
 */
export function buildOpenApi(registry: Registry, options: OpenApiOptions = {}): Json {
  const bundle = bundleSchemas(registry, '#/components/schemas/');
  const standard = registry.entries.some((entry) => entry.family === 'standard');
  const base = components(standard);
  const paths: Json = {};
  const bodies: Record<string, string[]> = {};
  for (const entry of [...registry.entries].sort((a, b) => a.path.localeCompare(b.path))) {
    const schemaName = bundle.rootName.get(entry.schemaId) as string;
    const properties = (registry.schemas.get(entry.schemaId) as { properties?: Record<string, unknown> } | undefined)?.properties;
    // A GET entry's schema describes query parameters, not a body: its properties become the parameters.
    if (entry.method === 'GET') {
      const bundled = (bundle.schemas[schemaName] as { properties?: Record<string, unknown> } | undefined)?.properties;
      paths[entry.path] = { get: getCallOperation(entry, schemaName, bundled ?? properties ?? {}) };
      continue;
    }
    bodies[schemaName] = [...(bodies[schemaName] ?? []), entry.path];
    if (entry.family === 'standard') {
      // The family's callback_url lives in options (shared defs), its tasks are queried through /tasks.
      paths[entry.path] = { post: submitOperation(entry, schemaName, true) };
      continue;
    }
    paths[entry.path] = { post: submitOperation(entry, schemaName, properties?.callback_url !== undefined), ...(entry.queryable ? { get: listOperation(entry) } : {}) };
    if (entry.queryable) {
      paths[`${entry.path}/{id}`] = { get: getOperation(`get_${entry.path.replace(/[^A-Za-z0-9]+/g, '_')}`, `One of the caller's ${entry.type} tasks`, [tag(entry)]) };
    }
  }
  paths['/v1/tasks/{id}'] = { get: getOperation('get_task', "One of the caller's tasks, whatever its endpoint", ['tasks']) };
  if (standard) paths['/tasks'] = standardTasksPath();
  paths['/openapi.json'] = {
    get: { operationId: 'openapi', summary: 'This document', tags: ['meta'], responses: { '200': { description: 'The OpenAPI document.', content: { 'application/json': { schema: { type: 'object' } } } }, ...errorResponses([401]) } },
  };
  const { schemas, requestBodies } = requestBodiesOf({ ...(base.schemas as Json), ...bundle.schemas }, bodies);
  const info = packageInfo();
  // A bundled schema nothing in the document names is left out: the empty root of a file that only
  // holds shared $defs (the built-in defs.json). Repeated, since leaving out a schema can leave out
  // what only it named.
  for (let pruned = true; pruned; ) {
    const named = referencedSchemas([paths, schemas, requestBodies]);
    const unnamed = Object.keys(bundle.schemas).filter((name) => name in schemas && !named.has(name));
    for (const name of unnamed) delete schemas[name];
    pruned = unnamed.length > 0;
  }
  return {
    openapi: '3.1.0',
    info: { title: 'kling-relay', version: info.version, description: describe(), license: { name: info.license, identifier: info.license } },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    servers: [{ url: options.serverUrl || '/', description: 'Where the host mounts the relay.' }],
    security: SECURITY,
    paths,
    components: { ...base, schemas, requestBodies: { ...(base.requestBodies as Json), ...requestBodies } },
  };
}

/** The names of the component schemas some `$ref` in these values points into. */
function referencedSchemas(values: unknown[]): Set<string> {
  const names = new Set<string>();
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) value.forEach(visit);
    else if (typeof value === 'object' && value !== null) {
      for (const [key, child] of Object.entries(value as Json)) {
        const name = key === '$ref' && typeof child === 'string' ? /^#\/components\/schemas\/([^/]+)/.exec(child)?.[1] : undefined;
        if (name !== undefined) names.add(name);
        else visit(child);
      }
    }
  };
  values.forEach(visit);
  return names;
}

/** A JSON pointer token: `/` and `~` escaped. */
function pointerToken(text: string): string {
  return text.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** The value with every `$ref` to a moved schema pointed at its new place. */
function repointRefs(value: unknown, moved: ReadonlyMap<string, string>): unknown {
  if (Array.isArray(value)) return value.map((item) => repointRefs(item, moved));
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(
    Object.entries(value as Json).map(([key, child]) => {
      if (key !== '$ref' || typeof child !== 'string') return [key, repointRefs(child, moved)];
      const match = /^#\/components\/schemas\/([^/]+)(.*)$/.exec(child);
      const target = match ? moved.get(match[1] as string) : undefined;
      return [key, target === undefined ? child : `${target}${match?.[2] ?? ''}`];
    }),
  );
}

/**
 * Each endpoint's request schema as a named request body (`components.requestBodies.<Name>`) instead
 * of a named schema. A schema read as a request body is what a client sends, so a generator (such as
 * openapi-typescript) makes a property with a default optional there: the client may leave it out
 * and the relay fills it in. A `$ref` to a moved schema follows it.
 */
function requestBodiesOf(all: Json, bodies: Readonly<Record<string, readonly string[]>>): { schemas: Json; requestBodies: Json } {
  const moved = new Map(Object.keys(bodies).map((name) => [name, `#/components/requestBodies/${pointerToken(name)}/content/application~1json/schema`]));
  const schemas: Json = {};
  const requestBodies: Json = {};
  for (const [name, schema] of Object.entries(all)) {
    const repointed = repointRefs(schema, moved);
    const paths = bodies[name];
    if (paths === undefined) schemas[name] = repointed;
    else requestBodies[name] = { description: `The body of POST ${paths.join(', POST ')}.`, required: true, content: { 'application/json': { schema: repointed } } };
  }
  return { schemas, requestBodies };
}

const built = new WeakMap<Registry, Map<string, Json>>();

/** The document for this registry and mount point, built once (the registry does not change after start). */
export function openApiDocument(registry: Registry, serverUrl = '/'): Json {
  let byServer = built.get(registry);
  if (!byServer) built.set(registry, (byServer = new Map()));
  let doc = byServer.get(serverUrl);
  if (!doc) byServer.set(serverUrl, (doc = buildOpenApi(registry, { serverUrl })));
  return doc;
}

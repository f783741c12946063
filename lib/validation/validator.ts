import { Ajv2020 } from 'ajv/dist/2020.js';
import type { ErrorObject, ValidateFunction } from 'ajv/dist/2020.js';
import { KlingRelayConfigError, type FieldError } from '../errors.js';
import type { Registry, RegistryEntry } from '../registry/types.js';
import { addFormats } from './formats.js';
import { addKlingKeywords, CUSTOM_KEYWORDS, laterFirst } from './keywords.js';

export const MAX_ERRORS = 20;

export type ValidationResult<T = Record<string, unknown>> = { ok: true; body: T } | { ok: false; errors: FieldError[] };

/** Keys that could reach Object.prototype if a body were ever merged into another object. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

function escapePointer(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** A container the forbidden-key walk has still to look into, and the way back to the body's root. */
interface Visit {
  node: object;
  key: string;
  parent: Visit | undefined;
}

function pointerOf(visit: Visit | undefined, key: string): string {
  const keys = [key];
  for (let v = visit; v?.parent !== undefined; v = v.parent) keys.push(v.key);
  return keys.reverse().map((k) => `/${escapePointer(k)}`).join('');
}

/**
 * Walks objects and arrays (never string contents) for keys that must not appear anywhere. Only
 * containers are remembered, each with a link to its parent, so that the one path reported is built
 * when a key is found and a body of a million scalars costs a loop, not a million strings.
 */
function forbiddenKey(value: unknown): FieldError | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const stack: Visit[] = [{ node: value, key: '', parent: undefined }];
  for (let visit = stack.pop(); visit !== undefined; visit = stack.pop()) {
    const { node } = visit;
    if (Array.isArray(node)) {
      const items = node as unknown[];
      for (let i = 0; i < items.length; i++) {
        const item = items[i];
        if (typeof item === 'object' && item !== null) stack.push({ node: item, key: String(i), parent: visit });
      }
      continue;
    }
    for (const key of Object.keys(node)) {
      if (FORBIDDEN_KEYS.has(key)) return { path: pointerOf(visit, key), message: `the key '${key}' is not allowed` };
      const child = (node as Record<string, unknown>)[key];
      if (typeof child === 'object' && child !== null) stack.push({ node: child, key, parent: visit });
    }
  }
  return undefined;
}

function quoteList(values: readonly unknown[]): string {
  return values.map((v) => JSON.stringify(v)).join(', ');
}

/** The property names a subschema requires, when it requires any. */
function requiredOf(schema: unknown): string[] {
  const required = (schema as { required?: unknown } | undefined)?.required;
  return Array.isArray(required) ? required.filter((f): f is string => typeof f === 'string') : [];
}

function quoteNames(fields: readonly string[], last: 'and' | 'or'): string {
  const quoted = fields.map((f) => `'${f}'`);
  return quoted.length < 2 ? (quoted[0] ?? '') : `${quoted.slice(0, -1).join(', ')} ${last} ${quoted[quoted.length - 1] ?? ''}`;
}

/** The branches of a failed oneOf that matched (ajv's `passingSchemas`), empty when none did. */
function passingBranches(error: ErrorObject): number[] {
  const passing = (error.params as { passingSchemas?: unknown }).passingSchemas;
  return Array.isArray(passing) ? passing.filter((i): i is number => typeof i === 'number') : [];
}

/**
 * The properties a failed `not` / `oneOf` / `anyOf` spans, the one to change first, or undefined
 * when the schema does not say. `errorFields` on the subschema wins; otherwise they come from the
 * `required` lists: the fields a `not` forbids together (the later first), the alternatives of a
 * oneOf/anyOf none of which is given (the first first), or the alternatives of a oneOf given
 * together (the later first).
 */
function compositeFields(error: ErrorObject): string[] | undefined {
  const declared = (error.parentSchema as { errorFields?: unknown } | undefined)?.errorFields;
  if (Array.isArray(declared)) return declared as string[];
  if (error.keyword === 'not') {
    const fields = requiredOf(error.schema);
    return fields.length > 0 ? laterFirst(fields) : undefined;
  }
  const branches = Array.isArray(error.schema) ? (error.schema as unknown[]).map(requiredOf) : [];
  if (branches.length === 0 || branches.some((b) => b.length === 0)) return undefined;
  const passing = passingBranches(error);
  if (passing.length > 1) return laterFirst(passing.flatMap((i) => branches[i] ?? []));
  return [...new Set(branches.flat())];
}

/** A message for a `not` / `oneOf` / `anyOf` failure, from the subschemas when they are plain required sets. */
function compositeMessage(error: ErrorObject): string {
  const own = (error.parentSchema as { errorMessage?: unknown } | undefined)?.errorMessage;
  if (typeof own === 'string') return own;
  const plainRequired = (schema: unknown): string[] | undefined => {
    const s = schema as Record<string, unknown> | undefined;
    return s && Array.isArray(s.required) && Object.keys(s).length === 1 ? requiredOf(s) : undefined;
  };
  if (error.keyword === 'not') {
    const fields = plainRequired(error.schema);
    if (fields) return fields.length === 1 ? `'${fields[0]}' is not allowed here` : `${quoteNames(fields, 'and')} cannot be used together`;
    return 'this combination of fields is not allowed';
  }
  const branches = Array.isArray(error.schema) ? (error.schema as unknown[]).map(plainRequired) : [];
  if (branches.length > 0 && branches.every((b) => b?.length === 1)) {
    const alternatives = branches.map((b) => b?.[0] ?? '');
    const names = quoteNames(alternatives, 'or');
    if (error.keyword === 'anyOf') return `at least one of ${names} is required`;
    const given = passingBranches(error).map((i) => alternatives[i] ?? '');
    return given.length > 1 ? `${quoteNames(given, 'and')} cannot be used together; exactly one of ${names} is required` : `exactly one of ${names} is required`;
  }
  return error.keyword === 'oneOf' ? 'must match exactly one of the allowed shapes' : 'must match one of the allowed shapes';
}

/** The paths an error is answered at: one per field a rule over several fields spans, else its own. */
function errorPaths(error: ErrorObject): string[] {
  const path = error.instancePath;
  switch (error.keyword) {
    case 'required':
    case 'dependentRequired':
      return [`${path}/${escapePointer(String((error.params as { missingProperty: string }).missingProperty))}`];
    case 'not':
    case 'oneOf':
    case 'anyOf':
      return compositeFields(error)?.map((field) => (field.startsWith('/') ? `${path}${field}` : `${path}/${escapePointer(field)}`)) ?? [path];
    default:
      return [path];
  }
}

function messageFor(error: ErrorObject): string {
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'required':
      return 'is required';
    case 'dependentRequired':
      return `is required when '${String(params.property)}' is present`;
    case 'enum':
      return `must be one of: ${quoteList(params.allowedValues as unknown[])}`;
    case 'const':
      return `must be ${JSON.stringify(params.allowedValue)}`;
    case 'type':
      return `must be ${String(params.type).replace(/,/g, ' or ')}`;
    case 'maxLength':
      return `must be at most ${String(params.limit)} characters`;
    case 'minLength':
      return params.limit === 1 ? 'must not be empty' : `must be at least ${String(params.limit)} characters`;
    case 'maxItems':
      return `must have at most ${String(params.limit)} items`;
    case 'minItems':
      return `must have at least ${String(params.limit)} item${params.limit === 1 ? '' : 's'}`;
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return `must be ${String(params.comparison)} ${String(params.limit)}`;
    case 'pattern':
      return (error.parentSchema as { errorMessage?: string } | undefined)?.errorMessage ?? `must match the pattern ${String(params.pattern)}`;
    case 'format':
      return `must be a valid ${String(params.format)}`;
    case 'false schema':
      return 'is not allowed here';
    case 'contains':
      return (error.parentSchema as { errorMessage?: string } | undefined)?.errorMessage ?? error.message ?? 'is invalid';
    case 'not':
    case 'oneOf':
    case 'anyOf':
      return compositeMessage(error);
    default:
      return error.message ?? 'is invalid';
  }
}

/** Ajv errors, at most MAX_ERRORS, as `{path, message}` a client can act on. */
export function toFieldErrors(errors: readonly ErrorObject[]): FieldError[] {
  // The branch errors of a failed oneOf/anyOf only say why each alternative did not fit; the
  // composite's own message says what is wanted.
  const composites = errors.filter((e) => e.keyword === 'oneOf' || e.keyword === 'anyOf').map((e) => e.schemaPath + '/');
  const out: FieldError[] = [];
  const seen = new Set<string>();
  for (const error of errors) {
    if (error.keyword === 'if') continue; // the failing then/else branch reported its own error
    if (composites.some((prefix) => error.schemaPath.startsWith(prefix))) continue;
    const message = messageFor(error);
    for (const path of errorPaths(error)) {
      const key = `${path}\u0000${message}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({ path, message });
      if (out.length >= MAX_ERRORS) return out;
    }
  }
  return out;
}

export interface Validator {
  /** Validates and normalises (defaults, unknown fields dropped, data: prefixes stripped) in place. */
  validate(path: string, body: unknown): ValidationResult;
}

function schemaError(entry: RegistryEntry | undefined, id: string, cause: unknown): KlingRelayConfigError {
  const message = cause instanceof Error ? cause.message : String(cause);
  const who = entry ? `Registry ${entry.source}: entry '${entry.path}' (schema ${entry.schemaFile})` : `Schema ${id}`;
  const unknown = /unknown keyword: "([^"]+)"/.exec(message);
  if (unknown) {
    return new KlingRelayConfigError(
      'ERR_KLING_RELAY_UNKNOWN_KEYWORD',
      `${who} uses the unknown keyword '${unknown[1]}'. Use standard JSON Schema or one of the relay's keywords: ${CUSTOM_KEYWORDS.join(', ')} (docs/schemas.md).`,
      { cause },
    );
  }
  return new KlingRelayConfigError('ERR_KLING_RELAY_SCHEMA_INVALID', `${who} is not a valid schema: ${message}. Fix the schema (docs/schemas.md).`, { cause });
}

/** One ajv instance per relay; every endpoint schema compiled here, once. */
export function createValidator(registry: Registry): Validator {
  const ajv = new Ajv2020({
    strict: true,
    strictRequired: false,
    allowUnionTypes: true,
    allErrors: false,
    useDefaults: true,
    removeAdditional: true,
    verbose: true,
    messages: true,
  });
  addFormats(ajv);
  addKlingKeywords(ajv);

  const entryById = new Map<string, RegistryEntry>();
  for (const entry of registry.entries) entryById.set(entry.schemaId, entry);
  for (const [id, schema] of registry.schemas) {
    try {
      ajv.addSchema(schema, id);
    } catch (cause) {
      throw schemaError(entryById.get(id), id, cause);
    }
  }

  const compiled = new Map<string, ValidateFunction>();
  for (const entry of registry.entries) {
    try {
      const fn = ajv.getSchema(entry.schemaId);
      if (!fn) throw new Error(`no schema with $id ${entry.schemaId}`);
      compiled.set(entry.path, fn);
    } catch (cause) {
      throw schemaError(entry, entry.schemaId, cause);
    }
  }

  return {
    validate(path, body) {
      const fn = compiled.get(path);
      if (!fn) throw new Error(`kling-relay: no schema compiled for ${path}`);
      if (typeof body !== 'object' || body === null || Array.isArray(body)) {
        return { ok: false, errors: [{ path: '', message: 'the request body must be a JSON object' }] };
      }
      const forbidden = forbiddenKey(body);
      if (forbidden) return { ok: false, errors: [forbidden] };
      if (fn(body)) return { ok: true, body: body as Record<string, unknown> };
      return { ok: false, errors: toFieldErrors(fn.errors ?? []) };
    },
  };
}

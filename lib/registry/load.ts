import { Ajv2020 } from 'ajv/dist/2020.js';
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { KlingRelayConfigError } from '../errors.js';
import { builtinRegistryPath, packageRoot } from '../paths.js';
import type { Registry, RegistryEntry, RegistryEntryJson, RegistryFileJson } from './types.js';

function readJson(file: string, what: string, code: `ERR_KLING_RELAY_${string}`, fix: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    throw new KlingRelayConfigError(code, `${what}: cannot read ${file}. ${fix}`, { cause });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (cause) {
    throw new KlingRelayConfigError(code, `${what}: ${file} is not valid JSON (${(cause as Error).message}). ${fix}`, { cause });
  }
}

let metaValidator: ReturnType<Ajv2020['compile']> | undefined;

function registryMetaValidator() {
  if (!metaValidator) {
    const meta = readJson(join(packageRoot(), 'schemas', 'registry.schema.json'), 'registry meta-schema', 'ERR_KLING_RELAY_INTERNAL', 'Reinstall kling-relay.');
    metaValidator = new Ajv2020({ allErrors: true, strict: true }).compile(meta as object);
  }
  return metaValidator;
}

const FIELD_FIXES: Record<string, string> = {
  table: "use 'video' (video and audio endpoints) or 'image'",
  pricing_type: "use 'per_second', 'fixed' or 'per_image'",
  kind: "use 'task' (answered later by callback) or 'sync' (answered at once)",
  path: "write the exact Kling path: '/v1/...' (e.g. '/v1/videos/text2video'), or '/<product>/<model>' with family 'standard' (e.g. '/text-to-video/kling-3.0-turbo')",
  method: "use 'POST' (a JSON body; the default) or 'GET' (a query string)",
  queryable: "a boolean; a GET entry is the call itself and has no task list, so its queryable is false",
  family: "use 'v1' (the default) or 'standard'",
};

/** Checks a registry document against schemas/registry.schema.json; errors name the entry and the fix. */
function checkRegistryDocument(doc: unknown, source: string): RegistryFileJson {
  const validate = registryMetaValidator();
  if (validate(doc)) return doc as RegistryFileJson;
  const error = validate.errors?.[0];
  const where = error?.instancePath ?? '';
  const match = /^\/endpoints\/(\d+)(?:\/([^/]+))?/.exec(where);
  const entry = match ? (doc as RegistryFileJson).endpoints[Number(match[1])] : undefined;
  const label = entry && typeof entry === 'object' && typeof entry.path === 'string' ? `entry '${entry.path}'` : match ? `entry #${match[1]}` : 'the registry';
  const field = match?.[2];
  let detail = error ? `${where || '/'} ${error.message ?? 'is invalid'}` : 'is invalid';
  if (error?.keyword === 'additionalProperties') detail = `unknown field '${String(error.params.additionalProperty)}'`;
  if (error?.keyword === 'required') detail = `missing field '${String(error.params.missingProperty)}'`;
  const fix = (field && FIELD_FIXES[field]) ?? 'see docs/schemas.md and schemas/registry.schema.json for the entry format';
  const code = field === 'table' ? 'ERR_KLING_RELAY_REGISTRY_TABLE' : field === 'pricing_type' ? 'ERR_KLING_RELAY_REGISTRY_PRICING_TYPE' : 'ERR_KLING_RELAY_REGISTRY_INVALID';
  throw new KlingRelayConfigError(code, `Registry ${source}: ${label}: ${detail}; ${fix}.`);
}

function schemaIdFor(file: string, schema: Record<string, unknown>): string {
  return typeof schema.$id === 'string' ? schema.$id : pathToFileURL(file).href;
}

export function toEntry(json: RegistryEntryJson, schemaFile: string, schemaId: string, source: string): RegistryEntry {
  return {
    path: json.path,
    method: json.method ?? 'POST',
    family: json.family ?? 'v1',
    type: json.type,
    table: json.table,
    pricingType: json.pricing_type,
    kind: json.kind,
    fields: json.fields ?? {},
    series: json.series,
    defaultModel: json.default_model,
    defaultSeconds: json.default_seconds,
    refersTo: json.refers_to ?? [],
    queryable: json.queryable,
    schemaFile,
    schemaId,
    source,
  };
}

/**
 * Reads one registry document and the schema file of each entry. Paths of schema files are relative
 * to the registry file (or to `baseDir` for a registry given as an object).
 */
function readRegistry(doc: unknown, source: string, baseDir: string, schemas: Map<string, Record<string, unknown>>): RegistryEntry[] {
  const registry = checkRegistryDocument(doc, source);
  const seen = new Set<string>();
  return registry.endpoints.map((json) => {
    if (seen.has(json.path)) {
      throw new KlingRelayConfigError(
        'ERR_KLING_RELAY_REGISTRY_DUPLICATE_PATH',
        `Registry ${source}: the path '${json.path}' appears twice; keep one entry per path (an integrator's registry may override a built-in path once).`,
      );
    }
    seen.add(json.path);
    const file = isAbsolute(json.schema) ? json.schema : resolve(baseDir, json.schema);
    const schema = readJson(
      file,
      `Registry ${source}: entry '${json.path}'`,
      'ERR_KLING_RELAY_SCHEMA_MISSING',
      `Create the schema file or fix the entry's 'schema' (relative to ${baseDir}).`,
    );
    if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) {
      throw new KlingRelayConfigError('ERR_KLING_RELAY_SCHEMA_INVALID', `Registry ${source}: entry '${json.path}': ${file} must hold a JSON Schema object.`);
    }
    const schemaObject = schema as Record<string, unknown>;
    const id = schemaIdFor(file, schemaObject);
    schemas.set(id, schemaObject);
    return toEntry(json, file, id, source);
  });
}

export type RegistrySource = string | RegistryFileJson | undefined;

/**
 * The built-in registry, merged with an integrator's (`options.registry`): an entry with a path
 * that is already registered replaces it, a new path is added.
 */
export function loadRegistry(extra: RegistrySource): Registry {
  const schemas = new Map<string, Record<string, unknown>>();
  const builtinFile = builtinRegistryPath();
  const defsFile = join(dirname(builtinFile), 'defs.json');
  const defs = readJson(defsFile, 'shared schema definitions', 'ERR_KLING_RELAY_INTERNAL', 'Reinstall kling-relay.') as Record<string, unknown>;
  schemas.set(schemaIdFor(defsFile, defs), defs);

  const builtin = readRegistry(readJson(builtinFile, 'built-in registry', 'ERR_KLING_RELAY_INTERNAL', 'Reinstall kling-relay.'), builtinFile, dirname(builtinFile), schemas);
  const byPath = new Map(builtin.map((entry) => [entry.path, entry]));

  if (extra !== undefined) {
    let added: RegistryEntry[];
    if (typeof extra === 'string') {
      const file = resolve(extra);
      const doc = readJson(file, `options.registry`, 'ERR_KLING_RELAY_REGISTRY_MISSING', 'Pass the path of a registry JSON file or a registry object.');
      added = readRegistry(doc, file, dirname(file), schemas);
    } else if (typeof extra === 'object' && extra !== null) {
      added = readRegistry(extra, 'options.registry', process.cwd(), schemas);
    } else {
      throw new KlingRelayConfigError('ERR_KLING_RELAY_OPTION_REGISTRY', 'options.registry must be a path to a registry JSON file or a registry object ({ endpoints: [...] }).');
    }
    for (const entry of added) byPath.set(entry.path, entry);
  }
  return { entries: [...byPath.values()], byPath, schemas };
}

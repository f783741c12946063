import { readFileSync } from 'node:fs';
import { checkHostTables, hostSchemaError, type HostTablesToCheck } from '../../adapters/host-check.js';
import { PROFILE_DEFAULTS, PROFILES, type ProfileName } from '../profiles.js';
import { HostTable } from '../../adapters/host-table.js';
import { resolveQuotaStoreOptions, type KnexQuotaStoreOptions } from '../../adapters/quota-store.js';
import type { HostTableOptions } from '../../adapters/types.js';
import { KlingRelayConfigError } from '../errors.js';
import { openDatabase, redact } from './migrate.js';
import { quote, type PriceQuote } from '../pricing/estimate.js';
import { loadPricingRules, PriceBook } from '../pricing/rules.js';
import { loadRegistry } from '../registry/load.js';
import type { Registry, RegistryEntry, SwitchSource } from '../registry/types.js';
import { createValidator } from '../validation/validator.js';
import { isObject, type Json } from '../json.js';

export interface CheckedEndpoint {
  entry: RegistryEntry;
  /** The typical request that was priced (only the fields pricing reads). */
  body: Json;
  price: PriceQuote | undefined;
  reason: string | undefined;
}

export interface CheckResult {
  endpoints: CheckedEndpoint[];
  unpriced: CheckedEndpoint[];
  pricingGiven: boolean;
  ruleCount: number;
}

/** Follows a `$ref` to a schema of the registry (by `$id` plus JSON pointer), once. */
function deref(registry: Registry, schema: unknown, baseId: string): unknown {
  if (!isObject(schema) || typeof schema.$ref !== 'string') return schema;
  let url: URL;
  try {
    url = new URL(schema.$ref, baseId);
  } catch {
    return schema;
  }
  const pointer = decodeURIComponent(url.hash.slice(1));
  url.hash = '';
  let node: unknown = registry.schemas.get(url.href);
  for (const part of pointer.split('/').filter(Boolean)) node = isObject(node) ? node[part] : undefined;
  return node ?? schema;
}

/** The property schema at a dotted path (`input.duration`) of an endpoint schema. */
function propertyAt(registry: Registry, entry: RegistryEntry, path: string): Json | undefined {
  let node: unknown = registry.schemas.get(entry.schemaId);
  for (const part of path.split('.')) {
    node = deref(registry, node, entry.schemaId);
    node = isObject(node) && isObject(node.properties) ? node.properties[part] : undefined;
  }
  node = deref(registry, node, entry.schemaId);
  return isObject(node) ? node : undefined;
}

/** What a client typically sends: the schema's default, else its first example, enum value or const. */
function typicalValue(schema: Json | undefined): unknown {
  if (!schema) return undefined;
  if (schema.default !== undefined) return schema.default;
  if (Array.isArray(schema.examples) && schema.examples.length > 0) return schema.examples[0];
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return schema.enum[0];
  return schema.const;
}

function setAt(body: Json, path: string, value: unknown): void {
  const parts = path.split('.');
  let node = body;
  for (const part of parts.slice(0, -1)) {
    if (!isObject(node[part])) node[part] = {};
    node = node[part] as Json;
  }
  node[parts[parts.length - 1] as string] = value;
}

/** The fields pricing reads, filled from the schema (a list's items are left out: a typical request has none). */
export function typicalBody(registry: Registry, entry: RegistryEntry): Json {
  const body: Json = {};
  for (const source of Object.values(entry.fields) as (SwitchSource | undefined)[]) {
    const path = typeof source === 'string' ? source : source?.path;
    if (!path || path.includes('[]')) continue;
    const value = typicalValue(propertyAt(registry, entry, path));
    if (value !== undefined) setAt(body, path, value);
  }
  return body;
}

/**
 * Loads a registry and pricing rules the way createKlingRelay does (so an invalid file throws the same
 * coded error) and prices a typical request of every endpoint.
 */
export function checkConfiguration(options: { registry?: string | undefined; pricing?: string | undefined; quotaPerUnit: number }): CheckResult {
  const registry = loadRegistry(options.registry);
  // Compiles every schema, as at start-up: an unknown keyword or a broken $ref fails here too.
  createValidator(registry);
  const rules = options.pricing === undefined ? [] : loadPricingRules(options.pricing);
  const book = new PriceBook(rules);
  const endpoints = registry.entries.map((entry): CheckedEndpoint => {
    const body = typicalBody(registry, entry);
    const priced = quote(entry, structuredClone(body), book, options.quotaPerUnit);
    return { entry, body, price: priced.ok ? priced.quote : undefined, reason: priced.ok ? undefined : priced.reason };
  });
  return { endpoints, unpriced: endpoints.filter((e) => !e.price), pricingGiven: options.pricing !== undefined, ruleCount: rules.length };
}

function describeRequest(c: CheckedEndpoint): string {
  if (!c.price) return '';
  const parts = [`model=${c.price.model || '-'}`];
  if (c.price.mode) parts.push(`mode=${c.price.mode}`);
  if (c.price.pricingType === 'per_second') parts.push(`${c.price.seconds}s`);
  if (c.price.pricingType === 'per_block') parts.push(`${c.price.seconds}s = ${c.price.units} block(s)`);
  if (c.price.pricingType === 'per_image') parts.push(`${c.price.units} image(s)`);
  if (c.price.pricingType === 'units') parts.push(`${c.price.units} Kling unit(s)`);
  return parts.join(' ');
}

function usd(value: number): string {
  return `${Number(value.toFixed(6))} USD`;
}

export function formatCheck(result: CheckResult): string {
  const priced = result.endpoints.filter((e) => e.price);
  const width = Math.max(...result.endpoints.map((e) => e.entry.path.length));
  const typeWidth = Math.max(...result.endpoints.map((e) => e.entry.type.length));
  const lines = [`${result.endpoints.length} endpoints; ${result.pricingGiven ? `${result.ruleCount} pricing rules` : 'no pricing file given (--pricing)'}.`, ''];
  for (const c of priced) {
    const p = c.price as PriceQuote;
    lines.push(`  ${c.entry.path.padEnd(width)}  ${c.entry.type.padEnd(typeWidth)}  ${usd(p.usd).padStart(14)}  ${String(p.quota).padStart(9)} quota  ${p.pricingType} (${describeRequest(c)})`);
  }
  if (result.unpriced.length > 0) {
    lines.push('', `No rule prices these ${result.unpriced.length} endpoint(s); the relay refuses their requests with 503 until one does:`);
    for (const c of result.unpriced) lines.push(`  ${c.entry.path.padEnd(width)}  ${c.entry.type.padEnd(typeWidth)}  ${c.reason ?? ''}`);
  } else {
    lines.push('', 'Every endpoint is priced.');
  }
  return lines.join('\n');
}

/**
 * The `--tables` file: `{profile?, channelIds?, tables?: {video?, image?}, quota?}`, as createKlingRelay
 * takes them. `channelIds`: whether every account has a `channelId` (default: true with a profile).
 */
interface TablesFile {
  profile?: ProfileName;
  channelIds?: boolean;
  tables?: { video?: HostTableOptions; image?: HostTableOptions };
  /** `false`: the host's own QuotaStore, so no users table to check. */
  quota?: KnexQuotaStoreOptions | false;
}

const TABLES_FILE_KEYS = ['profile', 'channelIds', 'tables', 'quota'];

function tablesFileError(file: string, message: string, cause?: unknown): KlingRelayConfigError {
  return new KlingRelayConfigError(
    'ERR_KLING_RELAY_CLI_TABLES',
    `${file}: ${message}. Give {"profile": "one-api" or "new-api", "channelIds": true or false, "tables": {"video": {...}, "image": {...}}, "quota": {...} or false}, each optional, as createKlingRelay takes them.`,
    { cause },
  );
}

function readTablesFile(file: string): TablesFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    throw tablesFileError(file, `Cannot read the tables file (${(cause as Error).message})`, cause);
  }
  let parsed: TablesFile;
  try {
    parsed = JSON.parse(text) as TablesFile;
  } catch (cause) {
    throw tablesFileError(file, `Invalid JSON (${(cause as Error).message})`, cause);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw tablesFileError(file, 'Not an object');
  for (const key of Object.keys(parsed)) if (!TABLES_FILE_KEYS.includes(key)) throw tablesFileError(file, `${key} is not an option here`);
  if (parsed.profile !== undefined && !(PROFILES as readonly unknown[]).includes(parsed.profile)) throw tablesFileError(file, `profile must be ${PROFILES.map((p) => `'${p}'`).join(' or ')}`);
  if (parsed.channelIds !== undefined && typeof parsed.channelIds !== 'boolean') throw tablesFileError(file, 'channelIds must be true or false');
  const tables = parsed.tables ?? {};
  for (const key of Object.keys(tables)) if (key !== 'video' && key !== 'image') throw tablesFileError(file, `tables.${key} is not a table; use video and image`);
  return parsed;
}

/** The host tables to check: the defaults, or those a `--tables` file describes. */
export function hostTablesOf(file: string | undefined): HostTablesToCheck {
  const parsed: TablesFile = file === undefined ? {} : readTablesFile(file);
  const profile = parsed.profile === undefined ? undefined : PROFILE_DEFAULTS[parsed.profile];
  const quota = parsed.quota ?? profile?.quota ?? {};
  return {
    video: new HostTable(parsed.tables?.video ?? profile?.tables.video ?? { name: 'videos' }, 'video'),
    image: new HostTable(parsed.tables?.image ?? profile?.tables.image ?? { name: 'images' }, 'image'),
    users: quota === false ? undefined : resolveQuotaStoreOptions(quota, 'quota'),
    integerChannels: parsed.channelIds ?? profile !== undefined,
  };
}

/**
 * `kling-relay check --db`: the host tables against the relay's writes. Resolves to a line saying they
 * fit; rejects with ERR_KLING_RELAY_HOST_SCHEMA listing every problem otherwise.
 */
export async function checkDatabase(url: string, tablesFile: string | undefined): Promise<string> {
  const tables = hostTablesOf(tablesFile);
  const db = await openDatabase(url);
  try {
    const problems = await checkHostTables(db, tables);
    if (problems.length > 0) throw hostSchemaError(problems);
  } finally {
    await db.destroy();
  }
  const names = [tables.video?.name, tables.image?.name, tables.users?.table].filter((name, i, all) => name !== undefined && all.indexOf(name) === i);
  return `Host tables ${names.join(', ')} in ${redact(url)} fit the relay's writes.`;
}

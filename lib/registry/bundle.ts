import { CUSTOM_KEYWORDS } from '../validation/keywords.js';
import type { Registry } from './types.js';

type Json = Record<string, unknown>;

/**
 * The registry's schemas as one set of named schemas that refer to each other inside one document:
 * what an OpenAPI document's `components.schemas` needs, and what json-schema-to-typescript needs to
 * work offline (an integrator's schema names `https://kling-relay.dev/schemas/defs.json`, which is
 * not a URL anyone should fetch).
 *
 * Every schema file becomes one named schema (its `title`, else a name made from its `$id`), and each
 * of its `$defs` becomes a named schema of its own (`<Name>_<def>`). Every `$ref` is resolved against
 * the `$id` of the file it is in and rewritten to `<prefix><name>` (plus the rest of its pointer), so
 * `$id`, `$schema` and `$defs` are dropped. The relay's own keywords (klingMedia, errorMessage, ...)
 * are not JSON Schema: they are renamed to `x-<keyword>`, which OpenAPI allows and validators ignore.
 */
export interface Bundle {
  /** Every named schema. */
  schemas: Record<string, Json>;
  /** The name of each schema file's root, by its `$id`. */
  rootName: Map<string, string>;
}

const CUSTOM = new Set<string>(CUSTOM_KEYWORDS);
const NAME_CHARS = /[^A-Za-z0-9_.-]+/g;

function baseName(id: string, schema: Json): string {
  if (typeof schema.title === 'string' && schema.title.trim() !== '') return schema.title.replace(NAME_CHARS, '_');
  const path = id.replace(/^[a-z]+:\/\/[^/]*/i, '').replace(/\.json$/i, '');
  const words = path.split(/[^A-Za-z0-9]+/).filter(Boolean).slice(-3);
  return words.map((w) => w[0]?.toUpperCase() + w.slice(1)).join('') || 'Schema';
}

function splitRef(ref: string, baseId: string): { doc: string; fragment: string } {
  let absolute: string;
  try {
    absolute = new URL(ref, baseId).href;
  } catch {
    absolute = ref;
  }
  const hash = absolute.indexOf('#');
  return hash < 0 ? { doc: absolute, fragment: '' } : { doc: absolute.slice(0, hash), fragment: decodeURIComponent(absolute.slice(hash + 1)) };
}

export function bundleSchemas(registry: Registry, prefix: string): Bundle {
  const rootName = new Map<string, string>();
  const used = new Set<string>();
  const unique = (name: string): string => {
    let candidate = name;
    for (let n = 2; used.has(candidate); n++) candidate = `${name}${n}`;
    used.add(candidate);
    return candidate;
  };
  for (const [id, schema] of registry.schemas) rootName.set(id, unique(baseName(id, schema)));

  const target = (ref: string, baseId: string): string => {
    const { doc, fragment } = splitRef(ref, baseId);
    const root = rootName.get(doc);
    if (root === undefined) return ref;
    const def = /^\/\$defs\/([^/]+)(\/.*)?$/.exec(fragment);
    if (def) return `${prefix}${root}_${(def[1] ?? '').replace(NAME_CHARS, '_')}${def[2] ?? ''}`;
    return `${prefix}${root}${fragment}`;
  };

  const rewrite = (value: unknown, baseId: string, top: boolean): unknown => {
    if (Array.isArray(value)) return value.map((item) => rewrite(item, baseId, false));
    if (typeof value !== 'object' || value === null) return value;
    const out: Json = {};
    for (const [key, child] of Object.entries(value as Json)) {
      if (key === '$ref' && typeof child === 'string') out.$ref = target(child, baseId);
      else if (top && (key === '$id' || key === '$schema' || key === '$defs')) continue;
      else if (CUSTOM.has(key)) out[`x-${key}`] = child;
      // `properties` and `$defs` hold names, not keywords: a property may be called anything.
      else if (key === 'properties' && typeof child === 'object' && child !== null && !Array.isArray(child)) {
        out.properties = Object.fromEntries(Object.entries(child as Json).map(([name, sub]) => [name, rewrite(sub, baseId, false)]));
      } else out[key] = rewrite(child, baseId, false);
    }
    return out;
  };

  const schemas: Record<string, Json> = {};
  for (const [id, schema] of registry.schemas) {
    const root = rootName.get(id) as string;
    schemas[root] = rewrite(schema, id, true) as Json;
    const defs = schema.$defs;
    if (typeof defs === 'object' && defs !== null) {
      for (const [name, def] of Object.entries(defs as Json)) {
        schemas[`${root}_${name.replace(NAME_CHARS, '_')}`] = rewrite(def, id, false) as Json;
      }
    }
  }
  return { schemas, rootName };
}

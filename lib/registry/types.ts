import type { TableKind } from '../../adapters/types.js';

/**
 * How a price is counted. A registry entry names one of the first three; a pricing rule may also
 * count per block of seconds or per Kling unit.
 */
export type PricingType = 'per_second' | 'fixed' | 'per_image' | 'per_block' | 'units';

/**
 * An on/off request property read as: on when a value at `path` is one of `on`. `a[].b` reads field b
 * of every item of list a, so `{"path": "contents[].type", "on": ["base_video"]}` is on when any item
 * is a base video (docs/pricing.md, "Match fields").
 */
export interface SwitchField {
  path: string;
  on: (string | number | boolean)[];
}

/** A switch's request field: a dotted path (on when present and not empty), or a path with the values that mean on. */
export type SwitchSource = string | SwitchField;

/** Request fields pricing reads (README, "Adding an endpoint by editing JSON"; docs/pricing.md). */
export interface PricedFields {
  model?: string;
  mode?: string;
  duration?: string;
  count?: string;
  resolution?: string;
  sound?: SwitchSource;
  voice?: SwitchSource;
  video_input?: SwitchSource;
  image_input?: SwitchSource;
}
export type EndpointKind = 'task' | 'sync';
/** How Kling serves a path: POST with a JSON body, or GET with a query string. */
export type EndpointMethod = 'POST' | 'GET';
/**
 * Kling's API family of a path. `v1`: `/v1/...`, the model in `model_name`, answers of
 * `task_id`/`task_status`. `standard`: the model in the path, a body of `prompt` or `contents[]` with
 * `settings` and `options`, answers of `id`/`status`, API keys only (docs/kling.md).
 */
export type ApiFamily = 'v1' | 'standard';

/** One entry of a registry file, as written in JSON (schemas/registry.schema.json). */
export interface RegistryEntryJson {
  path: string;
  method?: EndpointMethod;
  /** Default 'v1'. */
  family?: ApiFamily;
  type: string;
  schema: string;
  table: TableKind;
  pricing_type: PricingType;
  kind: EndpointKind;
  fields?: PricedFields;
  /** per_image: count images from `count` when `field` equals `value`; `max` when `count` is not a number. */
  series?: { field: string; value: string; count: string; max?: number };
  default_model?: string;
  default_seconds?: number;
  refers_to?: string[];
  queryable: boolean;
}

export interface RegistryFileJson {
  $schema?: string;
  endpoints: RegistryEntryJson[];
}

/** A registry entry as the relay uses it: the schema is loaded and addressed by its `$id`. */
export interface RegistryEntry {
  path: string;
  /** POST (the body is the request) or GET (the query string is). */
  method: EndpointMethod;
  family: ApiFamily;
  type: string;
  table: TableKind;
  pricingType: PricingType;
  kind: EndpointKind;
  fields: PricedFields;
  series: { field: string; value: string; count: string; max?: number } | undefined;
  defaultModel: string | undefined;
  defaultSeconds: number | undefined;
  refersTo: string[];
  queryable: boolean;
  /** Absolute path of the schema file. */
  schemaFile: string;
  /** The schema's `$id`. */
  schemaId: string;
  /** The registry file (or 'options.registry') that defined the entry, for error messages. */
  source: string;
}

export interface Registry {
  entries: RegistryEntry[];
  byPath: Map<string, RegistryEntry>;
  /** Every schema to add to the validator, by `$id` (endpoint schemas and the shared defs). */
  schemas: Map<string, Record<string, unknown>>;
}

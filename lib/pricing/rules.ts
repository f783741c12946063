import { Ajv2020 } from 'ajv/dist/2020.js';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { KlingRelayConfigError } from '../errors.js';
import type { PricingType } from '../registry/types.js';

/** How a count of seconds is rounded before it is priced: as delivered, to the nearest second or block, or up. */
export type Rounding = 'exact' | 'nearest' | 'up';

/** An on/off request property a rule can match (docs/pricing.md, "Match fields"). */
export type Switch = 'on' | 'off' | '*';

/**
 * A pricing rule (README, "Pricing"; docs/pricing.md). `*` matches anything; `kling-v2*` matches a
 * prefix. A missing match field counts as `*`.
 */
export interface PricingRule {
  model?: string;
  type?: string;
  mode?: string;
  duration?: string;
  /** Output resolution of image requests (`1k`, `2k`, `4k`). */
  resolution?: string;
  /** Native audio asked for (`sound: "on"`). */
  sound?: Switch;
  /** Voice control: the request names custom voices. */
  voice?: Switch;
  /** The request carries a reference video. */
  video_input?: Switch;
  /** The request carries a reference image (image-to-image). */
  image_input?: Switch;
  pricing_type?: PricingType;
  /**
   * USD per counted thing: per second, image, block or request; per Kling unit for `units`. The
   * price list's `margin` multiplies it.
   */
  price: number;
  currency?: 'USD';
  /** per_block (and `units` counted per block): seconds in one block. */
  block_seconds?: number;
  /** How seconds are rounded before pricing: default `exact` for per_second, `up` for per_block. */
  rounding?: Rounding;
  /** units: Kling units per counted thing on Kling's price list, for the hold. */
  kling_units?: number;
  /** units: what one `kling_units` is counted per; default the endpoint's own pricing type. */
  units_per?: Exclude<PricingType, 'units'>;
  /** units: USD Kling lists per unit, to read a deduction Kling took from the account's balance. */
  unit_list_price?: number;
}

/** A price list: rules and the margin that multiplies every price. */
export interface PriceList {
  margin?: number;
  rules: PricingRule[];
}

const SWITCH = { enum: ['on', 'off', '*'] } as const;
const BASES = ['per_second', 'fixed', 'per_image', 'per_block'] as const;

const RULE_SCHEMA = {
  type: 'object',
  properties: {
    model: { type: 'string', minLength: 1 },
    type: { type: 'string', minLength: 1 },
    mode: { type: 'string', minLength: 1 },
    duration: { type: 'string', minLength: 1 },
    resolution: { type: 'string', minLength: 1 },
    sound: SWITCH,
    voice: SWITCH,
    video_input: SWITCH,
    image_input: SWITCH,
    pricing_type: { enum: [...BASES, 'units'] },
    price: { type: 'number', minimum: 0 },
    currency: { const: 'USD' },
    block_seconds: { type: 'number', exclusiveMinimum: 0 },
    rounding: { enum: ['exact', 'nearest', 'up'] },
    kling_units: { type: 'number', minimum: 0 },
    units_per: { enum: BASES },
    unit_list_price: { type: 'number', exclusiveMinimum: 0 },
  },
  required: ['price'],
  additionalProperties: false,
  allOf: [
    { if: { properties: { pricing_type: { const: 'units' } }, required: ['pricing_type'] }, then: { required: ['kling_units'] } },
    { if: { properties: { pricing_type: { const: 'per_block' } }, required: ['pricing_type'] }, then: { required: ['block_seconds'] } },
    { if: { properties: { units_per: { const: 'per_block' } }, required: ['units_per'] }, then: { required: ['block_seconds'] } },
  ],
} as const;

const LIST_SCHEMA = {
  type: 'object',
  properties: { $schema: { type: 'string' }, margin: { type: 'number', exclusiveMinimum: 0 }, rules: { type: 'array', items: RULE_SCHEMA } },
  required: ['rules'],
  additionalProperties: false,
} as const;

// `then: {required}` names fields the rule schema declares, which strictRequired cannot see.
const ajv = new Ajv2020({ strict: true, strictRequired: false, allErrors: false });
const checkRules = ajv.compile({ type: 'array', items: RULE_SCHEMA });
const checkList = ajv.compile(LIST_SCHEMA);

function readSource(source: unknown): { value: unknown; where: string } {
  if (typeof source !== 'string') return { value: source, where: 'options.pricing' };
  const file = resolve(source);
  const where = `pricing file ${file}`;
  try {
    return { value: JSON.parse(readFileSync(file, 'utf8')) as unknown, where };
  } catch (cause) {
    throw new KlingRelayConfigError('ERR_KLING_RELAY_PRICING_FILE', `Cannot read ${where}: ${(cause as Error).message}. Pass an array of rules, {"margin", "rules"}, or the path of a JSON file holding one.`, { cause });
  }
}

function invalid(check: typeof checkRules, where: string): KlingRelayConfigError {
  const error = check.errors?.[0];
  const at = error?.instancePath ? ` at ${error.instancePath}` : '';
  const detail = error?.keyword === 'additionalProperties' ? `unknown field '${String(error.params.additionalProperty)}'` : (error?.message ?? 'is invalid');
  return new KlingRelayConfigError(
    'ERR_KLING_RELAY_PRICING_INVALID',
    `Invalid ${where}${at}: ${detail}. A price list is an array of rules or {"margin", "rules"}; each rule is {"model", "type", "mode", "duration", "pricing_type", "price", "currency": "USD"} and the match and count fields of docs/pricing.md.`,
  );
}

/**
 * Reads and checks `options.pricing`: an array of rules, `{margin, rules}`, or the path of a JSON
 * file holding either. Returns the rules with the margin applied to every price.
 */
export function loadPricingRules(source: unknown): PricingRule[] {
  const { value, where } = readSource(source);
  const check = Array.isArray(value) ? checkRules : checkList;
  if (!check(value)) throw invalid(check, where);
  const list: PriceList = Array.isArray(value) ? { rules: value as PricingRule[] } : (value as PriceList);
  const margin = list.margin ?? 1;
  return margin === 1 ? list.rules : list.rules.map((rule) => ({ ...rule, price: rule.price * margin }));
}

type Matcher = (value: string) => boolean;

function matcher(pattern: string | undefined): { test: Matcher; weight: number } {
  if (pattern === undefined || pattern === '*') return { test: () => true, weight: 0 };
  if (pattern.endsWith('*') && !pattern.slice(0, -1).includes('*')) {
    const prefix = pattern.slice(0, -1);
    return { test: (v) => v.startsWith(prefix), weight: 1 };
  }
  return { test: (v) => v === pattern, weight: 2 };
}

/** The request properties rules match, beside the type. */
const MATCH_FIELDS = ['model', 'mode', 'duration', 'resolution', 'sound', 'voice', 'video_input', 'image_input'] as const;
type MatchField = (typeof MATCH_FIELDS)[number];

interface CompiledRule {
  rule: PricingRule;
  index: number;
  specificity: number;
  tests: [MatchField, Matcher][];
}

/** What a request is priced by. A field the request does not have is `''` (or `off` for a switch). */
export interface PriceKey {
  type: string;
  model: string;
  mode: string;
  duration: string;
  resolution?: string;
  sound?: 'on' | 'off';
  voice?: 'on' | 'off';
  video_input?: 'on' | 'off';
  image_input?: 'on' | 'off';
}

function keyValue(key: PriceKey, field: MatchField): string {
  const value = key[field];
  if (value !== undefined) return value;
  return field === 'sound' || field === 'voice' || field === 'video_input' || field === 'image_input' ? 'off' : '';
}

/**
 * Rules prepared once: per request type, the rules that can apply, most specific first (an exact
 * field counts more than a prefix, a prefix more than `*`); ties keep the file's order.
 */
export class PriceBook {
  private readonly byType = new Map<string, CompiledRule[]>();
  private readonly compiled: (CompiledRule & { type: Matcher })[];

  constructor(readonly rules: PricingRule[]) {
    this.compiled = rules.map((rule, index) => {
      const type = matcher(rule.type);
      const fields = MATCH_FIELDS.map((field) => [field, matcher(rule[field])] as const);
      const specificity = fields.reduce((sum, [, m]) => sum + m.weight, type.weight);
      return { rule, index, specificity, type: type.test, tests: fields.filter(([, m]) => m.weight > 0).map(([field, m]) => [field, m.test]) };
    });
  }

  private candidates(type: string): CompiledRule[] {
    let list = this.byType.get(type);
    if (!list) {
      list = this.compiled.filter((c) => c.type(type)).sort((a, b) => b.specificity - a.specificity || a.index - b.index);
      this.byType.set(type, list);
    }
    return list;
  }

  /** The most specific rule for the key, or undefined when none applies. */
  match(key: PriceKey): PricingRule | undefined {
    for (const c of this.candidates(key.type)) {
      if (c.tests.every(([field, test]) => test(keyValue(key, field)))) return c.rule;
    }
    return undefined;
  }

  /** Prepares the candidate lists of these types now, so no request pays for it. */
  prepare(types: Iterable<string>): void {
    for (const type of types) this.candidates(type);
  }
}

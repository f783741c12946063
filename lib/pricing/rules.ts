import { Ajv2020 } from 'ajv/dist/2020.js';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { KlingRelayConfigError } from '../errors.js';
import type { PricingType } from '../registry/types.js';

/**
 * A pricing rule (README, "Pricing"). `*` matches anything; `kling-v2*` matches a
 * prefix. A missing match field counts as `*`.
 */
export interface PricingRule {
  model?: string;
  type?: string;
  mode?: string;
  duration?: string;
  pricing_type?: PricingType;
  price: number;
  currency?: 'USD';
}

const RULES_SCHEMA = {
  type: 'array',
  items: {
    type: 'object',
    properties: {
      model: { type: 'string', minLength: 1 },
      type: { type: 'string', minLength: 1 },
      mode: { type: 'string', minLength: 1 },
      duration: { type: 'string', minLength: 1 },
      pricing_type: { enum: ['per_second', 'fixed', 'per_image'] },
      price: { type: 'number', minimum: 0 },
      currency: { const: 'USD' },
    },
    required: ['price'],
    additionalProperties: false,
  },
} as const;

const checkRules = new Ajv2020({ strict: true, allErrors: false }).compile(RULES_SCHEMA);

/** Reads and checks `options.pricing`: an array of rules or the path of a JSON file holding one. */
export function loadPricingRules(source: unknown): PricingRule[] {
  let rules: unknown = source;
  let where = 'options.pricing';
  if (typeof source === 'string') {
    const file = resolve(source);
    where = `pricing file ${file}`;
    try {
      rules = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    } catch (cause) {
      throw new KlingRelayConfigError('ERR_KLING_RELAY_PRICING_FILE', `Cannot read ${where}: ${(cause as Error).message}. Pass an array of rules or the path of a JSON file holding one.`, { cause });
    }
  }
  if (!checkRules(rules)) {
    const error = checkRules.errors?.[0];
    const at = error?.instancePath ? ` at ${error.instancePath}` : '';
    const detail = error?.keyword === 'additionalProperties' ? `unknown field '${String(error.params.additionalProperty)}'` : (error?.message ?? 'is invalid');
    throw new KlingRelayConfigError(
      'ERR_KLING_RELAY_PRICING_INVALID',
      `Invalid ${where}${at}: ${detail}. Each rule is {"model", "type", "mode", "duration", "pricing_type", "price", "currency": "USD"} as in the README.`,
    );
  }
  return rules as PricingRule[];
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

interface CompiledRule {
  rule: PricingRule;
  index: number;
  specificity: number;
  model: Matcher;
  mode: Matcher;
  duration: Matcher;
}

export interface PriceKey {
  type: string;
  model: string;
  mode: string;
  duration: string;
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
      const [type, model, mode, duration] = [rule.type, rule.model, rule.mode, rule.duration].map(matcher) as [ReturnType<typeof matcher>, ReturnType<typeof matcher>, ReturnType<typeof matcher>, ReturnType<typeof matcher>];
      return { rule, index, specificity: type.weight + model.weight + mode.weight + duration.weight, type: type.test, model: model.test, mode: mode.test, duration: duration.test };
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
      if (c.model(key.model) && c.mode(key.mode) && c.duration(key.duration)) return c.rule;
    }
    return undefined;
  }

  /** Prepares the candidate lists of these types now, so no request pays for it. */
  prepare(types: Iterable<string>): void {
    for (const type of types) this.candidates(type);
  }
}

import type { KlingDeductions } from '../../adapters/types.js';
import type { PricingType, RegistryEntry, SwitchSource } from '../registry/types.js';
import type { PriceBook, PriceKey, PricingRule, Rounding } from './rules.js';

/** What a count is taken per: everything but `units`, which counts Kling units per one of these. */
export type CountBasis = Exclude<PricingType, 'units'>;

/**
 * The terms a task is settled on, fixed at submit and stored with the task (a short JSON in its
 * `pricing` column): the pricing type, the USD per counted thing, and what the count needs.
 */
export interface SettleTerms {
  type: PricingType;
  /** USD per second, image, block or request; per Kling unit for `units`. */
  unit: number;
  /** Seconds per block, when seconds are counted in blocks. */
  block?: number;
  rounding?: Rounding;
  /** units: Kling units per counted thing, and what they are counted per. */
  klingUnits?: number;
  per?: CountBasis;
  /** units: Kling's list USD per unit, to read a balance deduction. */
  listPrice?: number;
}

/** What a request costs and why, fixed at submit and stored with the task. */
export interface PriceQuote {
  /** Quota units to hold: round(usd x quotaPerUnit). */
  quota: number;
  usd: number;
  pricingType: PricingType;
  /** USD per unit (second, image, block, request or Kling unit) of the matching rule, margin included. */
  unitPrice: number;
  /** Units the estimate counted: seconds, images, blocks, 1, or Kling units. */
  units: number;
  model: string;
  mode: string;
  /** The duration as matched against rules: the request's, or "0" when it has none. */
  durationKey: string;
  /** Seconds recorded in the host row (the request's duration or the registry's estimate). */
  seconds: number;
  terms: SettleTerms;
}

export type QuoteResult = { ok: true; quote: PriceQuote } | { ok: false; reason: string };

/** Reads a dotted field (`input.duration`) of a validated body. */
export function fieldValue(body: Record<string, unknown>, path: string | undefined): unknown {
  if (!path) return undefined;
  let value: unknown = body;
  for (const part of path.split('.')) {
    if (typeof value !== 'object' || value === null) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

/** The values at a path whose parts may end in `[]` (`contents[].type`: the type of every item). */
function valuesAt(value: unknown, parts: string[]): unknown[] {
  const [head, ...rest] = parts;
  if (head === undefined) return [value];
  if (typeof value !== 'object' || value === null) return [];
  const list = head.endsWith('[]');
  const next = (value as Record<string, unknown>)[list ? head.slice(0, -2) : head];
  if (!list) return valuesAt(next, rest);
  return Array.isArray(next) ? next.flatMap((item) => valuesAt(item, rest)) : [];
}

function text(value: unknown): string | undefined {
  if (typeof value === 'string' && value !== '') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
}

/**
 * An on/off request property: on for `"on"`, `true`, a non-empty list, object or other string, or a
 * non-zero number; off when the field is absent, empty, `"off"`, `false` or 0.
 */
export function switchValue(value: unknown): 'on' | 'off' {
  if (value === undefined || value === null || value === false || value === 0 || value === '' || value === 'off') return 'off';
  if (Array.isArray(value)) return value.length > 0 ? 'on' : 'off';
  if (typeof value === 'object') return Object.keys(value).length > 0 ? 'on' : 'off';
  return 'on';
}

/** A switch read through the registry's `fields`: a path's value as switchValue reads it, or on when a value at the path is listed in `on`. */
function switchOf(body: Record<string, unknown>, source: SwitchSource): 'on' | 'off' {
  if (typeof source === 'string') return switchValue(fieldValue(body, source));
  return valuesAt(body, source.path.split('.')).some((value) => source.on.includes(value as string | number | boolean)) ? 'on' : 'off';
}

/** The images a request makes: a series' amount (its most when Kling chooses), else the count field, default 1. */
export function imageCount(entry: RegistryEntry, body: Record<string, unknown>): number {
  if (entry.series && fieldValue(body, entry.series.field) === entry.series.value) {
    const n = Number(fieldValue(body, entry.series.count));
    if (Number.isInteger(n) && n > 0) return n;
    // A count Kling chooses ("auto") is known only from the result: hold for the most it makes.
    if (entry.series.max !== undefined) return entry.series.max;
  }
  const n = Number(fieldValue(body, entry.fields.count) ?? 1);
  return Number.isInteger(n) && n > 0 ? n : 1;
}

/** The request properties rules match, read through the registry entry's `fields`. */
function priceKey(entry: RegistryEntry, body: Record<string, unknown>, model: string, mode: string, duration: string): PriceKey {
  const f = entry.fields;
  const key: PriceKey = { type: entry.type, model, mode, duration, resolution: text(fieldValue(body, f.resolution)) ?? '' };
  for (const name of ['sound', 'voice', 'video_input', 'image_input'] as const) {
    const source = f[name];
    if (source) key[name] = switchOf(body, source);
  }
  return key;
}

function rounded(value: number, rounding: Rounding): number {
  if (rounding === 'nearest') return Math.round(value);
  if (rounding === 'up') return Math.ceil(Number(value.toPrecision(12)));
  return value;
}

/** What the terms count per, once `units` is resolved to its basis. */
function basisOf(terms: SettleTerms): CountBasis {
  return terms.type === 'units' ? (terms.per ?? 'fixed') : terms.type;
}

/** Seconds, blocks, images or 1: the count of a basis, rounded as the terms say. */
function countOf(terms: SettleTerms, seconds: number | undefined, images: number | undefined): number | undefined {
  const basis = basisOf(terms);
  if (basis === 'per_second') return seconds === undefined ? undefined : rounded(seconds, terms.rounding ?? 'exact');
  if (basis === 'per_block') return seconds === undefined ? undefined : rounded(seconds / (terms.block ?? 1), terms.rounding ?? 'up');
  if (basis === 'per_image') return images;
  return 1;
}

/** Counted things to priced units: Kling units for `units`, the count itself otherwise. */
function pricedUnits(terms: SettleTerms, count: number): number {
  return terms.type === 'units' ? count * (terms.klingUnits ?? 0) : count;
}

function settleTerms(rule: PricingRule, type: PricingType, entry: RegistryEntry): SettleTerms {
  const terms: SettleTerms = { type, unit: rule.price };
  if (rule.block_seconds !== undefined) terms.block = rule.block_seconds;
  if (rule.rounding !== undefined) terms.rounding = rule.rounding;
  if (type === 'units') {
    terms.klingUnits = rule.kling_units ?? 0;
    terms.per = rule.units_per ?? (entry.pricingType === 'units' ? 'fixed' : entry.pricingType);
    if (rule.unit_list_price !== undefined) terms.listPrice = rule.unit_list_price;
  }
  return terms;
}

/**
 * USD to whole quota units, half up. The product is first cut to 12 significant digits: prices and
 * durations are short decimals, and binary floating point turns 0.001001 x 500000 (500.5) into
 * 500.49999999999994, which would round down at the hold and at the settle alike.
 */
export function usdToQuota(usd: number, quotaPerUnit: number): number {
  return Math.round(Number((usd * quotaPerUnit).toPrecision(12)));
}

/** Prices a validated request. A request no rule prices is refused, never free by accident. */
export function quote(entry: RegistryEntry, body: Record<string, unknown>, book: PriceBook, quotaPerUnit: number): QuoteResult {
  const model = text(fieldValue(body, entry.fields.model)) ?? entry.defaultModel ?? '';
  const mode = text(fieldValue(body, entry.fields.mode)) ?? '';
  const duration = text(fieldValue(body, entry.fields.duration));
  const durationKey = duration ?? '0';
  const rule = book.match(priceKey(entry, body, model, mode, durationKey));
  if (!rule) return { ok: false, reason: `no pricing rule for type '${entry.type}' and model '${model || '(none)'}'` };
  const terms = settleTerms(rule, rule.pricing_type ?? entry.pricingType, entry);
  const seconds = duration !== undefined ? Number(duration) : (entry.defaultSeconds ?? 0);
  const basis = basisOf(terms);
  if ((basis === 'per_second' || basis === 'per_block') && !(seconds > 0)) {
    return { ok: false, reason: `type '${entry.type}' is priced by seconds but the request has no duration and the registry gives no default_seconds` };
  }
  const counted = pricedUnits(terms, countOf(terms, seconds, imageCount(entry, body)) ?? 1);
  const usd = rule.price * counted;
  return {
    ok: true,
    quote: { quota: usdToQuota(usd, quotaPerUnit), usd, pricingType: terms.type, unitPrice: rule.price, units: counted, model, mode, durationKey, seconds, terms },
  };
}

/**
 * Seconds from Kling's duration strings at the precision Kling reports them: "5.0" -> 5, "5.1s" -> 5.1.
 * Never floored: the fraction was delivered, and a per-second price charges it.
 */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const seconds = Number.parseFloat(value.trim().replace(/s$/i, ''));
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : undefined;
}

interface ResultShape {
  videos?: { duration?: unknown }[];
  audios?: { duration?: unknown; duration_mp3?: unknown }[];
  images?: unknown[];
  series_images?: unknown[];
}

function deliveredSeconds(r: ResultShape): number | undefined {
  const video = r.videos?.[0];
  if (video) return parseDuration(video.duration);
  const audio = r.audios?.[0];
  if (audio) return parseDuration(audio.duration ?? audio.duration_mp3);
  return undefined;
}

function deliveredImages(r: ResultShape): number | undefined {
  const list = r.series_images?.length ? r.series_images : r.images;
  return list ? list.length : undefined;
}

/**
 * Units actually delivered according to Kling's task_result (seconds and blocks rounded as the terms
 * say; Kling units for `units`), or undefined when it does not say.
 */
export function deliveredUnits(terms: SettleTerms, result: unknown): number | undefined {
  if (typeof result !== 'object' || result === null) return undefined;
  const r = result as ResultShape;
  const count = countOf(terms, deliveredSeconds(r), deliveredImages(r));
  return count === undefined ? undefined : pricedUnits(terms, count);
}

/** A deduction Kling wrote as a decimal string or a number; undefined when it is neither. */
function decimal(value: unknown): number | undefined {
  if (typeof value === 'string' && value.trim() === '') return undefined;
  const n = typeof value === 'string' ? Number(value) : value;
  return typeof n === 'number' && Number.isFinite(n) && n >= 0 ? n : undefined;
}

/** A deduction above 0, else undefined. */
function positive(value: unknown): number | undefined {
  const n = decimal(value);
  return n !== undefined && n > 0 ? n : undefined;
}

/**
 * The Kling units a task cost by Kling's own report: the units it took from a resource pack
 * (`final_unit_deduction`) plus the balance deduction's list price over Kling's list price per unit
 * (`listPrice`, USD). Undefined when Kling reported neither (or only zeros), or took money from the
 * balance that cannot be read as units (no `listPrice`, or a currency other than USD): then the
 * estimate stands.
 */
export function reportedUnits(deductions: KlingDeductions | undefined, listPrice: number | undefined): number | undefined {
  const units = positive(deductions?.final_unit_deduction);
  const balance = deductions?.final_balance_deduction;
  const listed = positive(balance?.list_price);
  if (listed === undefined) return units;
  const currency = balance?.currency;
  if (listPrice === undefined || (currency !== undefined && currency !== 'USD')) return undefined;
  return Number(((units ?? 0) + listed / listPrice).toPrecision(12));
}

/**
 * The charge for a finished task, never more than the hold (the rest is refunded). `units`: what
 * Kling reported it deducted, else the Kling units the delivered result is worth on the price list.
 * Otherwise recomputed from what Kling delivered (fractions of a second included, rounded as the
 * terms say). When neither says, the hold stands.
 */
export function actualCharge(hold: number, terms: SettleTerms, result: unknown, quotaPerUnit: number, deductions?: KlingDeductions): { charge: number; units: number | undefined } {
  const delivered = (terms.type === 'units' ? reportedUnits(deductions, terms.listPrice) : undefined) ?? deliveredUnits(terms, result);
  if (delivered === undefined) return { charge: hold, units: undefined };
  return { charge: Math.min(hold, usdToQuota(terms.unit * delivered, quotaPerUnit)), units: delivered };
}

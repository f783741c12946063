import type { PricingType, RegistryEntry } from '../registry/types.js';
import type { PriceBook, PricingRule } from './rules.js';

/** What a request costs and why, fixed at submit and stored with the task. */
export interface PriceQuote {
  /** Quota units to hold: round(usd x quotaPerUnit). */
  quota: number;
  usd: number;
  pricingType: PricingType;
  /** USD per unit (second, image or request) of the matching rule. */
  unitPrice: number;
  /** Units the estimate counted: seconds, images, or 1. */
  units: number;
  model: string;
  mode: string;
  /** The duration as matched against rules: the request's, or "0" when it has none. */
  durationKey: string;
  /** Seconds recorded in the host row (the request's duration or the registry's estimate). */
  seconds: number;
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

function text(value: unknown): string | undefined {
  if (typeof value === 'string' && value !== '') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
}

function imageCount(entry: RegistryEntry, body: Record<string, unknown>): number {
  if (entry.series && fieldValue(body, entry.series.field) === entry.series.value) {
    const n = Number(fieldValue(body, entry.series.count));
    if (Number.isInteger(n) && n > 0) return n;
    // A count Kling chooses ("auto") is known only from the result: hold for the most it makes.
    if (entry.series.max !== undefined) return entry.series.max;
  }
  const n = Number(fieldValue(body, entry.fields.count) ?? 1);
  return Number.isInteger(n) && n > 0 ? n : 1;
}

function units(pricingType: PricingType, seconds: number, count: number): number {
  if (pricingType === 'per_second') return seconds;
  if (pricingType === 'per_image') return count;
  return 1;
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
  const rule: PricingRule | undefined = book.match({ type: entry.type, model, mode, duration: durationKey });
  if (!rule) return { ok: false, reason: `no pricing rule for type '${entry.type}' and model '${model || '(none)'}'` };
  const pricingType = rule.pricing_type ?? entry.pricingType;
  const seconds = duration !== undefined ? Number(duration) : (entry.defaultSeconds ?? 0);
  if (pricingType === 'per_second' && !(seconds > 0)) {
    return { ok: false, reason: `type '${entry.type}' is priced per second but the request has no duration and the registry gives no default_seconds` };
  }
  const counted = units(pricingType, seconds, imageCount(entry, body));
  const usd = rule.price * counted;
  return {
    ok: true,
    quote: { quota: usdToQuota(usd, quotaPerUnit), usd, pricingType, unitPrice: rule.price, units: counted, model, mode, durationKey, seconds },
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

/** Units actually delivered according to Kling's task_result, or undefined when it does not say. */
export function deliveredUnits(pricingType: PricingType, result: unknown): number | undefined {
  if (typeof result !== 'object' || result === null) return undefined;
  const r = result as ResultShape;
  if (pricingType === 'per_second') {
    const video = r.videos?.[0];
    if (video) return parseDuration(video.duration);
    const audio = r.audios?.[0];
    if (audio) return parseDuration(audio.duration ?? audio.duration_mp3);
    return undefined;
  }
  if (pricingType === 'per_image') {
    const list = r.series_images?.length ? r.series_images : r.images;
    return list ? list.length : undefined;
  }
  return 1;
}

/**
 * The charge for a finished task: recomputed from what Kling delivered (fractions of a second
 * included), rounded as the hold was, never more than the hold (the rest is refunded). When the
 * result does not say, the hold stands.
 */
export function actualCharge(hold: number, unitPrice: number, pricingType: PricingType, result: unknown, quotaPerUnit: number): { charge: number; units: number | undefined } {
  const delivered = deliveredUnits(pricingType, result);
  if (delivered === undefined) return { charge: hold, units: undefined };
  return { charge: Math.min(hold, usdToQuota(unitPrice * delivered, quotaPerUnit)), units: delivered };
}

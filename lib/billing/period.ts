import { PACKS_LOOKBACK_MS } from './packs.js';
import type { TimeRange } from './account-api.js';

/** A period given by its ends: Dates or unix milliseconds. */
export interface Period {
  from: Date | number;
  to: Date | number;
}

function millis(value: unknown, name: string): number {
  const ms = value instanceof Date ? value.getTime() : value;
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) throw new TypeError(`${name} must be a Date or unix milliseconds, got ${String(value)}`);
  return Math.floor(ms);
}

/** The period in unix milliseconds; throws a TypeError naming a bad end, or ends in the wrong order. */
export function timeRangeOf(period: Period): TimeRange {
  const range = { from: millis(period.from, 'from'), to: millis(period.to, 'to') };
  if (range.from > range.to) throw new TypeError(`from (${new Date(range.from).toISOString()}) must not be after to (${new Date(range.to).toISOString()})`);
  return range;
}

/** The period `accounts()` reads packs over: the one given, else the last year up to now. */
export function packsRangeOf(period: Partial<Period> | undefined): TimeRange {
  const to = period?.to ?? Date.now();
  return timeRangeOf({ from: period?.from ?? millis(to, 'to') - PACKS_LOOKBACK_MS, to });
}

import type { KlingDeductions, RelayTask } from '../../adapters/types.js';

/** Kling's deductions are short decimal strings; the bounds keep a malformed answer from filling the task row. */
const MAX_BALANCE_ENTRIES = 8;
const MAX_TEXT = 64;

function keptValue(value: unknown): string | number | undefined {
  if (typeof value === 'string') return value.length <= MAX_TEXT ? value : undefined;
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

function keptBalance(value: unknown): Record<string, string | number> | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const kept: Record<string, string | number> = {};
  for (const [key, item] of Object.entries(value).slice(0, MAX_BALANCE_ENTRIES)) {
    const v = keptValue(item);
    if (key.length <= MAX_TEXT && v !== undefined) kept[key] = v;
  }
  return kept;
}

/**
 * What Kling reported it deducted for a task (`final_unit_deduction`, `final_balance_deduction`, top
 * level in its task object and in a sync answer), as Kling wrote it, less any value that is not a
 * short string or a number; undefined when it reported neither. Nothing is filled in: a task Kling
 * reported no deduction for shows none.
 */
export function reportedDeductions(kling: unknown): KlingDeductions | undefined {
  if (typeof kling !== 'object' || kling === null) return undefined;
  const source = kling as Record<string, unknown>;
  const unit = keptValue(source.final_unit_deduction);
  const balance = keptBalance(source.final_balance_deduction);
  if (unit === undefined && balance === undefined) return undefined;
  return { ...(unit !== undefined ? { final_unit_deduction: unit } : {}), ...(balance !== undefined ? { final_balance_deduction: balance } : {}) };
}

/** The deduction fields of a task's object (query answers, callers' notices): those stored, or none. */
export function shownDeductions(task: Pick<RelayTask, 'deductions'>): KlingDeductions {
  if (task.deductions === null || task.deductions === '') return {};
  try {
    return reportedDeductions(JSON.parse(task.deductions)) ?? {};
  } catch {
    return {};
  }
}

import { KlingRelayConfigError } from '../lib/errors.js';
import { assertIdentifier } from './identifiers.js';
import type { HostExtraColumn, HostExtraSource, HostResultShape, HostTableOptions, HostWriteMoment, HostState } from './types.js';

/** A host table's write settings, every one present. */
export interface HostTableSettings {
  statuses: Record<HostState, string>;
  result: HostResultShape;
  resultColumn: 'text' | 'json';
  duration: 'seconds' | 'text';
  failedQuota: 'zero' | 'estimate';
  extraColumns: Record<string, HostExtraColumn>;
}

const STATES: readonly HostState[] = ['pending', 'submitted', 'processing', 'succeed', 'failed'];
const MOMENTS: readonly HostWriteMoment[] = ['insert', 'submitted', 'processing', 'succeed', 'failed'];
const SOURCES: readonly HostExtraSource[] = ['now', 'url', 'resourceId', 'requestedCount'];
export const DEFAULT_STATUSES: Readonly<Record<HostState, string>> = { pending: '', submitted: 'submitted', processing: 'processing', succeed: 'succeed', failed: 'failed' };

function fail(option: string, message: string): never {
  throw new KlingRelayConfigError('ERR_KLING_RELAY_HOST_TABLE', `${option} ${message}`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function oneOf<T extends string>(option: string, value: unknown, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    fail(option, `must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${JSON.stringify(value)}.`);
  }
  return value as T;
}

function statusWords(option: string, value: unknown): Record<HostState, string> {
  if (value === undefined) return { ...DEFAULT_STATUSES };
  if (!isObject(value)) fail(option, `must map task states (${STATES.join(', ')}) to the words the host writes, e.g. { pending: 'NOT_START', succeed: 'SUCCESS' }.`);
  for (const [state, word] of Object.entries(value)) {
    if (!(STATES as readonly string[]).includes(state)) fail(`${option}.${state}`, `is not a task state; use ${STATES.join(', ')}.`);
    if (typeof word !== 'string') fail(`${option}.${state}`, `must be a string, got ${JSON.stringify(word)}.`);
  }
  return { ...DEFAULT_STATUSES, ...(value as Partial<Record<HostState, string>>) };
}

function fixedValue(option: string, value: unknown): string | number {
  if (typeof value !== 'string' && (typeof value !== 'number' || !Number.isFinite(value))) fail(option, `must be a string or a number, got ${JSON.stringify(value)}.`);
  return value;
}

function valuesByMoment(option: string, value: unknown): Partial<Record<HostWriteMoment, string | number>> {
  if (!isObject(value) || Object.keys(value).length === 0) fail(option, `must map moments (${MOMENTS.join(', ')}) to values, e.g. { insert: '0%', succeed: '100%' }.`);
  const values: Partial<Record<HostWriteMoment, string | number>> = {};
  for (const [moment, item] of Object.entries(value)) {
    if (!(MOMENTS as readonly string[]).includes(moment)) fail(`${option}.${moment}`, `is not a moment; use ${MOMENTS.join(', ')}.`);
    values[moment as HostWriteMoment] = fixedValue(`${option}.${moment}`, item);
  }
  return values;
}

function extraColumn(option: string, value: unknown): HostExtraColumn {
  const shape = "{ value: 'kling' }, { from: 'now' | 'url' | 'resourceId' | 'requestedCount' } (both with on: ['insert', 'submitted', 'processing', 'succeed', 'failed'], default ['insert']) or { values: { insert: '0%', succeed: '100%' } }";
  if (!isObject(value)) fail(option, `must be ${shape}.`);
  for (const key of Object.keys(value)) if (!['value', 'from', 'values', 'on'].includes(key)) fail(option, `has an unknown field '${key}'; it must be ${shape}.`);
  const forms = ['value', 'from', 'values'].filter((key) => key in value);
  if (forms.length !== 1) fail(option, `needs exactly one of value, from and values: ${shape}.`);
  if ('values' in value) {
    if ('on' in value) fail(option, 'names its moments in values; leave on out.');
    return { values: valuesByMoment(`${option}.values`, value.values) };
  }
  const on = value.on ?? ['insert'];
  if (!Array.isArray(on) || on.length === 0 || !on.every((m) => (MOMENTS as readonly unknown[]).includes(m))) {
    fail(`${option}.on`, `must be a non-empty array of ${MOMENTS.map((m) => `'${m}'`).join(', ')}, got ${JSON.stringify(on)}.`);
  }
  const moments = on as HostWriteMoment[];
  if ('value' in value) return { value: fixedValue(`${option}.value`, value.value), on: moments };
  return { from: oneOf(`${option}.from`, value.from, SOURCES, 'now'), on: moments };
}

function extraColumns(option: string, value: unknown, mapped: ReadonlySet<string>): Record<string, HostExtraColumn> {
  if (value === undefined) return {};
  if (!isObject(value)) fail(option, "must map the host's column names to { value } or { from }, e.g. { platform: { value: 'kling' } }.");
  const columns: Record<string, HostExtraColumn> = {};
  for (const [column, extra] of Object.entries(value)) {
    assertIdentifier(column, `${option}.${column}`);
    if (mapped.has(column.toLowerCase())) fail(`${option}.${column}`, 'names a column a logical column is already mapped to; write it through that mapping, or map that logical column to false.');
    columns[column] = extraColumn(`${option}.${column}`, extra);
  }
  return columns;
}

/**
 * The write settings of a host table's options, checked: every problem is a coded config error naming
 * the option. `optionName` is where the options came from (`tables.video`).
 */
export function hostTableSettings(options: HostTableOptions, optionName: string, mappedColumns: ReadonlySet<string> = new Set()): HostTableSettings {
  return {
    statuses: statusWords(`${optionName}.statuses`, options.statuses),
    result: oneOf(`${optionName}.result`, options.result, ['task_result', 'task', 'envelope'] as const, 'task_result'),
    resultColumn: oneOf(`${optionName}.resultColumn`, options.resultColumn, ['text', 'json'] as const, 'text'),
    duration: oneOf(`${optionName}.duration`, options.duration, ['seconds', 'text'] as const, 'seconds'),
    failedQuota: oneOf(`${optionName}.failedQuota`, options.failedQuota, ['zero', 'estimate'] as const, 'zero'),
    extraColumns: extraColumns(`${optionName}.extraColumns`, options.extraColumns, mappedColumns),
  };
}

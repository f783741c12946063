import { KlingRelayConfigError } from '../lib/errors.js';

/** What the adapters accept as a table or column name. Anything else never reaches the database. */
export const IDENTIFIER_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** MySQL's limit; PostgreSQL's is 63, so names the relay derives itself are kept to 63 (see `maxLength`). */
export const IDENTIFIER_MAX_LENGTH = 64;

/**
 * Checks a table or column name taken from options. The adapters only ever pass names to knex's
 * query builder, which quotes them; this check makes a typo or an injection attempt a start-up
 * error instead of a strange query later.
 */
export function assertIdentifier(value: unknown, optionName: string, maxLength: number = IDENTIFIER_MAX_LENGTH): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new KlingRelayConfigError(
      'ERR_KLING_RELAY_IDENTIFIER',
      `${optionName} must be a non-empty table or column name (letters, digits and _, not starting with a digit); got ${describe(value)}.`,
    );
  }
  if (value.length > maxLength) {
    throw new KlingRelayConfigError(
      'ERR_KLING_RELAY_IDENTIFIER',
      `${optionName} is ${value.length} characters long ("${value.slice(0, 20)}..."); database identifiers are limited to ${maxLength}. Use a shorter name.`,
    );
  }
  if (!IDENTIFIER_PATTERN.test(value)) {
    throw new KlingRelayConfigError(
      'ERR_KLING_RELAY_IDENTIFIER',
      `${optionName} is ${JSON.stringify(value)}, which is not a plain identifier. Use only letters, digits and _ ` +
        `(not starting with a digit), e.g. "users" or "used_quota"; names are never quoted or schema-qualified by the relay.`,
    );
  }
  return value;
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null) return 'null';
  return typeof value;
}

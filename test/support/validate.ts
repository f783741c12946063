import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Registry, RegistryEntry, RegistryFileJson } from '../../lib/registry/types.js';
import { builtinRegistryPath } from '../../lib/paths.js';
import { toEntry } from '../../lib/registry/load.js';
import { createValidator, type ValidationResult, type Validator } from '../../lib/validation/index.js';

const validators = new Map<string, Validator>();

function readJson(file: string): Record<string, unknown> {
  return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
}

/**
 * A validator for one built-in endpoint, compiled once per path. Schema tests compile only the
 * endpoint they test, so one endpoint's schema cannot break another's tests; the registry tests
 * load the whole registry the way createKlingRelay does.
 */
function validatorFor(path: string): Validator {
  const cached = validators.get(path);
  if (cached) return cached;
  const registryFile = builtinRegistryPath();
  const dir = dirname(registryFile);
  const json = (readJson(registryFile) as unknown as RegistryFileJson).endpoints.find((e) => e.path === path);
  if (!json) throw new Error(`no built-in registry entry for ${path}`);
  const schemaFile = join(dir, json.schema);
  const schema = readJson(schemaFile);
  const defs = readJson(join(dir, 'defs.json'));
  const entry: RegistryEntry = toEntry(json, schemaFile, String(schema.$id), registryFile);
  const registry: Registry = {
    entries: [entry],
    byPath: new Map([[path, entry]]),
    schemas: new Map([
      [String(defs.$id), defs],
      [entry.schemaId, schema],
    ]),
  };
  const validator = createValidator(registry);
  validators.set(path, validator);
  return validator;
}

/** Validates a body against the built-in schema of `path`; the body is normalised in place. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function validate(path: string, body: unknown): ValidationResult<any> {
  return validatorFor(path).validate(path, body);
}

type Result = ReturnType<typeof validate>;

/** Asserts a refusal with an error at `path` whose message matches `message`. */
export function expectError(r: Result, path: string, message: RegExp): void {
  expect(r.ok).to.equal(false);
  if (r.ok) return;
  const error = r.errors.find((e) => e.path === path);
  expect(error, `no error at '${path}' in ${JSON.stringify(r.errors)}`).to.not.equal(undefined);
  expect(error?.message).to.match(message);
}

/** Validates `body` against `endpoint`, expects a failure whose first error is at `path`, returns its message. */
export function rejectsAt(endpoint: string, body: Record<string, unknown>, path: string, message?: RegExp): string {
  const r = validate(endpoint, body);
  expect(r.ok, `expected a failure at '${path}'`).to.equal(false);
  if (r.ok) return '';
  expect(r.errors[0]?.path, JSON.stringify(r.errors)).to.equal(path);
  const text = r.errors[0]?.message ?? '';
  expect(text).to.be.a('string').and.not.equal('');
  if (message) expect(text).to.match(message);
  return text;
}

/** Validates `body` against `endpoint`, expects success, returns the normalised body. */
export function acceptsAt(endpoint: string, body: Record<string, unknown>): Record<string, unknown> {
  const r = validate(endpoint, body);
  expect(r.ok, r.ok ? '' : JSON.stringify(r.errors)).to.equal(true);
  return r.ok ? (r.body as Record<string, unknown>) : {};
}

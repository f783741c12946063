import type { Knex } from 'knex';

/**
 * A write statement knex compiled once, its bindings named: run it with `values[name]` for each name,
 * in order. Made by `compileTemplate`.
 */
export interface Template {
  readonly sql: string;
  readonly names: readonly string[];
}

/** What the stores' `...Template` methods compile with: a knex instance and a cache of compiled shapes. */
export interface TemplateSource {
  readonly db: Knex;
  template(key: string, build: (param: (name: string) => string) => Knex.QueryBuilder): Template;
}

/** Stands for a named value while knex compiles a template; never reaches the database. */
const PARAMETER = '\u0000kling-relay-parameter:';

/**
 * The statement `build` makes, compiled by knex with its values named: `build` gets `param(name)` for
 * every value, and the binding order is read off knex's own output. Compiling is most of what knex
 * costs per statement, and the relay's writes come in a few shapes, so callers keep the result
 * (`TemplateCache`).
 */
export function compileTemplate(key: string, build: (param: (name: string) => string) => Knex.QueryBuilder): Template {
  const { sql, bindings } = build((name) => PARAMETER + name).toSQL().toNative();
  const names = bindings.map((binding: unknown) => {
    if (typeof binding !== 'string' || !binding.startsWith(PARAMETER)) {
      throw new TypeError(`template "${key}": every value must be a param(), found ${String(binding)} in ${sql}`);
    }
    return binding.slice(PARAMETER.length);
  });
  return { sql, names };
}

/** Templates compiled once per key (which must name everything the statement's shape depends on). */
export class TemplateCache {
  readonly #templates = new Map<string, Template>();

  get(key: string, build: (param: (name: string) => string) => Knex.QueryBuilder): Template {
    let template = this.#templates.get(key);
    if (template === undefined) {
      template = compileTemplate(key, build);
      this.#templates.set(key, template);
    }
    return template;
  }
}

/** A template's bindings, in order, from values by name; a missing name is a bug of the caller. */
export function bindingsOf(template: Template, values: Readonly<Record<string, unknown>>): unknown[] {
  return template.names.map((name) => {
    if (!(name in values)) throw new TypeError(`no value for "${name}" in ${template.sql}`);
    return values[name] ?? null;
  });
}

export function isTemplate(statement: unknown): statement is Template {
  return typeof statement === 'object' && statement !== null && Array.isArray((statement as Partial<Template>).names) && typeof (statement as Partial<Template>).sql === 'string';
}

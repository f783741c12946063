import type { Ajv2020 } from 'ajv/dist/2020.js';
import type { ErrorObject, KeywordDefinition } from 'ajv/dist/2020.js';
import type { DataValidationCxt } from 'ajv/dist/types/index.js';
import { checkMedia, mediaRule, stripDataPrefix } from './media.js';
import { isObject, type Json } from '../json.js';

/** The custom keywords an endpoint schema may use (docs/schemas.md). Anything else is refused. */
export const CUSTOM_KEYWORDS = [
  'klingMedia',
  'klingExactlyOneNonZero',
  'klingPlaceholders',
  'klingSumEquals',
  'klingExpansionArea',
  'klingMaxTotalItems',
  'klingMinGap',
  'klingCallbackUrl',
  'klingUniqueField',
  'klingReferences',
  'klingMultiShot',
  'errorMessage',
  'errorFields',
] as const;

type Checker = ((data: unknown, cxt?: DataValidationCxt) => boolean) & { errors?: Partial<ErrorObject>[] };
/**
 * Fails `check` with one error per path, all with the same message. A rule over several fields
 * passes the field to change first, then the others it spans (docs/schemas.md, "Errors of rules
 * over several fields"), so a client can show the message next to each.
 */
function fail(check: Checker, keyword: string, paths: string | readonly string[], message: string): false {
  check.errors = (typeof paths === 'string' ? [paths] : paths).map((instancePath) => ({ keyword, instancePath, message, params: {} }));
  return false;
}

/** The last of `fields` first (the one that broke the rule), then the others in their order. */
export function laterFirst(fields: readonly string[]): string[] {
  return fields.length < 2 ? [...fields] : [fields[fields.length - 1] as string, ...fields.slice(0, -1)];
}

function pointer(base: string, ...parts: (string | number)[]): string {
  return base + parts.map((p) => '/' + String(p).replace(/~/g, '~0').replace(/\//g, '~1')).join('');
}

function numberOf(value: unknown): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && value.trim() !== '') return Number(value);
  return 0;
}

const names = { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1 } as const;

const klingMedia: KeywordDefinition = {
  keyword: 'klingMedia',
  type: 'string',
  modifying: true,
  errors: true,
  metaSchema: {
    anyOf: [
      { enum: ['image', 'audio', 'video'] },
      {
        type: 'object',
        properties: {
          kind: { enum: ['image', 'audio', 'video'] },
          maxBytes: { type: 'integer', minimum: 1 },
          minSide: { type: 'integer', minimum: 0 },
          maxAspect: { type: 'number', minimum: 1 },
        },
        required: ['kind'],
        additionalProperties: false,
      },
    ],
  },
  compile(schema: Parameters<typeof mediaRule>[0]) {
    const rule = mediaRule(schema);
    const check: Checker = (data, cxt) => {
      if (typeof data !== 'string') return true;
      const value = stripDataPrefix(data);
      if (value !== data && cxt?.parentData !== undefined) {
        (cxt.parentData as Record<string | number, unknown>)[cxt.parentDataProperty] = value;
      }
      const problem = checkMedia(value, rule);
      return problem === undefined ? true : fail(check, 'klingMedia', cxt?.instancePath ?? '', problem);
    };
    return check;
  },
};

const klingExactlyOneNonZero: KeywordDefinition = {
  keyword: 'klingExactlyOneNonZero',
  type: 'object',
  errors: true,
  metaSchema: names,
  compile(fields: string[]) {
    const check: Checker = (data, cxt) => {
      const object = data as Json;
      const nonZero = fields.filter((f) => typeof object[f] === 'number' && object[f] !== 0);
      if (nonZero.length === 1) return true;
      const found = nonZero.length === 0 ? 'none is' : `${nonZero.length} are (${nonZero.join(', ')})`;
      const base = cxt?.instancePath ?? '';
      const at = nonZero.length === 0 ? fields : laterFirst(nonZero);
      return fail(check, 'klingExactlyOneNonZero', at.map((f) => pointer(base, f)), `exactly one of ${fields.join(', ')} must be non-zero; ${found}`);
    };
    return check;
  },
};

interface PlaceholderSpec {
  in: string[];
  lists: Record<string, string>;
}

const PLACEHOLDER = /<<<([A-Za-z]+)_(\d+)>>>/g;

/** The strings named by `prompt` or `multi_prompt[].prompt`, with their JSON pointers. */
function stringsAt(object: Json, spec: string, base: string): [string, string][] {
  const [head, rest] = spec.split('[].', 2) as [string, string | undefined];
  const value = object[head];
  if (rest === undefined) return typeof value === 'string' ? [[value, pointer(base, head)]] : [];
  if (!Array.isArray(value)) return [];
  return value.flatMap((item, i) => (isObject(item) ? stringsAt(item, rest, pointer(base, head, i)) : []));
}

const klingPlaceholders: KeywordDefinition = {
  keyword: 'klingPlaceholders',
  type: 'object',
  errors: true,
  metaSchema: {
    type: 'object',
    properties: {
      in: { type: 'array', items: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]*(\\[\\]\\.[A-Za-z_][A-Za-z0-9_]*)?$' }, minItems: 1 },
      lists: { type: 'object', additionalProperties: { type: 'string', minLength: 1 }, minProperties: 1 },
    },
    required: ['in', 'lists'],
    additionalProperties: false,
  },
  compile(spec: PlaceholderSpec) {
    const check: Checker = (data, cxt) => {
      const object = data as Json;
      const base = cxt?.instancePath ?? '';
      for (const field of spec.in) {
        for (const [text, path] of stringsAt(object, field, base)) {
          if (!text.includes('<<<')) continue;
          for (const match of text.matchAll(PLACEHOLDER)) {
            const [token, name = '', digits = '0'] = match;
            const listName = spec.lists[name];
            if (listName === undefined) continue;
            const list = object[listName];
            const length = Array.isArray(list) ? list.length : 0;
            const n = Number(digits);
            if (n < 1 || n > length) {
              const has = length === 0 ? `there is no ${listName}` : `${listName} has ${length} item${length === 1 ? '' : 's'}`;
              return fail(check, 'klingPlaceholders', [path, pointer(base, listName)], `${token} names ${name} ${n}, but ${has}`);
            }
          }
        }
      }
      return true;
    };
    return check;
  },
};

const klingSumEquals: KeywordDefinition = {
  keyword: 'klingSumEquals',
  type: 'object',
  errors: true,
  metaSchema: {
    type: 'object',
    properties: { items: { type: 'string', minLength: 1 }, field: { type: 'string', minLength: 1 }, equals: { type: 'string', minLength: 1 } },
    required: ['items', 'field', 'equals'],
    additionalProperties: false,
  },
  compile(spec: { items: string; field: string; equals: string }) {
    const check: Checker = (data, cxt) => {
      const object = data as Json;
      const items = object[spec.items];
      if (!Array.isArray(items)) return true;
      const sum = items.reduce<number>((total, item) => total + (isObject(item) ? numberOf(item[spec.field]) : 0), 0);
      const expected = numberOf(object[spec.equals]);
      if (sum === expected) return true;
      return fail(
        check,
        'klingSumEquals',
        [pointer(cxt?.instancePath ?? '', spec.items), pointer(cxt?.instancePath ?? '', spec.equals)],
        `the ${spec.field} values of ${spec.items} add up to ${sum}, but ${spec.equals} is ${expected}`,
      );
    };
    return check;
  },
};

const klingExpansionArea: KeywordDefinition = {
  keyword: 'klingExpansionArea',
  type: 'object',
  errors: true,
  metaSchema: {
    type: 'object',
    properties: { vertical: names, horizontal: names, max: { type: 'number', exclusiveMinimum: 0 } },
    required: ['vertical', 'horizontal', 'max'],
    additionalProperties: false,
  },
  compile(spec: { vertical: string[]; horizontal: string[]; max: number }) {
    const check: Checker = (data, cxt) => {
      const object = data as Json;
      const sum = (fields: string[]) => fields.reduce((total, f) => total + numberOf(object[f]), 0);
      const area = (1 + sum(spec.vertical)) * (1 + sum(spec.horizontal));
      if (area <= spec.max + 1e-9) return true;
      const all = [...spec.vertical, ...spec.horizontal];
      const given = all.filter((f) => numberOf(object[f]) !== 0);
      // With a max below 1 even no expansion is too much; then every ratio is named.
      return fail(
        check,
        'klingExpansionArea',
        laterFirst(given.length > 0 ? given : all).map((f) => pointer(cxt?.instancePath ?? '', f)),
        `the expanded image would be ${area.toFixed(2)}x the original area; at most ${spec.max}x: (1 + ${spec.vertical.join(' + ')}) x (1 + ${spec.horizontal.join(' + ')}) <= ${spec.max}`,
      );
    };
    return check;
  },
};

const klingMaxTotalItems: KeywordDefinition = {
  keyword: 'klingMaxTotalItems',
  type: 'object',
  errors: true,
  metaSchema: {
    type: 'object',
    properties: { arrays: names, max: { type: 'integer', minimum: 0 } },
    required: ['arrays', 'max'],
    additionalProperties: false,
  },
  compile(spec: { arrays: string[]; max: number }) {
    const check: Checker = (data, cxt) => {
      const object = data as Json;
      const lengthOf = (name: string) => (Array.isArray(object[name]) ? (object[name] as unknown[]).length : 0);
      const total = spec.arrays.reduce((n, name) => n + lengthOf(name), 0);
      if (total <= spec.max) return true;
      const given = spec.arrays.filter((name) => lengthOf(name) > 0);
      return fail(check, 'klingMaxTotalItems', laterFirst(given).map((name) => pointer(cxt?.instancePath ?? '', name)), `${spec.arrays.join(' and ')} hold ${total} items together; at most ${spec.max} allowed`);
    };
    return check;
  },
};

const klingMinGap: KeywordDefinition = {
  keyword: 'klingMinGap',
  type: 'object',
  errors: true,
  metaSchema: {
    type: 'object',
    properties: { from: { type: 'string', minLength: 1 }, to: { type: 'string', minLength: 1 }, min: { type: 'number' } },
    required: ['from', 'to', 'min'],
    additionalProperties: false,
  },
  compile(spec: { from: string; to: string; min: number }) {
    const check: Checker = (data, cxt) => {
      const object = data as Json;
      const from = object[spec.from];
      const to = object[spec.to];
      if (typeof from !== 'number' || typeof to !== 'number' || to - from >= spec.min) return true;
      const base = cxt?.instancePath ?? '';
      return fail(check, 'klingMinGap', [pointer(base, spec.to), pointer(base, spec.from)], `${spec.to} must be at least ${spec.min} after ${spec.from} (it is ${to - from})`);
    };
    return check;
  },
};

/** The value at a dotted field path (`settings.duration`), or undefined where the path stops. */
function valueAt(object: Json, dotted: string): unknown {
  let value: unknown = object;
  for (const part of dotted.split('.')) {
    if (!isObject(value)) return undefined;
    value = value[part];
  }
  return value;
}

const dottedField = { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)*$' } as const;

interface ItemFieldSpec {
  array: string;
  field: string;
}

/** `klingUniqueField`: no two items of an array carry the same value in one field (`contents[].id`). */
const klingUniqueField: KeywordDefinition = {
  keyword: 'klingUniqueField',
  type: 'object',
  errors: true,
  metaSchema: {
    type: 'object',
    properties: { array: { type: 'string', minLength: 1 }, field: { type: 'string', minLength: 1 } },
    required: ['array', 'field'],
    additionalProperties: false,
  },
  compile(spec: ItemFieldSpec) {
    const check: Checker = (data, cxt) => {
      const items = (data as Json)[spec.array];
      if (!Array.isArray(items)) return true;
      const firstAt = new Map<unknown, number>();
      for (const [i, item] of items.entries()) {
        const value = isObject(item) ? item[spec.field] : undefined;
        if (value === undefined) continue;
        const earlier = firstAt.get(value);
        if (earlier === undefined) {
          firstAt.set(value, i);
          continue;
        }
        const base = cxt?.instancePath ?? '';
        return fail(check, 'klingUniqueField', [pointer(base, spec.array, i, spec.field), pointer(base, spec.array, earlier, spec.field)], `${spec.field} ${JSON.stringify(value)} is used by items ${earlier} and ${i} of ${spec.array}; each must be unique`);
      }
      return true;
    };
    return check;
  },
};

interface ReferenceSpec {
  array: string;
  text: string;
  id: string;
}

/**
 * `@name` where it starts a word: after the text's start or a character that cannot be part of a
 * name, so `mail@example.com` is not a reference. A name is letters, digits, `_` and `-`.
 */
const REFERENCE = /(?<![\p{L}\p{N}_.@-])@([\p{L}\p{N}_-]+)/gu;

/**
 * `klingReferences`: every `@name` in the `text` of an item of `array` names the `id` of an item of
 * the same array. A name that starts with an id counts as that id followed by text (`@image_1,`):
 * Kling reads references that way, which is why its ids should not be prefixes of each other.
 */
const klingReferences: KeywordDefinition = {
  keyword: 'klingReferences',
  type: 'object',
  errors: true,
  metaSchema: {
    type: 'object',
    properties: { array: { type: 'string', minLength: 1 }, text: { type: 'string', minLength: 1 }, id: { type: 'string', minLength: 1 } },
    required: ['array', 'text', 'id'],
    additionalProperties: false,
  },
  compile(spec: ReferenceSpec) {
    const check: Checker = (data, cxt) => {
      const items = (data as Json)[spec.array];
      if (!Array.isArray(items)) return true;
      const ids = items.flatMap((item) => (isObject(item) && typeof item[spec.id] === 'string' ? [item[spec.id] as string] : []));
      for (const [i, item] of items.entries()) {
        const text = isObject(item) ? item[spec.text] : undefined;
        if (typeof text !== 'string' || !text.includes('@')) continue;
        for (const match of text.matchAll(REFERENCE)) {
          const name = match[1] ?? '';
          if (ids.some((id) => id !== '' && name.startsWith(id))) continue;
          const known = ids.length === 0 ? `no item of ${spec.array} has an ${spec.id}` : `the ${spec.id}s are ${ids.map((id) => `'${id}'`).join(', ')}`;
          return fail(check, 'klingReferences', pointer(cxt?.instancePath ?? '', spec.array, i, spec.text), `@${name} names no item of ${spec.array}: ${known}`);
        }
      }
      return true;
    };
    return check;
  },
};

interface MultiShotSpec {
  in: string;
  duration: string;
  switch?: string;
  maxShots: number;
  maxShotText: number;
}

const SHOT_START = /^\s*shot\s+\d/i;
const SHOT = /^shot\s+(\d+)\s*,\s*(\d+)\s*,\s*(\S[\s\S]*)$/i;

/** What is wrong with a multi-shot prompt (`shot n, m, words; ...`), or its total seconds. */
function readShots(text: string, spec: MultiShotSpec): { problem: string } | { seconds: number } {
  const parts = text.split(';').map((part) => part.trim()).filter((part) => part !== '');
  if (parts.length > spec.maxShots) return { problem: `a multi-shot prompt has at most ${spec.maxShots} shots; this one has ${parts.length}` };
  let seconds = 0;
  for (const [i, part] of parts.entries()) {
    const shot = SHOT.exec(part);
    if (!shot) return { problem: `shot ${i + 1} must read 'shot ${i + 1}, <seconds>, <prompt>;' (shots are separated by ';')` };
    if (Number(shot[1]) !== i + 1) return { problem: `shots are numbered 1, 2, 3 ... in order; shot ${i + 1} is numbered ${shot[1] ?? ''}` };
    if (Number(shot[2]) < 1) return { problem: `shot ${i + 1} must last at least 1 second` };
    if ((shot[3] ?? '').trim().length > spec.maxShotText) return { problem: `the prompt of shot ${i + 1} must be at most ${spec.maxShotText} characters` };
    seconds += Number(shot[2]);
  }
  return { seconds };
}

/**
 * `klingMultiShot`: a prompt that starts with `shot 1,` is a multi-shot prompt, `shot n, m, words;`
 * per shot: shots numbered from 1 in order, at most `maxShots`, each at least 1 second, its words at
 * most `maxShotText` characters, and the seconds adding up to the `duration` field. Not checked when
 * the `switch` field is false (the model then reads the prompt as plain text).
 */
const klingMultiShot: KeywordDefinition = {
  keyword: 'klingMultiShot',
  type: 'object',
  errors: true,
  metaSchema: {
    type: 'object',
    properties: {
      in: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]*(\\[\\]\\.[A-Za-z_][A-Za-z0-9_]*)?$' },
      duration: dottedField,
      switch: dottedField,
      maxShots: { type: 'integer', minimum: 1 },
      maxShotText: { type: 'integer', minimum: 1 },
    },
    required: ['in', 'duration', 'maxShots', 'maxShotText'],
    additionalProperties: false,
  },
  compile(spec: MultiShotSpec) {
    const check: Checker = (data, cxt) => {
      const object = data as Json;
      if (spec.switch !== undefined && valueAt(object, spec.switch) === false) return true;
      const base = cxt?.instancePath ?? '';
      for (const [text, path] of stringsAt(object, spec.in, base)) {
        if (!SHOT_START.test(text)) continue;
        const shots = readShots(text, spec);
        if ('problem' in shots) return fail(check, 'klingMultiShot', path, shots.problem);
        const duration = valueAt(object, spec.duration);
        if (typeof duration === 'number' && shots.seconds !== duration) {
          return fail(check, 'klingMultiShot', [path, pointer(base, ...spec.duration.split('.'))], `the shots last ${shots.seconds} seconds together, but ${spec.duration} is ${duration}`);
        }
      }
      return true;
    };
    return check;
  },
};

/**
 * What is wrong with a caller's callback URL, or undefined when the relay may keep it. WHATWG URL
 * parsing is what the delivery uses, so a value that passes here means the same thing there; the raw
 * text is checked too, because the parser forgives what a URL must not carry (spaces, line breaks,
 * `http:host` without slashes, a backslash read as a slash).
 */
export function callbackUrlProblem(value: string): string | undefined {
  if ([...value].some((c) => c <= ' ' || c === '\u007f' || c === '\\')) return 'must be a URL without spaces, control characters or backslashes';
  if (!/^https?:\/\//i.test(value)) return 'must be an absolute http:// or https:// URL';
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'must be an absolute http:// or https:// URL';
  }
  if (url.username !== '' || url.password !== '' || /^https?:\/\/[^/?#]*@/i.test(value)) return 'must not carry credentials (user:password@); put a token in the path or query instead';
  if (url.hostname === '') return 'must name a host';
  return undefined;
}

/** `klingCallbackUrl`: the caller's callback URL, which the relay will POST to (README, "Client callbacks"). */
const klingCallbackUrl: KeywordDefinition = {
  keyword: 'klingCallbackUrl',
  type: 'string',
  errors: true,
  metaSchema: { const: true },
  compile() {
    const check: Checker = (data, cxt) => {
      const problem = typeof data === 'string' ? callbackUrlProblem(data) : undefined;
      return problem === undefined ? true : fail(check, 'klingCallbackUrl', cxt?.instancePath ?? '', problem);
    };
    return check;
  },
};

/** `errorMessage`: the message a client sees when the subschema carrying it fails (an annotation). */
const errorMessage: KeywordDefinition = { keyword: 'errorMessage', schemaType: 'string' };

/**
 * `errorFields`: the properties a `not` / `oneOf` / `anyOf` on the same subschema spans, the one to
 * change first; its errors are answered at each of them (an annotation read by toFieldErrors).
 */
const errorFields: KeywordDefinition = { keyword: 'errorFields', schemaType: 'array', metaSchema: names };

export function addKlingKeywords(ajv: Ajv2020): void {
  const definitions = [
    klingMedia,
    klingExactlyOneNonZero,
    klingPlaceholders,
    klingSumEquals,
    klingExpansionArea,
    klingMaxTotalItems,
    klingMinGap,
    klingCallbackUrl,
    klingUniqueField,
    klingReferences,
    klingMultiShot,
    errorMessage,
    errorFields,
  ];
  for (const definition of definitions) {
    ajv.addKeyword(definition);
  }
}

import { RelayHttpError, type FieldError } from '../errors.js';
import type { Registry, RegistryEntry } from '../registry/types.js';
import type { Validator } from '../validation/validator.js';
import { isObject, type Json } from '../json.js';

/**
 * /v1 requests for a model Kling serves only through its standard family (docs/kling.md, "/v1
 * requests for kling-3.0-turbo"): the request is rewritten into the standard entry's body, checked
 * against that entry's own schema, and sent, priced and recorded as that entry; the caller keeps
 * seeing /v1. What the target cannot express is refused, never dropped.
 */

/** Where Kling serves a /v1 model that has no /v1 path, and what that model does with sound. */
interface Target {
  path: string;
  /** The model always makes native audio and has no switch for it. */
  alwaysAudio: boolean;
}

/** By /v1 path, then by model_name. */
const SERVED_THROUGH: Readonly<Record<string, Readonly<Record<string, Target>>>> = {
  '/v1/videos/text2video': { 'kling-3.0-turbo': { path: '/text-to-video/kling-3.0-turbo', alwaysAudio: true } },
  '/v1/videos/image2video': { 'kling-3.0-turbo': { path: '/image-to-video/kling-3.0-turbo', alwaysAudio: true } },
};

/** `mode` in the standard family's words. */
const RESOLUTION: Readonly<Record<string, string>> = { std: '720p', pro: '1080p', '4k': '4k' };

/** The fields the translation places; every other field the caller gave has no counterpart. */
const PLACED = new Set(['model_name', 'prompt', 'negative_prompt', 'image', 'image_tail', 'mode', 'duration', 'aspect_ratio', 'sound', 'multi_shot', 'shot_type', 'multi_prompt', 'watermark_info', 'callback_url', 'external_task_id']);

/** A /v1 request that Kling serves through its standard family: the entry it goes to, and how. */
export interface Translation {
  target: RegistryEntry;
  alwaysAudio: boolean;
}

/** The standard entry a /v1 request goes to, or undefined when Kling serves its model on the /v1 path. */
export function translationFor(registry: Registry, entry: RegistryEntry, body: Json): Translation | undefined {
  const target = typeof body.model_name === 'string' ? SERVED_THROUGH[entry.path]?.[body.model_name] : undefined;
  const standard = target === undefined ? undefined : registry.byPath.get(target.path);
  return standard?.family === 'standard' ? { target: standard, alwaysAudio: target?.alwaysAudio ?? false } : undefined;
}

/** What the target's schema takes: a top-level prompt, which settings, which contents item types. */
function targetShape(schema: Json | undefined): { prompt: boolean; settings: Set<string>; items: Set<string> } {
  const properties = isObject(schema?.properties) ? schema.properties : {};
  const settings = isObject(properties.settings) && isObject(properties.settings.properties) ? Object.keys(properties.settings.properties) : [];
  const items = isObject(properties.contents) && isObject(properties.contents.items) ? properties.contents.items : {};
  const type = isObject(items.properties) && isObject(items.properties.type) ? items.properties.type : {};
  return { prompt: 'prompt' in properties, settings: new Set(settings), items: new Set(Array.isArray(type.enum) ? type.enum.map(String) : []) };
}

/**
 * A multi-shot request's shots as the standard family writes them in its prompt: `shot 1, 2, words;
 * shot 2, 3, words;` (shot number from 1 in order, seconds, words), the caller's `multi_prompt` taken
 * in `index` order. Kling picks the shots itself only on /v1 (`shot_type: intelligence`), and `;` ends
 * a shot, so both are refused; undefined then.
 */
function shotPrompt(v1: Json, model: string, refuse: (field: string, message: string) => void): string | undefined {
  if (v1.shot_type !== 'customize') {
    refuse('shot_type', `must be 'customize' on ${model}, which cannot choose the shots itself; give them in multi_prompt`);
    return undefined;
  }
  const items: unknown[] = Array.isArray(v1.multi_prompt) ? v1.multi_prompt : [];
  const shots = items.map((shot, at) => ({ ...(isObject(shot) ? shot : {}), at }) as Json & { at: number });
  const broken = shots.filter((shot) => String(shot.prompt).includes(';'));
  for (const shot of broken) refuse(`multi_prompt/${shot.at}/prompt`, `must not contain ';' on ${model}, where ';' ends a shot`);
  if (broken.length > 0) return undefined;
  return shots
    .sort((a, b) => Number(a.index) - Number(b.index))
    .map((shot, i) => `shot ${i + 1}, ${String(shot.duration)}, ${String(shot.prompt)};`)
    .join(' ');
}

function refused(errors: FieldError[]): RelayHttpError {
  return new RelayHttpError(400, 1201, `invalid request: ${errors[0]?.path ?? '/'} ${errors[0]?.message ?? ''}`.trim(), { errors });
}

/**
 * The caller's validated /v1 body as the target's body, validated by the target's schema. `given` are
 * the fields the caller sent (the rest are /v1 defaults). Throws a 400 naming every field the target
 * cannot take, or, when the target's own rules refuse the body, the /v1 fields its errors are about.
 */
export function translate(validator: Validator, registry: Registry, translation: Translation, v1: Json, given: readonly string[]): Json {
  const { target } = translation;
  const model = String(v1.model_name);
  const shape = targetShape(registry.schemas.get(target.schemaId));
  const errors: FieldError[] = [];
  const refuse = (field: string, message: string): void => void errors.push({ path: `/${field}`, message });
  const out: Json = {};
  const settings: Json = {};
  const options: Json = {};
  const contents: Json[] = [];
  /** Where each placed value came from: a pointer in the target's body, and the caller's field. */
  const origins: [string, string][] = [];
  const place = (holder: Json, pointer: string, key: string, value: unknown, field: string): void => {
    holder[key] = value;
    origins.push([`${pointer}/${key}`, `/${field}`]);
  };
  const item = (type: string, fields: Json, field: string): void => {
    origins.push([`/contents/${contents.length}`, `/${field}`]);
    contents.push({ type, ...fields });
  };

  // As on /v1, multi_shot true makes Kling ignore prompt, and false ignore shot_type and multi_prompt.
  const multiShot = v1.multi_shot === true;
  const text = multiShot ? shotPrompt(v1, model, refuse) : typeof v1.prompt === 'string' && v1.prompt !== '' ? v1.prompt : undefined;
  const textField = multiShot ? 'multi_prompt' : 'prompt';
  if (text !== undefined) {
    if (shape.prompt) place(out, '', 'prompt', text, textField);
    else item('prompt', { text }, textField);
  }
  if (shape.items.has('first_frame')) {
    if (typeof v1.image === 'string') item('first_frame', { url: v1.image }, 'image');
    else refuse('image', `is required for ${model}, which starts from a first frame`);
  }
  place(settings, '/settings', 'resolution', RESOLUTION[String(v1.mode)] ?? v1.mode, 'mode');
  place(settings, '/settings', 'duration', Number(v1.duration), 'duration');
  if (shape.settings.has('aspect_ratio') && v1.aspect_ratio !== undefined) place(settings, '/settings', 'aspect_ratio', v1.aspect_ratio, 'aspect_ratio');
  if (shape.settings.has('audio')) place(settings, '/settings', 'audio', v1.sound === 'on' ? 'native' : 'off', 'sound');
  for (const field of ['watermark_info', 'callback_url', 'external_task_id']) if (v1[field] !== undefined) place(options, '/options', field, v1[field], field);

  for (const field of given) {
    const value = v1[field];
    if (field === 'negative_prompt') {
      if (value !== '') refuse(field, `is not taken by ${model} (Kling's standard family has no negative prompt); write what to avoid in prompt`);
    } else if (field === 'image_tail') {
      if (shape.items.has('last_frame')) item('last_frame', { url: value }, field);
      else refuse(field, `is not taken by ${model}, which takes no end frame; send image (the first frame) only`);
    } else if (field === 'aspect_ratio' && !shape.settings.has('aspect_ratio')) {
      refuse(field, `is not taken by ${model} from an image: the video has the first frame's aspect ratio`);
    } else if (field === 'sound' && !shape.settings.has('audio') && translation.alwaysAudio && value !== 'on') {
      refuse(field, `must be 'on' or left out: ${model} always makes native audio`);
    } else if (!PLACED.has(field) && value !== undefined) {
      refuse(field, `is not taken by ${model}: it has no counterpart in Kling's standard family (${target.path})`);
    }
  }
  if (errors.length > 0) throw refused(errors);

  if (contents.length > 0) out.contents = contents;
  out.settings = settings;
  if (Object.keys(options).length > 0) out.options = options;
  const checked = validator.validate(target.path, out);
  if (checked.ok) return checked.body;
  // The target's own rules (a multi-shot prompt's seconds, a resolution it lacks), told at the caller's fields.
  const back = (path: string): string => {
    const origin = origins.filter(([at]) => path === at || path.startsWith(`${at}/`)).sort((a, b) => b[0].length - a[0].length)[0];
    if (!origin) return path;
    const rest = path.slice(origin[0].length);
    return origin[0].startsWith('/contents/') ? origin[1] : `${origin[1]}${rest}`;
  };
  throw refused(checked.errors.map((error) => ({ path: back(error.path), message: `${error.message} (on ${model}, through ${target.path})` })));
}

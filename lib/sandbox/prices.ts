/**
 * Kling's price list in units, as Kling deducts them from a resource pack (docs/pricing.md, "Kling's
 * price list"): video per second of output by model, resolution (std 720p, pro 1080p, 4k), native
 * audio, voice control and a reference video, in either API family; lip-sync per started 5-second block; images per image;
 * the rest per call. What Kling publishes no price for deducts Kling's older rates: 0.2 units a second
 * at std and 0.7 at pro, 8 units a picture, 1 a try-on, and nothing for a multi-elements selection call.
 */

type Resolution = 'std' | 'pro' | '4k';
/** Units a second at std, pro and 4k; undefined where Kling does not offer the resolution. */
type Rates = [number, number, number | undefined];

const UNLISTED_VIDEO: Rates = [0.2, 0.7, undefined];

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

function on(value: unknown): boolean {
  return Array.isArray(value) ? value.length > 0 : value === 'on' || value === true;
}

/** text2video and image2video. */
function generationRates(model: unknown, sound: boolean, voice: boolean): Rates {
  // Kling 3.0 Turbo always makes native audio, and has one row.
  if (model === 'kling-3.0-turbo') return [0.8, 1, undefined];
  if (model === 'kling-v3') return sound ? [0.9, 1.2, 3] : [0.6, 0.8, 3];
  if (model === 'kling-v2-6') {
    if (voice) return [1.2, 1.2, undefined];
    return sound ? [1, 1, undefined] : [0.3, 0.5, undefined];
  }
  if (model === 'kling-v2-5-turbo') return [0.3, 0.5, undefined];
  return UNLISTED_VIDEO;
}

function omniRates(model: unknown, sound: boolean, videoInput: boolean): Rates {
  if (model === 'kling-v3-omni') {
    if (videoInput) return [0.9, 1.2, 3];
    return sound ? [0.8, 1, 3] : [0.6, 0.8, 3];
  }
  return videoInput ? [0.9, 1.2, undefined] : [0.6, 0.8, undefined];
}

function videoRates(path: string, body: Record<string, unknown>): Rates {
  const model = body.model_name;
  switch (path) {
    case '/v1/videos/text2video':
    case '/v1/videos/image2video':
      return generationRates(model ?? 'kling-v1', on(body.sound), on(body.voice_list));
    case '/v1/videos/omni-video':
      return omniRates(model ?? 'kling-video-o1', on(body.sound), on(body.video_list));
    case '/v1/videos/motion-control':
      return model === 'kling-v3' ? [0.9, 1.2, undefined] : [0.5, 0.8, undefined];
    case '/v1/videos/avatar/image2video':
      return [0.4, 0.8, undefined];
    default:
      return UNLISTED_VIDEO;
  }
}

function resolutionOf(body: Record<string, unknown>): Resolution {
  const mode = body.mode ?? record(body.input).mode;
  return mode === 'pro' || mode === '4k' ? mode : 'std';
}

/** The v1 path of a standard-family product (the path's first part). */
const V1_PATHS: Record<string, string> = {
  'text-to-video': '/v1/videos/text2video',
  'image-to-video': '/v1/videos/image2video',
  'omni-video': '/v1/videos/omni-video',
  'motion-control': '/v1/videos/motion-control',
};

/** The legacy `model_name` of a standard path's model; Kling 3.0 Turbo has none and keeps its own. */
const V1_MODELS: Record<string, string> = {
  'kling-3.0': 'kling-v3',
  'kling-3.0-omni': 'kling-v3-omni',
  'kling-o1': 'kling-video-o1',
  'kling-2.6': 'kling-v2-6',
  'kling-2.5-turbo': 'kling-v2-5-turbo',
};

const V1_MODES: Record<string, string> = { '720p': 'std', '1080p': 'pro', '4k': '4k' };

/**
 * A standard-family request (`/<product>/<model>`, `settings`, `contents[]`) as the v1 request Kling's
 * list prices alike: the model's legacy name, `settings.resolution` as the mode, `settings.audio:
 * "native"` as sound, `voice` items as a voice list and `base_video`/`feature_video` items as a video
 * list. A v1 request is returned as it is.
 */
function asV1(path: string, body: Record<string, unknown>): { path: string; body: Record<string, unknown> } {
  const [, product = '', model = ''] = path.split('/');
  const v1Path = V1_PATHS[product];
  if (path.startsWith('/v1/') || v1Path === undefined) return { path, body };
  const settings = record(body.settings);
  const items = (Array.isArray(body.contents) ? body.contents : []).map(record);
  const ofType = (...types: string[]) => items.filter((item) => types.includes(item.type as string));
  return {
    path: v1Path,
    body: {
      model_name: V1_MODELS[model] ?? model,
      mode: V1_MODES[String(settings.resolution ?? '720p')],
      sound: settings.audio === 'native' ? 'on' : 'off',
      voice_list: ofType('voice'),
      video_list: ofType('base_video', 'feature_video'),
    },
  };
}

const PER_CALL: Record<string, number> = {
  '/v1/audio/tts': 0.05,
  '/v1/videos/identify-face': 0.05,
  '/v1/audio/text-to-audio': 0.25,
  '/v1/audio/video-to-audio': 0.25,
  '/v1/videos/image-recognize': 0.1,
  '/v1/general/custom-voices': 0.05,
  // Image-pack units: AI multi-shot is 20 a call. Kling's price lists do not price element creation.
  '/v1/general/ai-multi-shot': 20,
  '/v1/general/advanced-custom-elements': 0,
};

const LIP_SYNC = new Set(['/v1/videos/advanced-lip-sync', '/v1/videos/lip-sync']);

function perImage(path: string, body: Record<string, unknown>): number {
  if (path === '/v1/images/multi-image2image') return 16;
  if (path === '/v1/images/omni-image') return body.model_name === 'kling-v3-omni' && body.resolution === '4k' ? 16 : 8;
  if (path === '/v1/images/generations' && body.model_name === 'kling-v2-1') return body.image === undefined ? 4 : 8;
  return 8;
}

function decimal(units: number): string {
  return String(Number(units.toPrecision(12)));
}

/**
 * Units a successful task deducts. `seconds`: the output Kling charges for, which is the seconds
 * generated but never more than asked (an output runs a fraction over); `images`: pictures made.
 */
export function taskUnits(path: string, body: Record<string, unknown>, delivered: { seconds?: number | undefined; images?: number | undefined }): string {
  const call = PER_CALL[path];
  if (call !== undefined) return decimal(call);
  if (path === '/v1/images/kolors-virtual-try-on') return '1';
  if (path.startsWith('/v1/images/')) return decimal(perImage(path, body) * (delivered.images ?? 1));
  const seconds = delivered.seconds ?? 5;
  if (LIP_SYNC.has(path)) return decimal(0.5 * Math.ceil(Number((seconds / 5).toPrecision(12))));
  const v1 = asV1(path, body);
  const rates = videoRates(v1.path, v1.body);
  const resolution = resolutionOf(v1.body);
  const rate = (resolution === '4k' ? rates[2] : undefined) ?? (resolution === 'std' ? rates[0] : rates[1]);
  // Motion control is charged on its output rounded to the nearest second.
  return decimal(rate * (v1.path === '/v1/videos/motion-control' ? Math.round(seconds) : seconds));
}

/** Units a synchronous call deducts: its price per call; the selection calls of multi-elements are free. */
export function callUnits(path: string): string {
  return decimal(PER_CALL[path] ?? 0);
}

/**
 * Kling's price list in units, as Kling deducts them from a resource pack (docs/pricing.md, "Kling's
 * price list"): video per second of output by model, resolution (std 720p, pro 1080p, 4k), native
 * audio, voice control and a reference video; lip-sync per started 5-second block; images per image;
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

const PER_CALL: Record<string, number> = {
  '/v1/audio/tts': 0.05,
  '/v1/videos/identify-face': 0.05,
  '/v1/audio/text-to-audio': 0.25,
  '/v1/audio/video-to-audio': 0.25,
  '/v1/videos/image-recognize': 0.1,
  '/v1/general/custom-voices': 0.05,
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
  const rates = videoRates(path, body);
  const resolution = resolutionOf(body);
  const rate = (resolution === '4k' ? rates[2] : undefined) ?? (resolution === 'std' ? rates[0] : rates[1]);
  // Motion control is charged on its output rounded to the nearest second.
  return decimal(rate * (path === '/v1/videos/motion-control' ? Math.round(seconds) : seconds));
}

/** Units a synchronous call deducts: its price per call; the selection calls of multi-elements are free. */
export function callUnits(path: string): string {
  return decimal(PER_CALL[path] ?? 0);
}

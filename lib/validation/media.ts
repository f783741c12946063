/** What a klingMedia keyword value says about one field. */
export interface MediaRule {
  kind: 'image' | 'audio' | 'video';
  maxBytes: number;
  minSide: number;
  maxAspect: number | undefined;
}

const MB = 1024 * 1024;

export function mediaRule(value: string | { kind: MediaRule['kind']; maxBytes?: number; minSide?: number; maxAspect?: number }): MediaRule {
  const spec = typeof value === 'string' ? { kind: value as MediaRule['kind'] } : value;
  return {
    kind: spec.kind,
    maxBytes: spec.maxBytes ?? (spec.kind === 'audio' ? 5 * MB : 10 * MB),
    minSide: spec.minSide ?? (spec.kind === 'image' ? 300 : 0),
    maxAspect: spec.maxAspect,
  };
}

const PREFIX_SEARCH = 256;

/**
 * Kling refuses `data:image/png;base64,` in front of base64 (it wants the bare base64). Returns the
 * value without it. `slice` on a long string makes a view, not a copy, so a 10 MB image is not copied.
 */
export function stripDataPrefix(value: string): string {
  if (!value.startsWith('data:')) return value;
  const marker = value.indexOf(';base64,', 5);
  if (marker === -1 || marker > PREFIX_SEARCH) return value;
  return value.slice(marker + ';base64,'.length);
}

const URL_PATTERN = /^https?:\/\/[^\s/?#@]+[^\s]*$/i;

export function isHttpUrl(value: string): boolean {
  if (value.length > 2048 || !URL_PATTERN.test(value)) return false;
  try {
    const url = new URL(value);
    // Credentials in a media URL would be sent on to Kling and logged by whoever fetches it.
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.username === '' && url.password === '';
  } catch {
    return false;
  }
}

const BASE64_PATTERN = /^[A-Za-z0-9+/]+={0,2}$/;

export function isBase64(value: string): boolean {
  return value.length % 4 !== 1 && BASE64_PATTERN.test(value);
}

export function base64Bytes(value: string): number {
  let padding = 0;
  if (value.endsWith('==')) padding = 2;
  else if (value.endsWith('=')) padding = 1;
  return Math.floor((value.length * 3) / 4) - padding;
}

/** Enough of the file to find a JPEG's frame header after EXIF and colour profiles. */
const HEADER_CHARS = 96 * 1024;

function head(value: string): Buffer {
  const end = Math.min(value.length, HEADER_CHARS) - (Math.min(value.length, HEADER_CHARS) % 4);
  return Buffer.from(value.slice(0, end), 'base64');
}

export interface ImageInfo {
  format: 'png' | 'jpeg';
  width: number | undefined;
  height: number | undefined;
}

const SOF_MARKERS = new Set([0xc0, 0xc1, 0xc2, 0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf]);

function jpegSize(buf: Buffer): { width: number; height: number } | undefined {
  let i = 2;
  while (i + 9 < buf.length) {
    if (buf[i] !== 0xff) return undefined;
    const marker = buf[i + 1] ?? 0;
    if (marker === 0xff) {
      i += 1; // fill byte
      continue;
    }
    if (SOF_MARKERS.has(marker)) return { height: buf.readUInt16BE(i + 5), width: buf.readUInt16BE(i + 7) };
    if (marker === 0xd9 || marker === 0xda) return undefined;
    i += 2 + buf.readUInt16BE(i + 2);
  }
  return undefined;
}

/** The format and size of a base64 image, read from its header only; undefined when it is neither PNG nor JPEG. */
export function imageInfo(base64: string): ImageInfo | undefined {
  const buf = head(base64);
  if (buf.length >= 24 && buf.readUInt32BE(0) === 0x89504e47 && buf.readUInt32BE(4) === 0x0d0a1a0a) {
    return { format: 'png', width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
  }
  if (buf.length >= 4 && buf[0] === 0xff && buf[1] === 0xd8) {
    const size = jpegSize(buf);
    return { format: 'jpeg', width: size?.width, height: size?.height };
  }
  return undefined;
}

/** mp3 (ID3 tag or frame sync), aac (ADTS sync), wav (RIFF/WAVE), m4a (ISO base media 'ftyp'). */
export function isKnownAudio(base64: string): boolean {
  const buf = Buffer.from(base64.slice(0, 16), 'base64');
  if (buf.length < 12) return false;
  if (buf.toString('latin1', 0, 3) === 'ID3') return true;
  if (buf[0] === 0xff && ((buf[1] ?? 0) & 0xe0) === 0xe0) return true;
  if (buf.toString('latin1', 0, 4) === 'RIFF' && buf.toString('latin1', 8, 12) === 'WAVE') return true;
  return buf.toString('latin1', 4, 8) === 'ftyp';
}

/** Why a media value is refused, or undefined when it is acceptable. */
export function checkMedia(value: string, rule: MediaRule): string | undefined {
  if (value === '') return 'must not be empty';
  if (isHttpUrl(value)) return undefined;
  if (rule.kind === 'video') return 'must be an http(s) URL of the video';
  if (!isBase64(value)) return `must be an http(s) URL or raw base64 ${rule.kind} data`;
  const bytes = base64Bytes(value);
  if (bytes > rule.maxBytes) return `${rule.kind} is ${(bytes / MB).toFixed(1)} MB; at most ${(rule.maxBytes / MB).toFixed(0)} MB allowed`;
  if (rule.kind === 'audio') return isKnownAudio(value) ? undefined : 'audio must be mp3, wav, m4a or aac';
  const info = imageInfo(value);
  if (!info) return 'image must be a JPEG or PNG';
  if (info.width === undefined || info.height === undefined) return undefined;
  const short = Math.min(info.width, info.height);
  const long = Math.max(info.width, info.height);
  if (short < rule.minSide) return `image is ${info.width}x${info.height} px; each side must be at least ${rule.minSide} px`;
  if (rule.maxAspect !== undefined && long > short * rule.maxAspect) {
    return `image is ${info.width}x${info.height} px; the aspect ratio must be between 1:${rule.maxAspect} and ${rule.maxAspect}:1`;
  }
  return undefined;
}

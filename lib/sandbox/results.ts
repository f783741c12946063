import { randomInt, randomUUID } from 'node:crypto';
import { PRESET_VOICE_IDS } from './presets.js';
import { callUnits, taskUnits } from './prices.js';
import type { BalanceDeduction, KlingTaskObject, SandboxTask } from './types.js';

/** Generated media live on a made-up host: nothing the relay does should need to fetch them. */
const CDN = 'https://sandbox-cdn.klingai.test';

/** The sandbox's accounts pay from resource packs: their balance is never touched. */
export const NO_BALANCE_DEDUCTION: BalanceDeduction = Object.freeze({ quota: '0', list_price: '0' });

/** Kling's task ids are long decimal strings. */
export function newTaskId(): string {
  let id = String(7 + randomInt(3));
  for (let i = 0; i < 17; i++) id += String(randomInt(10));
  return id;
}

export function media(kind: string, id: string, ext: string): string {
  return `${CDN}/${kind}/${id}.${ext}`;
}

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

function positive(value: unknown): number | undefined {
  const n = typeof value === 'string' ? Number(value) : value;
  return typeof n === 'number' && Number.isFinite(n) && n > 0 ? n : undefined;
}

function count(value: unknown, fallback: number): number {
  const n = positive(value);
  return n === undefined ? fallback : Math.floor(n);
}

/**
 * How many images an image task makes: one for a try-on, `series_amount` for a series (4 when Kling
 * chooses, "auto"), `n` otherwise (default 1).
 */
export function imagesMade(path: string, body: Record<string, unknown>): number {
  if (path === '/v1/images/kolors-virtual-try-on') return 1;
  if (path === '/v1/images/omni-image' && body.result_type === 'series') return count(body.series_amount, 4);
  return count(body.n, 1);
}

/** The seconds a task asked for: `duration`, `input.duration` for effects, `settings.duration` in the standard family; 5 when none. */
function requestedSeconds(body: Record<string, unknown>): number {
  return positive(body.duration) ?? positive(record(body.input).duration) ?? positive(record(body.settings).duration) ?? 5;
}

/** `watermark_info.enabled`, at the top of a v1 body or in a standard body's `options`. */
function watermarked(body: Record<string, unknown>): boolean {
  return record(body.watermark_info).enabled === true || record(record(body.options).watermark_info).enabled === true;
}

function video(task: SandboxTask, duration: string | undefined): Record<string, unknown> {
  const id = randomUUID();
  // Real outputs run a little over the requested length, which billing must cope with.
  const out: Record<string, unknown> = {
    id,
    url: media('videos', id, 'mp4'),
    duration: duration ?? (requestedSeconds(task.body) + 0.1).toFixed(1),
  };
  if (watermarked(task.body)) out.watermark_url = media('videos', `${id}-wm`, 'mp4');
  if (task.path === '/v1/videos/multi-elements' && typeof task.body.session_id === 'string') {
    out.session_id = task.body.session_id;
  }
  return out;
}

function soundtrack(task: SandboxTask, duration: string | undefined): Record<string, unknown> {
  const id = randomUUID();
  const seconds = duration ?? requestedSeconds(task.body).toFixed(1);
  return {
    id,
    url_mp3: media('audios', id, 'mp3'),
    url_wav: media('audios', id, 'wav'),
    duration_mp3: seconds,
    duration_wav: seconds,
  };
}

function images(task: SandboxTask, n: number): Record<string, unknown>[] {
  return Array.from({ length: n }, (_, index) => {
    const id = `${task.taskId}-${index}`;
    const out: Record<string, unknown> = { index, url: media('images', id, 'png') };
    if (watermarked(task.body)) out.watermark_url = media('images', `${id}-wm`, 'png');
    return out;
  });
}

/** A voice as Kling lists it; `owned_by` is 'kling' for Kling's official voices, else the creator. */
export function voice(voiceId: string, name: string, ownedBy = 'creator'): Record<string, unknown> {
  return { voice_id: voiceId, voice_name: name, trial_url: media('voices', voiceId, 'mp3'), owned_by: ownedBy };
}

/** Kling's element ids are longs; 15 digits stay exact as JSON numbers. */
export function newElementId(): number {
  return Number(newTaskId().slice(0, 15));
}

/**
 * The voice bound to a new element: the one it names (`owned_by` 'kling' for a preset), or, for an
 * element made from a video, the voice Kling clones from the video's speech. None for an image element
 * that names none.
 */
function boundVoice(body: Record<string, unknown>): Record<string, unknown> | undefined {
  const named = body.element_voice_id;
  if (typeof named === 'string' && named !== '') return voice(named, 'voice', PRESET_VOICE_IDS.has(named) ? 'kling' : 'creator');
  if (body.reference_type === 'video_refer') return voice(randomUUID(), `${String(body.element_name ?? 'element')} voice`);
  return undefined;
}

/** An element as Kling answers it: the stored images and video as Kling's URLs, its voice, its tags. */
export function element(body: Record<string, unknown>): Record<string, unknown> {
  const id = newElementId();
  const images = record(body.element_image_list);
  const refers = Array.isArray(images.refer_images) ? images.refer_images : Array.isArray(body.element_refer_list) ? body.element_refer_list : [];
  const hasImages = body.element_image_list !== undefined || body.element_frontal_image !== undefined;
  const videos = record(body.element_video_list).refer_videos;
  const bound = boundVoice(body);
  return {
    element_id: id,
    element_name: body.element_name ?? 'element',
    element_description: body.element_description ?? '',
    reference_type: body.reference_type ?? 'image_refer',
    element_image_list: hasImages ? { frontal_image: media('elements', `${id}-front`, 'png'), refer_images: refers.map((_, i) => ({ image_url: media('elements', `${id}-${i}`, 'png') })) } : {},
    element_video_list: Array.isArray(videos) ? { refer_videos: videos.map((_, i) => ({ video_url: media('elements', `${id}-${i}`, 'mp4') })) } : {},
    ...(bound ? { element_voice_info: bound } : {}),
    tag_list: Array.isArray(body.tag_list) ? body.tag_list.map((tag) => ({ tag_id: record(tag).tag_id })) : [],
    owned_by: 'creator',
    status: 'succeed',
  };
}

/** AI multi-shot: three sets of the element seen from three other angles. */
function angleSets(task: SandboxTask): Record<string, unknown>[] {
  return [0, 1, 2].map((index) => {
    const id = `${task.taskId}-${index}`;
    return { index, url_1: media('images', `${id}-1`, 'png'), url_2: media('images', `${id}-2`, 'png'), url_3: media('images', `${id}-3`, 'png') };
  });
}

/** A plausible `task_result` for a task that succeeded; `duration`, when given, is the length its video or audio reports. */
function resultOf(task: SandboxTask, duration: string | undefined): Record<string, unknown> {
  const { path, body } = task;
  if (path === '/v1/audio/text-to-audio') return { audios: [soundtrack(task, duration)] };
  if (path === '/v1/audio/video-to-audio') return { videos: [video(task, duration)], audios: [soundtrack(task, duration)] };
  if (path.includes('custom-voices')) {
    return { voices: [voice(randomUUID(), typeof body.voice_name === 'string' ? body.voice_name : 'voice')] };
  }
  if (path.includes('custom-elements')) return { elements: [element(body)] };
  if (path === '/v1/general/ai-multi-shot') return { images: angleSets(task) };
  if (path.startsWith('/v1/images/')) {
    if (path === '/v1/images/omni-image' && body.result_type === 'series') {
      return { result_type: 'series', series_images: images(task, imagesMade(path, body)) };
    }
    const result: Record<string, unknown> = { images: images(task, imagesMade(path, body)) };
    if (path === '/v1/images/omni-image') result.result_type = 'single';
    return result;
  }
  return { videos: [video(task, duration)] };
}

/** The seconds Kling charges a task for: those generated, never more than the request asked for. */
function chargedSeconds(body: Record<string, unknown>, result: Record<string, unknown>): number | undefined {
  const first = (list: unknown): Record<string, unknown> => record(Array.isArray(list) ? list[0] : undefined);
  const generated = positive(first(result.videos).duration ?? first(result.audios).duration_mp3);
  const asked = positive(body.duration) ?? positive(record(body.input).duration) ?? positive(record(body.settings).duration);
  return generated !== undefined && asked !== undefined ? Math.min(generated, asked) : (generated ?? asked);
}

/**
 * A plausible `task_result` and the `final_unit_deduction` Kling's price list gives it, for a task
 * that succeeded; `duration`, when given, is the length its video or audio reports.
 */
export function succeededResult(task: SandboxTask, duration?: string): { result: Record<string, unknown>; units: string } {
  const result = resultOf(task, duration);
  const pictures = result.series_images ?? result.images;
  const delivered = { seconds: chargedSeconds(task.body, result), images: Array.isArray(pictures) ? pictures.length : undefined };
  return { result, units: taskUnits(task.path, task.body, delivered) };
}

const CONTINUATIONS = new Set(['/v1/videos/video-extend', '/v1/videos/advanced-lip-sync', '/v1/audio/video-to-audio']);

/** Kling's task object for queries and callbacks. */
export function taskObject(task: SandboxTask): KlingTaskObject {
  const out: KlingTaskObject = {
    task_id: task.taskId,
    task_status: task.status,
    task_status_msg: task.statusMsg,
    task_info: {},
    created_at: task.createdAt,
    updated_at: task.updatedAt,
  };
  if (task.externalTaskId !== undefined) out.task_info.external_task_id = task.externalTaskId;
  if (CONTINUATIONS.has(task.path)) {
    const id = typeof task.body.video_id === 'string' ? task.body.video_id : `${task.taskId}-source`;
    out.task_info.parent_video = { id, url: media('videos', id, 'mp4'), duration: '5.1' };
  }
  if (task.result) out.task_result = task.result;
  if (task.finalUnitDeduction !== undefined) out.final_unit_deduction = task.finalUnitDeduction;
  if (task.finalBalanceDeduction !== undefined) out.final_balance_deduction = { ...task.finalBalanceDeduction };
  if (task.body.watermark_info !== undefined) out.watermark_info = { enabled: watermarked(task.body) };
  return out;
}

function sessionOf(body: Record<string, unknown>): string {
  return typeof body.session_id === 'string' ? body.session_id : randomUUID();
}

function maskList(): Record<string, unknown>[] {
  return [
    {
      object_id: 0,
      rle_mask: { size: [720, 1280], counts: 'PPYo05N2O1N2M3L4K5J6I7H8G9F:E;D<C=B>A?@' },
      png_mask: { size: [720, 1280], base64: 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgAB4iG8MwAAAABJRU5ErkJggg==' },
    },
  ];
}

/** The `data` of a synchronous endpoint: identify-face, the multi-elements selection calls, image-recognize and the audio ones. */
export function syncResult(path: string, body: Record<string, unknown>): Record<string, unknown> {
  const final_unit_deduction = callUnits(path);
  const final_balance_deduction = { ...NO_BALANCE_DEDUCTION };
  switch (path.slice(path.lastIndexOf('/') + 1)) {
    case 'identify-face':
      return {
        session_id: randomUUID(),
        final_unit_deduction,
        final_balance_deduction,
        face_data: [{ face_id: '0', face_image: media('faces', randomUUID(), 'png'), start_time: 0, end_time: 5200 }],
      };
    case 'init-selection':
      return {
        status: 0,
        session_id: randomUUID(),
        final_unit_deduction,
        final_balance_deduction,
        fps: 30,
        original_duration: 5000,
        width: 1280,
        height: 720,
        total_frame: 150,
        normalized_video: media('videos', randomUUID(), 'mp4'),
      };
    case 'add-selection':
    case 'delete-selection':
      return {
        status: 0,
        session_id: sessionOf(body),
        final_unit_deduction,
        final_balance_deduction,
        res: { frame_index: typeof body.frame_index === 'number' ? body.frame_index : 0, rle_mask_list: maskList() },
      };
    case 'clear-selection':
      return { status: 0, session_id: sessionOf(body), final_unit_deduction, final_balance_deduction };
    case 'preview-selection': {
      const id = randomUUID();
      return {
        status: 0,
        session_id: sessionOf(body),
        final_unit_deduction,
        final_balance_deduction,
        res: {
          video: media('videos', id, 'mp4'),
          video_cover: media('images', id, 'jpg'),
          tracking_output: media('videos', `${id}-tracking`, 'mp4'),
        },
      };
    }
    case 'image-recognize':
      return {
        task_id: newTaskId(),
        task_status: 'succeed',
        task_result: {
          images: ['object_seg', 'head_seg', 'face_seg', 'cloth_seg'].map((type) => ({
            type,
            is_contain: type !== 'cloth_seg',
            url: media('images', `${randomUUID()}-${type}`, 'png'),
          })),
        },
        final_unit_deduction,
        final_balance_deduction,
      };
    case 'tts': {
      const id = randomUUID();
      const chars = typeof body.text === 'string' ? body.text.length : 0;
      // Roughly fifteen characters a second of speech, never under one second.
      const seconds = Math.max(1, chars / 15).toFixed(1);
      return {
        task_id: newTaskId(),
        task_status: 'succeed',
        task_result: { audios: [{ id, url: media('audios', id, 'mp3'), duration: seconds }] },
        final_unit_deduction,
        final_balance_deduction,
      };
    }
    default:
      return { task_id: newTaskId(), task_status: 'succeed', task_result: {}, final_unit_deduction, final_balance_deduction };
  }
}

import { KlingError } from './codes.js';
import { PRESET_ELEMENTS, PRESET_VOICES } from './presets.js';
import { element, media, newTaskId, voice } from './results.js';
import type { TaskStore } from './tasks.js';

const VOICE_PRESETS = '/v1/general/presets-voices';
const ELEMENT_PRESETS = '/v1/general/advanced-presets-elements';
const DELETE_VOICE = '/v1/general/delete-voices';
const DELETE_ELEMENT = new Set(['/v1/general/delete-advanced-elements', '/v1/general/delete-elements']);
const FIRST_ELEMENT_API = '/v1/general/custom-elements';

/** The largest pageSize of each preset list (voices allow more than Kling's usual 500). */
const PAGE_SIZE_MAX: Record<string, number> = { [VOICE_PRESETS]: 1000, [ELEMENT_PRESETS]: 500 };

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

function list(value: unknown): Record<string, unknown>[] {
  return Array.isArray(value) ? value.map(record) : [];
}

function pageParam(params: URLSearchParams, name: string, max: number, fallback: number): number {
  const raw = params.get(name);
  if (raw === null || raw === '') return fallback;
  const value = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!(value >= 1 && value <= max)) throw new KlingError(1201, `${name} must be an integer in [1, ${max}]`);
  return value;
}

/** A preset as the preset lists show it: a finished task holding one voice or element, without deductions. */
function presetTask(taskId: string, result: Record<string, unknown>): Record<string, unknown> {
  const at = Date.UTC(2026, 5, 17);
  return { task_id: taskId, task_status: 'succeed', task_status_msg: '', created_at: at, updated_at: at, task_result: result };
}

function presetVoiceTasks(): Record<string, unknown>[] {
  return PRESET_VOICES.map((v) => presetTask(`preset-${v.voiceId}`, { voices: [voice(v.voiceId, v.name, 'kling')] }));
}

function presetElementTasks(): Record<string, unknown>[] {
  return PRESET_ELEMENTS.map((e) =>
    presetTask(`preset-${e.elementId}`, {
      elements: [
        {
          element_id: e.elementId,
          element_name: e.name,
          element_description: e.description,
          reference_type: 'image_refer',
          element_image_list: { frontal_image: media('elements', `${e.elementId}-front`, 'png'), refer_images: [{ image_url: media('elements', `${e.elementId}-0`, 'png') }] },
          element_video_list: {},
          tag_list: [{ tag_id: e.tagId }],
          owned_by: 'kling',
          status: 'succeed',
        },
      ],
    }),
  );
}

/**
 * Custom voices and elements as Kling keeps them per account: what an account's finished tasks made
 * (and the first element API made at once) is that account's, and only it can delete it. The preset
 * lists are the same for every account.
 */
export class SandboxResources {
  /** Elements of the first element API, made synchronously, by id: the account that made each, and the element. */
  private readonly firstApiElements = new Map<string, { accessKey: string; element: Record<string, unknown> }>();

  constructor(private readonly store: TaskStore) {}

  /** Forgets the first element API's elements (the tasks' are forgotten with the tasks). */
  reset(): void {
    this.firstApiElements.clear();
  }

  /** Whether this path is served with GET and answered at once (a preset list). */
  static isListPath(path: string): boolean {
    return path in PAGE_SIZE_MAX;
  }

  /** A preset list's page. */
  list(path: string, params: URLSearchParams): Record<string, unknown>[] {
    const all = path === VOICE_PRESETS ? presetVoiceTasks() : presetElementTasks();
    const pageNum = pageParam(params, 'pageNum', 1000, 1);
    const pageSize = pageParam(params, 'pageSize', PAGE_SIZE_MAX[path] ?? 500, 30);
    const start = (pageNum - 1) * pageSize;
    return all.slice(start, start + pageSize);
  }

  /** The answer of a synchronous resource call, or undefined when `path` is none. */
  call(accessKey: string, path: string, body: Record<string, unknown>): Record<string, unknown> | undefined {
    if (path === FIRST_ELEMENT_API) return this.createFirstApiElement(accessKey, body);
    if (path === DELETE_VOICE) return this.remove(accessKey, 'voice_id', body.voice_id, (result) => this.voicesIn(result));
    if (DELETE_ELEMENT.has(path)) return this.remove(accessKey, 'element_id', body.element_id, (result) => list(result.elements));
    return undefined;
  }

  private createFirstApiElement(accessKey: string, body: Record<string, unknown>): Record<string, unknown> {
    const made = element(body);
    this.firstApiElements.set(String(made.element_id), { accessKey, element: made });
    return { task_id: newTaskId(), task_status: 'succeed', task_result: { elements: [made] }, final_unit_deduction: '0', final_balance_deduction: { quota: '0', list_price: '0' } };
  }

  /** Voices a result holds: its own list, and the voices bound to its elements (a video element's clone). */
  private voicesIn(result: Record<string, unknown>): Record<string, unknown>[] {
    return [...list(result.voices), ...list(result.elements).map((e) => record(e.element_voice_info)).filter((v) => v.voice_id !== undefined)];
  }

  /**
   * Deletes a voice or element of this account: marked `deleted` where Kling shows it. An id the
   * account did not make, or already deleted, is Kling's "does not exist".
   */
  private remove(accessKey: string, field: 'voice_id' | 'element_id', id: unknown, objects: (result: Record<string, unknown>) => Record<string, unknown>[]): Record<string, unknown> {
    if (typeof id !== 'string' || id === '') throw new KlingError(1201, `${field} is required`);
    const owned = this.store
      .all()
      .filter((task) => task.accessKey === accessKey && task.result !== undefined)
      .flatMap((task) => objects(task.result ?? {}));
    const first = this.firstApiElements.get(id);
    if (field === 'element_id' && first?.accessKey === accessKey) owned.push(first.element);
    const found = owned.filter((o) => String(o[field]) === id && o.status !== 'deleted' && o.owned_by !== 'kling');
    if (found.length === 0) throw new KlingError(1203, `${field} ${id} does not exist`);
    for (const o of found) o.status = 'deleted';
    return { task_id: newTaskId(), task_status: 'succeed' };
  }
}

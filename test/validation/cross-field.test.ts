import { expect } from 'chai';
import { KlingRelayConfigError, type FieldError } from '../../lib/errors.js';
import { toEntry } from '../../lib/registry/load.js';
import { createValidator, type Validator } from '../../lib/validation/index.js';
import { validate } from '../support/validate.js';
import { IMAGE_URL, MP3, VIDEO_URL } from '../fixtures/media.js';

const T2V = '/v1/videos/text2video';
const I2V = '/v1/videos/image2video';
const OMNI_VIDEO = '/v1/videos/omni-video';
const OMNI_IMAGE = '/v1/images/omni-image';

/** Every error a client gets for `body`, in order. */
function errorsOf(endpoint: string, body: Record<string, unknown>): FieldError[] {
  const r = validate(endpoint, body);
  expect(r.ok, `expected ${endpoint} to refuse ${JSON.stringify(body).slice(0, 200)}`).to.equal(false);
  return r.ok ? [] : r.errors;
}

/** The same message at each path, in order: one error per field a rule spans. */
function at(paths: string[], message: string): FieldError[] {
  return paths.map((path) => ({ path, message }));
}

const images = (n: number) => Array.from({ length: n }, () => ({ image_url: IMAGE_URL }));
const elements = (n: number) => Array.from({ length: n }, (_, i) => ({ element_id: i + 1 }));
const AXES = ['horizontal', 'vertical', 'pan', 'tilt', 'roll', 'zoom'];

/** A validator for one endpoint an integrator adds with its own schema. */
function integratorValidator(rules: Record<string, unknown>): Validator {
  const schema = {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'https://example.com/schemas/custom-speech.json',
    type: 'object',
    properties: { text: { type: 'string' }, voice_id: { type: 'string' }, voice_url: { type: 'string' } },
    additionalProperties: false,
    ...rules,
  };
  const json = { path: '/v1/general/custom-speech', type: 'custom-speech', schema: 'custom-speech.json', table: 'video', pricing_type: 'fixed', kind: 'task', queryable: true } as const;
  const entry = toEntry(json, '/integrator/custom-speech.json', schema.$id, '/integrator/registry.json');
  return createValidator({ entries: [entry], byPath: new Map([[entry.path, entry]]), schemas: new Map([[schema.$id, schema]]) });
}

describe('validation: a rule over several fields answers one error per field it spans', () => {
  describe('fields that cannot be used together: the later field first, then the other', () => {
    it('image2video: image_tail, masks and camera_control one at a time; element_list without voice_list', () => {
      const together = (a: string, b: string) => `'${a}' and '${b}' cannot be used together`;
      const camera = { type: 'forward_up' };
      const mask = { mask: IMAGE_URL, trajectories: [{ x: 0, y: 0 }, { x: 10, y: 5 }] };
      expect(errorsOf(I2V, { image: IMAGE_URL, image_tail: IMAGE_URL, static_mask: IMAGE_URL, prompt: 'x' })).to.deep.equal(
        at(['/static_mask', '/image_tail'], together('image_tail', 'static_mask')),
      );
      expect(errorsOf(I2V, { image: IMAGE_URL, image_tail: IMAGE_URL, dynamic_masks: [mask], prompt: 'x' })).to.deep.equal(
        at(['/dynamic_masks', '/image_tail'], together('image_tail', 'dynamic_masks')),
      );
      expect(errorsOf(I2V, { image: IMAGE_URL, image_tail: IMAGE_URL, camera_control: camera, prompt: 'x' })).to.deep.equal(
        at(['/camera_control', '/image_tail'], together('image_tail', 'camera_control')),
      );
      expect(errorsOf(I2V, { image: IMAGE_URL, static_mask: IMAGE_URL, camera_control: camera, prompt: 'x' })).to.deep.equal(
        at(['/camera_control', '/static_mask'], together('static_mask', 'camera_control')),
      );
      expect(errorsOf(I2V, { image: IMAGE_URL, dynamic_masks: [mask], camera_control: camera, prompt: 'x' })).to.deep.equal(
        at(['/camera_control', '/dynamic_masks'], together('dynamic_masks', 'camera_control')),
      );
      expect(errorsOf(I2V, { image: IMAGE_URL, prompt: 'x', sound: 'on', element_list: [{ element_id: 1 }], voice_list: [{ voice_id: 'v' }] })).to.deep.equal(
        at(['/voice_list', '/element_list'], together('element_list', 'voice_list')),
      );
    });

    it('image generation: image with negative_prompt', () => {
      expect(errorsOf('/v1/images/generations', { prompt: 'p', image: IMAGE_URL, negative_prompt: 'blurry' })).to.deep.equal(
        at(['/negative_prompt', '/image'], "'image' and 'negative_prompt' cannot be used together"),
      );
    });

    it('video_id with video_url, audio_id with sound_file (exactly one of them)', () => {
      const both = "'video_id' and 'video_url' cannot be used together; exactly one of 'video_id' or 'video_url' is required";
      for (const endpoint of ['/v1/audio/video-to-audio', '/v1/videos/identify-face', '/v1/videos/multi-elements/init-selection']) {
        expect(errorsOf(endpoint, { video_id: 'v', video_url: VIDEO_URL }), endpoint).to.deep.equal(at(['/video_url', '/video_id'], both));
      }
      expect(errorsOf('/v1/videos/lip-sync', { input: { video_id: 'v', video_url: VIDEO_URL, mode: 'text2video', text: 't', voice_id: 'x' } })).to.deep.equal(
        at(['/input/video_url', '/input/video_id'], both),
      );
      const sound = "'audio_id' and 'sound_file' cannot be used together; exactly one of 'audio_id' or 'sound_file' is required";
      expect(errorsOf('/v1/videos/avatar/image2video', { image: IMAGE_URL, audio_id: 'a', sound_file: MP3 })).to.deep.equal(at(['/sound_file', '/audio_id'], sound));
      const face = { face_id: '0', sound_start_time: 0, sound_end_time: 3000, sound_insert_time: 0 };
      expect(errorsOf('/v1/videos/advanced-lip-sync', { session_id: 's', face_choose: [{ ...face, audio_id: 'a', sound_file: MP3 }] })).to.deep.equal(
        at(['/face_choose/0/sound_file', '/face_choose/0/audio_id'], sound),
      );
    });

    it('camera_control: two non-zero movements; config with a type other than simple', () => {
      expect(errorsOf(T2V, { prompt: 'x', camera_control: { type: 'simple', config: { pan: 1, zoom: 2 } } })).to.deep.equal(
        at(['/camera_control/config/zoom', '/camera_control/config/pan'], 'exactly one of horizontal, vertical, pan, tilt, roll, zoom must be non-zero; 2 are (pan, zoom)'),
      );
      expect(errorsOf(T2V, { prompt: 'x', camera_control: { type: 'forward_up', config: { pan: 1 } } })).to.deep.equal(
        at(['/camera_control/config', '/camera_control/type'], "'config' is only for camera_control type 'simple'"),
      );
    });

    it('a field another field rules out: image_tail with multi_shot, image_list with removal, image or mode on the wrong effect', () => {
      expect(errorsOf(I2V, { model_name: 'kling-v2-6', image: IMAGE_URL, image_tail: IMAGE_URL, multi_shot: true, shot_type: 'intelligence', prompt: 'x' })).to.deep.equal(
        at(['/image_tail', '/multi_shot', '/model_name'], "'image_tail' cannot be used with multi_shot true except on model_name 'kling-v3'"),
      );
      const removal = { session_id: 's-1', edit_mode: 'removal', prompt: 'Delete the dog from <<<video_1>>>', image_list: [{ image: IMAGE_URL }] };
      expect(errorsOf('/v1/videos/multi-elements', removal)).to.deep.equal(at(['/image_list', '/edit_mode'], "'image_list' cannot be used with edit_mode 'removal'"));
      const dual = { effect_scene: 'hug_pro', input: { images: [IMAGE_URL, IMAGE_URL], duration: '5', image: IMAGE_URL } };
      expect(errorsOf('/v1/videos/effects', dual)).to.deep.equal(
        at(['/input/image', '/input/images'], "'image' and 'images' cannot be used together: single-image effects take image, dual-character effects images"),
      );
      const single = { effect_scene: 'bloombloom', input: { image: IMAGE_URL, duration: '5', mode: 'pro' } };
      expect(errorsOf('/v1/videos/effects', single)).to.deep.equal(at(['/input/mode'], "'mode' is only for dual-character effects (input.images)"));
    });

    it('image generation: image_reference, image_fidelity or elements on a model without them, human_fidelity without subject, elements plus an image over 10', () => {
      const GEN = '/v1/images/generations';
      expect(errorsOf(GEN, { prompt: 'p', image: IMAGE_URL, image_reference: 'face' })).to.deep.equal(
        at(['/image_reference', '/model_name'], "'image_reference' is only for model_name 'kling-v2-1' or 'kling-v1-5' (an absent model_name is kling-v3)"),
      );
      expect(errorsOf(GEN, { prompt: 'p', image: IMAGE_URL, image_fidelity: 0.5 })).to.deep.equal(
        at(['/image_fidelity', '/model_name'], "'image_fidelity' is not for model_name 'kling-v3' (an absent model_name is kling-v3)"),
      );
      expect(errorsOf(GEN, { model_name: 'kling-v2-1', prompt: 'p', element_list: [{ element_id: '1' }] })).to.deep.equal(
        at(['/element_list', '/model_name'], "'element_list' is only for model_name 'kling-v3'"),
      );
      expect(errorsOf(GEN, { model_name: 'kling-v1-5', prompt: 'p', image: IMAGE_URL, image_reference: 'face', human_fidelity: 0.5 })).to.deep.equal(
        at(['/human_fidelity', '/image_reference'], "'human_fidelity' is only for image_reference 'subject'"),
      );
      const tenElements = Array.from({ length: 10 }, (_, i) => ({ element_id: String(1000 + i) }));
      expect(errorsOf(GEN, { model_name: 'kling-v3', prompt: 'p', image: IMAGE_URL, element_list: tenElements })).to.deep.equal(
        at(['/element_list', '/image'], 'image and element_list hold more than 10 images together: at most 9 elements with an image'),
      );
    });

    it('video-extend: model_name and mode are not allowed at all', () => {
      expect(errorsOf('/v1/videos/video-extend', { video_id: 'v', model_name: 'kling-v1-6' })).to.deep.equal(at(['/model_name'], "'model_name' is not allowed here"));
      expect(errorsOf('/v1/videos/video-extend', { video_id: 'v', mode: 'pro' })).to.deep.equal(at(['/mode'], "'mode' is not allowed here"));
    });

    it('omni-video: frame types with a base video or with 3 images on kling-video-o1', () => {
      const first = { image_url: IMAGE_URL, type: 'first_frame' };
      expect(errorsOf(OMNI_VIDEO, { prompt: 'x', image_list: [first], video_list: [{ video_url: VIDEO_URL }] })).to.deep.equal(
        at(['/image_list/0/type'], "'type' (first or end frame) cannot be used with a base video (video_list refer_type 'base')"),
      );
      expect(errorsOf(OMNI_VIDEO, { prompt: 'x', image_list: [first, ...images(2)] })).to.deep.equal(
        at(['/image_list/0/type'], "'type' (first or end frame) cannot be used with 3 or more images on kling-video-o1"),
      );
    });
  });

  describe('alternatives none of which is given: every alternative, the first first', () => {
    it('exactly one of video_id / video_url, audio_id / sound_file; at least one of image / image_tail', () => {
      const video = "exactly one of 'video_id' or 'video_url' is required";
      for (const endpoint of ['/v1/audio/video-to-audio', '/v1/videos/identify-face', '/v1/videos/multi-elements/init-selection']) {
        expect(errorsOf(endpoint, {}), endpoint).to.deep.equal(at(['/video_id', '/video_url'], video));
      }
      expect(errorsOf('/v1/videos/lip-sync', { input: { mode: 'text2video', text: 't', voice_id: 'x' } })).to.deep.equal(at(['/input/video_id', '/input/video_url'], video));
      const sound = "exactly one of 'audio_id' or 'sound_file' is required";
      expect(errorsOf('/v1/videos/avatar/image2video', { image: IMAGE_URL })).to.deep.equal(at(['/audio_id', '/sound_file'], sound));
      const face = { face_id: '0', sound_start_time: 0, sound_end_time: 3000, sound_insert_time: 0 };
      expect(errorsOf('/v1/videos/advanced-lip-sync', { session_id: 's', face_choose: [face] })).to.deep.equal(at(['/face_choose/0/audio_id', '/face_choose/0/sound_file'], sound));
      expect(errorsOf(I2V, { prompt: 'x' })).to.deep.equal(at(['/image', '/image_tail'], "at least one of 'image' or 'image_tail' is required"));
    });

    it('camera_control simple with no non-zero movement', () => {
      expect(errorsOf(T2V, { prompt: 'x', camera_control: { type: 'simple', config: { pan: 0 } } })).to.deep.equal(
        at(AXES.map((axis) => `/camera_control/config/${axis}`), 'exactly one of horizontal, vertical, pan, tilt, roll, zoom must be non-zero; none is'),
      );
    });
  });

  describe('limits and relations over several fields: the checked field first, then the others', () => {
    it('images plus elements over the limit name both lists, the later first', () => {
      expect(errorsOf(OMNI_VIDEO, { aspect_ratio: '1:1', prompt: 'x', image_list: images(4), element_list: elements(4) })).to.deep.equal(
        at(['/element_list', '/image_list'], 'image_list and element_list hold 8 items together; at most 7 allowed'),
      );
      expect(errorsOf(OMNI_VIDEO, { aspect_ratio: '1:1', prompt: 'x', video_list: [{ video_url: VIDEO_URL, refer_type: 'feature' }], image_list: images(3), element_list: elements(2) })).to.deep.equal(
        at(['/element_list', '/image_list'], 'image_list and element_list hold 5 items together; at most 4 allowed'),
      );
      expect(errorsOf(OMNI_VIDEO, { aspect_ratio: '1:1', prompt: 'x', video_list: [{ video_url: VIDEO_URL, refer_type: 'feature' }], image_list: images(5) })).to.deep.equal(
        at(['/image_list'], 'image_list and element_list hold 5 items together; at most 4 allowed'),
      );
      expect(errorsOf(OMNI_IMAGE, { prompt: 'p', image_list: Array.from({ length: 6 }, () => ({ image: IMAGE_URL })), element_list: elements(5) })).to.deep.equal(
        at(['/element_list', '/image_list'], 'image_list and element_list hold 11 items together; at most 10 allowed'),
      );
    });

    it('expansion ratios over the area limit name each ratio given, the later first', () => {
      const message = (area: string) =>
        `the expanded image would be ${area}x the original area; at most 3x: (1 + up_expansion_ratio + down_expansion_ratio) x (1 + left_expansion_ratio + right_expansion_ratio) <= 3`;
      expect(errorsOf('/v1/images/editing/expand', { image: IMAGE_URL, up_expansion_ratio: 1, down_expansion_ratio: 0, left_expansion_ratio: 1, right_expansion_ratio: 0 })).to.deep.equal(
        at(['/left_expansion_ratio', '/up_expansion_ratio'], message('4.00')),
      );
      expect(errorsOf('/v1/images/editing/expand', { image: IMAGE_URL, up_expansion_ratio: 1, down_expansion_ratio: 1.1, left_expansion_ratio: 0, right_expansion_ratio: 0 })).to.deep.equal(
        at(['/down_expansion_ratio', '/up_expansion_ratio'], message('3.10')),
      );
    });

    it('shot durations that do not add up name multi_prompt, then duration', () => {
      const body = { model_name: 'kling-v3', multi_shot: true, shot_type: 'customize', duration: '10', multi_prompt: [{ index: 1, prompt: 'a', duration: '4' }, { index: 2, prompt: 'b', duration: '5' }] };
      expect(errorsOf(T2V, body)).to.deep.equal(at(['/multi_prompt', '/duration'], 'the duration values of multi_prompt add up to 9, but duration is 10'));
    });

    it('a cropped audio shorter than the minimum names sound_end_time, then sound_start_time', () => {
      const face = { face_id: '0', audio_id: 'a', sound_start_time: 1000, sound_end_time: 2999, sound_insert_time: 0 };
      expect(errorsOf('/v1/videos/advanced-lip-sync', { session_id: 's', face_choose: [face] })).to.deep.equal(
        at(['/face_choose/0/sound_end_time', '/face_choose/0/sound_start_time'], 'sound_end_time must be at least 2000 after sound_start_time (it is 1999)'),
      );
    });

    it('a placeholder beyond its list names the text, then the list', () => {
      expect(errorsOf(T2V, { prompt: '<<<voice_1>>> speaks' })).to.deep.equal(at(['/prompt', '/voice_list'], '<<<voice_1>>> names voice 1, but there is no voice_list'));
      expect(errorsOf(OMNI_VIDEO, { aspect_ratio: '1:1', prompt: '<<<image_3>>>', image_list: images(2) })).to.deep.equal(
        at(['/prompt', '/image_list'], '<<<image_3>>> names image 3, but image_list has 2 items'),
      );
      const shots = { model_name: 'kling-v3', multi_shot: true, shot_type: 'customize', duration: '5', multi_prompt: [{ index: 1, prompt: '<<<voice_2>>> hi', duration: '5' }], sound: 'on', voice_list: [{ voice_id: 'a' }] };
      expect(errorsOf(T2V, shots)).to.deep.equal(at(['/multi_prompt/0/prompt', '/voice_list'], '<<<voice_2>>> names voice 2, but voice_list has 1 item'));
    });
  });

  describe("an integrator's schema", () => {
    it('gets the same paths from its required lists, and from errorFields where it declares them', () => {
      const validator = integratorValidator({
        oneOf: [{ required: ['voice_id'] }, { required: ['voice_url'] }],
        if: { required: ['text'] },
        then: { not: { required: ['voice_url'] }, errorFields: ['voice_url', 'text'], errorMessage: "'voice_url' cannot be used with 'text'" },
      });
      const path = '/v1/general/custom-speech';
      expect(validator.validate(path, {})).to.deep.equal({ ok: false, errors: at(['/voice_id', '/voice_url'], "exactly one of 'voice_id' or 'voice_url' is required") });
      expect(validator.validate(path, { text: 'hi', voice_url: 'https://cdn.example.com/v.mp3' })).to.deep.equal({
        ok: false,
        errors: at(['/voice_url', '/text'], "'voice_url' cannot be used with 'text'"),
      });
      expect(validator.validate(path, { text: 'hi', voice_id: 'v' }).ok).to.equal(true);
    });

    it('names every ratio when its expansion limit is below 1 and no ratio is given', () => {
      const ratio = { type: 'number', minimum: 0 };
      const validator = integratorValidator({
        properties: { up: ratio, down: ratio, left: ratio, right: ratio },
        klingExpansionArea: { vertical: ['up', 'down'], horizontal: ['left', 'right'], max: 0.5 },
      });
      const message = 'the expanded image would be 1.00x the original area; at most 0.5x: (1 + up + down) x (1 + left + right) <= 0.5';
      expect(validator.validate('/v1/general/custom-speech', {})).to.deep.equal({ ok: false, errors: at(['/right', '/up', '/down', '/left'], message) });
    });

    it('is refused at start-up when errorFields is not a list of property names', () => {
      expect(() => integratorValidator({ not: { required: ['voice_url', 'text'] }, errorFields: 'voice_url' }))
        .to.throw(KlingRelayConfigError)
        .with.property('code', 'ERR_KLING_RELAY_SCHEMA_INVALID');
    });
  });
});

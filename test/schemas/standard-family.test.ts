import { expect } from 'chai';
import { acceptsAt, rejectsAt, validate } from '../support/validate.js';
import { IMAGE_URL, PNG_400x300, PNG_SMALL, PNG_TALL, VIDEO_URL, dataUrl } from '../fixtures/media.js';

type Body = Record<string, unknown>;

const T2V_TURBO = '/text-to-video/kling-3.0-turbo';
const T2V_30 = '/text-to-video/kling-3.0';
const T2V_26 = '/text-to-video/kling-2.6';
const T2V_25 = '/text-to-video/kling-2.5-turbo';
const I2V_TURBO = '/image-to-video/kling-3.0-turbo';
const I2V_30 = '/image-to-video/kling-3.0';
const I2V_26 = '/image-to-video/kling-2.6';
const I2V_25 = '/image-to-video/kling-2.5-turbo';
const OMNI_30 = '/omni-video/kling-3.0-omni';
const OMNI_O1 = '/omni-video/kling-o1';
const MOTION_30 = '/motion-control/kling-3.0';
const MOTION_26 = '/motion-control/kling-2.6';

const prompt = (text: string) => ({ type: 'prompt', text });
const first = (url = IMAGE_URL) => ({ type: 'first_frame', url });
const last = (url = IMAGE_URL) => ({ type: 'last_frame', url });
const refer = (id?: string) => ({ type: 'refer_image', url: IMAGE_URL, ...(id ? { id } : {}) });
const element = (id: string, elementId = '1001') => ({ type: 'element', element_id: elementId, id });
const voice = (id: string) => ({ type: 'voice', voice_id: 'v-1', id });
const feature = (id = 'video_1') => ({ type: 'feature_video', url: VIDEO_URL, id });
const base = (id = 'video_1') => ({ type: 'base_video', url: VIDEO_URL, id });

/** The body after validation keeps every field the caller sent, as sent (defaults may be added). */
function expectKept(sent: Body, got: Body): void {
  for (const [key, value] of Object.entries(sent)) {
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) expectKept(value as Body, got[key] as Body);
    else expect(got[key], key).to.deep.equal(value);
  }
}

describe('schemas: the standard family', () => {
  describe("Kling's worked examples are accepted unchanged", () => {
    it('text-to-video on kling-3.0-turbo (options with an empty external_task_id)', () => {
      const sent = {
        prompt: 'A girl sat on the train, looking out the window with a melancholic expression, her head swaying with the train.',
        options: { callback_url: 'https://xxx/callback', watermark_info: { enabled: false }, external_task_id: '' },
        settings: { duration: 3, resolution: '720p', aspect_ratio: '9:16' },
      };
      expectKept(structuredClone(sent), acceptsAt(T2V_TURBO, structuredClone(sent)));
    });

    it('image-to-video on kling-3.0-turbo (prompt and first frame, 1080p, 10 s, watermark)', () => {
      const sent = {
        contents: [prompt('The girl turns and smiles'), { type: 'first_frame', url: 'https://p1.example.com/image_25.png' }],
        settings: { resolution: '1080p', duration: 10 },
        options: { watermark_info: { enabled: true } },
      };
      expectKept(structuredClone(sent), acceptsAt(I2V_TURBO, structuredClone(sent)));
    });

    it('omni-video on kling-3.0-omni with a feature video (4k, audio off, multi_shot, no duration)', () => {
      const sent = {
        contents: [prompt('Follow the camera movement of @video_1'), { type: 'feature_video', url: 'https://p1.example.com/video_7.1.mp4', id: 'video_1' }],
        settings: { resolution: '4k', audio: 'off', multi_shot: true },
      };
      expectKept(structuredClone(sent), acceptsAt(OMNI_30, structuredClone(sent)));
    });

    it('motion control on kling-3.0 (prompt, image, video; orientation video, 1080p, original audio)', () => {
      const sent = {
        contents: [prompt('The character dances'), { type: 'image', url: IMAGE_URL }, { type: 'video', url: VIDEO_URL }],
        settings: { character_orientation: 'video', resolution: '1080p', audio: 'original' },
      };
      expectKept(structuredClone(sent), acceptsAt(MOTION_30, structuredClone(sent)));
    });
  });

  describe("Kling's defaults are filled in, so the price of a request is known", () => {
    it('fills settings on text-to-video when none are sent', () => {
      expect(acceptsAt(T2V_TURBO, { prompt: 'a cat' }).settings).to.deep.equal({ resolution: '720p', aspect_ratio: '16:9', duration: 5 });
      expect(acceptsAt(T2V_30, { prompt: 'a cat' }).settings).to.deep.equal({ audio: 'off', resolution: '720p', aspect_ratio: '16:9', duration: 5 });
    });

    it('leaves the omni aspect ratio to the caller (it is conditionally required) and motion control without a duration', () => {
      expect(acceptsAt(OMNI_30, { contents: [first()] }).settings).to.deep.equal({ audio: 'off', resolution: '720p', duration: 5 });
      const motion = acceptsAt(MOTION_26, { contents: [{ type: 'image', url: IMAGE_URL }, { type: 'video', url: VIDEO_URL }], settings: { character_orientation: 'image' } });
      expect(motion.settings).to.deep.equal({ character_orientation: 'image', audio: 'original', resolution: '720p' });
    });

    it('strips a data: prefix from a base64 frame and takes images up to 50 MB', () => {
      const body = acceptsAt(I2V_25, { contents: [{ type: 'first_frame', url: dataUrl('image/png', PNG_400x300) }] });
      expect((body.contents as Body[])[0]?.url).to.equal(PNG_400x300);
    });
  });

  describe('rule: the model is the path, never model_name', () => {
    for (const path of [T2V_TURBO, I2V_30, OMNI_O1, MOTION_26]) {
      it(`refuses model_name on ${path}`, () => {
        rejectsAt(path, { prompt: 'a cat', contents: [first()], model_name: 'kling-v3' }, '/model_name', /part of the path/);
      });
    }
  });

  describe('rule: settings within each endpoint’s sets', () => {
    it('takes duration as an integer in the endpoint’s set', () => {
      rejectsAt(T2V_TURBO, { prompt: 'a', settings: { duration: '5' } }, '/settings/duration', /integer/);
      rejectsAt(T2V_TURBO, { prompt: 'a', settings: { duration: 16 } }, '/settings/duration', /3, 4/);
      rejectsAt(T2V_26, { prompt: 'a', settings: { duration: 7 } }, '/settings/duration', /5, 10/);
      rejectsAt(I2V_25, { contents: [first()], settings: { duration: 3 } }, '/settings/duration', /5, 10/);
      rejectsAt(OMNI_O1, { contents: [refer()], settings: { duration: 11, aspect_ratio: '1:1' } }, '/settings/duration', /10/);
      acceptsAt(OMNI_30, { contents: [prompt('a')], settings: { duration: 15, aspect_ratio: '1:1' } });
      // Motion control has no duration (the output follows the motion video): the field is dropped, never forwarded.
      const motion = acceptsAt(MOTION_30, { contents: [{ type: 'image', url: IMAGE_URL }, { type: 'video', url: VIDEO_URL }], settings: { character_orientation: 'video', duration: 5 } });
      expect(motion.settings).to.not.have.property('duration');
    });

    it('takes 4k only on kling-3.0 and kling-3.0-omni', () => {
      acceptsAt(T2V_30, { prompt: 'a', settings: { resolution: '4k' } });
      acceptsAt(I2V_30, { contents: [first()], settings: { resolution: '4k' } });
      acceptsAt(OMNI_30, { contents: [first()], settings: { resolution: '4k' } });
      for (const path of [T2V_TURBO, T2V_26, T2V_25]) rejectsAt(path, { prompt: 'a', settings: { resolution: '4k' } }, '/settings/resolution', /"720p", "1080p"$/);
      rejectsAt(OMNI_O1, { contents: [first()], settings: { resolution: '4k' } }, '/settings/resolution', /"720p", "1080p"$/);
      rejectsAt(MOTION_30, { contents: [{ type: 'image', url: IMAGE_URL }, { type: 'video', url: VIDEO_URL }], settings: { character_orientation: 'video', resolution: '4k' } }, '/settings/resolution');
    });

    it('takes audio per model', () => {
      rejectsAt(T2V_30, { prompt: 'a', settings: { audio: 'original' } }, '/settings/audio', /"native", "off"/);
      rejectsAt(OMNI_O1, { contents: [first()], settings: { audio: 'native' } }, '/settings/audio', /"original", "off"/);
      rejectsAt(MOTION_26, { contents: [{ type: 'image', url: IMAGE_URL }, { type: 'video', url: VIDEO_URL }], settings: { character_orientation: 'video', audio: 'native' } }, '/settings/audio');
      // 3.0 Turbo and 2.5 Turbo have no audio switch: the field is dropped, never forwarded.
      expect(acceptsAt(T2V_TURBO, { prompt: 'a', settings: { audio: 'off' } }).settings).to.not.have.property('audio');
      expect(acceptsAt(T2V_25, { prompt: 'a', settings: { audio: 'native' } }).settings).to.not.have.property('audio');
    });

    it('takes aspect_ratio 16:9, 9:16 or 1:1, and none on image-to-video', () => {
      rejectsAt(T2V_26, { prompt: 'a', settings: { aspect_ratio: '4:3' } }, '/settings/aspect_ratio', /"16:9", "9:16", "1:1"/);
      expect(acceptsAt(I2V_30, { contents: [first()], settings: { aspect_ratio: '1:1' } }).settings).to.not.have.property('aspect_ratio');
    });

    it('takes multi_shot only on kling-3.0 and kling-3.0-omni, as a boolean', () => {
      rejectsAt(T2V_30, { prompt: 'a', settings: { multi_shot: 'yes' } }, '/settings/multi_shot', /boolean/);
      expect(acceptsAt(T2V_TURBO, { prompt: 'a', settings: { multi_shot: false } }).settings).to.not.have.property('multi_shot');
    });

    it('refuses 1080p-only combinations at 720p, naming the resolution and its reason', () => {
      rejectsAt(T2V_26, { prompt: 'a', settings: { audio: 'native' } }, '/settings/resolution', /'1080p' with settings.audio 'native'/);
      acceptsAt(T2V_26, { prompt: 'a', settings: { audio: 'native', resolution: '1080p' } });
      const r = validate(I2V_26, { contents: [first(), last()], settings: { resolution: '720p' } });
      expect(r.ok).to.equal(false);
      if (!r.ok) expect(r.errors.map((e) => e.path)).to.deep.equal(['/settings/resolution', '/contents']);
      rejectsAt(I2V_25, { contents: [first(), last()] }, '/settings/resolution', /with a last_frame/);
      acceptsAt(I2V_25, { contents: [first(), last()], settings: { resolution: '1080p' } });
      rejectsAt(I2V_26, { contents: [first()], settings: { audio: 'native' } }, '/settings/resolution', /native/);
    });

    it('requires character_orientation on motion control', () => {
      const contents = [{ type: 'image', url: IMAGE_URL }, { type: 'video', url: VIDEO_URL }];
      rejectsAt(MOTION_30, { contents }, '/settings', /required/);
      rejectsAt(MOTION_30, { contents, settings: {} }, '/settings/character_orientation', /required/);
      rejectsAt(MOTION_30, { contents, settings: { character_orientation: 'left' } }, '/settings/character_orientation', /"image", "video"/);
    });
  });

  describe('rule: prompts and texts', () => {
    it('requires a non-empty prompt on text-to-video', () => {
      rejectsAt(T2V_25, {}, '/prompt', /required/);
      rejectsAt(T2V_25, { prompt: '' }, '/prompt', /empty/);
    });

    it('limits the prompt to 3072 on the 3.0 family and 2500 on 2.6 and 2.5 Turbo', () => {
      acceptsAt(T2V_TURBO, { prompt: 'x'.repeat(3072) });
      rejectsAt(T2V_30, { prompt: 'x'.repeat(3073) }, '/prompt', /3072/);
      rejectsAt(T2V_26, { prompt: 'x'.repeat(2501) }, '/prompt', /2500/);
      rejectsAt(T2V_25, { prompt: 'x'.repeat(2501) }, '/prompt', /2500/);
    });

    it('limits contents text to 3072 on 3.0 and 3.0 Omni and 2500 elsewhere', () => {
      acceptsAt(I2V_30, { contents: [prompt('x'.repeat(3072)), first()] });
      acceptsAt(OMNI_30, { contents: [prompt('x'.repeat(3072)), first()] });
      rejectsAt(I2V_TURBO, { contents: [prompt('x'.repeat(2501)), first()] }, '/contents/0/text', /2500/);
      rejectsAt(OMNI_O1, { contents: [prompt('x'.repeat(2501)), first()] }, '/contents/0/text', /2500/);
      rejectsAt(MOTION_26, { contents: [prompt('x'.repeat(2501)), { type: 'image', url: IMAGE_URL }, { type: 'video', url: VIDEO_URL }], settings: { character_orientation: 'image' } }, '/contents/0/text', /2500/);
      rejectsAt(I2V_30, { contents: [prompt(''), first()] }, '/contents/0/text', /empty/);
    });
  });

  describe('rule: contents items', () => {
    it('takes only the types the endpoint allows', () => {
      rejectsAt(I2V_TURBO, { contents: [first(), last()] }, '/contents/1/type', /"prompt", "first_frame"$/);
      rejectsAt(I2V_25, { contents: [first(), element('e1')] }, '/contents/1/type');
      rejectsAt(I2V_30, { contents: [first(), voice('v')] }, '/contents/1/type');
      rejectsAt(MOTION_26, { contents: [{ type: 'image', url: IMAGE_URL }, { type: 'video', url: VIDEO_URL }, element('e1')], settings: { character_orientation: 'video' } }, '/contents/2/type');
      rejectsAt(OMNI_30, { contents: [{ type: 'image', url: IMAGE_URL }], settings: { aspect_ratio: '1:1' } }, '/contents/0/type');
    });

    it('requires each type’s own fields and refuses another type’s', () => {
      rejectsAt(I2V_30, { contents: [{ type: 'first_frame' }] }, '/contents/0/url', /required/);
      rejectsAt(I2V_30, { contents: [first(), { type: 'element', element_id: '7' }] }, '/contents/1/id', /required/);
      rejectsAt(I2V_30, { contents: [first(), { type: 'element', id: 'e' }] }, '/contents/1/element_id', /required/);
      rejectsAt(I2V_26, { contents: [first(), { type: 'voice', id: 'v' }], settings: { audio: 'native', resolution: '1080p' } }, '/contents/1/voice_id', /required/);
      rejectsAt(I2V_30, { contents: [{ type: 'prompt', text: 'a', url: IMAGE_URL }, first()] }, '/contents/0/url', /not allowed/);
      rejectsAt(I2V_30, { contents: [{ ...first(), id: 'f' }] }, '/contents/0/id', /not allowed/);
      rejectsAt(OMNI_30, { contents: [{ ...first(), element_id: '9' }] }, '/contents/0/element_id', /not allowed/);
      // An element id is a string in this family.
      rejectsAt(I2V_30, { contents: [first(), element('e', 7 as unknown as string)] }, '/contents/1/element_id', /string/);
    });

    it('checks images (size, ratio, 50 MB) and takes videos as URLs only', () => {
      rejectsAt(I2V_30, { contents: [first(PNG_SMALL)] }, '/contents/0/url', /300/);
      rejectsAt(I2V_30, { contents: [first(PNG_TALL)] }, '/contents/0/url', /2\.5/);
      rejectsAt(OMNI_30, { contents: [{ type: 'feature_video', url: PNG_400x300 }] }, '/contents/0/url', /URL/i);
      rejectsAt(MOTION_26, { contents: [{ type: 'image', url: IMAGE_URL }, { type: 'video', url: PNG_400x300 }], settings: { character_orientation: 'video' } }, '/contents/1/url', /URL/i);
    });

    it('refuses an id used twice', () => {
      const r = validate(OMNI_30, { contents: [refer('a'), element('a')], settings: { aspect_ratio: '1:1' } });
      expect(r.ok).to.equal(false);
      if (!r.ok) {
        expect(r.errors.map((e) => e.path)).to.deep.equal(['/contents/1/id', '/contents/0/id']);
        expect(r.errors[0]?.message).to.match(/"a" is used by items 0 and 1/);
      }
    });

    it('requires every @reference in a prompt to name an item id', () => {
      acceptsAt(OMNI_30, { contents: [prompt('@image_1, in the style of @Zhang, then mail a@gmail.com'), refer('image_1'), element('Zhang')], settings: { aspect_ratio: '1:1' } });
      rejectsAt(OMNI_30, { contents: [prompt('the cat of @image_2'), refer('image_1')], settings: { aspect_ratio: '1:1' } }, '/contents/0/text', /@image_2 names no item.*'image_1'/);
      rejectsAt(I2V_30, { contents: [prompt('hello @Li'), first()] }, '/contents/0/text', /no item of contents has an id/);
      acceptsAt(I2V_26, { contents: [prompt('@1 says hello'), first(), voice('1')], settings: { audio: 'native', resolution: '1080p' } });
      acceptsAt(MOTION_30, { contents: [prompt('wearing @hat'), { type: 'image', url: IMAGE_URL }, { type: 'video', url: VIDEO_URL }, element('hat')], settings: { character_orientation: 'video' } });
    });

    it('takes at most one prompt item', () => {
      rejectsAt(I2V_TURBO, { contents: [prompt('a'), prompt('b'), first()] }, '/contents', /at most one prompt/);
    });
  });

  describe('rule: image-to-video frames, elements and voices', () => {
    it('needs exactly one first_frame and at most one last_frame', () => {
      for (const path of [I2V_TURBO, I2V_30, I2V_26, I2V_25]) {
        rejectsAt(path, { contents: [prompt('a')] }, '/contents', /exactly one first_frame/);
        rejectsAt(path, { contents: [first(), first()] }, '/contents', /exactly one first_frame/);
      }
      rejectsAt(I2V_30, { contents: [first(), last(), last()] }, '/contents', /at most 1 last_frame/);
      rejectsAt(I2V_30, { contents: [last()] }, '/contents', /first_frame/);
    });

    it('takes up to 3 elements on kling-3.0', () => {
      acceptsAt(I2V_30, { contents: [first(), element('a'), element('b'), element('c')] });
      rejectsAt(I2V_30, { contents: [first(), element('a'), element('b'), element('c'), element('d')] }, '/contents', /at most 3 element/);
    });

    it('takes up to 2 voices on kling-2.6, with native audio only', () => {
      const settings = { audio: 'native', resolution: '1080p' };
      acceptsAt(I2V_26, { contents: [first(), voice('a'), voice('b')], settings });
      rejectsAt(I2V_26, { contents: [first(), voice('a'), voice('b'), voice('c')], settings }, '/contents', /at most 2 voice/);
      const r = validate(I2V_26, { contents: [first(), voice('a')] });
      expect(r.ok).to.equal(false);
      if (!r.ok) {
        expect(r.errors.map((e) => e.path)).to.deep.equal(['/settings/audio', '/contents']);
        expect(r.errors[0]?.message).to.match(/voice items need settings.audio 'native'/);
      }
    });
  });

  describe('rule: multi-shot prompts', () => {
    const shots = 'shot 1, 2, a train leaves; shot 2, 3, the girl waves;';

    it('accepts shots whose seconds add up to the duration', () => {
      acceptsAt(T2V_TURBO, { prompt: shots, settings: { duration: 5 } });
      acceptsAt(T2V_30, { prompt: shots });
      acceptsAt(I2V_30, { contents: [prompt(shots), first()] });
      acceptsAt(OMNI_30, { contents: [prompt(shots), first()] });
    });

    it('refuses shots that do not add up to the duration, at the prompt and the duration', () => {
      const r = validate(T2V_TURBO, { prompt: shots, settings: { duration: 6 } });
      expect(r.ok).to.equal(false);
      if (!r.ok) {
        expect(r.errors.map((e) => e.path)).to.deep.equal(['/prompt', '/settings/duration']);
        expect(r.errors[0]?.message).to.match(/5 seconds together, but settings.duration is 6/);
      }
      rejectsAt(I2V_TURBO, { contents: [first(), prompt(shots)], settings: { duration: 10 } }, '/contents/1/text', /5 seconds/);
      rejectsAt(OMNI_30, { contents: [prompt('shot 1, 4, a; shot 2, 4, b;'), first()] }, '/contents/0/text', /8 seconds together, but settings.duration is 5/);
    });

    it('refuses a malformed shot, a shot of 0 seconds, numbers out of order, over 6 shots and shot prompts over 512 characters', () => {
      rejectsAt(T2V_TURBO, { prompt: 'shot 1, 5 a train' }, '/prompt', /shot 1 must read 'shot 1, <seconds>, <prompt>;'/);
      rejectsAt(T2V_TURBO, { prompt: 'shot 1, 0, a; shot 2, 5, b;' }, '/prompt', /at least 1 second/);
      rejectsAt(T2V_TURBO, { prompt: 'shot 1, 2, a; shot 3, 3, b;' }, '/prompt', /numbered 1, 2, 3/);
      const seven = Array.from({ length: 7 }, (_, i) => `shot ${i + 1}, 2, scene ${i + 1};`).join(' ');
      rejectsAt(T2V_TURBO, { prompt: seven, settings: { duration: 14 } }, '/prompt', /at most 6 shots/);
      rejectsAt(T2V_TURBO, { prompt: `shot 1, 5, ${'x'.repeat(513)};` }, '/prompt', /512/);
    });

    it('reads the prompt as plain text with multi_shot false, and on models without multi-shot', () => {
      acceptsAt(T2V_30, { prompt: 'shot 1, 9, a;', settings: { multi_shot: false } });
      acceptsAt(T2V_26, { prompt: 'shot 1, 9, a;' });
      acceptsAt(OMNI_O1, { contents: [prompt('shot 1, 9, a;'), first()] });
    });
  });

  describe('rule: omni-video', () => {
    it('takes at most one video, one first_frame and one last_frame; a last_frame needs a first_frame', () => {
      rejectsAt(OMNI_30, { contents: [feature('v1'), base('v2')] }, '/contents', /at most one video/);
      rejectsAt(OMNI_O1, { contents: [feature('v1'), feature('v2')] }, '/contents', /at most one video/);
      rejectsAt(OMNI_30, { contents: [first(), first()] }, '/contents', /at most 1 first_frame/);
      rejectsAt(OMNI_30, { contents: [last()], settings: { aspect_ratio: '1:1' } }, '/contents', /a last_frame needs a first_frame/);
    });

    it('requires aspect_ratio when there is neither a first frame nor a video', () => {
      rejectsAt(OMNI_30, { contents: [prompt('a cat')] }, '/settings/aspect_ratio', /no first_frame and no video/);
      rejectsAt(OMNI_O1, { contents: [refer()] }, '/settings/aspect_ratio', /required/);
      acceptsAt(OMNI_30, { contents: [prompt('a cat')], settings: { aspect_ratio: '9:16' } });
      acceptsAt(OMNI_O1, { contents: [feature()] });
    });

    it('counts frames, reference images and elements: 7 together, 4 with a video, 3 elements with a first frame', () => {
      const six = [refer('r1'), refer('r2'), refer('r3'), element('e1'), element('e2'), element('e3')];
      acceptsAt(OMNI_30, { contents: [first(), ...six] });
      rejectsAt(OMNI_30, { contents: [first(), ...six, refer('r4')] }, '/contents', /at most 7 together/);
      rejectsAt(OMNI_30, { contents: [feature(), refer('r1'), refer('r2'), refer('r3'), refer('r4'), refer('r5')] }, '/contents', /with a video.*at most 4/);
      acceptsAt(OMNI_O1, { contents: [feature(), refer('r1'), refer('r2'), refer('r3'), refer('r4')] });
      rejectsAt(OMNI_30, { contents: [first(), element('e1'), element('e2'), element('e3'), element('e4')] }, '/contents', /with a first_frame, contents has at most 3 element/);
    });

    it('feature_video: audio off, and multi_shot true for a multi-shot prompt (3.0 Omni)', () => {
      rejectsAt(OMNI_30, { contents: [feature()], settings: { audio: 'native' } }, '/settings/audio', /'off' with a feature_video/);
      rejectsAt(OMNI_30, { contents: [prompt('shot 1, 2, a; shot 2, 3, b;'), feature()], settings: { multi_shot: false } }, '/settings/multi_shot', /needs settings.multi_shot true/);
      acceptsAt(OMNI_30, { contents: [prompt('shot 1, 2, a; shot 2, 3, b;'), feature()], settings: { multi_shot: true } });
    });

    it('base_video: no frames, no multi-shot, no native audio', () => {
      rejectsAt(OMNI_30, { contents: [base(), first()] }, '/contents', /base_video.*first_frame or last_frame/);
      rejectsAt(OMNI_O1, { contents: [base(), first()] }, '/contents', /base_video/);
      rejectsAt(OMNI_30, { contents: [base()], settings: { multi_shot: true } }, '/settings/multi_shot', /base_video/);
      rejectsAt(OMNI_30, { contents: [prompt('shot 1, 5, a;'), base()], settings: { multi_shot: false } }, '/contents', /multi-shot prompt/);
      rejectsAt(OMNI_30, { contents: [base()], settings: { audio: 'native' } }, '/settings/audio', /'native' with a base_video/);
      acceptsAt(OMNI_30, { contents: [prompt('make it snow on @video_1'), base()], settings: { audio: 'original', multi_shot: false } });
    });

    it('kling-o1: first and last frame without references or elements, no last frame with a feature video, 5 or 10 s from a first frame alone', () => {
      rejectsAt(OMNI_O1, { contents: [first(), last(), refer('r1')] }, '/contents', /cannot have refer_image or element/);
      rejectsAt(OMNI_O1, { contents: [first(), last(), element('e1')] }, '/contents', /cannot have refer_image or element/);
      rejectsAt(OMNI_O1, { contents: [feature(), first(), last()] }, '/contents', /feature_video cannot be used with a last_frame/);
      rejectsAt(OMNI_O1, { contents: [first()], settings: { duration: 7 } }, '/settings/duration', /5 or 10/);
      acceptsAt(OMNI_O1, { contents: [first(), refer('r1')], settings: { duration: 7 } });
    });
  });

  describe('rule: motion control', () => {
    const image = { type: 'image', url: IMAGE_URL };
    const video = { type: 'video', url: VIDEO_URL };
    const settings = { character_orientation: 'image' };

    it('needs exactly one image and one video', () => {
      rejectsAt(MOTION_30, { contents: [video], settings }, '/contents', /exactly one image/);
      rejectsAt(MOTION_26, { contents: [image], settings }, '/contents', /exactly one video/);
      rejectsAt(MOTION_26, { contents: [image, image, video], settings }, '/contents', /exactly one image/);
    });

    it('takes at most one element, on kling-3.0 only', () => {
      acceptsAt(MOTION_30, { contents: [image, video, element('e1')], settings });
      rejectsAt(MOTION_30, { contents: [image, video, element('e1'), element('e2')], settings }, '/contents', /at most 1 element/);
    });
  });

  describe('options', () => {
    it('checks the caller’s callback URL and task id and refuses unknown options', () => {
      rejectsAt(T2V_TURBO, { prompt: 'a', options: { callback_url: 'ftp://x/cb' } }, '/options/callback_url', /http/);
      rejectsAt(T2V_TURBO, { prompt: 'a', options: { external_task_id: 'x'.repeat(129) } }, '/options/external_task_id', /128/);
      rejectsAt(T2V_TURBO, { prompt: 'a', options: { watermark_info: {} } }, '/options/watermark_info/enabled', /required/);
      expect(acceptsAt(T2V_TURBO, { prompt: 'a', options: { priority: 1 } }).options).to.deep.equal({});
    });
  });
});

import { expect } from 'chai';
import { acceptsAt, rejectsAt, validate } from '../support/validate.js';

const PATH = '/v1/videos/text2video';

const rejects = (body: Record<string, unknown>, path: string, message?: RegExp): string => rejectsAt(PATH, body, path, message);
const accepts = (body: Record<string, unknown>): Record<string, unknown> => acceptsAt(PATH, body);

describe('schema: /v1/videos/text2video', () => {
  describe('valid bodies', () => {
    it('accepts a prompt alone and fills in Kling\'s defaults', () => {
      const body = accepts({ prompt: 'a cat on a skateboard' });
      expect(body).to.deep.include({
        model_name: 'kling-v1',
        mode: 'std',
        duration: '5',
        aspect_ratio: '16:9',
        sound: 'off',
        multi_shot: false,
      });
      expect(body).to.not.have.property('cfg_scale');
    });

    it('drops unknown fields (including the legacy alias `model`)', () => {
      const body = accepts({ prompt: 'a cat', model: 'kling-v2-master', foo: 1 });
      expect(body).to.not.have.property('model');
      expect(body).to.not.have.property('foo');
      expect(body.model_name).to.equal('kling-v1');
    });

    it('accepts a full kling-v3 request: 15 s, voices with sound on, negative prompt, watermark, callback', () => {
      const body = accepts({
        model_name: 'kling-v3',
        prompt: '<<<voice_1>>> greets <<<voice_2>>>',
        negative_prompt: 'blur',
        voice_list: [{ voice_id: 'v-1' }, { voice_id: 'v-2' }],
        sound: 'on',
        mode: 'pro',
        aspect_ratio: '9:16',
        duration: '15',
        cfg_scale: 0.7,
        watermark_info: { enabled: true },
        callback_url: 'https://example.com/hook',
        external_task_id: 'my-task-1',
      });
      expect(body.duration).to.equal('15');
      expect(body.mode).to.equal('pro');
    });

    it('accepts every duration from "3" to "15" on kling-v3', () => {
      for (let s = 3; s <= 15; s++) accepts({ model_name: 'kling-v3', prompt: 'x', duration: String(s) });
    });

    it('accepts "10" on an older model', () => {
      accepts({ model_name: 'kling-v2-master', prompt: 'x', duration: '10' });
    });

    it('accepts multi_shot customize with shots adding up to duration and no prompt', () => {
      const body = accepts({
        model_name: 'kling-v3',
        multi_shot: true,
        shot_type: 'customize',
        duration: '10',
        multi_prompt: [
          { index: 1, prompt: 'a sunrise', duration: '4' },
          { index: 2, prompt: 'a sunset', duration: '6' },
        ],
      });
      expect(body.multi_shot).to.equal(true);
    });

    it('accepts multi_prompt durations adding up to the default duration "5"', () => {
      accepts({
        model_name: 'kling-v3',
        multi_shot: true,
        shot_type: 'customize',
        multi_prompt: [
          { index: 1, prompt: 'a', duration: '2' },
          { index: 2, prompt: 'b', duration: '3' },
        ],
      });
    });

    it('accepts multi_shot intelligence with a prompt', () => {
      accepts({ model_name: 'kling-v3', multi_shot: true, shot_type: 'intelligence', prompt: 'a story in three shots' });
    });

    it('accepts camera_control simple with exactly one non-zero movement, and the other types without config', () => {
      accepts({ prompt: 'x', camera_control: { type: 'simple', config: { horizontal: 0, zoom: -10 } } });
      accepts({ prompt: 'x', camera_control: { type: 'simple', config: { pan: 10 } } });
      for (const type of ['down_back', 'forward_up', 'right_turn_forward', 'left_turn_forward']) {
        accepts({ prompt: 'x', camera_control: { type } });
      }
    });

    it('leaves placeholders of other kinds alone', () => {
      accepts({ prompt: 'see <<<image_1>>> and <<<foo_9>>>' });
    });
  });

  describe('model_name', () => {
    it('rejects kling-v1-5 and kling-v2-1 (not text-to-video models)', () => {
      rejects({ model_name: 'kling-v1-5', prompt: 'x' }, '/model_name', /must be one of/);
      rejects({ model_name: 'kling-v2-1', prompt: 'x' }, '/model_name', /kling-v3/);
    });

    it('rejects a model of another endpoint', () => {
      rejects({ model_name: 'kling-video-o1', prompt: 'x' }, '/model_name');
    });
  });

  describe('prompt', () => {
    it('requires a prompt when multi_shot is false or absent', () => {
      rejects({}, '/prompt', /required/);
      rejects({ multi_shot: false }, '/prompt', /required/);
    });

    it('rejects an empty prompt when multi_shot is false', () => {
      rejects({ prompt: '' }, '/prompt', /empty/);
    });

    it('rejects a prompt over 2500 characters', () => {
      accepts({ prompt: 'a'.repeat(2500) });
      rejects({ prompt: 'a'.repeat(2501) }, '/prompt', /2500/);
    });

    it('rejects a non-string prompt', () => {
      rejects({ prompt: 42 }, '/prompt', /string/);
    });

    it('rejects a negative_prompt over 2500 characters', () => {
      rejects({ prompt: 'x', negative_prompt: 'a'.repeat(2501) }, '/negative_prompt', /2500/);
    });
  });

  describe('duration', () => {
    it('must be a string', () => {
      rejects({ prompt: 'x', duration: 5 }, '/duration', /string/);
    });

    it('allows only "5" / "10" on the older models (and on the default kling-v1)', () => {
      rejects({ prompt: 'x', duration: '7' }, '/duration', /"5", "10"/);
      rejects({ model_name: 'kling-v2-6', prompt: 'x', duration: '3' }, '/duration', /"5", "10"/);
      rejects({ model_name: 'kling-v2-5-turbo', prompt: 'x', duration: '15' }, '/duration');
    });

    it('allows at most "15" on kling-v3', () => {
      rejects({ model_name: 'kling-v3', prompt: 'x', duration: '16' }, '/duration', /must be one of/);
      rejects({ model_name: 'kling-v3', prompt: 'x', duration: '2' }, '/duration');
    });
  });

  describe('enums and ranges', () => {
    it('rejects an unknown mode', () => {
      rejects({ prompt: 'x', mode: 'ultra' }, '/mode', /"std", "pro"/);
    });

    it('rejects an aspect_ratio not in 16:9 / 9:16 / 1:1', () => {
      rejects({ prompt: 'x', aspect_ratio: '4:3' }, '/aspect_ratio', /16:9/);
    });

    it('rejects sound other than on/off', () => {
      rejects({ prompt: 'x', sound: 'yes' }, '/sound', /"on", "off"/);
    });

    it('rejects cfg_scale outside [0, 1]', () => {
      rejects({ prompt: 'x', cfg_scale: 1.5 }, '/cfg_scale', /<= 1/);
      rejects({ prompt: 'x', cfg_scale: -0.1 }, '/cfg_scale', />= 0/);
    });

    it('rejects a non-boolean multi_shot', () => {
      rejects({ prompt: 'x', multi_shot: 'yes' }, '/multi_shot', /boolean/);
    });

    it('rejects watermark_info without enabled', () => {
      rejects({ prompt: 'x', watermark_info: {} }, '/watermark_info/enabled', /required/);
    });

    it('rejects a callback_url that is not an http(s) URL', () => {
      rejects({ prompt: 'x', callback_url: 'ftp://example.com/x' }, '/callback_url');
    });

    it('rejects an empty external_task_id', () => {
      rejects({ prompt: 'x', external_task_id: '' }, '/external_task_id', /empty/);
    });
  });

  describe('multi_shot / shot_type / multi_prompt', () => {
    it('requires shot_type when multi_shot is true', () => {
      rejects({ model_name: 'kling-v3', multi_shot: true, prompt: 'x' }, '/shot_type', /required/);
    });

    it('rejects an unknown shot_type', () => {
      rejects({ model_name: 'kling-v3', multi_shot: true, shot_type: 'auto', prompt: 'x' }, '/shot_type', /customize/);
    });

    it('requires multi_prompt for shot_type customize', () => {
      rejects({ model_name: 'kling-v3', multi_shot: true, shot_type: 'customize' }, '/multi_prompt', /required/);
    });

    it('requires a non-empty prompt for shot_type intelligence', () => {
      rejects({ model_name: 'kling-v3', multi_shot: true, shot_type: 'intelligence' }, '/prompt', /required/);
      rejects({ model_name: 'kling-v3', multi_shot: true, shot_type: 'intelligence', prompt: '' }, '/prompt', /empty/);
    });

    it('rejects shot durations that do not add up to duration', () => {
      const message = rejects(
        {
          model_name: 'kling-v3',
          multi_shot: true,
          shot_type: 'customize',
          duration: '10',
          multi_prompt: [
            { index: 1, prompt: 'a', duration: '4' },
            { index: 2, prompt: 'b', duration: '5' },
          ],
        },
        '/multi_prompt',
      );
      expect(message).to.match(/9/).and.match(/10/);
    });

    it('checks the sum against the default duration "5"', () => {
      rejects(
        { model_name: 'kling-v3', multi_shot: true, shot_type: 'customize', multi_prompt: [{ index: 1, prompt: 'a', duration: '6' }] },
        '/multi_prompt',
        /5/,
      );
    });

    it('rejects an empty multi_prompt and more than 6 shots', () => {
      const base = { model_name: 'kling-v3', multi_shot: true, shot_type: 'customize' };
      rejects({ ...base, multi_prompt: [] }, '/multi_prompt', /at least 1/);
      const seven = Array.from({ length: 7 }, (_, i) => ({ index: i + 1, prompt: 'p', duration: '2' }));
      rejects({ ...base, duration: '14', multi_prompt: seven }, '/multi_prompt', /at most 6/);
    });

    it('checks each shot: index, prompt <= 512, duration >= 1', () => {
      const base = { model_name: 'kling-v3', multi_shot: true, shot_type: 'customize' };
      rejects({ ...base, multi_prompt: [{ prompt: 'a', duration: '5' }] }, '/multi_prompt/0/index', /required/);
      rejects({ ...base, multi_prompt: [{ index: 1, prompt: 'a'.repeat(513), duration: '5' }] }, '/multi_prompt/0/prompt', /512/);
      rejects({ ...base, multi_prompt: [{ index: 1, prompt: '', duration: '5' }] }, '/multi_prompt/0/prompt', /empty/);
      rejects({ ...base, multi_prompt: [{ index: 1, prompt: 'a', duration: '0' }, { index: 2, prompt: 'b', duration: '5' }] }, '/multi_prompt/0/duration');
      rejects({ ...base, multi_prompt: [{ index: 1, prompt: 'a', duration: 5 }] }, '/multi_prompt/0/duration', /string/);
    });
  });

  describe('voice_list', () => {
    it('requires sound "on"', () => {
      rejects({ prompt: '<<<voice_1>>> hi', voice_list: [{ voice_id: 'v' }] }, '/sound', /required/);
      rejects({ prompt: '<<<voice_1>>> hi', voice_list: [{ voice_id: 'v' }], sound: 'off' }, '/sound', /"on"/);
    });

    it('allows at most 2 voices', () => {
      rejects({ prompt: 'x', sound: 'on', voice_list: [{ voice_id: 'a' }, { voice_id: 'b' }, { voice_id: 'c' }] }, '/voice_list', /at most 2/);
    });

    it('requires a voice_id in each item', () => {
      rejects({ prompt: 'x', sound: 'on', voice_list: [{}] }, '/voice_list/0/voice_id', /required/);
    });

    it('rejects a <<<voice_N>>> that names no voice_list item', () => {
      rejects({ prompt: '<<<voice_2>>> speaks', sound: 'on', voice_list: [{ voice_id: 'a' }] }, '/prompt', /voice_2/);
      rejects({ prompt: '<<<voice_1>>> speaks' }, '/prompt', /no voice_list/);
      rejects({ prompt: '<<<voice_0>>> speaks', sound: 'on', voice_list: [{ voice_id: 'a' }] }, '/prompt');
    });

    it('checks placeholders in multi_prompt[].prompt too', () => {
      rejects(
        {
          model_name: 'kling-v3',
          multi_shot: true,
          shot_type: 'customize',
          sound: 'on',
          voice_list: [{ voice_id: 'a' }],
          multi_prompt: [
            { index: 1, prompt: '<<<voice_1>>> hi', duration: '2' },
            { index: 2, prompt: '<<<voice_2>>> hi', duration: '3' },
          ],
        },
        '/multi_prompt/1/prompt',
        /voice_2/,
      );
    });
  });

  describe('camera_control', () => {
    it('requires config for type simple', () => {
      rejects({ prompt: 'x', camera_control: { type: 'simple' } }, '/camera_control/config', /required/);
    });

    it('refuses config for the other types', () => {
      rejects({ prompt: 'x', camera_control: { type: 'down_back', config: { zoom: 5 } } }, '/camera_control/config', /only for camera_control type 'simple'/);
    });

    it('requires exactly one non-zero movement', () => {
      rejects({ prompt: 'x', camera_control: { type: 'simple', config: { zoom: 5, pan: 1 } } }, '/camera_control/config/zoom', /exactly one/);
      rejects({ prompt: 'x', camera_control: { type: 'simple', config: { zoom: 0 } } }, '/camera_control/config/horizontal', /none/);
      rejects({ prompt: 'x', camera_control: { type: 'simple', config: {} } }, '/camera_control/config/horizontal', /exactly one/);
    });

    it('keeps each movement in [-10, 10]', () => {
      rejects({ prompt: 'x', camera_control: { type: 'simple', config: { zoom: 10.5 } } }, '/camera_control/config/zoom', /<= 10/);
      rejects({ prompt: 'x', camera_control: { type: 'simple', config: { tilt: -11 } } }, '/camera_control/config/tilt', />= -10/);
    });

    it('requires a known type', () => {
      // (an empty object is also refused, but defs.json reports the missing config first: its `if`
      // lacks required: ["type"])
      rejects({ prompt: 'x', camera_control: { config: { zoom: 1 } } }, '/camera_control/type', /required/);
      expect(validate(PATH, { prompt: 'x', camera_control: {} }).ok).to.equal(false);
      rejects({ prompt: 'x', camera_control: { type: 'orbit' } }, '/camera_control/type', /simple/);
    });
  });

  describe('mode 4k', () => {
    it('accepts mode 4k on kling-v3', () => {
      expect(accepts({ model_name: 'kling-v3', prompt: 'x', mode: '4k' }).mode).to.equal('4k');
    });

    it('refuses mode 4k on every other model, at mode then model_name', () => {
      for (const body of [{ model_name: 'kling-v2-6', prompt: 'x', mode: '4k' }, { prompt: 'x', mode: '4k' }]) {
        const r = validate(PATH, body);
        expect(r.ok).to.equal(false);
        if (r.ok) continue;
        expect(r.errors.map((e) => e.path)).to.deep.equal(['/mode', '/model_name']);
        for (const e of r.errors) expect(e.message).to.equal("mode '4k' is only for model_name 'kling-v3'");
      }
    });
  });
});

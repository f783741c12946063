import { expect } from 'chai';
import { acceptsAt, rejectsAt, validate } from '../support/validate.js';
import { IMAGE_URL, JPEG_640x480, PNG_400x300, PNG_SMALL, PNG_TALL, dataUrl } from '../fixtures/media.js';

const PATH = '/v1/videos/image2video';

const rejects = (body: Record<string, unknown>, path: string, message?: RegExp): string => rejectsAt(PATH, body, path, message);
const accepts = (body: Record<string, unknown>): Record<string, unknown> => acceptsAt(PATH, body);

const mask = (points = 2) => ({
  mask: IMAGE_URL,
  trajectories: Array.from({ length: points }, (_, i) => ({ x: i * 10, y: i * 5 })),
});

describe('schema: /v1/videos/image2video', () => {
  describe('valid bodies', () => {
    it('accepts an image with defaults applied and the data: prefix stripped', () => {
      const body = accepts({ image: dataUrl('image/png', PNG_400x300), prompt: 'a cat' });
      expect(body.image).to.equal(PNG_400x300);
      expect(body).to.deep.include({ model_name: 'kling-v1', mode: 'std', duration: '5', sound: 'off', multi_shot: false });
      expect(body).to.not.have.property('aspect_ratio');
      expect(body).to.not.have.property('cfg_scale');
    });

    it('accepts an end frame alone (no ratio rule for image_tail) and strips its prefix', () => {
      const body = accepts({ image_tail: dataUrl('image/png', PNG_TALL), prompt: 'x' });
      expect(body.image_tail).to.equal(PNG_TALL);
    });

    it('accepts a start and an end frame, JPEG and URL', () => {
      const body = accepts({ image: dataUrl('image/jpeg', JPEG_640x480), image_tail: IMAGE_URL, prompt: 'x', model_name: 'kling-v2-1', mode: 'pro', duration: '10' });
      expect(body.image).to.equal(JPEG_640x480);
    });

    it('accepts the motion brush: static_mask and up to 6 dynamic masks of 2-77 points', () => {
      const body = accepts({
        image: PNG_400x300,
        prompt: 'x',
        static_mask: dataUrl('image/png', PNG_400x300),
        dynamic_masks: [mask(2), mask(77), mask(), mask(), mask(), mask()],
      });
      expect(body.static_mask).to.equal(PNG_400x300);
    });

    it('strips the data: prefix of a dynamic mask', () => {
      const body = accepts({ image: PNG_400x300, prompt: 'x', dynamic_masks: [{ ...mask(), mask: dataUrl('image/png', PNG_400x300) }] });
      expect((body.dynamic_masks as { mask: string }[])[0]?.mask).to.equal(PNG_400x300);
    });

    it('accepts camera_control simple with one non-zero movement', () => {
      accepts({ model_name: 'kling-v1-5', mode: 'pro', image: IMAGE_URL, prompt: 'x', camera_control: { type: 'simple', config: { zoom: 5 } } });
    });

    it('accepts elements referenced in the prompt', () => {
      accepts({ image: IMAGE_URL, prompt: '<<<element_1>>> and <<<element_3>>>', element_list: [{ element_id: 1 }, { element_id: '2' }, { element_id: 3 }] });
    });

    it('accepts voices with sound on', () => {
      accepts({ model_name: 'kling-v2-6', image: IMAGE_URL, prompt: '<<<voice_1>>> says hi', voice_list: [{ voice_id: 'v1' }], sound: 'on' });
    });

    it('accepts 3-15 s on kling-v3 and multi_shot customize', () => {
      accepts({ model_name: 'kling-v3', image: IMAGE_URL, prompt: 'x', duration: '12' });
      accepts({
        model_name: 'kling-v3',
        image: IMAGE_URL,
        multi_shot: true,
        shot_type: 'customize',
        duration: '7',
        multi_prompt: [
          { index: 1, prompt: 'a', duration: '3' },
          { index: 2, prompt: 'b', duration: '4' },
        ],
      });
    });

    it('accepts aspect_ratio (UNCONFIRMED field) without filling it in', () => {
      const body = accepts({ image: IMAGE_URL, prompt: 'x', aspect_ratio: '9:16' });
      expect(body.aspect_ratio).to.equal('9:16');
    });
  });

  describe('image / image_tail', () => {
    it('requires at least one of image and image_tail', () => {
      rejects({ prompt: 'x' }, '/image', /image.*image_tail/);
    });

    it('checks image size, type and ratio (framed_image)', () => {
      rejects({ image: PNG_SMALL, prompt: 'x' }, '/image', /300/);
      rejects({ image: dataUrl('image/png', PNG_TALL), prompt: 'x' }, '/image', /2\.5|aspect|ratio/i);
      rejects({ image: 'not base64 !!', prompt: 'x' }, '/image');
      rejects({ image: '', prompt: 'x' }, '/image');
    });

    it('checks image_tail size', () => {
      rejects({ image_tail: PNG_SMALL, prompt: 'x' }, '/image_tail', /300/);
    });
  });

  describe('mutual exclusion', () => {
    it('refuses image_tail with static_mask or dynamic_masks', () => {
      rejects({ image: IMAGE_URL, image_tail: IMAGE_URL, static_mask: IMAGE_URL, prompt: 'x' }, '/static_mask', /image_tail.*static_mask.*together/);
      rejects({ image: IMAGE_URL, image_tail: IMAGE_URL, dynamic_masks: [mask()], prompt: 'x' }, '/dynamic_masks', /image_tail.*dynamic_masks.*together/);
    });

    it('refuses image_tail with camera_control', () => {
      rejects(
        { image: IMAGE_URL, image_tail: IMAGE_URL, camera_control: { type: 'simple', config: { pan: 2 } }, prompt: 'x' },
        '/camera_control',
        /image_tail.*camera_control.*together/,
      );
    });

    it('refuses the masks with camera_control', () => {
      rejects({ image: IMAGE_URL, static_mask: IMAGE_URL, camera_control: { type: 'forward_up' }, prompt: 'x' }, '/camera_control', /static_mask.*camera_control/);
      rejects({ image: IMAGE_URL, dynamic_masks: [mask()], camera_control: { type: 'forward_up' }, prompt: 'x' }, '/camera_control', /dynamic_masks.*camera_control/);
    });

    it('refuses element_list with voice_list', () => {
      rejects(
        { image: IMAGE_URL, prompt: 'x', sound: 'on', element_list: [{ element_id: 1 }], voice_list: [{ voice_id: 'v' }] },
        '/voice_list',
        /element_list.*voice_list.*together/,
      );
    });
  });

  describe('dynamic_masks', () => {
    it('allows at most 6 groups', () => {
      rejects({ image: IMAGE_URL, prompt: 'x', dynamic_masks: Array.from({ length: 7 }, () => mask()) }, '/dynamic_masks', /at most 6/);
    });

    it('allows 2-77 trajectory points', () => {
      rejects({ image: IMAGE_URL, prompt: 'x', dynamic_masks: [mask(1)] }, '/dynamic_masks/0/trajectories', /at least 2/);
      rejects({ image: IMAGE_URL, prompt: 'x', dynamic_masks: [mask(), mask(78)] }, '/dynamic_masks/1/trajectories', /at most 77/);
    });

    it('requires mask and trajectories, with integer pixel points', () => {
      rejects({ image: IMAGE_URL, prompt: 'x', dynamic_masks: [{ trajectories: mask().trajectories }] }, '/dynamic_masks/0/mask', /required/);
      rejects({ image: IMAGE_URL, prompt: 'x', dynamic_masks: [{ mask: IMAGE_URL }] }, '/dynamic_masks/0/trajectories', /required/);
      rejects({ image: IMAGE_URL, prompt: 'x', dynamic_masks: [{ mask: IMAGE_URL, trajectories: [{ x: 1.5, y: 1 }, { x: 2, y: 2 }] }] }, '/dynamic_masks/0/trajectories/0/x', /integer/);
      rejects({ image: IMAGE_URL, prompt: 'x', dynamic_masks: [{ mask: IMAGE_URL, trajectories: [{ x: 1 }, { x: 2, y: 2 }] }] }, '/dynamic_masks/0/trajectories/0/y', /required/);
    });

    it('checks the mask images', () => {
      rejects({ image: IMAGE_URL, prompt: 'x', dynamic_masks: [{ ...mask(), mask: PNG_SMALL }] }, '/dynamic_masks/0/mask', /300/);
      rejects({ image: IMAGE_URL, prompt: 'x', static_mask: PNG_SMALL }, '/static_mask', /300/);
    });
  });

  describe('element_list and voice_list', () => {
    it('allows at most 3 elements with valid ids', () => {
      const four = [1, 2, 3, 4].map((element_id) => ({ element_id }));
      rejects({ image: IMAGE_URL, prompt: 'x', element_list: four }, '/element_list', /at most 3/);
      rejects({ image: IMAGE_URL, prompt: 'x', element_list: [{ element_id: 'abc' }] }, '/element_list/0/element_id');
    });

    it('requires sound "on" with voices, at most 2 voices', () => {
      rejects({ image: IMAGE_URL, prompt: 'x', voice_list: [{ voice_id: 'v' }] }, '/sound', /required/);
      rejects({ image: IMAGE_URL, prompt: 'x', voice_list: [{ voice_id: 'v' }], sound: 'off' }, '/sound', /"on"/);
      rejects({ image: IMAGE_URL, prompt: 'x', sound: 'on', voice_list: [{ voice_id: 'a' }, { voice_id: 'b' }, { voice_id: 'c' }] }, '/voice_list', /at most 2/);
    });

    it('rejects placeholders naming missing voices or elements', () => {
      rejects({ image: IMAGE_URL, prompt: '<<<voice_1>>> hi' }, '/prompt', /voice_1/);
      rejects({ image: IMAGE_URL, prompt: '<<<voice_3>>> hi', sound: 'on', voice_list: [{ voice_id: 'a' }, { voice_id: 'b' }] }, '/prompt', /voice_3/);
      rejects({ image: IMAGE_URL, prompt: '<<<element_2>>>', element_list: [{ element_id: 1 }] }, '/prompt', /element_2/);
    });
  });

  describe('multi_shot', () => {
    const base = { model_name: 'kling-v3', image: IMAGE_URL };

    it('requires shot_type', () => {
      rejects({ ...base, multi_shot: true, prompt: 'x' }, '/shot_type', /required/);
    });

    it('accepts start and end frames with multi_shot on kling-v3', () => {
      const body = accepts({ ...base, image_tail: IMAGE_URL, multi_shot: true, shot_type: 'intelligence', prompt: 'x' });
      expect(body.image_tail).to.equal(IMAGE_URL);
    });

    it('refuses an end frame with multi_shot on other models, at image_tail, multi_shot and model_name', () => {
      for (const body of [
        { model_name: 'kling-v2-6', image: IMAGE_URL, image_tail: IMAGE_URL, multi_shot: true, shot_type: 'intelligence', prompt: 'x' },
        { image: IMAGE_URL, image_tail: IMAGE_URL, multi_shot: true, shot_type: 'intelligence', prompt: 'x' },
      ]) {
        const r = validate(PATH, body);
        expect(r.ok).to.equal(false);
        if (r.ok) continue;
        expect(r.errors.map((e) => e.path)).to.deep.equal(['/image_tail', '/multi_shot', '/model_name']);
        for (const e of r.errors) expect(e.message).to.equal("'image_tail' cannot be used with multi_shot true except on model_name 'kling-v3'");
      }
    });

    it('requires multi_prompt for customize, adding up to duration', () => {
      rejects({ ...base, multi_shot: true, shot_type: 'customize' }, '/multi_prompt', /required/);
      rejects(
        { ...base, multi_shot: true, shot_type: 'customize', duration: '10', multi_prompt: [{ index: 1, prompt: 'a', duration: '5' }] },
        '/multi_prompt',
        /10/,
      );
    });

    it('requires a non-empty prompt for intelligence and without multi_shot', () => {
      rejects({ ...base, multi_shot: true, shot_type: 'intelligence', prompt: '' }, '/prompt', /empty/);
      rejects({ image: IMAGE_URL }, '/prompt', /required/);
      rejects({ image: IMAGE_URL, prompt: '' }, '/prompt', /empty/);
    });
  });

  describe('enums, ranges, lengths', () => {
    it('rejects an unknown model and keeps its own list', () => {
      rejects({ image: IMAGE_URL, prompt: 'x', model_name: 'kling-video-o1' }, '/model_name', /kling-v1-5/);
    });

    it('allows only "5" / "10" except on kling-v3', () => {
      rejects({ image: IMAGE_URL, prompt: 'x', duration: '7' }, '/duration', /"5", "10"/);
      rejects({ image: IMAGE_URL, prompt: 'x', model_name: 'kling-v2-6', duration: '15' }, '/duration', /"5", "10"/);
      rejects({ image: IMAGE_URL, prompt: 'x', model_name: 'kling-v3', duration: '16' }, '/duration');
      rejects({ image: IMAGE_URL, prompt: 'x', duration: 5 }, '/duration', /string/);
    });

    it('rejects bad mode, sound, cfg_scale, aspect_ratio', () => {
      rejects({ image: IMAGE_URL, prompt: 'x', mode: 'max' }, '/mode');
      rejects({ image: IMAGE_URL, prompt: 'x', sound: 'loud' }, '/sound');
      rejects({ image: IMAGE_URL, prompt: 'x', cfg_scale: 2 }, '/cfg_scale', /<= 1/);
      rejects({ image: IMAGE_URL, prompt: 'x', aspect_ratio: '4:3' }, '/aspect_ratio');
    });

    it('rejects prompts over 2500 characters', () => {
      rejects({ image: IMAGE_URL, prompt: 'a'.repeat(2501) }, '/prompt', /2500/);
      rejects({ image: IMAGE_URL, prompt: 'x', negative_prompt: 'a'.repeat(2501) }, '/negative_prompt', /2500/);
    });
  });

  describe('camera_control', () => {
    it('config only with type simple, then exactly one non-zero in [-10, 10]', () => {
      rejects({ image: IMAGE_URL, prompt: 'x', camera_control: { type: 'simple' } }, '/camera_control/config', /required/);
      rejects({ image: IMAGE_URL, prompt: 'x', camera_control: { type: 'left_turn_forward', config: { pan: 1 } } }, '/camera_control/config', /only for camera_control type 'simple'/);
      rejects({ image: IMAGE_URL, prompt: 'x', camera_control: { type: 'simple', config: { pan: 1, roll: 1 } } }, '/camera_control/config/roll', /exactly one/);
      rejects({ image: IMAGE_URL, prompt: 'x', camera_control: { type: 'simple', config: { vertical: 20 } } }, '/camera_control/config/vertical', /<= 10/);
    });
  });

  describe('mode 4k', () => {
    it('accepts mode 4k on kling-v3', () => {
      expect(accepts({ model_name: 'kling-v3', image: IMAGE_URL, prompt: 'x', mode: '4k' }).mode).to.equal('4k');
    });

    it('refuses mode 4k on every other model, at mode then model_name', () => {
      for (const body of [{ model_name: 'kling-v2-6', image: IMAGE_URL, prompt: 'x', mode: '4k' }, { image: IMAGE_URL, prompt: 'x', mode: '4k' }]) {
        const r = validate(PATH, body);
        expect(r.ok).to.equal(false);
        if (r.ok) continue;
        expect(r.errors.map((e) => e.path)).to.deep.equal(['/mode', '/model_name']);
        for (const e of r.errors) expect(e.message).to.equal("mode '4k' is only for model_name 'kling-v3'");
      }
    });
  });
});

import { expect } from 'chai';
import { acceptsAt, rejectsAt, validate } from '../support/validate.js';
import { IMAGE_URL, PNG_400x300, PNG_SMALL, PNG_TALL, VIDEO_URL, dataUrl } from '../fixtures/media.js';

const PATH = '/v1/videos/omni-video';

const rejects = (body: Record<string, unknown>, path: string, message?: RegExp): string => rejectsAt(PATH, body, path, message);
const accepts = (body: Record<string, unknown>): Record<string, unknown> => acceptsAt(PATH, body);

const images = (n: number) => Array.from({ length: n }, () => ({ image_url: IMAGE_URL }));
const elements = (n: number) => Array.from({ length: n }, (_, i) => ({ element_id: i + 1 }));
const first = { image_url: IMAGE_URL, type: 'first_frame' };
const end = { image_url: IMAGE_URL, type: 'end_frame' };
const feature = { video_url: VIDEO_URL, refer_type: 'feature' };

describe('schema: /v1/videos/omni-video', () => {
  describe('valid bodies', () => {
    it('accepts a text-only request and fills in the defaults (mode pro)', () => {
      const body = accepts({ prompt: 'a cat', aspect_ratio: '1:1' });
      expect(body).to.deep.include({ model_name: 'kling-video-o1', mode: 'pro', duration: '5', sound: 'off', multi_shot: false });
    });

    it('accepts first and end frames with the data: prefix stripped; no aspect_ratio needed', () => {
      const body = accepts({
        prompt: 'from <<<image_1>>> to <<<image_2>>>',
        image_list: [
          { image_url: dataUrl('image/png', PNG_400x300), type: 'first_frame' },
          { image_url: IMAGE_URL, type: 'end_frame' },
        ],
      });
      expect((body.image_list as { image_url: string }[])[0]?.image_url).to.equal(PNG_400x300);
      expect(body).to.not.have.property('aspect_ratio');
    });

    it('accepts 7 references (images + elements) without a video', () => {
      accepts({ prompt: '<<<image_4>>> meets <<<element_3>>>', aspect_ratio: '16:9', image_list: images(4), element_list: elements(3) });
    });

    it('accepts a feature reference video with 4 references, defaulting refer_type only when absent', () => {
      const body = accepts({ prompt: 'like <<<video_1>>>', aspect_ratio: '9:16', video_list: [feature], image_list: images(2), element_list: elements(2) });
      expect((body.video_list as { refer_type: string }[])[0]?.refer_type).to.equal('feature');
      const edited = accepts({ prompt: 'make <<<video_1>>> night', video_list: [{ video_url: VIDEO_URL, keep_original_sound: 'yes' }] });
      expect((edited.video_list as { refer_type: string }[])[0]?.refer_type).to.equal('base');
    });

    it('accepts kling-v3-omni up to 15 s, with multi_shot customize', () => {
      accepts({ model_name: 'kling-v3-omni', prompt: 'x', aspect_ratio: '16:9', duration: '15' });
      accepts({
        model_name: 'kling-v3-omni',
        aspect_ratio: '16:9',
        multi_shot: true,
        shot_type: 'customize',
        duration: '8',
        image_list: images(1),
        multi_prompt: [
          { index: 1, prompt: '<<<image_1>>> walks', duration: '5' },
          { index: 2, prompt: 'it rains', duration: '3' },
        ],
      });
    });

    it('accepts kling-v3-omni start + end frames with 3 elements', () => {
      accepts({ model_name: 'kling-v3-omni', prompt: 'x', image_list: [first, end], element_list: elements(3) });
    });

    it('accepts kling-video-o1 with 2 images of which one is a frame', () => {
      accepts({ prompt: 'x', image_list: [first, { image_url: IMAGE_URL }] });
    });
  });

  describe('model_name and duration', () => {
    it('rejects a model of another endpoint', () => {
      rejects({ model_name: 'kling-v3', prompt: 'x', aspect_ratio: '1:1' }, '/model_name', /kling-v3-omni/);
    });

    it('allows 3-10 s on kling-video-o1 (also the default)', () => {
      accepts({ prompt: 'x', aspect_ratio: '1:1', duration: '3' });
      rejects({ prompt: 'x', aspect_ratio: '1:1', duration: '11' }, '/duration', /"10"/);
      rejects({ model_name: 'kling-video-o1', prompt: 'x', aspect_ratio: '1:1', duration: '15' }, '/duration');
    });

    it('allows at most 15 s on kling-v3-omni, and only strings', () => {
      rejects({ model_name: 'kling-v3-omni', prompt: 'x', aspect_ratio: '1:1', duration: '16' }, '/duration');
      rejects({ prompt: 'x', aspect_ratio: '1:1', duration: 5 }, '/duration', /string/);
    });

    it('rejects an unknown mode or sound', () => {
      rejects({ prompt: 'x', aspect_ratio: '1:1', mode: 'fast' }, '/mode');
      rejects({ prompt: 'x', aspect_ratio: '1:1', sound: 'true' }, '/sound');
    });
  });

  describe('aspect_ratio', () => {
    it('is required without a first frame or a base video', () => {
      rejects({ prompt: 'x' }, '/aspect_ratio', /required/);
      rejects({ prompt: 'x', image_list: images(2) }, '/aspect_ratio', /required/);
      rejects({ prompt: 'x', video_list: [feature] }, '/aspect_ratio', /required/);
    });

    it('must be 16:9, 9:16 or 1:1', () => {
      rejects({ prompt: 'x', aspect_ratio: '4:3' }, '/aspect_ratio', /16:9/);
    });
  });

  describe('prompt and multi_shot', () => {
    it('requires a non-empty prompt without multi_shot', () => {
      rejects({ aspect_ratio: '1:1' }, '/prompt', /required/);
      rejects({ aspect_ratio: '1:1', prompt: '' }, '/prompt', /empty/);
      rejects({ aspect_ratio: '1:1', prompt: 'a'.repeat(2501) }, '/prompt', /2500/);
    });

    it('requires shot_type with multi_shot, multi_prompt with customize, a prompt with intelligence', () => {
      rejects({ aspect_ratio: '1:1', multi_shot: true, prompt: 'x' }, '/shot_type', /required/);
      rejects({ aspect_ratio: '1:1', multi_shot: true, shot_type: 'manual', prompt: 'x' }, '/shot_type');
      rejects({ aspect_ratio: '1:1', multi_shot: true, shot_type: 'customize' }, '/multi_prompt', /required/);
      rejects({ aspect_ratio: '1:1', multi_shot: true, shot_type: 'intelligence' }, '/prompt', /required/);
    });

    it('requires the shots to add up to duration', () => {
      rejects(
        { aspect_ratio: '1:1', multi_shot: true, shot_type: 'customize', multi_prompt: [{ index: 1, prompt: 'a', duration: '2' }, { index: 2, prompt: 'b', duration: '2' }] },
        '/multi_prompt',
        /4.*5/,
      );
    });

    it('refuses an end frame with multi_shot on kling-video-o1 (also the default)', () => {
      for (const model of [{ model_name: 'kling-video-o1' }, {}]) {
        rejects(
          { ...model, multi_shot: true, shot_type: 'intelligence', prompt: 'x', image_list: [first, end] },
          '/image_list/1/type',
          /^an end_frame image cannot be used with multi_shot true except on model_name 'kling-v3-omni'$/,
        );
      }
    });

    it('accepts first and end frames with multi_shot on kling-v3-omni', () => {
      const body = accepts({ model_name: 'kling-v3-omni', multi_shot: true, shot_type: 'intelligence', prompt: 'x', image_list: [first, end] });
      expect(body.image_list).to.have.length(2);
    });

    it('accepts a feature reference video with multi_shot intelligence on kling-v3-omni', () => {
      const body = accepts({ model_name: 'kling-v3-omni', multi_shot: true, shot_type: 'intelligence', prompt: 'shot 1: <<<video_1>>>; shot 2: a close-up', aspect_ratio: '16:9', video_list: [feature], duration: '15' });
      expect(body.video_list).to.deep.equal([feature]);
    });
  });

  describe('placeholders', () => {
    it('rejects <<<image_N>>>, <<<element_N>>>, <<<video_N>>> beyond their lists', () => {
      rejects({ aspect_ratio: '1:1', prompt: '<<<image_3>>>', image_list: images(2) }, '/prompt', /image_3.*2 items/);
      rejects({ aspect_ratio: '1:1', prompt: '<<<element_1>>>' }, '/prompt', /no element_list/);
      rejects({ aspect_ratio: '1:1', prompt: '<<<video_1>>>' }, '/prompt', /no video_list/);
      rejects({ aspect_ratio: '1:1', prompt: '<<<video_2>>>', video_list: [feature] }, '/prompt', /video_2/);
    });

    it('checks multi_prompt[].prompt too', () => {
      rejects(
        {
          aspect_ratio: '1:1',
          multi_shot: true,
          shot_type: 'customize',
          image_list: images(1),
          multi_prompt: [
            { index: 1, prompt: '<<<image_1>>>', duration: '2' },
            { index: 2, prompt: '<<<image_2>>>', duration: '3' },
          ],
        },
        '/multi_prompt/1/prompt',
        /image_2/,
      );
    });
  });

  describe('image_list', () => {
    it('uses the key image_url (an `image` key is dropped, so image_url is missing)', () => {
      rejects({ aspect_ratio: '1:1', prompt: 'x', image_list: [{ image: IMAGE_URL }] }, '/image_list/0/image_url', /required/);
    });

    it('checks each image (size, ratio) and its type', () => {
      rejects({ aspect_ratio: '1:1', prompt: 'x', image_list: [{ image_url: PNG_SMALL }] }, '/image_list/0/image_url', /300/);
      rejects({ aspect_ratio: '1:1', prompt: 'x', image_list: [{ image_url: PNG_TALL }] }, '/image_list/0/image_url', /2\.5/);
      rejects({ aspect_ratio: '1:1', prompt: 'x', image_list: [{ image_url: IMAGE_URL, type: 'middle' }] }, '/image_list/0/type', /first_frame/);
    });

    it('requires a first_frame with an end_frame', () => {
      rejects({ prompt: 'x', aspect_ratio: '1:1', image_list: [end] }, '/image_list', /contain/);
    });

    it('refuses frames with more than 2 images on kling-video-o1', () => {
      rejects({ prompt: 'x', image_list: [first, { image_url: IMAGE_URL }, { image_url: IMAGE_URL }] }, '/image_list/0/type', /'type' \(first or end frame\) cannot be used with 3 or more images on kling-video-o1/);
      accepts({ model_name: 'kling-v3-omni', prompt: 'x', image_list: [first, { image_url: IMAGE_URL }, { image_url: IMAGE_URL }] });
    });
  });

  describe('counts', () => {
    it('allows images + elements <= 7', () => {
      rejects({ aspect_ratio: '1:1', prompt: 'x', image_list: images(4), element_list: elements(4) }, '/element_list', /8 items.*at most 7/);
      rejects({ aspect_ratio: '1:1', prompt: 'x', image_list: images(8) }, '/image_list', /at most 7/);
    });

    it('allows images + elements <= 4 with a reference video', () => {
      rejects({ aspect_ratio: '1:1', prompt: 'x', video_list: [feature], image_list: images(3), element_list: elements(2) }, '/element_list', /5 items.*at most 4/);
    });

    it('allows at most 1 video', () => {
      rejects({ aspect_ratio: '1:1', prompt: 'x', video_list: [feature, feature] }, '/video_list', /at most 1/);
    });

    it('allows at most 3 elements with a first frame', () => {
      rejects({ model_name: 'kling-v3-omni', prompt: 'x', image_list: [first], element_list: elements(4) }, '/element_list', /at most 3/);
    });

    it('allows no elements with start + end frames on kling-video-o1', () => {
      rejects({ prompt: 'x', image_list: [first, end], element_list: elements(1) }, '/element_list', /at most 0/);
    });
  });

  describe('video_list', () => {
    it('requires sound off with a reference video', () => {
      rejects({ aspect_ratio: '1:1', prompt: 'x', video_list: [feature], sound: 'on' }, '/sound', /"off"/);
    });

    it('refuses first/end frames with base-video editing (refer_type base or absent)', () => {
      rejects({ prompt: 'x', image_list: [first], video_list: [{ video_url: VIDEO_URL }] }, '/image_list/0/type', /'type' \(first or end frame\) cannot be used with a base video/);
      rejects({ prompt: 'x', image_list: [first], video_list: [{ video_url: VIDEO_URL, refer_type: 'base' }] }, '/image_list/0/type', /base video/);
      accepts({ prompt: 'x', image_list: [first], video_list: [feature] });
    });

    it('requires a video URL (no base64) and known refer_type / keep_original_sound', () => {
      rejects({ aspect_ratio: '1:1', prompt: 'x', video_list: [{ refer_type: 'feature' }] }, '/video_list/0/video_url', /required/);
      rejects({ aspect_ratio: '1:1', prompt: 'x', video_list: [{ video_url: PNG_400x300, refer_type: 'feature' }] }, '/video_list/0/video_url', /URL/i);
      rejects({ aspect_ratio: '1:1', prompt: 'x', video_list: [{ video_url: VIDEO_URL, refer_type: 'style' }] }, '/video_list/0/refer_type', /base/);
      rejects({ aspect_ratio: '1:1', prompt: 'x', video_list: [{ ...feature, keep_original_sound: true }] }, '/video_list/0/keep_original_sound');
    });
  });

  describe('mode 4k', () => {
    it('accepts mode 4k on kling-v3-omni, with or without a reference video', () => {
      expect(accepts({ model_name: 'kling-v3-omni', prompt: 'x', aspect_ratio: '16:9', mode: '4k' }).mode).to.equal('4k');
      expect(accepts({ model_name: 'kling-v3-omni', prompt: 'x', aspect_ratio: '16:9', video_list: [feature], mode: '4k' }).mode).to.equal('4k');
    });

    it('refuses mode 4k on kling-video-o1 (also the default), at mode then model_name', () => {
      for (const body of [{ model_name: 'kling-video-o1', prompt: 'x', aspect_ratio: '16:9', mode: '4k' }, { prompt: 'x', aspect_ratio: '16:9', mode: '4k' }]) {
        const r = validate(PATH, body);
        expect(r.ok).to.equal(false);
        if (r.ok) continue;
        expect(r.errors.map((e) => e.path)).to.deep.equal(['/mode', '/model_name']);
        for (const e of r.errors) expect(e.message).to.equal("mode '4k' is only for model_name 'kling-v3-omni'");
      }
    });
  });
});

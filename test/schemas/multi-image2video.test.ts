import { expect } from 'chai';
import { acceptsAt, rejectsAt } from '../support/validate.js';
import { IMAGE_URL, JPEG_640x480, PNG_400x300, PNG_SMALL, PNG_TALL, dataUrl } from '../fixtures/media.js';

const PATH = '/v1/videos/multi-image2video';

const rejects = (body: Record<string, unknown>, path: string, message?: RegExp): string => rejectsAt(PATH, body, path, message);
const accepts = (body: Record<string, unknown>): Record<string, unknown> => acceptsAt(PATH, body);

const one = [{ image: IMAGE_URL }];

describe('schema: /v1/videos/multi-image2video', () => {
  describe('valid bodies', () => {
    it('accepts images with defaults applied and the data: prefix stripped', () => {
      const body = accepts({ prompt: 'two friends', image_list: [{ image: dataUrl('image/png', PNG_400x300) }, { image: IMAGE_URL }] });
      expect((body.image_list as { image: string }[])[0]?.image).to.equal(PNG_400x300);
      expect(body).to.deep.include({ model_name: 'kling-v1-6', mode: 'std', duration: '5', aspect_ratio: '16:9' });
    });

    it('accepts 4 images and every optional field', () => {
      const body = accepts({
        model_name: 'kling-v1-6',
        prompt: 'x',
        negative_prompt: 'blur',
        image_list: [{ image: IMAGE_URL }, { image: JPEG_640x480 }, { image: PNG_400x300 }, { image: IMAGE_URL }],
        mode: 'pro',
        duration: '10',
        aspect_ratio: '1:1',
        watermark_info: { enabled: false },
        callback_url: 'https://example.com/cb',
        external_task_id: 'job-7',
      });
      expect(body.duration).to.equal('10');
    });

    it('drops unknown fields', () => {
      const body = accepts({ prompt: 'x', image_list: [{ image: IMAGE_URL, type: 'subject' }], extra: true });
      expect(body).to.not.have.property('extra');
      expect((body.image_list as object[])[0]).to.not.have.property('type');
    });
  });

  describe('image_list', () => {
    it('is required, with 1-4 items', () => {
      rejects({ prompt: 'x' }, '/image_list', /required/);
      rejects({ prompt: 'x', image_list: [] }, '/image_list', /at least 1/);
      rejects({ prompt: 'x', image_list: [...one, ...one, ...one, ...one, ...one] }, '/image_list', /at most 4/);
    });

    it('requires image in each item and checks it (size, ratio)', () => {
      rejects({ prompt: 'x', image_list: [{}] }, '/image_list/0/image', /required/);
      rejects({ prompt: 'x', image_list: [{ image_url: IMAGE_URL }] }, '/image_list/0/image', /required/);
      rejects({ prompt: 'x', image_list: [...one, { image: PNG_SMALL }] }, '/image_list/1/image', /300/);
      rejects({ prompt: 'x', image_list: [{ image: PNG_TALL }] }, '/image_list/0/image', /2\.5/);
    });
  });

  describe('prompt', () => {
    it('is required and non-empty, at most 2500 characters', () => {
      rejects({ image_list: one }, '/prompt', /required/);
      rejects({ image_list: one, prompt: '' }, '/prompt', /empty/);
      rejects({ image_list: one, prompt: 'a'.repeat(2501) }, '/prompt', /2500/);
      rejects({ image_list: one, prompt: 'x', negative_prompt: 'a'.repeat(2501) }, '/negative_prompt', /2500/);
    });
  });

  describe('enums', () => {
    it('takes only kling-v1-6', () => {
      rejects({ image_list: one, prompt: 'x', model_name: 'kling-v1' }, '/model_name', /kling-v1-6/);
    });

    it('takes duration "5" or "10" (strings)', () => {
      rejects({ image_list: one, prompt: 'x', duration: '7' }, '/duration', /"5", "10"/);
      rejects({ image_list: one, prompt: 'x', duration: 10 }, '/duration', /string/);
    });

    it('rejects unknown mode and aspect_ratio', () => {
      rejects({ image_list: one, prompt: 'x', mode: 'hq' }, '/mode', /std/);
      rejects({ image_list: one, prompt: 'x', aspect_ratio: '21:9' }, '/aspect_ratio', /16:9/);
    });

    it('checks watermark_info, callback_url, external_task_id', () => {
      rejects({ image_list: one, prompt: 'x', watermark_info: { enabled: 'yes' } }, '/watermark_info/enabled', /boolean/);
      rejects({ image_list: one, prompt: 'x', callback_url: 'not a url' }, '/callback_url');
      rejects({ image_list: one, prompt: 'x', external_task_id: 'a'.repeat(129) }, '/external_task_id', /128/);
    });
  });
});

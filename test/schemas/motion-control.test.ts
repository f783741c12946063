import { expect } from 'chai';
import { acceptsAt, rejectsAt } from '../support/validate.js';
import { IMAGE_URL, PNG_400x300, PNG_SMALL, PNG_TALL, VIDEO_URL, dataUrl } from '../fixtures/media.js';

const PATH = '/v1/videos/motion-control';

const rejects = (body: Record<string, unknown>, path: string, message?: RegExp): string => rejectsAt(PATH, body, path, message);
const accepts = (body: Record<string, unknown>): Record<string, unknown> => acceptsAt(PATH, body);

const base = { image_url: IMAGE_URL, video_url: VIDEO_URL, character_orientation: 'video', mode: 'std' };

describe('schema: /v1/videos/motion-control', () => {
  describe('valid bodies', () => {
    it('accepts the required fields with defaults applied and the data: prefix stripped', () => {
      const body = accepts({ ...base, image_url: dataUrl('image/png', PNG_400x300) });
      expect(body.image_url).to.equal(PNG_400x300);
      expect(body).to.deep.include({ model_name: 'kling-v2-6', keep_original_sound: 'yes', mode: 'std' });
      expect(body).to.not.have.property('duration');
    });

    it('accepts every optional field', () => {
      const body = accepts({
        ...base,
        model_name: 'kling-v3',
        mode: 'pro',
        character_orientation: 'image',
        prompt: 'a dancer',
        element_list: [{ element_id: 42 }],
        keep_original_sound: 'no',
        watermark_info: { enabled: true },
        callback_url: 'https://example.com/cb',
        external_task_id: 'mc-1',
      });
      expect(body.keep_original_sound).to.equal('no');
    });
  });

  describe('required fields', () => {
    for (const field of ['image_url', 'video_url', 'character_orientation', 'mode'] as const) {
      it(`requires ${field}`, () => {
        const body: Record<string, unknown> = { ...base };
        delete body[field];
        rejects(body, `/${field}`, /required/);
      });
    }
  });

  describe('media', () => {
    it('checks image_url (size, ratio)', () => {
      rejects({ ...base, image_url: PNG_SMALL }, '/image_url', /300/);
      rejects({ ...base, image_url: PNG_TALL }, '/image_url', /2\.5/);
      rejects({ ...base, image_url: '' }, '/image_url');
    });

    it('takes video_url as a URL only', () => {
      rejects({ ...base, video_url: PNG_400x300 }, '/video_url', /URL/i);
      rejects({ ...base, video_url: '' }, '/video_url');
    });
  });

  describe('enums, counts, lengths', () => {
    it('takes kling-v2-6 or kling-v3', () => {
      rejects({ ...base, model_name: 'kling-v2-5-turbo' }, '/model_name', /kling-v2-6/);
    });

    it('takes character_orientation image or video', () => {
      rejects({ ...base, character_orientation: 'left' }, '/character_orientation', /"image", "video"/);
    });

    it('takes mode std or pro', () => {
      rejects({ ...base, mode: 'turbo' }, '/mode', /"std", "pro"/);
    });

    it('takes keep_original_sound yes or no', () => {
      rejects({ ...base, keep_original_sound: true }, '/keep_original_sound');
    });

    it('allows at most 1 element', () => {
      rejects({ ...base, element_list: [{ element_id: 1 }, { element_id: 2 }] }, '/element_list', /at most 1/);
      rejects({ ...base, element_list: [{}] }, '/element_list/0/element_id', /required/);
    });

    it('limits the prompt to 2500 characters', () => {
      rejects({ ...base, prompt: 'a'.repeat(2501) }, '/prompt', /2500/);
    });
  });
});

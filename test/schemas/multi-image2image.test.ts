import { expect } from 'chai';
import { expectError, validate } from '../support/validate.js';
import { IMAGE_URL, JPEG_640x480, PNG_400x300, PNG_SMALL, PNG_TALL, dataUrl } from '../fixtures/media.js';

const path = '/v1/images/multi-image2image';
const subjects = (count: number) => Array.from({ length: count }, () => ({ subject_image: IMAGE_URL }));

describe('schema: /v1/images/multi-image2image', () => {
  it('accepts subjects, scene and style with defaults applied and data: prefixes stripped', () => {
    const r = validate(path, {
      prompt: 'the two of them in the park, in this style',
      subject_image_list: [{ subject_image: dataUrl('image/png', PNG_400x300) }, { subject_image: IMAGE_URL }],
      scene_image: dataUrl('image/jpeg', JPEG_640x480),
      style_image: IMAGE_URL,
      callback_url: 'https://example.com/cb',
      external_task_id: 'job-1',
      watermark_info: { enabled: true },
    });
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.body.subject_image_list[0].subject_image).to.equal(PNG_400x300);
    expect(r.body.scene_image).to.equal(JPEG_640x480);
    expect(r.body).to.deep.include({ model_name: 'kling-v2-1', n: 1, aspect_ratio: '16:9' });
  });

  it('accepts 4 subjects, n 9 and 21:9, on kling-v2-1 and on the older kling-v2 (CONFLICT: the current list has only kling-v2-1; accepts either)', () => {
    expect(validate(path, { model_name: 'kling-v2-1', subject_image_list: subjects(4), n: 9, aspect_ratio: '21:9' }).ok).to.equal(true);
    expect(validate(path, { model_name: 'kling-v2', subject_image_list: subjects(1) }).ok).to.equal(true);
  });

  it('refuses a request without subject_image_list (Kling requires it)', () => {
    expectError(validate(path, { prompt: 'p', scene_image: IMAGE_URL }), '/subject_image_list', /required/);
  });

  it('refuses subject, scene and style images outside 1:2.5-2.5:1', () => {
    expectError(validate(path, { subject_image_list: [{ subject_image: PNG_TALL }] }), '/subject_image_list/0/subject_image', /2\.5/);
    expectError(validate(path, { subject_image_list: subjects(1), scene_image: PNG_TALL }), '/scene_image', /2\.5/);
    expectError(validate(path, { subject_image_list: subjects(1), style_image: dataUrl('image/png', PNG_TALL) }), '/style_image', /2\.5/);
  });

  it("refuses a model that is not in this endpoint's list", () => {
    expectError(validate(path, { model_name: 'kling-v1', subject_image_list: subjects(1) }), '/model_name', /"kling-v2-1", "kling-v2"/);
  });

  it('refuses a too long prompt', () => {
    expectError(validate(path, { prompt: 'a'.repeat(2501), subject_image_list: subjects(1) }), '/prompt', /at most 2500/);
  });

  it('refuses an empty subject_image_list or more than 4 subjects', () => {
    expectError(validate(path, { subject_image_list: [] }), '/subject_image_list', /at least 1 item/);
    expectError(validate(path, { subject_image_list: subjects(5) }), '/subject_image_list', /at most 4 items/);
  });

  it('refuses a subject item without subject_image and bad subject images', () => {
    expectError(validate(path, { subject_image_list: [{ image: IMAGE_URL }] }), '/subject_image_list/0/subject_image', /required/);
    expectError(validate(path, { subject_image_list: [{ subject_image: IMAGE_URL }, { subject_image: PNG_SMALL }] }), '/subject_image_list/1/subject_image', /300/);
  });

  it('refuses a bad scene_image or style_image', () => {
    expectError(validate(path, { subject_image_list: subjects(1), scene_image: dataUrl('image/png', PNG_SMALL) }), '/scene_image', /300/);
    expectError(validate(path, { subject_image_list: subjects(1), style_image: 'ftp://example.com/a.png' }), '/style_image', /URL|base64/);
  });

  it('refuses n outside 1-9 and an unknown aspect_ratio', () => {
    expectError(validate(path, { subject_image_list: subjects(1), n: 0 }), '/n', />= 1/);
    expectError(validate(path, { subject_image_list: subjects(1), n: 10 }), '/n', /<= 9/);
    expectError(validate(path, { subject_image_list: subjects(1), aspect_ratio: 'auto' }), '/aspect_ratio', /must be one of/);
  });
});

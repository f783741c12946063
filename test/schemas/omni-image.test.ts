import { expect } from 'chai';
import { expectError, validate } from '../support/validate.js';
import { IMAGE_URL, JPEG_640x480, PNG_400x300, PNG_SMALL, PNG_TALL, dataUrl } from '../fixtures/media.js';

const path = '/v1/images/omni-image';
const images = (count: number) => Array.from({ length: count }, () => ({ image: IMAGE_URL }));
const elements = (count: number) => Array.from({ length: count }, (_, i) => ({ element_id: 2000 + i }));

describe('schema: /v1/images/omni-image', () => {
  it('accepts a prompt naming an image, with defaults applied and the data: prefix stripped', () => {
    const r = validate(path, { prompt: 'put <<<image_1>>> on a beach', image_list: [{ image: dataUrl('image/png', PNG_400x300) }] });
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.body.image_list[0].image).to.equal(PNG_400x300);
    expect(r.body).to.deep.include({
      model_name: 'kling-image-o1',
      resolution: '1k',
      result_type: 'single',
      n: 1,
      series_amount: 4,
      aspect_ratio: 'auto',
    });
  });

  it('accepts a text-only prompt (no lists)', () => {
    expect(validate(path, { prompt: 'a lighthouse at dusk', aspect_ratio: '21:9' }).ok).to.equal(true);
  });

  it('accepts kling-v3-omni with 4k, a series of 9, elements and every placeholder in range', () => {
    const r = validate(path, {
      model_name: 'kling-v3-omni',
      prompt: '<<<image_1>>> and <<<image_2>>> meet <<<element_2>>>',
      image_list: [{ image: dataUrl('image/jpeg', JPEG_640x480) }, { image: IMAGE_URL }],
      element_list: elements(2),
      resolution: '4k',
      result_type: 'series',
      series_amount: 9,
      n: 9,
      watermark_info: { enabled: false },
      callback_url: 'https://example.com/cb',
      external_task_id: 'job-1',
    });
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.body.image_list[0].image).to.equal(JPEG_640x480);
  });

  it('accepts 10 images and elements together and leaves other placeholder names alone', () => {
    expect(validate(path, { prompt: '<<<image_5>>> <<<element_5>>> <<<object_7>>>', image_list: images(5), element_list: elements(5) }).ok).to.equal(true);
  });

  it('refuses a missing, empty or too long prompt', () => {
    expectError(validate(path, {}), '/prompt', /required/);
    expectError(validate(path, { prompt: '' }), '/prompt', /empty/);
    expectError(validate(path, { prompt: 'a'.repeat(2501) }), '/prompt', /at most 2500/);
  });

  it("refuses a model that is not in this endpoint's list", () => {
    expectError(validate(path, { prompt: 'p', model_name: 'kling-v3' }), '/model_name', /"kling-image-o1", "kling-v3-omni"/);
  });

  it('refuses <<<image_N>>> beyond image_list or without one', () => {
    expectError(validate(path, { prompt: '<<<image_1>>> and <<<image_2>>>', image_list: images(1) }), '/prompt', /<<<image_2>>>.*image_list has 1 item/);
    expectError(validate(path, { prompt: 'use <<<image_1>>>' }), '/prompt', /there is no image_list/);
    expectError(validate(path, { prompt: '<<<image_0>>>', image_list: images(1) }), '/prompt', /<<<image_0>>>/);
  });

  it('refuses <<<element_N>>> beyond element_list', () => {
    expectError(validate(path, { prompt: '<<<element_3>>>', element_list: elements(2) }), '/prompt', /<<<element_3>>>.*element_list has 2 items/);
  });

  it('refuses more than 10 images and elements together', () => {
    expectError(validate(path, { prompt: 'p', image_list: images(6), element_list: elements(5) }), '/element_list', /image_list and element_list hold 11 items together; at most 10/);
  });

  it('refuses more than 10 images or 10 elements on their own', () => {
    expectError(validate(path, { prompt: 'p', image_list: images(11) }), '/image_list', /at most 10 items/);
    expectError(validate(path, { prompt: 'p', element_list: elements(11) }), '/element_list', /at most 10 items/);
  });

  it('refuses an image_list item without image (image_url is not the key) and bad images', () => {
    expectError(validate(path, { prompt: 'p', image_list: [{ image_url: IMAGE_URL }] }), '/image_list/0/image', /required/);
    expectError(validate(path, { prompt: 'p', image_list: [{ image: '' }] }), '/image_list/0/image', /empty/);
    expectError(validate(path, { prompt: 'p', image_list: [{ image: IMAGE_URL }, { image: PNG_SMALL }] }), '/image_list/1/image', /300/);
    expectError(validate(path, { prompt: 'p', image_list: [{ image: PNG_TALL }] }), '/image_list/0/image', /aspect|ratio|2\.5/);
  });

  it('refuses an element without a valid element_id', () => {
    expectError(validate(path, { prompt: 'p', element_list: [{ element_id: -1 }] }), '/element_list/0/element_id', />= 0/);
  });

  it('refuses 4k on kling-image-o1 (explicit or by default) and an unknown resolution', () => {
    expectError(validate(path, { prompt: 'p', model_name: 'kling-image-o1', resolution: '4k' }), '/resolution', /must be one of: "1k", "2k"$/);
    expectError(validate(path, { prompt: 'p', resolution: '4k' }), '/resolution', /must be one of: "1k", "2k"$/);
    expectError(validate(path, { prompt: 'p', model_name: 'kling-v3-omni', resolution: '8k' }), '/resolution', /"1k", "2k", "4k"/);
  });

  it('refuses a series on kling-image-o1 (explicit or by default) and an unknown result_type', () => {
    expectError(validate(path, { prompt: 'p', model_name: 'kling-image-o1', result_type: 'series' }), '/result_type', /must be "single"/);
    expectError(validate(path, { prompt: 'p', result_type: 'series' }), '/result_type', /must be "single"/);
    expectError(validate(path, { prompt: 'p', model_name: 'kling-v3-omni', result_type: 'grid' }), '/result_type', /"single", "series"/);
  });

  it('refuses n outside 1-9', () => {
    expectError(validate(path, { prompt: 'p', n: 0 }), '/n', />= 1/);
    expectError(validate(path, { prompt: 'p', n: 10 }), '/n', /<= 9/);
  });

  it('refuses series_amount outside 2-9', () => {
    expectError(validate(path, { prompt: 'p', model_name: 'kling-v3-omni', result_type: 'series', series_amount: 1 }), '/series_amount', />= 2/);
    expectError(validate(path, { prompt: 'p', model_name: 'kling-v3-omni', result_type: 'series', series_amount: 10 }), '/series_amount', /<= 9/);
  });

  it('accepts series_amount auto on a kling-v3-omni series', () => {
    const r = validate(path, { prompt: 'p', model_name: 'kling-v3-omni', result_type: 'series', series_amount: 'auto' });
    expect(r.ok, JSON.stringify(r)).to.equal(true);
    if (r.ok) expect(r.body.series_amount).to.equal('auto');
  });

  it('refuses a series_amount string other than auto, and a fraction', () => {
    for (const amount of ['AUTO', '5', '']) {
      const r = validate(path, { prompt: 'p', model_name: 'kling-v3-omni', result_type: 'series', series_amount: amount });
      expect(r.ok).to.equal(false);
      if (r.ok) continue;
      expect(r.errors).to.deep.equal([{ path: '/series_amount', message: 'must be an integer from 2 to 9, or "auto"' }]);
    }
    expectError(validate(path, { prompt: 'p', model_name: 'kling-v3-omni', result_type: 'series', series_amount: 2.5 }), '/series_amount', /integer/);
  });

  it('refuses an unknown aspect_ratio', () => {
    expectError(validate(path, { prompt: 'p', aspect_ratio: '5:4' }), '/aspect_ratio', /"auto"/);
  });
});

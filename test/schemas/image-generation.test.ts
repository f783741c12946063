import { expect } from 'chai';
import { expectError, rejectsAt, validate } from '../support/validate.js';
import { IMAGE_URL, JPEG_640x480, PNG_400x300, PNG_SMALL, PNG_TALL, dataUrl } from '../fixtures/media.js';

const path = '/v1/images/generations';
const elements = (count: number) => Array.from({ length: count }, (_, i) => ({ element_id: String(1000 + i) }));

describe('schema: /v1/images/generations', () => {
  it("accepts a text-to-image prompt with Kling's current defaults applied (kling-v3, no fidelity filled in)", () => {
    const r = validate(path, { prompt: 'a red fox in snow', negative_prompt: 'blurry' });
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.body).to.deep.equal({
      prompt: 'a red fox in snow',
      negative_prompt: 'blurry',
      model_name: 'kling-v3',
      resolution: '1k',
      n: 1,
      aspect_ratio: '16:9',
    });
  });

  it('accepts the current models and the older ones (CONFLICT: the current list is kling-v2-1 and kling-v3; accepts either list)', () => {
    for (const model of ['kling-v3', 'kling-v2-1', 'kling-v1', 'kling-v1-5', 'kling-v2', 'kling-v2-new']) {
      expect(validate(path, { model_name: model, prompt: 'p' }).ok, model).to.equal(true);
    }
  });

  it('accepts a 2500-character prompt (CONFLICT 2500 vs 500: accepts 2500)', () => {
    expect(validate(path, { prompt: 'a'.repeat(2500) }).ok).to.equal(true);
  });

  it('accepts an image-to-image request on kling-v2-1 with image_fidelity and strips the data: prefix', () => {
    const r = validate(path, { model_name: 'kling-v2-1', prompt: 'same cat, watercolour', image: dataUrl('image/png', PNG_400x300), image_fidelity: 0.8 });
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.body.image).to.equal(PNG_400x300);
    expect(r.body.image_fidelity).to.equal(0.8);
    const v3 = validate(path, { prompt: 'same cat', image: IMAGE_URL });
    expect(v3.ok).to.equal(true);
    if (v3.ok) expect(v3.body).to.not.have.property('image_fidelity');
  });

  it('accepts kling-v2-1 with image_reference subject and both fidelities, or face', () => {
    const subject = validate(path, { model_name: 'kling-v2-1', prompt: 'p', image: IMAGE_URL, image_reference: 'subject', image_fidelity: 0.3, human_fidelity: 0.7 });
    expect(subject.ok).to.equal(true);
    expect(validate(path, { model_name: 'kling-v2-1', prompt: 'p', image: IMAGE_URL, image_reference: 'face' }).ok).to.equal(true);
    expect(validate(path, { model_name: 'kling-v2-1', prompt: 'p', image: IMAGE_URL }).ok, 'kling-v2-1 does not need image_reference').to.equal(true);
  });

  it('accepts kling-v1-5 with image_reference subject and human_fidelity, or face (the older reading of the reference model)', () => {
    const subject = validate(path, { model_name: 'kling-v1-5', prompt: 'p', image: dataUrl('image/jpeg', JPEG_640x480), image_reference: 'subject', human_fidelity: 0.7 });
    expect(subject.ok).to.equal(true);
    if (!subject.ok) return;
    expect(subject.body.image).to.equal(JPEG_640x480);
    expect(subject.body.human_fidelity).to.equal(0.7);
    expect(validate(path, { model_name: 'kling-v1-5', prompt: 'p', image: IMAGE_URL, image_reference: 'face' }).ok).to.equal(true);
  });

  it('accepts kling-v3 with 2k, n 9, 21:9, callback fields, watermark and 9 elements plus an image', () => {
    const r = validate(path, {
      model_name: 'kling-v3',
      prompt: 'p',
      image: IMAGE_URL,
      element_list: elements(9),
      resolution: '2k',
      n: 9,
      aspect_ratio: '21:9',
      watermark_info: { enabled: true },
      callback_url: 'https://example.com/cb',
      external_task_id: 'job-1',
    });
    expect(r.ok).to.equal(true);
    expect(validate(path, { model_name: 'kling-v3', prompt: 'p', element_list: elements(10) }).ok).to.equal(true);
  });

  it('refuses a missing, empty or too long prompt', () => {
    expectError(validate(path, {}), '/prompt', /required/);
    expectError(validate(path, { prompt: '' }), '/prompt', /empty/);
    expectError(validate(path, { prompt: 'a'.repeat(2501) }), '/prompt', /at most 2500/);
  });

  it("refuses a model that is not in this endpoint's list", () => {
    expectError(validate(path, { prompt: 'p', model_name: 'kling-v1-6' }), '/model_name', /must be one of: "kling-v3", "kling-v2-1", "kling-v1"/);
    expectError(validate(path, { prompt: 'p', model_name: 'kling-v3-omni' }), '/model_name', /must be one of/);
  });

  it('refuses negative_prompt with an image (image-to-image) and a too long negative_prompt', () => {
    expectError(validate(path, { prompt: 'p', image: IMAGE_URL, negative_prompt: 'blurry' }), '/negative_prompt', /'image' and 'negative_prompt' cannot be used together/);
    expectError(validate(path, { prompt: 'p', negative_prompt: 'a'.repeat(2501) }), '/negative_prompt', /at most 2500/);
  });

  it('refuses an image below 300 px, outside 1:2.5-2.5:1, or neither URL nor base64', () => {
    expectError(validate(path, { prompt: 'p', image: PNG_SMALL }), '/image', /300/);
    expectError(validate(path, { prompt: 'p', image: dataUrl('image/png', PNG_TALL) }), '/image', /aspect|ratio|2\.5/);
    expectError(validate(path, { prompt: 'p', image: 'not an image!' }), '/image', /URL|base64/);
  });

  it('refuses image_reference without image', () => {
    expectError(validate(path, { model_name: 'kling-v1-5', prompt: 'p', image_reference: 'subject' }), '/image', /^is required when 'image_reference' is present$/);
  });

  it('refuses image_reference on the models without feature reference (also the default kling-v3), at both fields', () => {
    const message = /^'image_reference' is only for model_name 'kling-v2-1' or 'kling-v1-5' \(an absent model_name is kling-v3\)$/;
    rejectsAt(path, { model_name: 'kling-v2', prompt: 'p', image: IMAGE_URL, image_reference: 'subject' }, '/image_reference', message);
    expectError(validate(path, { model_name: 'kling-v3', prompt: 'p', image: IMAGE_URL, image_reference: 'subject' }), '/model_name', message);
    rejectsAt(path, { prompt: 'p', image: IMAGE_URL, image_reference: 'face' }, '/image_reference', message);
  });

  it('refuses image_fidelity on kling-v3 (also by default), at both fields', () => {
    const message = /^'image_fidelity' is not for model_name 'kling-v3' \(an absent model_name is kling-v3\)$/;
    rejectsAt(path, { prompt: 'p', image: IMAGE_URL, image_fidelity: 0.5 }, '/image_fidelity', message);
    expectError(validate(path, { model_name: 'kling-v3', prompt: 'p', image: IMAGE_URL, image_fidelity: 0.5 }), '/model_name', message);
    expect(validate(path, { model_name: 'kling-v1', prompt: 'p', image: IMAGE_URL, image_fidelity: 0.5 }).ok).to.equal(true);
  });

  it('refuses human_fidelity on kling-v3 through its rule: only with image_reference subject', () => {
    rejectsAt(path, { model_name: 'kling-v3', prompt: 'p', image: IMAGE_URL, human_fidelity: 0.5 }, '/human_fidelity', /only for image_reference 'subject'/);
  });

  it('refuses element_list on the models without elements, at both fields', () => {
    const message = /^'element_list' is only for model_name 'kling-v3'$/;
    rejectsAt(path, { model_name: 'kling-v2-1', prompt: 'p', element_list: elements(1) }, '/element_list', message);
    expectError(validate(path, { model_name: 'kling-v1', prompt: 'p', element_list: elements(1) }), '/model_name', message);
    expect(validate(path, { prompt: 'p', element_list: elements(1) }).ok, 'the default kling-v3 takes elements').to.equal(true);
  });

  it('refuses an unknown image_reference', () => {
    expectError(validate(path, { model_name: 'kling-v1-5', prompt: 'p', image: IMAGE_URL, image_reference: 'style' }), '/image_reference', /"subject", "face"/);
  });

  it('refuses kling-v1-5 with an image but without image_reference', () => {
    expectError(validate(path, { model_name: 'kling-v1-5', prompt: 'p', image: IMAGE_URL }), '/image_reference', /required/);
    expect(validate(path, { model_name: 'kling-v1-5', prompt: 'p' }).ok).to.equal(true);
  });

  it('refuses human_fidelity without image_reference subject', () => {
    expectError(validate(path, { model_name: 'kling-v1-5', prompt: 'p', image: IMAGE_URL, image_reference: 'face', human_fidelity: 0.5 }), '/human_fidelity', /only for image_reference 'subject'/);
    expectError(validate(path, { prompt: 'p', human_fidelity: 0.5 }), '/human_fidelity', /only for image_reference 'subject'/);
  });

  it('refuses fidelities outside [0, 1]', () => {
    expectError(validate(path, { model_name: 'kling-v2-1', prompt: 'p', image: IMAGE_URL, image_fidelity: -0.1 }), '/image_fidelity', />= 0/);
    expectError(validate(path, { model_name: 'kling-v2-1', prompt: 'p', image: IMAGE_URL, image_fidelity: 1.1 }), '/image_fidelity', /<= 1/);
    expectError(
      validate(path, { model_name: 'kling-v1-5', prompt: 'p', image: IMAGE_URL, image_reference: 'subject', human_fidelity: 1.5 }),
      '/human_fidelity',
      /<= 1/,
    );
  });

  it('refuses more than 10 elements, or more than 9 with an image', () => {
    expectError(validate(path, { model_name: 'kling-v3', prompt: 'p', element_list: elements(11) }), '/element_list', /at most 10 items/);
    expectError(validate(path, { model_name: 'kling-v3', prompt: 'p', image: IMAGE_URL, element_list: elements(10) }), '/element_list', /at most 9 elements with an image/);
  });

  it('refuses an element without a valid element_id', () => {
    expectError(validate(path, { model_name: 'kling-v3', prompt: 'p', element_list: [{}] }), '/element_list/0/element_id', /required/);
    expectError(validate(path, { model_name: 'kling-v3', prompt: 'p', element_list: [{ element_id: 'abc' }] }), '/element_list/0/element_id', /pattern/);
  });

  it('refuses an unknown resolution', () => {
    expectError(validate(path, { prompt: 'p', resolution: '4k' }), '/resolution', /"1k", "2k"/);
  });

  it('refuses n outside 1-9 or not an integer', () => {
    expectError(validate(path, { prompt: 'p', n: 0 }), '/n', />= 1/);
    expectError(validate(path, { prompt: 'p', n: 10 }), '/n', /<= 9/);
    expectError(validate(path, { prompt: 'p', n: 1.5 }), '/n', /integer/);
  });

  it('refuses an unknown aspect_ratio, and 21:9 on kling-v1 (the default kling-v3 takes it)', () => {
    expectError(validate(path, { prompt: 'p', aspect_ratio: '5:4' }), '/aspect_ratio', /must be one of/);
    expectError(validate(path, { prompt: 'p', model_name: 'kling-v1', aspect_ratio: '21:9' }), '/aspect_ratio', /must be one of: "16:9", "9:16", "1:1", "4:3", "3:4", "3:2", "2:3"$/);
    expect(validate(path, { prompt: 'p', aspect_ratio: '21:9' }).ok).to.equal(true);
    expect(validate(path, { prompt: 'p', model_name: 'kling-v2', aspect_ratio: '21:9' }).ok).to.equal(true);
  });

  it('refuses a watermark_info without enabled and an invalid callback_url', () => {
    expectError(validate(path, { prompt: 'p', watermark_info: {} }), '/watermark_info/enabled', /required/);
    expectError(validate(path, { prompt: 'p', callback_url: 'not a url' }), '/callback_url', /URL/);
  });
});

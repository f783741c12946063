import { expect } from 'chai';
import { expectError, validate } from '../support/validate.js';
import { IMAGE_URL, JPEG_640x480, PNG_400x300, PNG_SMALL, PNG_TALL, dataUrl } from '../fixtures/media.js';

const path = '/v1/images/kolors-virtual-try-on';

describe('schema: /v1/images/kolors-virtual-try-on', () => {
  it('accepts a person and a garment with the model defaulted and data: prefixes stripped', () => {
    const r = validate(path, {
      human_image: dataUrl('image/png', PNG_400x300),
      cloth_image: dataUrl('image/jpeg', JPEG_640x480),
      callback_url: 'https://example.com/cb',
      external_task_id: 'job-1',
    });
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.body).to.deep.equal({
      model_name: 'kolors-virtual-try-on-v1',
      human_image: PNG_400x300,
      cloth_image: JPEG_640x480,
      callback_url: 'https://example.com/cb',
      external_task_id: 'job-1',
    });
  });

  it('accepts kolors-virtual-try-on-v1-5 with URLs, and a tall full-body photo (no ratio rule for try-on images)', () => {
    expect(validate(path, { model_name: 'kolors-virtual-try-on-v1-5', human_image: IMAGE_URL, cloth_image: IMAGE_URL }).ok).to.equal(true);
    expect(validate(path, { human_image: PNG_TALL, cloth_image: IMAGE_URL }).ok).to.equal(true);
  });

  it('accepts a request without cloth_image (CONFLICT: S3/S5 optional, S4/S9 required; accepts optional)', () => {
    expect(validate(path, { human_image: IMAGE_URL }).ok).to.equal(true);
  });

  it('drops fields the endpoint does not take', () => {
    const r = validate(path, { human_image: IMAGE_URL, prompt: 'x', watermark_info: { enabled: true } });
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.body).to.not.have.any.keys('prompt', 'watermark_info');
  });

  it("refuses a model that is not in this endpoint's list", () => {
    expectError(validate(path, { model_name: 'kolors-virtual-try-on-v2', human_image: IMAGE_URL }), '/model_name', /"kolors-virtual-try-on-v1", "kolors-virtual-try-on-v1-5"/);
  });

  it('refuses a missing or bad human_image', () => {
    expectError(validate(path, { cloth_image: IMAGE_URL }), '/human_image', /required/);
    expectError(validate(path, { human_image: PNG_SMALL }), '/human_image', /300/);
    expectError(validate(path, { human_image: '' }), '/human_image', /empty/);
  });

  it('refuses a bad cloth_image', () => {
    expectError(validate(path, { human_image: IMAGE_URL, cloth_image: dataUrl('image/png', PNG_SMALL) }), '/cloth_image', /300/);
    expectError(validate(path, { human_image: IMAGE_URL, cloth_image: 'garment.png' }), '/cloth_image', /URL|base64/);
  });

  it('refuses an invalid callback_url or external_task_id', () => {
    expectError(validate(path, { human_image: IMAGE_URL, callback_url: 'mailto:a@b.c' }), '/callback_url', /URL/);
    expectError(validate(path, { human_image: IMAGE_URL, external_task_id: '' }), '/external_task_id', /empty/);
  });
});

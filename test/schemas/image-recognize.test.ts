import { expect } from 'chai';
import { expectError, validate } from '../support/validate.js';
import { IMAGE_URL, JPEG_640x480, MP3, PNG_400x300, PNG_SMALL, PNG_TALL, dataUrl } from '../fixtures/media.js';

describe('schema: /v1/videos/image-recognize', () => {
  const path = '/v1/videos/image-recognize';

  it('accepts a base64 PNG, stripping the data: prefix, and drops unknown fields', () => {
    const r = validate(path, { image: dataUrl('image/png', PNG_400x300), callback_url: 'https://example.com/cb' });
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.body).to.deep.equal({ image: PNG_400x300 });
  });

  it('accepts an image URL and a raw base64 JPEG', () => {
    expect(validate(path, { image: IMAGE_URL }).ok).to.equal(true);
    expect(validate(path, { image: JPEG_640x480 }).ok).to.equal(true);
  });

  it('refuses a missing or empty image', () => {
    expectError(validate(path, {}), '/image', /required/);
    expectError(validate(path, { image: '' }), '/image', /empty/);
  });

  it('refuses images that break the image rules (size, aspect ratio, format)', () => {
    expectError(validate(path, { image: PNG_SMALL }), '/image', /at least 300 px/);
    expectError(validate(path, { image: PNG_TALL }), '/image', /aspect ratio/);
    expectError(validate(path, { image: MP3 }), '/image', /JPEG or PNG/);
    expectError(validate(path, { image: 'not an image!' }), '/image', /URL or raw base64/);
  });
});

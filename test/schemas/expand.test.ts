import { expect } from 'chai';
import { expectError, validate } from '../support/validate.js';
import { IMAGE_URL, PNG_400x300, PNG_SMALL, PNG_TALL, dataUrl } from '../fixtures/media.js';

const path = '/v1/images/editing/expand';
/** The four ratios Kling requires, 0 unless given. */
const ratios = (given: Record<string, number> = {}) => ({ up_expansion_ratio: 0, down_expansion_ratio: 0, left_expansion_ratio: 0, right_expansion_ratio: 0, ...given });

describe('schema: /v1/images/editing/expand', () => {
  it('accepts an image with the four ratios, n defaulted and the data: prefix stripped', () => {
    const r = validate(path, { image: dataUrl('image/png', PNG_400x300), ...ratios({ up_expansion_ratio: 0.5 }) });
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.body).to.deep.equal({
      image: PNG_400x300,
      up_expansion_ratio: 0.5,
      down_expansion_ratio: 0,
      left_expansion_ratio: 0,
      right_expansion_ratio: 0,
      n: 1,
    });
  });

  it("accepts an area of exactly 3x and Kling's own example ratios", () => {
    expect(validate(path, { image: IMAGE_URL, up_expansion_ratio: 0.5, down_expansion_ratio: 0.5, left_expansion_ratio: 0.25, right_expansion_ratio: 0.25 }).ok).to.equal(true);
    expect(validate(path, { image: IMAGE_URL, ...ratios({ up_expansion_ratio: 2 }) }).ok).to.equal(true);
    const r = validate(path, {
      image: IMAGE_URL,
      up_expansion_ratio: 0.1495,
      down_expansion_ratio: 0.1495,
      left_expansion_ratio: 0.6547,
      right_expansion_ratio: 0.6547,
      prompt: 'more sky',
      n: 9,
      watermark_info: { enabled: true },
      callback_url: 'https://example.com/cb',
      external_task_id: 'job-1',
    });
    expect(r.ok).to.equal(true);
  });

  it('accepts an image outside 1:2.5-2.5:1 (only size and 300 px are documented here)', () => {
    expect(validate(path, { image: PNG_TALL, ...ratios({ left_expansion_ratio: 0.5 }) }).ok).to.equal(true);
  });

  it('requires all four ratios (Kling gives them no default)', () => {
    expect(validate(path, { image: IMAGE_URL })).to.deep.equal({ ok: false, errors: [{ path: '/up_expansion_ratio', message: 'is required' }] });
    expect(validate(path, { image: IMAGE_URL, up_expansion_ratio: 0.5, left_expansion_ratio: 0.5 })).to.deep.equal({ ok: false, errors: [{ path: '/down_expansion_ratio', message: 'is required' }] });
    expect(validate(path, { image: IMAGE_URL, up_expansion_ratio: 0.5, down_expansion_ratio: 0, left_expansion_ratio: 0.5 })).to.deep.equal({ ok: false, errors: [{ path: '/right_expansion_ratio', message: 'is required' }] });
  });

  it('refuses a missing or bad image', () => {
    expectError(validate(path, ratios({ up_expansion_ratio: 0.5 })), '/image', /required/);
    expectError(validate(path, { image: PNG_SMALL, ...ratios() }), '/image', /300/);
    expectError(validate(path, { image: 'not base64!', ...ratios() }), '/image', /URL|base64/);
  });

  it('refuses a ratio outside [0, 2] or not a number', () => {
    expectError(validate(path, { image: IMAGE_URL, ...ratios({ up_expansion_ratio: -0.1 }) }), '/up_expansion_ratio', />= 0/);
    expectError(validate(path, { image: IMAGE_URL, ...ratios({ down_expansion_ratio: 2.1 }) }), '/down_expansion_ratio', /<= 2/);
    expectError(validate(path, { image: IMAGE_URL, ...ratios(), left_expansion_ratio: '0.5' }), '/left_expansion_ratio', /number/);
    expectError(validate(path, { image: IMAGE_URL, ...ratios({ right_expansion_ratio: 3 }) }), '/right_expansion_ratio', /<= 2/);
  });

  it('refuses a new image larger than 3x the original area', () => {
    expectError(validate(path, { image: IMAGE_URL, ...ratios({ up_expansion_ratio: 1, left_expansion_ratio: 1 }) }), '/left_expansion_ratio', /4\.00x the original area; at most 3x/);
    expectError(validate(path, { image: IMAGE_URL, ...ratios({ up_expansion_ratio: 1, down_expansion_ratio: 1.1 }) }), '/down_expansion_ratio', /3\.10x/);
  });

  it('refuses a too long prompt and n outside 1-9', () => {
    expectError(validate(path, { image: IMAGE_URL, ...ratios(), prompt: 'a'.repeat(2501) }), '/prompt', /at most 2500/);
    expectError(validate(path, { image: IMAGE_URL, ...ratios(), n: 0 }), '/n', />= 1/);
    expectError(validate(path, { image: IMAGE_URL, ...ratios(), n: 10 }), '/n', /<= 9/);
  });
});

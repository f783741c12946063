import { expect } from 'chai';
import { expectError, validate } from '../support/validate.js';
import { IMAGE_URL, JPEG_640x480, MP3, PNG_400x300, PNG_SMALL, PNG_TALL, dataUrl } from '../fixtures/media.js';

describe('schema: /v1/videos/effects', () => {
  const path = '/v1/videos/effects';
  const single = { effect_scene: 'bloombloom', input: { image: IMAGE_URL, duration: '5' } };
  const dual = { effect_scene: 'hug_pro', input: { images: [IMAGE_URL, JPEG_640x480], duration: '5' } };
  /** Kling's dual-image scenes (S14): each takes input.images. */
  const DUALS = ['pet_skateboard', 'daily_ootd', 'toss_run', 'switch_to_silk', 'studio_look', 'french_elegance', 'finger_swipe', 'smooth_transition', 'kiss_pro', 'snow_night_kiss', 'eternal_kiss', 'cheers_2026', 'fight_pro', 'hug_pro', 'heart_gesture_pro'];
  const DISCONTINUED = ['celebration', 'c4d_cartoon', 'kiss', 'fight', 'hug', 'thumbs_up', 'tiger_hug', 'pet_lion', '3d_cartoon_1', 'magic_match_tree'];

  it('accepts a single-image effect, stripping the data: prefix, adding no model_name or mode defaults', () => {
    const r = validate(path, { effect_scene: 'squish', input: { image: dataUrl('image/png', PNG_400x300), duration: '5' } });
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.body.input).to.deep.equal({ image: PNG_400x300, duration: '5' });
  });

  it('accepts any non-empty effect_scene (the list is long and changes) and the caller fields; drops unknown fields', () => {
    const full = { ...single, effect_scene: 'some_new_effect_2027', watermark_info: { enabled: true }, callback_url: 'https://example.com/cb', external_task_id: 'job-1' };
    const r = validate(path, { ...full, input: { ...single.input, extra: 1 }, model_name: 'kling-v1' });
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.body).to.deep.equal(full);
  });

  it('single-image duration: accepts "5" and "10" (CONFLICT: S3/S5 "5" only, S4 "5"/"10")', () => {
    expect(validate(path, { ...single, input: { ...single.input, duration: '10' } }).ok).to.equal(true);
  });

  it('single-image model_name: accepts kling-v1-6 (CONFLICT: S5 requires it for the original effects, S3 does not)', () => {
    expect(validate(path, { ...single, input: { ...single.input, model_name: 'kling-v1-6' } }).ok).to.equal(true);
  });

  it('accepts a dual-character effect with both images stripped of data: prefixes, and model_name/mode', () => {
    const r = validate(path, { effect_scene: 'snow_night_kiss', input: { images: [dataUrl('image/png', PNG_400x300), dataUrl('image/jpeg', JPEG_640x480)], duration: '10', model_name: 'kling-v1-5', mode: 'pro' } });
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.body.input).to.deep.equal({ images: [PNG_400x300, JPEG_640x480], duration: '10', model_name: 'kling-v1-5', mode: 'pro' });
  });

  it('refuses a missing or empty effect_scene and a missing input', () => {
    expectError(validate(path, { input: single.input }), '/effect_scene', /required/);
    expectError(validate(path, { ...single, effect_scene: '' }), '/effect_scene', /empty/);
    expectError(validate(path, { effect_scene: 'bloombloom' }), '/input', /required/);
  });

  it('accepts an input without duration, model_name or mode (the current docs have none)', () => {
    const r = validate(path, { effect_scene: 'pet_lion_pro', input: { image: IMAGE_URL } });
    expect(r.ok ? r.body.input : r.errors).to.deep.equal({ image: IMAGE_URL });
    expect(validate(path, { effect_scene: 'eternal_kiss', input: { images: [IMAGE_URL, IMAGE_URL] } }).ok).to.equal(true);
  });

  it('refuses a duration other than "5"/"10"', () => {
    expectError(validate(path, { ...single, input: { ...single.input, duration: '15' } }), '/input/duration', /must be one of: "5", "10"/);
    expectError(validate(path, { ...dual, effect_scene: 'snow_night_kiss', input: { ...dual.input, duration: 5 } }), '/input/duration', /must be string/);
  });

  it('single-image: refuses an input with neither image nor images, and a mode', () => {
    expectError(validate(path, { ...single, input: { duration: '5' } }), '/input/image', /required/);
    expectError(validate(path, { ...single, input: { ...single.input, mode: 'pro' } }), '/input/mode', /'mode' is only for dual-character effects/);
  });

  it('dual-character: refuses image next to images, and images without exactly 2 items', () => {
    expectError(validate(path, { ...dual, input: { ...dual.input, image: IMAGE_URL } }), '/input/image', /'image' and 'images' cannot be used together/);
    expectError(validate(path, { ...dual, input: { ...dual.input, images: [IMAGE_URL] } }), '/input/images', /at least 2 items/);
    expectError(validate(path, { ...dual, input: { ...dual.input, images: [IMAGE_URL, IMAGE_URL, IMAGE_URL] } }), '/input/images', /at most 2 items/);
  });

  it('refuses a known dual-character effect given a single image', () => {
    for (const effect_scene of DUALS) {
      expectError(validate(path, { effect_scene, input: { image: IMAGE_URL } }), '/input/images', /required/);
      expect(validate(path, { effect_scene, input: { images: [IMAGE_URL, IMAGE_URL] } }).ok, effect_scene).to.equal(true);
    }
  });

  it('refuses a model_name outside kling-v1/kling-v1-5/kling-v1-6 and a mode other than std/pro', () => {
    expectError(validate(path, { ...dual, input: { ...dual.input, model_name: 'kling-v2-1' } }), '/input/model_name', /must be one of: "kling-v1", "kling-v1-5", "kling-v1-6"/);
    expectError(validate(path, { ...dual, input: { ...dual.input, mode: 'max' } }), '/input/mode', /must be one of: "std", "pro"/);
  });

  it('refuses the scenes Kling discontinued, saying so, and keeps their _pro variants', () => {
    const message = "this effect_scene was discontinued by Kling (celebration, c4d_cartoon: 2025-12-30; kiss, fight, hug, thumbs_up, tiger_hug, pet_lion, 3d_cartoon_1: 2026-01-30, their _pro variants remain; magic_match_tree: 2026-07-03)";
    for (const effect_scene of DISCONTINUED) {
      const input = ['kiss', 'fight', 'hug'].includes(effect_scene) ? { images: [IMAGE_URL, IMAGE_URL], duration: '5', model_name: 'kling-v1-6' } : { image: IMAGE_URL, duration: '5' };
      expect(validate(path, { effect_scene, input }), effect_scene).to.deep.equal({ ok: false, errors: [{ path: '/effect_scene', message }] });
    }
    for (const effect_scene of ['thumbs_up_pro', 'tiger_hug_pro', 'pet_lion_pro', '3d_cartoon_2']) {
      expect(validate(path, { effect_scene, input: { image: IMAGE_URL } }).ok, effect_scene).to.equal(true);
    }
  });

  it('*_pro duals: accept "5" only', () => {
    expect(validate(path, { ...dual, effect_scene: 'kiss_pro' }).ok).to.equal(true);
    for (const effect_scene of ['kiss_pro', 'fight_pro', 'hug_pro', 'heart_gesture_pro']) {
      expectError(validate(path, { ...dual, effect_scene, input: { ...dual.input, duration: '10' } }), '/input/duration', /must be "5"/);
    }
  });

  it('refuses images that break the image rules', () => {
    expectError(validate(path, { ...single, input: { ...single.input, image: PNG_SMALL } }), '/input/image', /at least 300 px/);
    expectError(validate(path, { ...dual, input: { ...dual.input, images: [IMAGE_URL, PNG_TALL] } }), '/input/images/1', /aspect ratio/);
    expectError(validate(path, { ...dual, input: { ...dual.input, images: [MP3, IMAGE_URL] } }), '/input/images/0', /JPEG or PNG/);
  });

  it('refuses a malformed callback_url or external_task_id', () => {
    expectError(validate(path, { ...single, callback_url: 'ftp://example.com/cb' }), '/callback_url', /URL/);
    expectError(validate(path, { ...single, external_task_id: 'x'.repeat(129) }), '/external_task_id', /at most 128/);
  });
});

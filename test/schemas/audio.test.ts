import { expect } from 'chai';
import { expectError, validate } from '../support/validate.js';
import { VIDEO_URL, PNG_400x300 } from '../fixtures/media.js';

describe('schema: /v1/audio/text-to-audio', () => {
  const path = '/v1/audio/text-to-audio';

  it('accepts a prompt and a one-decimal duration, keeps the caller fields and drops unknown ones', () => {
    const r = validate(path, { prompt: 'rain on a tin roof', duration: 3.3, callback_url: 'https://example.com/cb', external_task_id: 'job-1', model_name: 'x' });
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.body).to.deep.equal({ prompt: 'rain on a tin roof', duration: 3.3, callback_url: 'https://example.com/cb', external_task_id: 'job-1' });
  });

  it('accepts every one-decimal duration from 3.0 to 10.0 (float-safe, unlike multipleOf 0.1)', () => {
    for (let tenths = 30; tenths <= 100; tenths++) {
      const duration = JSON.parse((tenths / 10).toFixed(1)) as number;
      const r = validate(path, { prompt: 'p', duration });
      expect(r.ok, `duration ${duration}`).to.equal(true);
    }
    expect(validate(path, { prompt: 'p', duration: JSON.parse('3.30') as number }).ok).to.equal(true);
  });

  it('refuses a missing, empty or too long prompt', () => {
    expectError(validate(path, { duration: 5 }), '/prompt', /required/);
    expectError(validate(path, { prompt: '', duration: 5 }), '/prompt', /empty/);
    expect(validate(path, { prompt: 'a'.repeat(200), duration: 5 }).ok).to.equal(true);
    expectError(validate(path, { prompt: 'a'.repeat(201), duration: 5 }), '/prompt', /at most 200/);
  });

  it('refuses a missing duration, one outside 3.0-10.0, one with two decimals, or a string', () => {
    expectError(validate(path, { prompt: 'p' }), '/duration', /required/);
    expectError(validate(path, { prompt: 'p', duration: 2.9 }), '/duration', /must be one of/);
    expectError(validate(path, { prompt: 'p', duration: 10.1 }), '/duration', /must be one of/);
    expectError(validate(path, { prompt: 'p', duration: 3.25 }), '/duration', /must be one of/);
    expectError(validate(path, { prompt: 'p', duration: '5' }), '/duration', /must be one of: 3, 3.1, 3.2/);
    expectError(validate(path, { prompt: 'p', duration: 0.1 * 33 }), '/duration', /must be one of/); // 3.3000000000000003: not one decimal
  });

  it('refuses an invalid callback_url or external_task_id', () => {
    expectError(validate(path, { prompt: 'p', duration: 5, callback_url: 'ftp://example.com/cb' }), '/callback_url', /URL/);
    expectError(validate(path, { prompt: 'p', duration: 5, external_task_id: 'x'.repeat(129) }), '/external_task_id', /at most 128/);
  });
});

describe('schema: /v1/audio/video-to-audio', () => {
  const path = '/v1/audio/video-to-audio';

  it('accepts a video_id with asmr_mode defaulted to false', () => {
    const r = validate(path, { video_id: '842250903629086785', sound_effect_prompt: 'footsteps', bgm_prompt: 'calm piano' });
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.body.asmr_mode).to.equal(false);
    expect(r.body.video_id).to.equal('842250903629086785');
  });

  it('accepts a video_url and an explicit asmr_mode', () => {
    const r = validate(path, { video_url: VIDEO_URL, asmr_mode: true, external_task_id: 'job-2', callback_url: 'https://example.com/cb' });
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.body).to.include({ video_url: VIDEO_URL, asmr_mode: true });
  });

  it('refuses neither or both of video_id / video_url', () => {
    expectError(validate(path, {}), '/video_id', /exactly one of 'video_id' or 'video_url'/);
    expectError(validate(path, { video_id: '1', video_url: VIDEO_URL }), '/video_url', /'video_id' and 'video_url' cannot be used together; exactly one of 'video_id' or 'video_url'/);
  });

  it('refuses a video_url that is not a URL (base64 is not accepted for video)', () => {
    const r = validate(path, { video_url: PNG_400x300 });
    expectError(r, '/video_url', /URL|url/);
  });

  it('refuses an empty video_id', () => {
    expectError(validate(path, { video_id: '' }), '/video_id', /empty/);
  });

  it('refuses prompts over 200 characters and a non-boolean asmr_mode', () => {
    expectError(validate(path, { video_id: '1', sound_effect_prompt: 'a'.repeat(201) }), '/sound_effect_prompt', /at most 200/);
    expectError(validate(path, { video_id: '1', bgm_prompt: 'a'.repeat(201) }), '/bgm_prompt', /at most 200/);
    expectError(validate(path, { video_id: '1', asmr_mode: 'yes' }), '/asmr_mode', /boolean/);
  });
});

describe('schema: /v1/audio/tts', () => {
  const path = '/v1/audio/tts';

  it('accepts text and voice_id with voice_language zh and voice_speed 1.0 defaulted; drops callback fields Kling does not document here', () => {
    const r = validate(path, { text: '你好', voice_id: 'genshin_vindi2', callback_url: 'https://example.com/cb', external_task_id: 'x' });
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.body).to.deep.equal({ text: '你好', voice_id: 'genshin_vindi2', voice_language: 'zh', voice_speed: 1 });
  });

  it('accepts en and the ends of the speed range', () => {
    expect(validate(path, { text: 'hi', voice_id: 'v', voice_language: 'en', voice_speed: 0.8 }).ok).to.equal(true);
    expect(validate(path, { text: 'hi', voice_id: 'v', voice_language: 'en', voice_speed: 2 }).ok).to.equal(true);
  });

  it('refuses a missing, empty or too long text', () => {
    expectError(validate(path, { voice_id: 'v' }), '/text', /required/);
    expectError(validate(path, { text: '', voice_id: 'v' }), '/text', /empty/);
    expect(validate(path, { text: 'a'.repeat(1000), voice_id: 'v' }).ok).to.equal(true);
    expectError(validate(path, { text: 'a'.repeat(1001), voice_id: 'v' }), '/text', /at most 1000/);
  });

  it('refuses a missing or empty voice_id', () => {
    expectError(validate(path, { text: 'hi' }), '/voice_id', /required/);
    expectError(validate(path, { text: 'hi', voice_id: '' }), '/voice_id', /empty/);
  });

  it('refuses a voice_language other than zh / en', () => {
    expectError(validate(path, { text: 'hi', voice_id: 'v', voice_language: 'fr' }), '/voice_language', /"zh", "en"/);
  });

  it('refuses a voice_speed outside [0.8, 2.0]', () => {
    expectError(validate(path, { text: 'hi', voice_id: 'v', voice_speed: 0.7 }), '/voice_speed', />= 0.8/);
    expectError(validate(path, { text: 'hi', voice_id: 'v', voice_speed: 2.1 }), '/voice_speed', /<= 2/);
    expectError(validate(path, { text: 'hi', voice_id: 'v', voice_speed: '1.0' }), '/voice_speed', /number/);
  });
});

import { expect } from 'chai';
import { expectError, validate } from '../support/validate.js';

describe('schema: /v1/videos/video-extend', () => {
  const path = '/v1/videos/video-extend';

  it('accepts a full body, keeps the caller fields, adds no defaults and drops unknown fields', () => {
    const body = {
      video_id: '842250903629086785',
      prompt: 'the camera keeps pulling back',
      negative_prompt: 'blur',
      cfg_scale: 0.7,
      watermark_info: { enabled: true },
      callback_url: 'https://example.com/cb',
      external_task_id: 'job-1',
    };
    const r = validate(path, { ...body, model: 'kling-v1', unknown: 1 });
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.body).to.deep.equal(body);
  });

  it('accepts a video_id alone (prompt is optional) without adding model_name, mode or cfg_scale', () => {
    const r = validate(path, { video_id: '842250903629086785' });
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.body).to.deep.equal({ video_id: '842250903629086785' });
  });

  it('refuses a missing or empty video_id', () => {
    expectError(validate(path, { prompt: 'p' }), '/video_id', /required/);
    expectError(validate(path, { video_id: '' }), '/video_id', /empty/);
  });

  it('refuses model_name and mode: the extension inherits them from the source video', () => {
    expectError(validate(path, { video_id: 'v', model_name: 'kling-v1-6' }), '/model_name', /'model_name' is not allowed/);
    expectError(validate(path, { video_id: 'v', mode: 'pro' }), '/mode', /'mode' is not allowed/);
  });

  it('refuses prompts over 2500 characters', () => {
    expect(validate(path, { video_id: 'v', prompt: 'a'.repeat(2500) }).ok).to.equal(true);
    expectError(validate(path, { video_id: 'v', prompt: 'a'.repeat(2501) }), '/prompt', /at most 2500/);
    expectError(validate(path, { video_id: 'v', negative_prompt: 'a'.repeat(2501) }), '/negative_prompt', /at most 2500/);
  });

  it('refuses cfg_scale outside [0, 1]', () => {
    expect(validate(path, { video_id: 'v', cfg_scale: 0 }).ok).to.equal(true);
    expect(validate(path, { video_id: 'v', cfg_scale: 1 }).ok).to.equal(true);
    expectError(validate(path, { video_id: 'v', cfg_scale: 1.1 }), '/cfg_scale', /<= 1/);
    expectError(validate(path, { video_id: 'v', cfg_scale: -0.1 }), '/cfg_scale', />= 0/);
  });

  it('refuses a malformed watermark_info, callback_url or external_task_id', () => {
    expectError(validate(path, { video_id: 'v', watermark_info: {} }), '/watermark_info/enabled', /required/);
    expectError(validate(path, { video_id: 'v', callback_url: 'ftp://example.com/cb' }), '/callback_url', /URL/);
    expectError(validate(path, { video_id: 'v', external_task_id: 'x'.repeat(129) }), '/external_task_id', /at most 128/);
  });
});

import { expect } from 'chai';
import { expectError, validate } from '../support/validate.js';
import { AUDIO_URL, IMAGE_URL, JPEG_640x480, MP3, PNG_400x300, PNG_SMALL, PNG_TALL, WAV, dataUrl } from '../fixtures/media.js';

describe('schema: /v1/videos/avatar/image2video', () => {
  const path = '/v1/videos/avatar/image2video';

  it('accepts an image and a sound_file, stripping both data: prefixes, with mode defaulted to std', () => {
    const r = validate(path, { image: dataUrl('image/png', PNG_400x300), sound_file: dataUrl('audio/mpeg', MP3), prompt: 'smiles, then nods' });
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.body.image).to.equal(PNG_400x300);
    expect(r.body.sound_file).to.equal(MP3);
    expect(r.body.mode).to.equal('std');
  });

  it('accepts an audio_id with the caller fields and drops unknown fields (there is no model_name)', () => {
    const full = { image: IMAGE_URL, audio_id: 'a-1', mode: 'pro', watermark_info: { enabled: true }, callback_url: 'https://example.com/cb', external_task_id: 'job-1' };
    const r = validate(path, { ...full, model_name: 'kling-v1' });
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.body).to.deep.equal(full);
  });

  it('accepts a JPEG image with a WAV or an audio URL', () => {
    expect(validate(path, { image: JPEG_640x480, sound_file: WAV }).ok).to.equal(true);
    expect(validate(path, { image: JPEG_640x480, sound_file: AUDIO_URL }).ok).to.equal(true);
  });

  it('refuses a missing image', () => {
    expectError(validate(path, { audio_id: 'a' }), '/image', /required/);
  });

  it('refuses both audio_id and sound_file, and neither', () => {
    expectError(validate(path, { image: IMAGE_URL, audio_id: 'a', sound_file: MP3 }), '/sound_file', /'audio_id' and 'sound_file' cannot be used together; exactly one of 'audio_id' or 'sound_file'/);
    expectError(validate(path, { image: IMAGE_URL }), '/audio_id', /exactly one of 'audio_id' or 'sound_file'/);
  });

  it('refuses an empty audio_id and a sound_file that is not audio', () => {
    expectError(validate(path, { image: IMAGE_URL, audio_id: '' }), '/audio_id', /empty/);
    expectError(validate(path, { image: IMAGE_URL, sound_file: PNG_400x300 }), '/sound_file', /mp3, wav, m4a or aac/);
  });

  it('refuses images that break the image rules', () => {
    expectError(validate(path, { image: PNG_SMALL, audio_id: 'a' }), '/image', /at least 300 px/);
    expectError(validate(path, { image: PNG_TALL, audio_id: 'a' }), '/image', /aspect ratio/);
    expectError(validate(path, { image: MP3, audio_id: 'a' }), '/image', /JPEG or PNG/);
  });

  it('refuses a mode other than std/pro and a prompt over 2500 characters', () => {
    expectError(validate(path, { image: IMAGE_URL, audio_id: 'a', mode: 'hd' }), '/mode', /must be one of: "std", "pro"/);
    expectError(validate(path, { image: IMAGE_URL, audio_id: 'a', prompt: 'a'.repeat(2501) }), '/prompt', /at most 2500/);
  });

  it('refuses a malformed watermark_info, callback_url or external_task_id', () => {
    expectError(validate(path, { image: IMAGE_URL, audio_id: 'a', watermark_info: { enabled: 'yes' } }), '/watermark_info/enabled', /boolean/);
    expectError(validate(path, { image: IMAGE_URL, audio_id: 'a', callback_url: 'not a url' }), '/callback_url', /URL/);
    expectError(validate(path, { image: IMAGE_URL, audio_id: 'a', external_task_id: '' }), '/external_task_id', /empty/);
  });
});

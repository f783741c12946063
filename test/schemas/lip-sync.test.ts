import { expect } from 'chai';
import { expectError, validate } from '../support/validate.js';
import { AUDIO_URL, MP3, PNG_400x300, VIDEO_URL, WAV, dataUrl } from '../fixtures/media.js';

describe('schema: /v1/videos/identify-face', () => {
  const path = '/v1/videos/identify-face';

  it('accepts a video_id and drops unknown fields', () => {
    const r = validate(path, { video_id: '842250903629086785', callback_url: 'https://example.com/cb' });
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.body).to.deep.equal({ video_id: '842250903629086785' });
  });

  it('accepts a video_url', () => {
    const r = validate(path, { video_url: VIDEO_URL });
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.body).to.deep.equal({ video_url: VIDEO_URL });
  });

  it('refuses both video_id and video_url, and neither', () => {
    expectError(validate(path, { video_id: 'v', video_url: VIDEO_URL }), '/video_url', /'video_id' and 'video_url' cannot be used together; exactly one of 'video_id' or 'video_url'/);
    expectError(validate(path, {}), '/video_id', /exactly one of 'video_id' or 'video_url'/);
  });

  it('refuses an empty video_id and a video_url that is not an http(s) URL', () => {
    expectError(validate(path, { video_id: '' }), '/video_id', /empty/);
    expectError(validate(path, { video_url: dataUrl('video/mp4', 'AAAA') }), '/video_url', /http\(s\) URL/);
  });
});

describe('schema: /v1/videos/advanced-lip-sync', () => {
  const path = '/v1/videos/advanced-lip-sync';
  const face = { face_id: '0', sound_start_time: 0, sound_end_time: 5000, sound_insert_time: 1000 };
  const body = (item: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({ session_id: 's-1', face_choose: [item], ...extra });

  it('accepts a sound_file, stripping the data: prefix, with both volumes defaulted to 1', () => {
    const r = validate(path, body({ ...face, sound_file: dataUrl('audio/mpeg', MP3) }, { external_task_id: 'job-1', callback_url: 'https://example.com/cb', watermark_info: { enabled: false } }));
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.body.face_choose[0].sound_file).to.equal(MP3);
    expect(r.body.face_choose[0].sound_volume).to.equal(1);
    expect(r.body.face_choose[0].original_audio_volume).to.equal(1);
    expect(r.body.external_task_id).to.equal('job-1');
    expect(r.body.watermark_info).to.deep.equal({ enabled: false });
  });

  it('accepts an audio_id with explicit volumes and drops unknown fields', () => {
    const r = validate(path, body({ ...face, audio_id: 'a-1', sound_volume: 2, original_audio_volume: 0, extra: 1 }, { model_name: 'x' }));
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.body).to.deep.equal(body({ ...face, audio_id: 'a-1', sound_volume: 2, original_audio_volume: 0 }));
  });

  it('accepts a WAV and an audio URL as sound_file', () => {
    expect(validate(path, body({ ...face, sound_file: WAV })).ok).to.equal(true);
    expect(validate(path, body({ ...face, sound_file: AUDIO_URL })).ok).to.equal(true);
  });

  it('refuses a missing session_id or face_choose', () => {
    expectError(validate(path, { face_choose: [{ ...face, audio_id: 'a' }] }), '/session_id', /required/);
    expectError(validate(path, { session_id: 's' }), '/face_choose', /required/);
  });

  it('refuses face_choose with no item or more than one (only one face is supported)', () => {
    expectError(validate(path, { session_id: 's', face_choose: [] }), '/face_choose', /at least 1 item/);
    const item = { ...face, audio_id: 'a' };
    expectError(validate(path, { session_id: 's', face_choose: [item, { ...item, face_id: '1' }] }), '/face_choose', /at most 1 item/);
  });

  it('refuses both audio_id and sound_file, and neither', () => {
    expectError(validate(path, body({ ...face, audio_id: 'a', sound_file: MP3 })), '/face_choose/0/sound_file', /'audio_id' and 'sound_file' cannot be used together; exactly one of 'audio_id' or 'sound_file'/);
    expectError(validate(path, body(face)), '/face_choose/0/audio_id', /exactly one of 'audio_id' or 'sound_file'/);
  });

  it('refuses a face item without face_id or one of the three times', () => {
    for (const field of ['face_id', 'sound_start_time', 'sound_end_time', 'sound_insert_time']) {
      const item: Record<string, unknown> = { ...face, audio_id: 'a' };
      delete item[field];
      expectError(validate(path, body(item)), `/face_choose/0/${field}`, /required/);
    }
  });

  it('refuses a cropped audio shorter than 2 s (sound_end_time - sound_start_time < 2000)', () => {
    expect(validate(path, body({ ...face, audio_id: 'a', sound_start_time: 1000, sound_end_time: 3000 })).ok).to.equal(true);
    expectError(validate(path, body({ ...face, audio_id: 'a', sound_start_time: 1000, sound_end_time: 2999 })), '/face_choose/0/sound_end_time', /at least 2000 after sound_start_time/);
    expectError(validate(path, body({ ...face, audio_id: 'a', sound_start_time: 5000, sound_end_time: 1000 })), '/face_choose/0/sound_end_time', /at least 2000/);
  });

  it('refuses negative or fractional times and times beyond the 60 s audio limit', () => {
    expectError(validate(path, body({ ...face, audio_id: 'a', sound_start_time: -1 })), '/face_choose/0/sound_start_time', />= 0/);
    expectError(validate(path, body({ ...face, audio_id: 'a', sound_insert_time: -1 })), '/face_choose/0/sound_insert_time', />= 0/);
    expectError(validate(path, body({ ...face, audio_id: 'a', sound_end_time: 2500.5 })), '/face_choose/0/sound_end_time', /integer/);
    expectError(validate(path, body({ ...face, audio_id: 'a', sound_end_time: 60001 })), '/face_choose/0/sound_end_time', /<= 60000/);
  });

  it('refuses volumes outside [0, 2]', () => {
    expectError(validate(path, body({ ...face, audio_id: 'a', sound_volume: 2.1 })), '/face_choose/0/sound_volume', /<= 2/);
    expectError(validate(path, body({ ...face, audio_id: 'a', sound_volume: -0.1 })), '/face_choose/0/sound_volume', />= 0/);
    expectError(validate(path, body({ ...face, audio_id: 'a', original_audio_volume: 3 })), '/face_choose/0/original_audio_volume', /<= 2/);
    expectError(validate(path, body({ ...face, audio_id: 'a', original_audio_volume: -1 })), '/face_choose/0/original_audio_volume', />= 0/);
  });

  it('refuses a sound_file that is not audio', () => {
    expectError(validate(path, body({ ...face, sound_file: PNG_400x300 })), '/face_choose/0/sound_file', /mp3, wav, m4a or aac/);
  });
});

describe('schema: /v1/videos/lip-sync (legacy)', () => {
  const path = '/v1/videos/lip-sync';
  const text2video = { mode: 'text2video', video_id: '842250903629086785', text: 'Hello there', voice_id: 'oversea_male1' };
  const audioFile = { mode: 'audio2video', video_url: VIDEO_URL, audio_type: 'file', audio_file: MP3 };

  it('accepts text2video with voice_speed defaulted to 1 and no voice_language default (CONFLICT en/zh)', () => {
    const r = validate(path, { input: text2video, callback_url: 'https://example.com/cb' });
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.body.input.voice_speed).to.equal(1);
    expect(r.body.input).to.not.have.property('voice_language');
    expect(r.body.callback_url).to.equal('https://example.com/cb');
  });

  it('accepts both voice languages and voice_speed 0.8-2.0', () => {
    for (const voice_language of ['zh', 'en']) expect(validate(path, { input: { ...text2video, voice_language } }).ok).to.equal(true);
    expect(validate(path, { input: { ...text2video, voice_speed: 0.8 } }).ok).to.equal(true);
    expect(validate(path, { input: { ...text2video, voice_speed: 2 } }).ok).to.equal(true);
  });

  it('accepts audio2video with a base64 audio_file, stripping the data: prefix, and drops unknown fields', () => {
    const r = validate(path, { input: { ...audioFile, audio_file: dataUrl('audio/mpeg', MP3), extra: 1 }, external: 1 });
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.body).to.deep.equal({ input: { ...audioFile, voice_speed: 1 } });
  });

  it('accepts audio2video with an audio_url', () => {
    expect(validate(path, { input: { mode: 'audio2video', video_id: 'v', audio_type: 'url', audio_url: AUDIO_URL } }).ok).to.equal(true);
  });

  it('refuses a missing input or input.mode, and an unknown mode', () => {
    expectError(validate(path, {}), '/input', /required/);
    expectError(validate(path, { input: { video_id: 'v', text: 't', voice_id: 'x' } }), '/input/mode', /required/);
    expectError(validate(path, { input: { ...text2video, mode: 'video2video' } }), '/input/mode', /must be one of: "text2video", "audio2video"/);
  });

  it('refuses both input.video_id and input.video_url, and neither', () => {
    expectError(validate(path, { input: { ...text2video, video_url: VIDEO_URL } }), '/input/video_url', /'video_id' and 'video_url' cannot be used together; exactly one of 'video_id' or 'video_url'/);
    const { video_id: _, ...noVideo } = text2video;
    expectError(validate(path, { input: noVideo }), '/input/video_id', /exactly one of 'video_id' or 'video_url'/);
  });

  it('refuses text2video without text or voice_id', () => {
    expectError(validate(path, { input: { ...text2video, text: undefined } }), '/input/text', /required/);
    expectError(validate(path, { input: { ...text2video, voice_id: undefined } }), '/input/voice_id', /required/);
  });

  it('refuses a text over 120 characters or empty', () => {
    expect(validate(path, { input: { ...text2video, text: 'a'.repeat(120) } }).ok).to.equal(true);
    expectError(validate(path, { input: { ...text2video, text: 'a'.repeat(121) } }), '/input/text', /at most 120/);
    expectError(validate(path, { input: { ...text2video, text: '' } }), '/input/text', /empty/);
  });

  it('refuses voice_speed outside [0.8, 2.0] and an unknown voice_language', () => {
    expectError(validate(path, { input: { ...text2video, voice_speed: 0.7 } }), '/input/voice_speed', />= 0.8/);
    expectError(validate(path, { input: { ...text2video, voice_speed: 2.1 } }), '/input/voice_speed', /<= 2/);
    expectError(validate(path, { input: { ...text2video, voice_language: 'fr' } }), '/input/voice_language', /must be one of/);
  });

  it('refuses audio2video without audio_type, or with an unknown one', () => {
    expectError(validate(path, { input: { ...audioFile, audio_type: undefined } }), '/input/audio_type', /required/);
    expectError(validate(path, { input: { ...audioFile, audio_type: 'stream' } }), '/input/audio_type', /must be one of: "file", "url"/);
  });

  it('refuses audio_type file without audio_file, and url without audio_url', () => {
    expectError(validate(path, { input: { ...audioFile, audio_file: undefined, audio_url: AUDIO_URL } }), '/input/audio_file', /required/);
    expectError(validate(path, { input: { ...audioFile, audio_type: 'url' } }), '/input/audio_url', /required/);
  });

  it('refuses a URL in audio_file, base64 in audio_url, and audio that is not audio', () => {
    expectError(validate(path, { input: { ...audioFile, audio_file: AUDIO_URL } }), '/input/audio_file', /pattern/);
    expectError(validate(path, { input: { ...audioFile, audio_type: 'url', audio_url: MP3 } }), '/input/audio_url', /pattern/);
    expectError(validate(path, { input: { ...audioFile, audio_file: PNG_400x300 } }), '/input/audio_file', /mp3, wav, m4a or aac/);
  });
});

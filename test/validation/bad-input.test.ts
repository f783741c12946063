import { expect } from 'chai';
import { validate } from '../support/validate.js';
import { AUDIO_URL, IMAGE_URL, JPEG_640x480, MP3, PNG_400x300, PNG_SMALL, PNG_TALL, WAV, dataUrl, jpeg, png } from '../fixtures/media.js';

const T2V = '/v1/videos/text2video';
const I2V = '/v1/videos/image2video';

describe('validation: bad input', () => {
  it('refuses a body that is not a JSON object', () => {
    for (const body of [null, [], [{ prompt: 'x' }], 'prompt', 42, true]) {
      expect(validate(T2V, body), JSON.stringify(body)).to.deep.equal({ ok: false, errors: [{ path: '', message: 'the request body must be a JSON object' }] });
    }
  });

  it('refuses an array where an object belongs', () => {
    const r = validate(T2V, { prompt: 'x', camera_control: [{ type: 'simple' }] });
    expect(r).to.deep.equal({ ok: false, errors: [{ path: '/camera_control', message: 'must be object' }] });
  });

  it('refuses __proto__ and constructor keys at any depth and leaves Object.prototype alone', () => {
    const top = JSON.parse('{"prompt":"x","__proto__":{"polluted":true}}') as unknown;
    expect(validate(T2V, top)).to.deep.equal({ ok: false, errors: [{ path: '/__proto__', message: "the key '__proto__' is not allowed" }] });
    const nested = JSON.parse('{"prompt":"x","watermark_info":{"enabled":true,"constructor":{"prototype":{"polluted":true}}}}') as unknown;
    expect(validate(T2V, nested)).to.deep.equal({ ok: false, errors: [{ path: '/watermark_info/constructor', message: "the key 'constructor' is not allowed" }] });
    const inArray = JSON.parse('{"prompt":"x","voice_list":[{"voice_id":"v","__proto__":{"polluted":true}}],"sound":"on"}') as unknown;
    expect(validate(T2V, inArray)).to.deep.equal({ ok: false, errors: [{ path: '/voice_list/0/__proto__', message: "the key '__proto__' is not allowed" }] });
    expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
    expect(Object.prototype).to.not.have.property('polluted');
  });

  it('refuses a 50 MB string in a text field with a length error, not a crash', () => {
    const r = validate(T2V, { prompt: 'a'.repeat(50 * 1024 * 1024) });
    expect(r).to.deep.equal({ ok: false, errors: [{ path: '/prompt', message: 'must be at most 2500 characters' }] });
  });

  it('drops fields the schema does not know instead of forwarding them', () => {
    const r = validate(T2V, { prompt: 'x', model: 'kling-v9', hack: { a: 1 } });
    expect(r.ok).to.equal(true);
    if (r.ok) expect(r.body).to.not.have.any.keys('model', 'hack');
  });
});

describe('validation: klingMedia', () => {
  const ok = (image: string) => validate(I2V, { image, prompt: 'p' });
  const imageError = (image: string) => {
    const r = ok(image);
    expect(r.ok, image.slice(0, 40)).to.equal(false);
    return r.ok ? undefined : r.errors[0];
  };

  it('accepts an http(s) URL, raw base64 PNG and JPEG', () => {
    for (const image of [IMAGE_URL, 'http://example.com/a.jpg?x=1', PNG_400x300, JPEG_640x480]) expect(ok(image).ok, image.slice(0, 30)).to.equal(true);
  });

  it('strips a data: prefix in place', () => {
    for (const mime of ['image/png', 'image/jpeg', 'application/octet-stream']) {
      const r = ok(dataUrl(mime, PNG_400x300));
      expect(r.ok).to.equal(true);
      if (r.ok) expect(r.body.image).to.equal(PNG_400x300);
    }
  });

  it('refuses what is neither a URL nor base64', () => {
    expect(imageError('')).to.deep.equal({ path: '/image', message: 'must not be empty' });
    for (const value of ['not an image', 'ftp://example.com/a.png', 'javascript:alert(1)', 'https://', 'abc$%^', 'https://user:pw@example.com/a.png']) {
      expect(imageError(value)).to.deep.equal({ path: '/image', message: 'must be an http(s) URL or raw base64 image data' });
    }
  });

  it('refuses base64 that is not a PNG or JPEG', () => {
    expect(imageError(Buffer.from('GIF89a-not-allowed-here-at-all').toString('base64'))).to.deep.equal({ path: '/image', message: 'image must be a JPEG or PNG' });
  });

  it('refuses an image smaller than 300 px, and one outside 1:2.5-2.5:1 where the field requires it', () => {
    expect(imageError(PNG_SMALL)).to.deep.equal({ path: '/image', message: 'image is 100x100 px; each side must be at least 300 px' });
    expect(imageError(PNG_TALL)).to.deep.equal({ path: '/image', message: 'image is 300x900 px; the aspect ratio must be between 1:2.5 and 2.5:1' });
    expect(imageError(jpeg(299, 400).toString('base64'))?.message).to.equal('image is 299x400 px; each side must be at least 300 px');
    expect(ok(png(300, 750).toString('base64')).ok).to.equal(true); // exactly 1:2.5
  });

  it('refuses an image over 10 MB', () => {
    const big = Buffer.concat([png(400, 300), Buffer.alloc(10 * 1024 * 1024)]).toString('base64');
    expect(imageError(big)?.message).to.match(/^image is 10\.\d MB; at most 10 MB allowed$/);
  });

  it('checks audio: mp3 and wav pass, other data fails, URLs pass', () => {
    const avatar = (sound_file: string) => validate('/v1/videos/avatar/image2video', { image: PNG_400x300, sound_file });
    expect(avatar(MP3).ok).to.equal(true);
    expect(avatar(dataUrl('audio/wav', WAV)).ok).to.equal(true);
    expect(avatar(AUDIO_URL).ok).to.equal(true);
    const r = avatar(PNG_400x300);
    expect(r).to.deep.equal({ ok: false, errors: [{ path: '/sound_file', message: 'audio must be mp3, wav, m4a or aac' }] });
  });
});

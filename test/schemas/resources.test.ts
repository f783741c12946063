import { expect } from 'chai';
import { acceptsAt, rejectsAt } from '../support/validate.js';
import { AUDIO_URL, IMAGE_URL, JPEG_640x480, PNG_400x300, PNG_SMALL, PNG_TALL, VIDEO_URL, dataUrl } from '../fixtures/media.js';

describe('schema: /v1/general/custom-voices', () => {
  const path = '/v1/general/custom-voices';

  it('accepts a voice from a recording URL or from a video id, with the caller fields', () => {
    expect(acceptsAt(path, { voice_name: 'Narrator', voice_url: AUDIO_URL, callback_url: 'https://example.com/cb', external_task_id: 'v-1' })).to.deep.equal({
      voice_name: 'Narrator',
      voice_url: AUDIO_URL,
      callback_url: 'https://example.com/cb',
      external_task_id: 'v-1',
    });
    expect(acceptsAt(path, { voice_name: 'n', video_id: 'video-1' })).to.deep.equal({ voice_name: 'n', video_id: 'video-1' });
  });

  it("accepts Kling's own sample: an empty video_id beside a voice_url, and both given (exclusivity is not documented)", () => {
    expect(acceptsAt(path, { voice_name: 'n', voice_url: VIDEO_URL, video_id: '' })).to.deep.equal({ voice_name: 'n', voice_url: VIDEO_URL, video_id: '' });
    acceptsAt(path, { voice_name: 'n', voice_url: AUDIO_URL, video_id: 'video-1' });
  });

  it('refuses a missing, empty or too long voice_name', () => {
    rejectsAt(path, { voice_url: AUDIO_URL }, '/voice_name', /required/);
    rejectsAt(path, { voice_name: '', voice_url: AUDIO_URL }, '/voice_name', /empty/);
    rejectsAt(path, { voice_name: 'a'.repeat(21), voice_url: AUDIO_URL }, '/voice_name', /at most 20/);
  });

  it('refuses a voice without a source, at both fields, an empty video_id counting as none', () => {
    const message = /at least one of 'voice_url' or a non-empty 'video_id' is required/;
    rejectsAt(path, { voice_name: 'n' }, '/voice_url', message);
    rejectsAt(path, { voice_name: 'n', video_id: '' }, '/voice_url', message);
  });

  it('refuses a voice_url that is not an http(s) URL (base64 is not taken)', () => {
    rejectsAt(path, { voice_name: 'n', voice_url: 'ftp://example.com/a.mp3' }, '/voice_url', /http\(s\) URL of the recording/);
    rejectsAt(path, { voice_name: 'n', voice_url: 'https://example.com/a' + 'b'.repeat(2048) }, '/voice_url', /at most 2048/);
  });
});

describe('schema: /v1/general/delete-voices', () => {
  const path = '/v1/general/delete-voices';

  it('accepts a voice_id and drops anything else', () => {
    expect(acceptsAt(path, { voice_id: 'voice-1', extra: 1 })).to.deep.equal({ voice_id: 'voice-1' });
  });

  it('refuses a missing or empty voice_id', () => {
    rejectsAt(path, {}, '/voice_id', /required/);
    rejectsAt(path, { voice_id: '' }, '/voice_id', /empty/);
  });
});

describe('schema: the preset lists (query strings)', () => {
  it('accepts pageNum and pageSize as the decimal strings of a query, in range', () => {
    expect(acceptsAt('/v1/general/presets-voices', { pageNum: '2', pageSize: '1000' })).to.deep.equal({ pageNum: '2', pageSize: '1000' });
    expect(acceptsAt('/v1/general/advanced-presets-elements', { pageNum: '1000', pageSize: '500' })).to.deep.equal({ pageNum: '1000', pageSize: '500' });
    expect(acceptsAt('/v1/general/presets-voices', {})).to.deep.equal({});
  });

  it('refuses a page outside 1-1000, a voice page size over 1000 and an element page size over 500', () => {
    rejectsAt('/v1/general/presets-voices', { pageNum: '0' }, '/pageNum', /^must be an integer from 1 to 1000$/);
    rejectsAt('/v1/general/presets-voices', { pageNum: '1001' }, '/pageNum', /from 1 to 1000/);
    rejectsAt('/v1/general/presets-voices', { pageSize: '1001' }, '/pageSize', /from 1 to 1000/);
    rejectsAt('/v1/general/presets-voices', { pageSize: '2.5' }, '/pageSize', /integer/);
    rejectsAt('/v1/general/advanced-presets-elements', { pageSize: '501' }, '/pageSize', /^must be an integer from 1 to 500$/);
    rejectsAt('/v1/general/advanced-presets-elements', { pageNum: '01' }, '/pageNum', /from 1 to 1000/);
  });
});

describe('schema: /v1/general/advanced-custom-elements', () => {
  const path = '/v1/general/advanced-custom-elements';
  const images = { frontal_image: IMAGE_URL, refer_images: [{ image_url: dataUrl('image/jpeg', JPEG_640x480) }] };
  const video = { refer_videos: [{ video_url: VIDEO_URL }] };
  const base = { element_name: 'Captain', element_description: 'a sea captain in a blue coat' };

  it('accepts an image element with a voice and tags, stripping data: prefixes', () => {
    const body = acceptsAt(path, { ...base, reference_type: 'image_refer', element_image_list: images, element_voice_id: 'voice-1', tag_list: [{ tag_id: 'o_102' }] });
    expect(body.element_image_list).to.deep.equal({ frontal_image: IMAGE_URL, refer_images: [{ image_url: JPEG_640x480 }] });
    expect(body).to.deep.include({ element_voice_id: 'voice-1', tag_list: [{ tag_id: 'o_102' }] });
  });

  it('accepts a video element, and an empty element_voice_id (no voice)', () => {
    acceptsAt(path, { ...base, reference_type: 'video_refer', element_video_list: video, element_voice_id: '' });
  });

  it('refuses a missing name, description or reference_type, and too long ones', () => {
    rejectsAt(path, { element_description: 'd', reference_type: 'image_refer', element_image_list: images }, '/element_name', /required/);
    rejectsAt(path, { element_name: 'n', reference_type: 'image_refer', element_image_list: images }, '/element_description', /required/);
    rejectsAt(path, { ...base, element_image_list: images }, '/reference_type', /required/);
    rejectsAt(path, { ...base, element_name: 'a'.repeat(21), reference_type: 'image_refer', element_image_list: images }, '/element_name', /at most 20/);
    rejectsAt(path, { ...base, element_description: 'a'.repeat(101), reference_type: 'image_refer', element_image_list: images }, '/element_description', /at most 100/);
    rejectsAt(path, { ...base, reference_type: 'audio_refer' }, '/reference_type', /"image_refer", "video_refer"/);
  });

  it('refuses image_refer without its images, or with a video, naming the fields', () => {
    rejectsAt(path, { ...base, reference_type: 'image_refer' }, '/element_image_list', /required/);
    rejectsAt(path, { ...base, reference_type: 'image_refer', element_image_list: images, element_video_list: video }, '/element_video_list', /only for reference_type 'video_refer'/);
  });

  it('refuses video_refer without its video', () => {
    rejectsAt(path, { ...base, reference_type: 'video_refer' }, '/element_video_list', /required/);
  });

  it('refuses 0 or 4 other views, a view below 300 px or outside 1:2.5-2.5:1, and a missing front view', () => {
    rejectsAt(path, { ...base, reference_type: 'image_refer', element_image_list: { ...images, refer_images: [] } }, '/element_image_list/refer_images', /at least 1/);
    const four = Array.from({ length: 4 }, () => ({ image_url: IMAGE_URL }));
    rejectsAt(path, { ...base, reference_type: 'image_refer', element_image_list: { ...images, refer_images: four } }, '/element_image_list/refer_images', /at most 3/);
    rejectsAt(path, { ...base, reference_type: 'image_refer', element_image_list: { ...images, refer_images: [{ image_url: PNG_SMALL }] } }, '/element_image_list/refer_images/0/image_url', /300/);
    rejectsAt(path, { ...base, reference_type: 'image_refer', element_image_list: { ...images, frontal_image: PNG_TALL } }, '/element_image_list/frontal_image', /2\.5/);
    rejectsAt(path, { ...base, reference_type: 'image_refer', element_image_list: { refer_images: images.refer_images } }, '/element_image_list/frontal_image', /required/);
  });

  it('refuses two videos, a video that is not a URL, and an unknown tag', () => {
    rejectsAt(path, { ...base, reference_type: 'video_refer', element_video_list: { refer_videos: [{ video_url: VIDEO_URL }, { video_url: VIDEO_URL }] } }, '/element_video_list/refer_videos', /at most 1/);
    rejectsAt(path, { ...base, reference_type: 'video_refer', element_video_list: { refer_videos: [{ video_url: PNG_400x300 }] } }, '/element_video_list/refer_videos/0/video_url', /URL/);
    rejectsAt(path, { ...base, reference_type: 'video_refer', element_video_list: video, tag_list: [{ tag_id: 'o_109' }] }, '/tag_list/0/tag_id', /must be one of/);
  });
});

describe('schema: deleting an element (both of Kling\'s paths)', () => {
  for (const path of ['/v1/general/delete-advanced-elements', '/v1/general/delete-elements']) {
    it(`${path}: accepts a string of digits, refuses anything else`, () => {
      expect(acceptsAt(path, { element_id: '123456789012' })).to.deep.equal({ element_id: '123456789012' });
      rejectsAt(path, {}, '/element_id', /required/);
      rejectsAt(path, { element_id: 'abc' }, '/element_id', /pattern/);
      rejectsAt(path, { element_id: 12 }, '/element_id', /string/);
    });
  }
});

describe('schema: /v1/general/ai-multi-shot', () => {
  const path = '/v1/general/ai-multi-shot';

  it('accepts a front view, stripping a data: prefix', () => {
    expect(acceptsAt(path, { element_frontal_image: dataUrl('image/png', PNG_400x300), external_task_id: 'm-1' })).to.deep.equal({ element_frontal_image: PNG_400x300, external_task_id: 'm-1' });
  });

  it('refuses a missing front view, one below 300 px, or one outside 1:2.5-2.5:1', () => {
    rejectsAt(path, {}, '/element_frontal_image', /required/);
    rejectsAt(path, { element_frontal_image: PNG_SMALL }, '/element_frontal_image', /300/);
    rejectsAt(path, { element_frontal_image: PNG_TALL }, '/element_frontal_image', /2\.5/);
  });
});

describe('schema: /v1/general/custom-elements (the first element API)', () => {
  const path = '/v1/general/custom-elements';
  const body = { element_name: 'Cup', element_description: 'a red mug', element_frontal_image: IMAGE_URL, element_refer_list: [{ image_url: JPEG_640x480 }] };

  it('accepts a name, description, front view and 1-3 other views', () => {
    expect(acceptsAt(path, body)).to.deep.equal(body);
  });

  it('refuses a missing front view or other views, and 4 other views', () => {
    rejectsAt(path, { ...body, element_frontal_image: undefined }, '/element_frontal_image', /required/);
    rejectsAt(path, { ...body, element_refer_list: undefined }, '/element_refer_list', /required/);
    rejectsAt(path, { ...body, element_refer_list: Array.from({ length: 4 }, () => ({ image_url: IMAGE_URL })) }, '/element_refer_list', /at most 3/);
  });
});

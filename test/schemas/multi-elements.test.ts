import { expect } from 'chai';
import { expectError, validate } from '../support/validate.js';
import { IMAGE_URL, JPEG_640x480, PNG_400x300, PNG_SMALL, PNG_TALL, VIDEO_URL, dataUrl } from '../fixtures/media.js';

describe('schema: /v1/videos/multi-elements/init-selection', () => {
  const path = '/v1/videos/multi-elements/init-selection';

  it('accepts a video_id and drops unknown fields', () => {
    const r = validate(path, { video_id: '842250903629086785', model_name: 'kling-v1-6' });
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.body).to.deep.equal({ video_id: '842250903629086785' });
  });

  it('accepts a video_url', () => {
    expect(validate(path, { video_url: VIDEO_URL }).ok).to.equal(true);
  });

  it('refuses both video_id and video_url, and neither', () => {
    expectError(validate(path, { video_id: 'v', video_url: VIDEO_URL }), '/video_url', /'video_id' and 'video_url' cannot be used together; exactly one of 'video_id' or 'video_url'/);
    expectError(validate(path, {}), '/video_id', /exactly one of 'video_id' or 'video_url'/);
  });

  it('refuses an empty video_id and a video_url that is not a URL', () => {
    expectError(validate(path, { video_id: '' }), '/video_id', /empty/);
    expectError(validate(path, { video_url: 'dance.mp4' }), '/video_url', /http\(s\) URL/);
  });
});

for (const action of ['add', 'delete'] as const) {
  describe(`schema: /v1/videos/multi-elements/${action}-selection`, () => {
    const path = `/v1/videos/multi-elements/${action}-selection`;
    const body = { session_id: 's-1', frame_index: 0, points: [{ x: 0.5, y: 0.25 }] };

    it('accepts a session, a frame and points at the corners, and drops unknown fields', () => {
      const points = [{ x: 0, y: 0 }, { x: 1, y: 1 }, { x: 0.5, y: 0.5, z: 3 }];
      const r = validate(path, { ...body, frame_index: 12, points, extra: true });
      expect(r.ok).to.equal(true);
      if (!r.ok) return;
      expect(r.body).to.deep.equal({ session_id: 's-1', frame_index: 12, points: [{ x: 0, y: 0 }, { x: 1, y: 1 }, { x: 0.5, y: 0.5 }] });
    });

    it('refuses a missing session_id, frame_index or points', () => {
      for (const field of ['session_id', 'frame_index', 'points']) {
        const partial: Record<string, unknown> = { ...body };
        delete partial[field];
        expectError(validate(path, partial), `/${field}`, /required/);
      }
    });

    it('refuses a negative or fractional frame_index', () => {
      expectError(validate(path, { ...body, frame_index: -1 }), '/frame_index', />= 0/);
      expectError(validate(path, { ...body, frame_index: 1.5 }), '/frame_index', /integer/);
      expectError(validate(path, { ...body, frame_index: '3' }), '/frame_index', /integer/);
    });

    it('refuses no points and more than 10', () => {
      const ten = Array.from({ length: 10 }, (_, i) => ({ x: i / 10, y: 0.5 }));
      expect(validate(path, { ...body, points: ten }).ok).to.equal(true);
      expectError(validate(path, { ...body, points: [] }), '/points', /at least 1 item/);
      expectError(validate(path, { ...body, points: [...ten, { x: 1, y: 1 }] }), '/points', /at most 10 items/);
    });

    it('refuses points outside [0, 1] or without x or y', () => {
      expectError(validate(path, { ...body, points: [{ x: 1.01, y: 0 }] }), '/points/0/x', /<= 1/);
      expectError(validate(path, { ...body, points: [{ x: 0, y: 0 }, { x: 0.2, y: -0.1 }] }), '/points/1/y', />= 0/);
      expectError(validate(path, { ...body, points: [{ x: 0.5 }] }), '/points/0/y', /required/);
      expectError(validate(path, { ...body, points: [{ y: 0.5 }] }), '/points/0/x', /required/);
      expectError(validate(path, { ...body, points: [{ x: '0.5', y: 0.5 }] }), '/points/0/x', /number/);
    });
  });
}

for (const action of ['clear', 'preview'] as const) {
  describe(`schema: /v1/videos/multi-elements/${action}-selection`, () => {
    const path = `/v1/videos/multi-elements/${action}-selection`;

    it('accepts a session_id and drops unknown fields', () => {
      const r = validate(path, { session_id: 's-1', frame_index: 0 });
      expect(r.ok).to.equal(true);
      if (!r.ok) return;
      expect(r.body).to.deep.equal({ session_id: 's-1' });
    });

    it('refuses a missing or empty session_id', () => {
      expectError(validate(path, {}), '/session_id', /required/);
      expectError(validate(path, { session_id: '' }), '/session_id', /empty/);
    });
  });
}

describe('schema: /v1/videos/multi-elements', () => {
  const path = '/v1/videos/multi-elements';
  const addition = {
    session_id: 's-1',
    edit_mode: 'addition',
    image_list: [{ image: IMAGE_URL }],
    prompt: 'Using the context of <<<video_1>>>, seamlessly add the cat from <<<image_1>>>',
  };
  const removal = { session_id: 's-1', edit_mode: 'removal', prompt: 'Delete the dog from <<<video_1>>>' };

  it('accepts an addition with mode and duration defaulted, no model_name added, and the data: prefix stripped', () => {
    const r = validate(path, { ...addition, image_list: [{ image: dataUrl('image/png', PNG_400x300) }, { image: JPEG_640x480 }] });
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.body.image_list[0].image).to.equal(PNG_400x300);
    expect(r.body).to.not.have.property('model_name');
    expect(r.body.mode).to.equal('std');
    expect(r.body.duration).to.equal('5');
  });

  it('accepts a removal without image_list, a swap with one image, and the caller fields; drops unknown fields', () => {
    const full = { ...removal, negative_prompt: 'blur', mode: 'pro', duration: '10', watermark_info: { enabled: true }, callback_url: 'https://example.com/cb', external_task_id: 'job-1' };
    const r = validate(path, { ...full, unknown: 1 });
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.body).to.deep.equal(full);
    expect(validate(path, { ...addition, edit_mode: 'swap', prompt: 'swap <<<image_1>>> into <<<video_1>>>' }).ok).to.equal(true);
  });

  it('refuses a missing session_id, edit_mode or prompt, and an empty prompt', () => {
    for (const field of ['session_id', 'edit_mode', 'prompt']) {
      const partial: Record<string, unknown> = { ...addition };
      delete partial[field];
      expectError(validate(path, partial), `/${field}`, /required/);
    }
    expectError(validate(path, { ...addition, prompt: '' }), '/prompt', /empty/);
    expectError(validate(path, { ...addition, prompt: 'a'.repeat(2501) }), '/prompt', /at most 2500/);
    expectError(validate(path, { ...addition, negative_prompt: 'a'.repeat(2501) }), '/negative_prompt', /at most 2500/);
  });

  it('refuses an unknown edit_mode', () => {
    expectError(validate(path, { ...addition, edit_mode: 'replace' }), '/edit_mode', /must be one of: "addition", "swap", "removal"/);
  });

  it('refuses any model_name but kling-v1-6', () => {
    expect(validate(path, { ...addition, model_name: 'kling-v1-6' }).ok).to.equal(true);
    expectError(validate(path, { ...addition, model_name: 'kling-v1' }), '/model_name', /must be one of: "kling-v1-6"/);
  });

  it('refuses a mode other than std/pro and a duration other than "5"/"10"', () => {
    expectError(validate(path, { ...addition, mode: 'max' }), '/mode', /must be one of: "std", "pro"/);
    expectError(validate(path, { ...addition, duration: '7' }), '/duration', /must be one of: "5", "10"/);
    expectError(validate(path, { ...addition, duration: 5 }), '/duration', /must be string/);
  });

  it('addition: refuses no image_list, an empty one, and more than 2 images', () => {
    const { image_list: _, ...noImages } = addition;
    expectError(validate(path, noImages), '/image_list', /required/);
    expectError(validate(path, { ...addition, image_list: [] }), '/image_list', /at least 1 item/);
    const three = [{ image: IMAGE_URL }, { image: IMAGE_URL }, { image: IMAGE_URL }];
    expectError(validate(path, { ...addition, image_list: three }), '/image_list', /at most 2 items/);
  });

  it('swap: refuses no image_list and more than 1 image', () => {
    const { image_list: _, ...noImages } = addition;
    expectError(validate(path, { ...noImages, edit_mode: 'swap' }), '/image_list', /required/);
    const two = [{ image: IMAGE_URL }, { image: IMAGE_URL }];
    expectError(validate(path, { ...addition, edit_mode: 'swap', image_list: two }), '/image_list', /at most 1 item/);
  });

  it('removal: refuses an image_list', () => {
    expectError(validate(path, { ...removal, image_list: [{ image: IMAGE_URL }] }), '/image_list', /'image_list' cannot be used with edit_mode 'removal'/);
  });

  it('refuses image_list items without image or with images that break the image rules', () => {
    expectError(validate(path, { ...addition, image_list: [{ url: IMAGE_URL }] }), '/image_list/0/image', /required/);
    expectError(validate(path, { ...addition, image_list: [{ image: IMAGE_URL }, { image: PNG_SMALL }] }), '/image_list/1/image', /at least 300 px/);
    expectError(validate(path, { ...addition, image_list: [{ image: PNG_TALL }] }), '/image_list/0/image', /aspect ratio/);
  });

  it('refuses <<<image_N>>> beyond image_list', () => {
    expectError(validate(path, { ...addition, prompt: 'add <<<image_2>>> to <<<video_1>>>' }), '/prompt', /<<<image_2>>>.*image_list has 1 item/);
    expectError(validate(path, { ...removal, prompt: 'remove <<<image_1>>> from <<<video_1>>>' }), '/prompt', /there is no image_list/);
  });
});

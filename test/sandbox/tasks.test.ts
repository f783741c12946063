import { expect } from 'chai';
import { type KlingSandbox, signKlingToken, startKlingSandbox } from '../../lib/sandbox/index.js';
import { type Receiver, call, startReceiver, waitFor } from './helpers.js';

const OTHER = { accessKey: 'other-access-key', secretKey: 'other-secret-key-0123456789abcdef' };

describe('kling sandbox: envelope and routing', () => {
  let sandbox: KlingSandbox;
  before(async () => {
    sandbox = await startKlingSandbox({ schedule: 'manual' });
  });
  after(() => sandbox.close());

  it('answers 404/1202 for an unknown path or method', async () => {
    for (const [method, path] of [
      ['POST', '/v1/videos/nope'],
      ['GET', '/v1/videos/identify-face'],
      ['PUT', '/v1/videos/text2video'],
    ] as const) {
      const answer = await call(sandbox, method, path, method === 'GET' ? {} : { body: {} });
      expect(answer.status, `${method} ${path}`).to.equal(404);
      expect(answer.json.code).to.equal(1202);
    }
  });

  it('answers 400/1200 for a body that is not JSON or not an object', async () => {
    const bad = await call(sandbox, 'POST', '/v1/videos/text2video', { rawBody: '{"prompt":' });
    expect(bad.status).to.equal(400);
    expect(bad.json.code).to.equal(1200);
    const array = await call(sandbox, 'POST', '/v1/videos/text2video', { body: [1] });
    expect(array.json.code).to.equal(1200);
    expect(sandbox.tasks.all()).to.have.length(0);
  });

  it('refuses base64 carrying a data: prefix anywhere in the body, and creates nothing', async () => {
    const answer = await call(sandbox, 'POST', '/v1/images/omni-image', {
      body: { prompt: 'x', image_list: [{ image: 'data:image/png;base64,iVBORw0KGgo=' }] },
    });
    expect(answer.status).to.equal(400);
    expect(answer.json).to.include({ code: 1201, message: 'base64 must not carry a data: prefix' });
    expect(sandbox.tasks.all()).to.have.length(0);
    const plain = await call(sandbox, 'POST', '/v1/images/omni-image', {
      body: { prompt: 'see data:uri docs', image_list: [{ image: 'iVBORw0KGgo=' }] },
    });
    expect(plain.status).to.equal(200);
  });

  it('serves extra endpoints given in options', async () => {
    const extra = await startKlingSandbox({ schedule: 'instant', endpoints: [{ path: '/v1/general/custom-voices', kind: 'task' }] });
    try {
      const created = await call(extra, 'POST', '/v1/general/custom-voices', { body: { voice_name: 'me', voice_url: 'https://x/v.mp3' } });
      expect(created.status).to.equal(200);
      const got = await call(extra, 'GET', `/v1/general/custom-voices/${created.json.data.task_id}`);
      expect(got.json.data.task_result.voices[0]).to.include({ voice_name: 'me', owned_by: 'creator' });
    } finally {
      await extra.close();
    }
  });
});

describe('kling sandbox: tasks and queries', () => {
  let sandbox: KlingSandbox;
  before(async () => {
    sandbox = await startKlingSandbox({ schedule: 'manual', accounts: [{ accessKey: 'sandbox-access-key', secretKey: 'sandbox-secret-key-0123456789abcdef' }, OTHER] });
  });
  afterEach(() => sandbox.reset());
  after(() => sandbox.close());

  it('creates a task and answers Kling’s create data', async () => {
    const before = Date.now();
    const answer = await call(sandbox, 'POST', '/v1/videos/text2video', {
      body: { prompt: 'a cat', duration: '10', external_task_id: 'ext-1' },
    });
    expect(answer.status).to.equal(200);
    expect(answer.json).to.include({ code: 0, message: 'SUCCEED' });
    const data = answer.json.data;
    expect(data.task_id).to.match(/^\d{18}$/);
    expect(data.task_status).to.equal('submitted');
    expect(data.task_info).to.deep.equal({ external_task_id: 'ext-1' });
    expect(data.created_at).to.be.within(before, Date.now());
    expect(data.updated_at).to.equal(data.created_at);
    expect(sandbox.tasks.getTask(data.task_id)?.body).to.deep.equal({ prompt: 'a cat', duration: '10', external_task_id: 'ext-1' });
    expect(sandbox.tasks.findByExternalId('sandbox-access-key', 'ext-1')?.taskId).to.equal(data.task_id);
  });

  it('finds a task by task_id, by external_task_id in the path, and by ?external_task_id=', async () => {
    const created = await call(sandbox, 'POST', '/v1/images/generations', { body: { prompt: 'p', external_task_id: 'img/ext 2' } });
    const id = created.json.data.task_id as string;
    const byId = await call(sandbox, 'GET', `/v1/images/generations/${id}`);
    expect(byId.json.data).to.include({ task_id: id, task_status: 'submitted', task_status_msg: '' });
    expect(byId.json.data).to.not.have.property('task_result');
    const byExternal = await call(sandbox, 'GET', `/v1/images/generations/${encodeURIComponent('img/ext 2')}`);
    expect(byExternal.json.data.task_id).to.equal(id);
    const listed = await call(sandbox, 'GET', `/v1/images/generations?external_task_id=${encodeURIComponent('img/ext 2')}`);
    expect(listed.json.data.map((t: { task_id: string }) => t.task_id)).to.deep.equal([id]);
    const none = await call(sandbox, 'GET', '/v1/images/generations?external_task_id=nope');
    expect(none.json.data).to.deep.equal([]);
    const wrongPath = await call(sandbox, 'GET', `/v1/videos/text2video/${id}`);
    expect(wrongPath.status).to.equal(404);
    expect(wrongPath.json.code).to.equal(1203);
  });

  it('refuses a reused external_task_id per access key, not across keys', async () => {
    await call(sandbox, 'POST', '/v1/videos/text2video', { body: { prompt: 'a', external_task_id: 'same' } });
    const again = await call(sandbox, 'POST', '/v1/videos/image2video', { body: { image: 'x', external_task_id: 'same' } });
    expect(again.status).to.equal(400);
    expect(again.json.code).to.equal(1201);
    const otherKey = await call(sandbox, 'POST', '/v1/videos/text2video', {
      body: { prompt: 'a', external_task_id: 'same' },
      authorization: `Bearer ${await signKlingToken(OTHER)}`,
    });
    expect(otherKey.status).to.equal(200);
  });

  it('hides a task from another access key (404/1203)', async () => {
    const created = await call(sandbox, 'POST', '/v1/videos/text2video', { body: { prompt: 'mine', external_task_id: 'mine-1' } });
    const other = `Bearer ${await signKlingToken(OTHER)}`;
    for (const id of [created.json.data.task_id, 'mine-1']) {
      const answer = await call(sandbox, 'GET', `/v1/videos/text2video/${id}`, { authorization: other });
      expect(answer.status).to.equal(404);
      expect(answer.json).to.include({ code: 1203, message: 'task not found' });
    }
    const list = await call(sandbox, 'GET', '/v1/videos/text2video', { authorization: other });
    expect(list.json.data).to.deep.equal([]);
  });

  it('lists a key’s tasks of one path newest first, with Kling’s paging limits', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const created = await call(sandbox, 'POST', '/v1/videos/text2video', { body: { prompt: `p${i}` } });
      ids.push(created.json.data.task_id);
    }
    await call(sandbox, 'POST', '/v1/videos/image2video', { body: { image: 'x' } });
    const all = await call(sandbox, 'GET', '/v1/videos/text2video');
    expect(all.json.data.map((t: { task_id: string }) => t.task_id)).to.deep.equal([...ids].reverse());
    const page2 = await call(sandbox, 'GET', '/v1/videos/text2video?pageNum=2&pageSize=2');
    expect(page2.json.data.map((t: { task_id: string }) => t.task_id)).to.deep.equal([ids[2], ids[1]]);
    const past = await call(sandbox, 'GET', '/v1/videos/text2video?pageNum=4&pageSize=2');
    expect(past.json.data).to.deep.equal([]);
    for (const query of ['pageNum=0', 'pageNum=1001', 'pageSize=0', 'pageSize=501', 'pageSize=abc', 'pageNum=1.5']) {
      const answer = await call(sandbox, 'GET', `/v1/videos/text2video?${query}`);
      expect(answer.status, query).to.equal(400);
      expect(answer.json.code, query).to.equal(1201);
    }
    const max = await call(sandbox, 'GET', '/v1/videos/text2video?pageNum=1000&pageSize=500');
    expect(max.status).to.equal(200);
  });

  it('reset() forgets tasks and requests', async () => {
    await call(sandbox, 'POST', '/v1/videos/text2video', { body: { prompt: 'p', external_task_id: 'r' } });
    sandbox.reset();
    expect(sandbox.tasks.all()).to.deep.equal([]);
    expect(sandbox.requests).to.deep.equal([]);
    const again = await call(sandbox, 'POST', '/v1/videos/text2video', { body: { prompt: 'p', external_task_id: 'r' } });
    expect(again.status).to.equal(200);
  });
});

describe('kling sandbox: progress and callbacks', () => {
  let receiver: Receiver;
  before(async () => {
    receiver = await startReceiver();
  });
  afterEach(() => {
    receiver.bodies.length = 0;
  });
  after(() => receiver.close());

  it('moves submitted -> processing -> succeed on the schedule and calls back each change', async () => {
    const sandbox = await startKlingSandbox({ schedule: { processingAfterMs: 30, finalAfterMs: 90 } });
    try {
      const created = await call(sandbox, 'POST', '/v1/videos/text2video', {
        body: { prompt: 'p', duration: '10', external_task_id: 'cb-1', callback_url: receiver.url },
      });
      const id = created.json.data.task_id as string;
      await waitFor(() => receiver.bodies.length === 3);
      expect(receiver.bodies.map((b) => b.task_status)).to.deep.equal(['submitted', 'processing', 'succeed']);
      const last = receiver.bodies[2]!;
      expect(last).to.include({ task_id: id, task_status_msg: '', final_unit_deduction: '2' });
      expect(last.task_info).to.deep.equal({ external_task_id: 'cb-1' });
      const video = (last.task_result as { videos: { id: string; url: string; duration: string }[] }).videos[0]!;
      expect(video.duration).to.equal('10.1');
      expect(video.url).to.match(/^https:\/\//);
      expect(receiver.bodies[0]).to.not.have.property('task_result');
      await sandbox.callbacksIdle();
      expect(sandbox.callbacks.map((c) => c.status)).to.deep.equal([200, 200, 200]);
      expect(sandbox.callbacks[0]).to.include({ taskId: id, url: receiver.url });
      const queried = await call(sandbox, 'GET', `/v1/videos/text2video/${id}`);
      expect(queried.json.data.task_result.videos[0]).to.deep.equal(video);
    } finally {
      await sandbox.close();
    }
  });

  it('fails tasks the outcome option picks, with task_status_msg and no result', async () => {
    const sandbox = await startKlingSandbox({
      schedule: 'instant',
      outcome: (task) => (String(task.body.prompt).includes('forbidden') ? { status: 'failed', message: 'content moderation' } : { status: 'succeed' }),
    });
    try {
      const created = await call(sandbox, 'POST', '/v1/videos/text2video', { body: { prompt: 'forbidden thing' } });
      expect(created.json.data.task_status).to.equal('submitted');
      const queried = await call(sandbox, 'GET', `/v1/videos/text2video/${created.json.data.task_id}`);
      expect(queried.json.data).to.include({ task_status: 'failed', task_status_msg: 'content moderation' });
      expect(queried.json.data).to.not.have.property('task_result');
    } finally {
      await sandbox.close();
    }
  });

  it('keeps a manual task submitted until complete() or setStatus()', async () => {
    const sandbox = await startKlingSandbox({ schedule: 'manual' });
    try {
      const created = await call(sandbox, 'POST', '/v1/images/generations', { body: { prompt: 'p', n: 3, callback_url: receiver.url } });
      const id = created.json.data.task_id as string;
      await new Promise((r) => setTimeout(r, 50));
      expect(sandbox.tasks.getTask(id)?.status).to.equal('submitted');
      sandbox.setStatus(id, 'processing');
      sandbox.complete(id, { status: 'succeed' });
      expect(() => sandbox.complete(id, { status: 'failed', message: 'late' })).to.throw(/already succeed/);
      await waitFor(() => receiver.bodies.length === 3);
      expect(receiver.bodies.map((b) => b.task_status)).to.deep.equal(['submitted', 'processing', 'succeed']);
      const queried = await call(sandbox, 'GET', `/v1/images/generations/${id}`);
      expect(queried.json.data.task_result.images).to.have.length(3);
      expect(queried.json.data.task_result.images[2]).to.have.keys('index', 'url');
      expect(queried.json.data.final_unit_deduction).to.equal('24');

      const failed = await call(sandbox, 'POST', '/v1/videos/text2video', { body: { prompt: 'p' } });
      sandbox.complete(failed.json.data.task_id, { status: 'failed', message: 'risk control' });
      const failedQuery = await call(sandbox, 'GET', `/v1/videos/text2video/${failed.json.data.task_id}`);
      expect(failedQuery.json.data).to.include({ task_status: 'failed', task_status_msg: 'risk control' });
    } finally {
      await sandbox.close();
    }
  });

  it('records a delivery that fails, without retrying', async () => {
    const sandbox = await startKlingSandbox({ schedule: 'instant' });
    try {
      await call(sandbox, 'POST', '/v1/videos/text2video', { body: { prompt: 'p', callback_url: 'http://127.0.0.1:1/nothing' } });
      await waitFor(() => sandbox.callbacks.length === 2);
      expect(sandbox.callbacks.every((c) => c.status === undefined && typeof c.error === 'string')).to.equal(true);
    } finally {
      await sandbox.close();
    }
  });
});

describe("kling sandbox: deductions by Kling's price list", () => {
  let sandbox: KlingSandbox;
  before(async () => {
    sandbox = await startKlingSandbox({ schedule: 'manual' });
  });
  after(() => sandbox.close());

  /** Creates a task, ends it as given, and answers the final_unit_deduction a query shows. */
  async function unitsOf(path: string, body: Record<string, unknown>, duration?: string): Promise<unknown> {
    const created = await call(sandbox, 'POST', path, { body });
    expect(created.status, created.text).to.equal(200);
    const id = created.json.data.task_id as string;
    sandbox.complete(id, duration === undefined ? { status: 'succeed' } : { status: 'succeed', duration });
    return (await call(sandbox, 'GET', `${path}/${id}`)).json.data.final_unit_deduction;
  }

  it('deducts video units a second by model, resolution, native audio, voice control and a reference video', async () => {
    const t2v = (body: Record<string, unknown>) => unitsOf('/v1/videos/text2video', { prompt: 'p', ...body });
    expect(await t2v({ model_name: 'kling-v3', mode: 'pro', sound: 'on', duration: '5' })).to.equal('6');
    expect(await t2v({ model_name: 'kling-v3', mode: '4k', sound: 'on', duration: '5' })).to.equal('15');
    expect(await t2v({ model_name: 'kling-v3', mode: 'std', duration: '10' })).to.equal('6');
    expect(await t2v({ model_name: 'kling-v2-6', mode: 'pro', sound: 'on', voice_list: [{ voice_id: 'v' }], duration: '10' })).to.equal('12');
    expect(await t2v({ model_name: 'kling-v2-5-turbo', mode: 'std', duration: '5' })).to.equal('1.5');
    // A model Kling lists no price for: 0.2 units a second at std.
    expect(await t2v({ duration: '10' })).to.equal('2');
    const omni = { prompt: 'p', model_name: 'kling-v3-omni', mode: 'std', duration: '8', video_list: [{ video_url: 'https://x.test/v.mp4', refer_type: 'feature' }] };
    expect(await unitsOf('/v1/videos/omni-video', omni)).to.equal('7.2');
  });

  it('charges the seconds generated, never more than asked; motion control rounded to the nearest second; lip-sync per started 5 s', async () => {
    expect(await unitsOf('/v1/videos/text2video', { prompt: 'p', model_name: 'kling-v3', mode: 'pro', duration: '10' }, '7.5')).to.equal('6');
    expect(await unitsOf('/v1/videos/motion-control', { model_name: 'kling-v2-6', mode: 'std' }, '9.6')).to.equal('5');
    expect(await unitsOf('/v1/videos/advanced-lip-sync', { session_id: 's' }, '12')).to.equal('1.5');
  });

  it('deducts image units per image delivered, and units per call', async () => {
    expect(await unitsOf('/v1/images/generations', { prompt: 'p', model_name: 'kling-v2-1', n: 4 })).to.equal('16');
    expect(await unitsOf('/v1/images/generations', { prompt: 'p', model_name: 'kling-v2-1', image: 'https://x.test/a.png', n: 4 })).to.equal('32');
    expect(await unitsOf('/v1/images/omni-image', { prompt: 'p', model_name: 'kling-v3-omni', resolution: '4k', n: 4 })).to.equal('64');
    expect(await unitsOf('/v1/images/omni-image', { prompt: 'p', model_name: 'kling-v3-omni', result_type: 'series', series_amount: 'auto' })).to.equal('32');
    expect(await unitsOf('/v1/audio/text-to-audio', { prompt: 'rain', duration: 5 })).to.equal('0.25');
    const tts = await call(sandbox, 'POST', '/v1/audio/tts', { body: { text: 'hello', voice_id: 'v' } });
    expect(tts.json.data.final_unit_deduction).to.equal('0.05');
    const face = await call(sandbox, 'POST', '/v1/videos/identify-face', { body: { video_id: 'v' } });
    expect(face.json.data.final_unit_deduction).to.equal('0.05');
  });
});

describe('kling sandbox: results by endpoint', () => {
  let sandbox: KlingSandbox;
  before(async () => {
    sandbox = await startKlingSandbox({ schedule: 'instant' });
  });
  after(() => sandbox.close());

  async function resultOf(path: string, body: Record<string, unknown>) {
    const created = await call(sandbox, 'POST', path, { body });
    expect(created.status, created.text).to.equal(200);
    const queried = await call(sandbox, 'GET', `${path}/${created.json.data.task_id}`);
    expect(queried.json.data.task_status).to.equal('succeed');
    expect(queried.json.data.final_unit_deduction).to.be.a('string');
    return queried.json.data;
  }

  it('gives effects a video as long as input.duration, and 5 s when no duration is asked', async () => {
    expect((await resultOf('/v1/videos/effects', { effect_scene: 'hug', input: { images: ['a', 'b'], duration: '10' } })).task_result.videos[0].duration).to.equal('10.1');
    expect((await resultOf('/v1/videos/motion-control', { image_url: 'a', video_url: 'b', mode: 'std', character_orientation: 'image' })).task_result.videos[0].duration).to.equal('5.1');
  });

  it('gives text-to-audio audios, video-to-audio both, with the parent video', async () => {
    const tta = await resultOf('/v1/audio/text-to-audio', { prompt: 'rain', duration: 3.5 });
    expect(tta.task_result.audios[0]).to.include({ duration_mp3: '3.5', duration_wav: '3.5' }).and.to.have.keys('id', 'url_mp3', 'url_wav', 'duration_mp3', 'duration_wav');
    const vta = await resultOf('/v1/audio/video-to-audio', { video_id: 'v-1' });
    expect(vta.task_result).to.have.keys('videos', 'audios');
    expect(vta.task_info.parent_video.id).to.equal('v-1');
  });

  it('gives omni-image series_images and try-on one image', async () => {
    const series = await resultOf('/v1/images/omni-image', { prompt: 'p', result_type: 'series', series_amount: 3 });
    expect(series.task_result.result_type).to.equal('series');
    expect(series.task_result.series_images).to.have.length(3);
    const single = await resultOf('/v1/images/omni-image', { prompt: 'p', n: 2 });
    expect(single.task_result.images).to.have.length(2);
    const tryOn = await resultOf('/v1/images/kolors-virtual-try-on', { human_image: 'h', cloth_image: 'c' });
    expect(tryOn.task_result.images).to.have.length(1);
  });

  it('reports deductions on final tasks, watermark_url with watermark_info enabled (series images too), parent_video on continuations', async () => {
    const video = await resultOf('/v1/videos/text2video', { prompt: 'p', duration: '10', watermark_info: { enabled: true } });
    expect(video).to.deep.include({ final_unit_deduction: '2', final_balance_deduction: { quota: '0', list_price: '0' }, watermark_info: { enabled: true } });
    expect(video.task_result.videos[0].watermark_url).to.match(/^https:\/\/.+-wm\.mp4$/);
    const series = await resultOf('/v1/images/omni-image', { prompt: 'p', result_type: 'series', series_amount: 2, watermark_info: { enabled: true } });
    for (const image of series.task_result.series_images) expect(image).to.have.keys('index', 'url', 'watermark_url');
    const plain = await resultOf('/v1/images/generations', { prompt: 'p' });
    expect(plain.task_result.images[0]).to.have.keys('index', 'url');
    const extended = await resultOf('/v1/videos/video-extend', { video_id: 'v-9' });
    expect(extended.task_info.parent_video).to.include({ id: 'v-9' }).and.to.have.keys('id', 'url', 'duration');

    // What a test names is what Kling reports; null: no deduction fields at all.
    const manual = await startKlingSandbox({ schedule: 'manual' });
    try {
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) ids.push((await call(manual, 'POST', '/v1/videos/text2video', { body: { prompt: 'p' } })).json.data.task_id as string);
      const [named, silent, failed] = ids as [string, string, string];
      manual.complete(named, { status: 'succeed', deductions: { unit: '0.5', balance: { quota: '0.06', list_price: '0.07' } } });
      manual.complete(silent, { status: 'succeed', deductions: null });
      manual.complete(failed, { status: 'failed', message: 'risk control' });
      const shown = async (id: string) => (await call(manual, 'GET', `/v1/videos/text2video/${id}`)).json.data as Record<string, unknown>;
      expect(await shown(named)).to.deep.include({ final_unit_deduction: '0.5', final_balance_deduction: { quota: '0.06', list_price: '0.07' } });
      expect(await shown(silent)).to.not.have.any.keys('final_unit_deduction', 'final_balance_deduction');
      expect(await shown(failed)).to.deep.include({ final_unit_deduction: '0', final_balance_deduction: { quota: '0', list_price: '0' } });
    } finally {
      await manual.close();
    }
  });
});

import { expect } from 'chai';
import { type KlingSandbox, startKlingSandbox } from '../../lib/sandbox/index.js';
import { type Receiver, call, startReceiver, waitFor } from './helpers.js';

describe('kling sandbox: create faults', () => {
  let sandbox: KlingSandbox;
  before(async () => {
    sandbox = await startKlingSandbox({ schedule: 'manual' });
  });
  afterEach(() => sandbox.reset());
  after(() => sandbox.close());

  it('failNextCreate answers one Kling error, creates nothing, then behaves again', async () => {
    sandbox.failNextCreate({ httpStatus: 429, code: 1303 });
    const refused = await call(sandbox, 'POST', '/v1/videos/text2video', { body: { prompt: 'p', external_task_id: 'e' } });
    expect(refused.status).to.equal(429);
    expect(refused.json).to.include({ code: 1303, message: 'parallel task over resource pack limit' });
    expect(sandbox.tasks.all()).to.have.length(0);
    const next = await call(sandbox, 'POST', '/v1/videos/text2video', { body: { prompt: 'p', external_task_id: 'e' } });
    expect(next.status).to.equal(200);

    sandbox.failNextCreate({ code: 1301, message: 'content risk' });
    const risky = await call(sandbox, 'POST', '/v1/images/generations', { body: { prompt: 'p' } });
    expect(risky.status).to.equal(400);
    expect(risky.json).to.include({ code: 1301, message: 'content risk' });

    sandbox.failNextCreate({ httpStatus: 401, code: 1002 });
    expect((await call(sandbox, 'POST', '/v1/videos/text2video', { body: { prompt: 'p' } })).status).to.equal(401);
  });

  it('failNextCreate applies to synchronous paths too', async () => {
    sandbox.failNextCreate({ httpStatus: 500, code: 5000 });
    const answer = await call(sandbox, 'POST', '/v1/videos/identify-face', { body: { video_id: 'v' } });
    expect(answer.status).to.equal(500);
    expect(answer.json.code).to.equal(5000);
  });

  it('failNextCreateAfterCreating makes the task, then answers the Kling error', async () => {
    sandbox.failNextCreateAfterCreating({ httpStatus: 500, code: 5000 });
    const answer = await call(sandbox, 'POST', '/v1/videos/text2video', { body: { prompt: 'p', external_task_id: 'made' } });
    expect([answer.status, answer.json.code]).to.deep.equal([500, 5000]);
    const found = await call(sandbox, 'GET', '/v1/videos/text2video/made');
    expect(found.json.data.task_status).to.equal('submitted');
    expect((await call(sandbox, 'POST', '/v1/videos/text2video', { body: { prompt: 'p' } })).status).to.equal(200);
  });

  it('hangNextCreate creates the task but never answers; the client gives up', async () => {
    sandbox.hangNextCreate();
    let error: unknown;
    try {
      await call(sandbox, 'POST', '/v1/videos/text2video', { body: { prompt: 'p', external_task_id: 'hung' }, signal: AbortSignal.timeout(150) });
    } catch (err) {
      error = err;
    }
    expect(error).to.be.instanceOf(Error);
    expect((error as Error).name).to.equal('TimeoutError');
    expect(sandbox.tasks.findByExternalId('sandbox-access-key', 'hung')?.status).to.equal('submitted');
    const found = await call(sandbox, 'GET', '/v1/videos/text2video/hung');
    expect(found.json.data.task_info.external_task_id).to.equal('hung');
  });

  it('hangNextCreate(ms) answers late', async () => {
    sandbox.hangNextCreate(120);
    const started = Date.now();
    const answer = await call(sandbox, 'POST', '/v1/videos/text2video', { body: { prompt: 'p' } });
    expect(Date.now() - started).to.be.at.least(110);
    expect(answer.json.data.task_status).to.equal('submitted');
  });

  it('resetNextCreate creates the task, then drops the connection', async () => {
    sandbox.resetNextCreate();
    let error: unknown;
    try {
      await call(sandbox, 'POST', '/v1/videos/text2video', { body: { prompt: 'p', external_task_id: 'reset' } });
    } catch (err) {
      error = err;
    }
    expect(error).to.be.instanceOf(TypeError);
    expect(sandbox.tasks.findByExternalId('sandbox-access-key', 'reset')).to.not.equal(undefined);
    expect((await call(sandbox, 'POST', '/v1/videos/text2video', { body: { prompt: 'p' } })).status).to.equal(200);
  });
});

describe('kling sandbox: query faults', () => {
  let sandbox: KlingSandbox;
  let path: string;
  before(async () => {
    sandbox = await startKlingSandbox({ schedule: 'manual' });
    const created = await call(sandbox, 'POST', '/v1/videos/text2video', { body: { prompt: 'p' } });
    path = `/v1/videos/text2video/${created.json.data.task_id}`;
  });
  after(() => sandbox.close());

  afterEach(async () => {
    // Each switch is one-shot: the query after it is normal again.
    const normal = await call(sandbox, 'GET', path);
    expect(normal.json.data.task_status).to.equal('submitted');
  });

  it('garbage: a 200 that is not JSON', async () => {
    sandbox.failNextQuery('garbage');
    const answer = await call(sandbox, 'GET', path);
    expect(answer.status).to.equal(200);
    expect(answer.json).to.equal(undefined);
  });

  it('no-data: an envelope without data', async () => {
    sandbox.failNextQuery('no-data');
    const answer = await call(sandbox, 'GET', path);
    expect(answer.json.code).to.equal(0);
    expect(answer.json).to.not.have.property('data');
  });

  it('unknown-status: task_status "weird"', async () => {
    sandbox.failNextQuery('unknown-status');
    expect((await call(sandbox, 'GET', path)).json.data.task_status).to.equal('weird');
  });

  it('http-500: Kling’s 5000', async () => {
    sandbox.failNextQuery('http-500');
    const answer = await call(sandbox, 'GET', path);
    expect(answer.status).to.equal(500);
    expect(answer.json.code).to.equal(5000);
  });

  it('hangNextQueries(2): the next two queries are read and never answered, the third is', async () => {
    sandbox.hangNextQueries(2);
    const before = sandbox.requests.length;
    for (let i = 0; i < 2; i++) {
      let error: unknown;
      try {
        await call(sandbox, 'GET', path, { signal: AbortSignal.timeout(150) });
      } catch (err) {
        error = err;
      }
      expect((error as Error | undefined)?.name).to.equal('TimeoutError');
    }
    expect(sandbox.requests.slice(before).map((r) => r.method)).to.deep.equal(['GET', 'GET']);
  });

  it('huge: a 20 MB JSON body', async () => {
    sandbox.failNextQuery('huge');
    const answer = await call(sandbox, 'GET', path);
    expect(answer.text.length).to.be.above(20 * 1024 * 1024);
    expect(answer.json.data.task_status).to.equal('submitted');
  });
});

describe('kling sandbox: lost tasks', () => {
  let sandbox: KlingSandbox;
  before(async () => {
    sandbox = await startKlingSandbox({ schedule: 'manual' });
  });
  afterEach(() => sandbox.reset());
  after(() => sandbox.close());

  const create = async (external: string): Promise<string> => (await call(sandbox, 'POST', '/v1/videos/text2video', { body: { prompt: 'p', external_task_id: external } })).json.data.task_id as string;
  const query = (id: string) => call(sandbox, 'GET', `/v1/videos/text2video/${id}`);

  it('loseTask(id) answers 404/1203 to every GET of that task, by either id, while it goes on; others answer', async () => {
    const lost = await create('lost');
    const kept = await create('kept');
    sandbox.loseTask(lost);
    for (const id of [lost, 'lost', lost]) {
      const answer = await query(id);
      expect(answer.status, id).to.equal(404);
      expect(answer.json).to.include({ code: 1203 });
      expect(answer.json).to.not.have.property('data');
    }
    expect(sandbox.complete(lost, { status: 'succeed' }).status).to.equal('succeed');
    expect((await query(lost)).status).to.equal(404);
    expect((await query(kept)).json.data.task_status).to.equal('submitted');
  });

  it('the /v1 list query leaves a lost task out, and takes the query faults', async () => {
    const lost = await create('lost');
    const kept = await create('kept');
    sandbox.loseTask(lost);
    const list = await call(sandbox, 'GET', '/v1/videos/text2video?pageNum=1&pageSize=500');
    expect((list.json.data as { task_id: string }[]).map((t) => t.task_id)).to.deep.equal([kept]);
    sandbox.failNextQuery('http-500');
    const failed = await call(sandbox, 'GET', '/v1/videos/text2video?pageNum=1&pageSize=500');
    expect([failed.status, failed.json.code]).to.deep.equal([500, 5000]);
    sandbox.failNextQuery('reset');
    let error: unknown;
    try {
      await call(sandbox, 'GET', '/v1/videos/text2video');
    } catch (err) {
      error = err;
    }
    expect(error).to.be.instanceOf(Error);
    expect((await call(sandbox, 'GET', '/v1/videos/text2video')).json.data).to.have.length(1);
  });

  it('loseTask() loses every task; reset() finds them again', async () => {
    const a = await create('a');
    sandbox.loseTask();
    expect((await query(a)).status).to.equal(404);
    const b = await create('b');
    expect((await query(b)).json.code).to.equal(1203);
    sandbox.reset();
    const c = await create('c');
    expect((await query(c)).status).to.equal(200);
  });
});

describe('kling sandbox: callback modes', () => {
  let sandbox: KlingSandbox;
  let receiver: Receiver;
  before(async () => {
    sandbox = await startKlingSandbox({ schedule: 'manual' });
    receiver = await startReceiver();
  });
  afterEach(() => {
    sandbox.reset();
    receiver.bodies.length = 0;
  });
  after(async () => {
    await sandbox.close();
    await receiver.close();
  });

  async function runTask(): Promise<string> {
    const created = await call(sandbox, 'POST', '/v1/videos/text2video', { body: { prompt: 'p', callback_url: receiver.url } });
    const id = created.json.data.task_id as string;
    sandbox.setStatus(id, 'processing');
    sandbox.complete(id, { status: 'succeed' });
    await sandbox.callbacksIdle();
    return id;
  }

  it('duplicate sends each notice twice, in order', async () => {
    sandbox.callbackMode({ duplicate: true });
    await runTask();
    expect(receiver.bodies.map((b) => b.task_status)).to.deep.equal(['submitted', 'submitted', 'processing', 'processing', 'succeed', 'succeed']);
    expect(sandbox.callbacks).to.have.length(6);
  });

  it('reorder holds notices and sends them newest first once final', async () => {
    sandbox.callbackMode({ reorder: true });
    const created = await call(sandbox, 'POST', '/v1/videos/text2video', { body: { prompt: 'p', callback_url: receiver.url } });
    const id = created.json.data.task_id as string;
    sandbox.setStatus(id, 'processing');
    await new Promise((r) => setTimeout(r, 50));
    expect(receiver.bodies).to.have.length(0);
    sandbox.complete(id, { status: 'failed', message: 'nope' });
    await waitFor(() => receiver.bodies.length === 3);
    expect(receiver.bodies.map((b) => b.task_status)).to.deep.equal(['failed', 'processing', 'submitted']);
  });

  it('drop sends nothing', async () => {
    sandbox.callbackMode({ drop: true });
    const id = await runTask();
    await new Promise((r) => setTimeout(r, 30));
    expect(receiver.bodies).to.have.length(0);
    expect(sandbox.tasks.getTask(id)?.status).to.equal('succeed');
  });

  it('reset() restores normal delivery', async () => {
    await runTask();
    expect(receiver.bodies.map((b) => b.task_status)).to.deep.equal(['submitted', 'processing', 'succeed']);
  });
});

describe('kling sandbox: synchronous endpoints', () => {
  let sandbox: KlingSandbox;
  before(async () => {
    sandbox = await startKlingSandbox();
  });
  after(() => sandbox.close());

  async function data(path: string, body: Record<string, unknown>) {
    const answer = await call(sandbox, 'POST', path, { body });
    expect(answer.status, answer.text).to.equal(200);
    expect(answer.json.code).to.equal(0);
    return answer.json.data;
  }

  it('identify-face answers a session and faces', async () => {
    const d = await data('/v1/videos/identify-face', { video_url: 'https://x/v.mp4' });
    expect(d).to.have.keys('session_id', 'final_unit_deduction', 'final_balance_deduction', 'face_data');
    expect(d.face_data[0]).to.have.keys('face_id', 'face_image', 'start_time', 'end_time');
  });

  it('multi-elements selection calls answer Kling’s shapes', async () => {
    const init = await data('/v1/videos/multi-elements/init-selection', { video_id: 'v' });
    expect(init).to.have.keys('status', 'session_id', 'final_unit_deduction', 'final_balance_deduction', 'fps', 'original_duration', 'width', 'height', 'total_frame', 'normalized_video');
    expect(init.status).to.equal(0);
    const session_id = init.session_id as string;
    for (const op of ['add-selection', 'delete-selection']) {
      const d = await data(`/v1/videos/multi-elements/${op}`, { session_id, frame_index: 3, points: [{ x: 0.5, y: 0.5 }] });
      expect(d).to.include({ status: 0, session_id });
      expect(d.res.frame_index).to.equal(3);
      expect(d.res.rle_mask_list[0]).to.have.keys('object_id', 'rle_mask', 'png_mask');
    }
    expect(await data('/v1/videos/multi-elements/clear-selection', { session_id })).to.have.keys('status', 'session_id', 'final_unit_deduction', 'final_balance_deduction');
    const preview = await data('/v1/videos/multi-elements/preview-selection', { session_id });
    expect(preview.res).to.have.keys('video', 'video_cover', 'tracking_output');
  });

  it('image-recognize and tts answer a succeeded task at once', async () => {
    const recognize = await data('/v1/videos/image-recognize', { image: 'iVBOR' });
    expect(recognize).to.include({ task_status: 'succeed' });
    expect(recognize.task_result.images.map((i: { type: string }) => i.type)).to.deep.equal(['object_seg', 'head_seg', 'face_seg', 'cloth_seg']);
    expect(recognize.task_result.images[0]).to.have.keys('type', 'is_contain', 'url');
    const tts = await data('/v1/audio/tts', { text: 'hello there', voice_id: 'v', voice_language: 'en' });
    expect(tts).to.include({ task_status: 'succeed' }).and.to.have.property('final_unit_deduction');
    expect(tts.task_result.audios[0]).to.have.keys('id', 'url', 'duration');
    expect(sandbox.tasks.all()).to.have.length(0);
  });
});

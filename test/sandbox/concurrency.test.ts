import { expect } from 'chai';
import { type KlingSandbox, type SandboxAccount, signKlingToken, startKlingSandbox } from '../../lib/sandbox/index.js';
import { call } from './helpers.js';

const CAPPED: SandboxAccount = { accessKey: 'capped-access-key', secretKey: 'capped-secret-key-0123456789abcdef', concurrency: 2 };
const PER_MODEL: SandboxAccount = {
  accessKey: 'per-model-access-key',
  secretKey: 'per-model-secret-key-0123456789abcdef',
  concurrency: { 'kling-v2-6': 1, default: 4 },
};
const FREE: SandboxAccount = { accessKey: 'free-access-key', secretKey: 'free-secret-key-0123456789abcdef' };

describe('kling sandbox: concurrency per account, model version and pack type', () => {
  let sandbox: KlingSandbox;
  before(async () => {
    sandbox = await startKlingSandbox({ schedule: 'manual', accounts: [CAPPED, PER_MODEL, FREE] });
  });
  afterEach(() => sandbox.reset());
  after(() => sandbox.close());

  async function create(account: SandboxAccount, path: string, body: Record<string, unknown>) {
    return call(sandbox, 'POST', path, { body, authorization: `Bearer ${await signKlingToken(account)}` });
  }

  it('refuses a create over the cap with 429/1303, creates nothing, and takes tasks again once one ends', async () => {
    const first = await create(CAPPED, '/v1/videos/text2video', { prompt: 'a', model_name: 'kling-v2-6' });
    const second = await create(CAPPED, '/v1/videos/text2video', { prompt: 'b', model_name: 'kling-v2-6' });
    expect([first.status, second.status]).to.deep.equal([200, 200]);

    const over = await create(CAPPED, '/v1/videos/image2video', { image: 'https://x.test/a.png', model_name: 'kling-v2-6', external_task_id: 'over' });
    expect(over.status).to.equal(429);
    expect(over.json).to.include({ code: 1303, message: 'parallel task over resource pack limit' });
    expect(over.json.request_id).to.be.a('string').and.not.equal('');
    expect(sandbox.tasks.all()).to.have.length(2);
    expect(sandbox.tasks.findByExternalId(CAPPED.accessKey, 'over')).to.equal(undefined);

    // A failure frees its slot as a success does.
    sandbox.complete(first.json.data.task_id, { status: 'failed', message: 'boom' });
    expect((await create(CAPPED, '/v1/videos/text2video', { prompt: 'c', model_name: 'kling-v2-6' })).status).to.equal(200);
    expect((await create(CAPPED, '/v1/videos/text2video', { prompt: 'd', model_name: 'kling-v2-6' })).status).to.equal(429);
    sandbox.setStatus(second.json.data.task_id, 'succeed');
    expect((await create(CAPPED, '/v1/videos/text2video', { prompt: 'e', model_name: 'kling-v2-6' })).status).to.equal(200);
  });

  it('counts each model version apart, with per-model caps and a default', async () => {
    expect((await create(PER_MODEL, '/v1/videos/text2video', { prompt: 'a', model_name: 'kling-v2-6' })).status).to.equal(200);
    expect((await create(PER_MODEL, '/v1/videos/text2video', { prompt: 'b', model_name: 'kling-v2-6' })).json.code).to.equal(1303);
    for (let i = 0; i < 4; i++) {
      expect((await create(PER_MODEL, '/v1/videos/text2video', { prompt: `v3 ${i}`, model_name: 'kling-v3' })).status).to.equal(200);
    }
    expect((await create(PER_MODEL, '/v1/videos/text2video', { prompt: 'v3 over', model_name: 'kling-v3' })).json.code).to.equal(1303);
    // An endpoint without a model field counts under its path, here within the default.
    expect((await create(PER_MODEL, '/v1/videos/lip-sync', { input: { mode: 'text2video', video_id: 'v', text: 't' } })).status).to.equal(200);
  });

  it('counts an image task as the images it makes, in the image pack apart from video', async () => {
    expect((await create(CAPPED, '/v1/images/generations', { prompt: 'p', model_name: 'kling-v3', n: 3 })).json.code).to.equal(1303);
    expect((await create(CAPPED, '/v1/images/generations', { prompt: 'p', model_name: 'kling-v3', n: 2 })).status).to.equal(200);
    expect((await create(CAPPED, '/v1/images/generations', { prompt: 'p', model_name: 'kling-v3' })).json.code).to.equal(1303);
    // The same model version's video tasks use the video pack's slots.
    expect((await create(CAPPED, '/v1/videos/text2video', { prompt: 'p', model_name: 'kling-v3' })).status).to.equal(200);
    expect((await create(CAPPED, '/v1/images/omni-image', { prompt: 'p', model_name: 'kling-image-o1', result_type: 'series', series_amount: 3 })).json.code).to.equal(1303);
    expect((await create(CAPPED, '/v1/images/omni-image', { prompt: 'p', model_name: 'kling-image-o1', result_type: 'series', series_amount: 2 })).status).to.equal(200);
  });

  it('limits each account alone, leaves an account without a cap unlimited, and never counts a synchronous call', async () => {
    for (let i = 0; i < 2; i++) expect((await create(CAPPED, '/v1/videos/text2video', { prompt: `${i}` })).status).to.equal(200);
    expect((await create(CAPPED, '/v1/videos/text2video', { prompt: 'over' })).status).to.equal(429);
    expect((await create(CAPPED, '/v1/videos/identify-face', { video_id: 'v' })).status).to.equal(200);
    for (let i = 0; i < 10; i++) expect((await create(FREE, '/v1/videos/text2video', { prompt: `${i}` })).status).to.equal(200);
  });

  it('reports the slots in use and the most held at once', async () => {
    const made = [];
    for (let i = 0; i < 2; i++) made.push((await create(CAPPED, '/v1/videos/text2video', { prompt: `${i}`, model_name: 'kling-v2-6' })).json.data.task_id as string);
    await create(CAPPED, '/v1/videos/text2video', { prompt: 'refused', model_name: 'kling-v2-6' });
    sandbox.complete(made[0] ?? '', { status: 'succeed' });
    expect(sandbox.slots()).to.deep.equal([{ accessKey: CAPPED.accessKey, pack: 'video', model: 'kling-v2-6', slots: 1, peak: 2 }]);
  });

  it('refuses a malformed cap at start', async () => {
    for (const concurrency of [0, 1.5, -1, 'three', { 'kling-v3': 0 }, { '': 2 }, [2]]) {
      let error: unknown;
      try {
        await (await startKlingSandbox({ accounts: [{ ...FREE, concurrency: concurrency as never }] })).close();
      } catch (err) {
        error = err;
      }
      expect(error, JSON.stringify(concurrency)).to.be.instanceOf(TypeError);
      expect((error as Error).message).to.include('concurrency of account "free-access-key" must be an integer >= 1');
    }
  });
});

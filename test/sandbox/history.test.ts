import { expect } from 'chai';
import { type KlingSandbox, startKlingSandbox } from '../../lib/sandbox/index.js';
import { call } from './helpers.js';

const LONG = 'A'.repeat(20_000);

describe('kling sandbox: bounded history (long runs)', () => {
  let sandbox: KlingSandbox;
  beforeEach(async () => {
    sandbox = await startKlingSandbox({ schedule: 'instant', history: 5 });
  });
  afterEach(() => sandbox.close());

  it('keeps only the newest final tasks: the forgotten ones answer 404/1203, the kept ones answer', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) {
      const created = await call(sandbox, 'POST', '/v1/videos/text2video', { body: { prompt: `task ${i}`, external_task_id: `ext-${i}` } });
      expect(created.status).to.equal(200);
      ids.push(created.json.data.task_id as string);
    }
    expect(sandbox.tasks.all().map((t) => t.taskId)).to.deep.equal(ids.slice(-5));
    const oldest = await call(sandbox, 'GET', `/v1/videos/text2video/${ids[0]}`);
    expect(oldest.status).to.equal(404);
    expect(oldest.json.code).to.equal(1203);
    expect(sandbox.tasks.findByExternalId(sandbox.accounts[0]!.accessKey, 'ext-0')).to.equal(undefined);
    const newest = await call(sandbox, 'GET', '/v1/videos/text2video/ext-11');
    expect(newest.status).to.equal(200);
    expect(newest.json.data).to.include({ task_id: ids[11], task_status: 'succeed' });
    // Recorded requests are trimmed in batches: never more than twice the bound.
    expect(sandbox.requests.length).to.be.at.most(10);
    expect(sandbox.requests[sandbox.requests.length - 1]).to.include({ method: 'GET', path: '/v1/videos/text2video/ext-11' });
  });

  it('keeps long strings of bodies as their length, and the result still follows the request', async () => {
    const created = await call(sandbox, 'POST', '/v1/videos/image2video', { body: { image: LONG, prompt: 'short', duration: '10' } });
    expect(created.status).to.equal(200);
    const task = sandbox.tasks.getTask(created.json.data.task_id as string);
    expect(task?.body).to.deep.equal({ image: '[20000 characters]', prompt: 'short', duration: '10' });
    expect(sandbox.requests.find((r) => r.method === 'POST')?.body).to.deep.equal({ image: '[20000 characters]', prompt: 'short', duration: '10' });
    const got = await call(sandbox, 'GET', `/v1/videos/image2video/${task?.taskId}`);
    expect(got.json.data.task_result.videos[0].duration).to.equal('10.1');
  });

  it('keeps bodies whole and every task without the option', async () => {
    const full = await startKlingSandbox({ schedule: 'instant' });
    try {
      for (let i = 0; i < 7; i++) expect((await call(full, 'POST', '/v1/videos/image2video', { body: { image: LONG, external_task_id: `e${i}` } })).status).to.equal(200);
      expect(full.tasks.all()).to.have.length(7);
      expect(full.tasks.all()[0]?.body.image).to.equal(LONG);
      expect(full.tasks.findByExternalId(full.accounts[0]!.accessKey, 'e0')?.body.image).to.equal(LONG);
    } finally {
      await full.close();
    }
  });

  it('refuses a history that is not a positive integer', async () => {
    for (const history of [0, -1, 2.5, Number.NaN]) {
      let error: unknown;
      try {
        await startKlingSandbox({ history });
      } catch (e) {
        error = e;
      }
      expect(error, String(history)).to.be.instanceOf(TypeError);
      expect((error as Error).message).to.match(/history/);
    }
  });
});

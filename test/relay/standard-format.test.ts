import { expect } from 'chai';
import request from 'supertest';
import { testDatabases } from '../support/databases.js';
import { startHarness, checkAndClose, type Harness } from '../support/harness.js';

describe("responseFormat 'standard' (seed 000's {task_id, message, raw_data})", () => {
  let h: Harness;
  afterEach(async () => checkAndClose(h));

  it('answers a task submit and a sync call in the standard shape', async () => {
    const database = testDatabases()[0];
    if (!database) throw new Error('no database');
    h = await startHarness(database, { relay: { responseFormat: 'standard' } });
    const user = await h.user(1_000_000);
    const res = await request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ prompt: 'a kite', external_task_id: 'mine' });
    expect(res.status).to.equal(200);
    expect(Object.keys(res.body).sort()).to.deep.equal(['message', 'raw_data', 'task_id']);
    expect(res.body.message).to.equal('success');
    expect(res.body.task_id).to.equal(res.body.raw_data.task_id);
    expect(res.body.raw_data.task_info).to.deep.equal({ external_task_id: 'mine' });
    const sync = await request(h.url).post('/kling/v1/videos/identify-face').set('X-User-Id', String(user)).send({ video_id: 'v1' });
    expect(sync.body.task_id).to.equal(sync.body.raw_data.session_id);
    const refused = await request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ prompt: 'x', mode: 'max' });
    expect([refused.status, refused.body.code]).to.deep.equal([400, 1201]);
  });
});

import { expect } from 'chai';
import request from 'supertest';
import { testDatabases } from '../support/databases.js';
import { startHarness, checkAndClose, type Harness } from '../support/harness.js';

for (const database of testDatabases()) {
  describe(`ids in a finished task's result on ${database.name}`, function () {
    let h: Harness;
    afterEach(async () => checkAndClose(h));

    it('route a follow-up naming the result video to the account that made it', async () => {
      h = await startHarness(database, { accounts: [{ id: 'a' }, { id: 'b' }] });
      const user = await h.user(100_000_000);
      const res = await request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ prompt: 'a kite' });
      expect(res.status).to.equal(200);
      const taskId = res.body.data.task_id as string;
      const owner = h.creates().at(-1)?.accessKey;
      const done = h.sandbox.complete(taskId, { status: 'succeed' });
      const videoId = (done.result?.videos as { id: string }[] | undefined)?.[0]?.id;
      expect(videoId).to.be.a('string');
      const query = await request(h.url).get(`/kling/v1/videos/text2video/${taskId}`).set('X-User-Id', String(user));
      expect(query.body.data.task_status).to.equal('succeed');
      for (let i = 0; i < 10; i++) {
        const extend = await request(h.url).post('/kling/v1/videos/video-extend').set('X-User-Id', String(user)).send({ video_id: videoId });
        expect(extend.status).to.equal(200);
        expect(h.creates().at(-1)?.accessKey, `follow-up ${i}`).to.equal(owner);
      }
    });
  });
}

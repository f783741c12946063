import { expect } from 'chai';
import request from 'supertest';
import { AUDIO_URL, VIDEO_URL } from '../fixtures/media.js';
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

    it("refuse another caller's video or session before any hold (400 naming the field), and route the owner's follow-up to the account that made it", async () => {
      h = await startHarness(database, { accounts: [{ id: 'a' }, { id: 'b' }] });
      const alice = await h.user(100_000_000);
      const bob = await h.user(100_000_000);
      const post = (user: number, path: string, body: object) => request(h.url).post(`/kling${path}`).set('X-User-Id', String(user)).send(body);
      const res = await post(alice, '/v1/videos/text2video', { prompt: 'a kite' });
      expect(res.status).to.equal(200);
      const taskId = res.body.data.task_id as string;
      const owner = h.creates().at(-1)?.accessKey;
      const done = h.sandbox.complete(taskId, { status: 'succeed' });
      const videoId = (done.result?.videos as { id: string }[] | undefined)?.[0]?.id;
      expect((await request(h.url).get(`/kling/v1/videos/text2video/${taskId}`).set('X-User-Id', String(alice))).body.data.task_status).to.equal('succeed');
      const face = await post(alice, '/v1/videos/identify-face', { video_url: VIDEO_URL });
      expect(face.status).to.equal(200);
      const session = face.body.data.session_id as string;

      const before = { tasks: (await h.tasks()).length, ledger: (await h.ledger()).length, videos: (await h.rows('videos')).length, calls: h.sandbox.requests.length, bob: await h.balance(bob) };
      const extend = await post(bob, '/v1/videos/video-extend', { video_id: videoId });
      expect([extend.status, extend.body.code, extend.body.errors]).to.deep.equal([400, 1201, [{ path: '/video_id', message: 'is not a resource of yours' }]]);
      const lipSync = await post(bob, '/v1/videos/advanced-lip-sync', {
        session_id: session,
        face_choose: [{ face_id: '0', sound_file: AUDIO_URL, sound_start_time: 0, sound_end_time: 5000, sound_insert_time: 0 }],
      });
      expect([lipSync.status, lipSync.body.code, lipSync.body.errors?.[0]?.path]).to.deep.equal([400, 1201, '/session_id']);
      const after = { tasks: (await h.tasks()).length, ledger: (await h.ledger()).length, videos: (await h.rows('videos')).length, calls: h.sandbox.requests.length, bob: await h.balance(bob) };
      expect(after, 'nothing held, no rows, Kling not called').to.deep.equal(before);

      for (let i = 0; i < 4; i++) {
        const own = await post(alice, '/v1/videos/video-extend', { video_id: videoId });
        expect(own.status).to.equal(200);
        expect(h.creates().at(-1)?.accessKey, `follow-up ${i}`).to.equal(owner);
      }
    });

    it("a result's ids the database could not record keep the task unsettled until they are: another caller's follow-up is still refused", async () => {
      h = await startHarness(database, { accounts: [{ id: 'a' }, { id: 'b' }] });
      const alice = await h.user(100_000_000);
      const bob = await h.user(100_000_000);
      const res = await request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(alice)).send({ prompt: 'a kite' });
      expect(res.status).to.equal(200);
      const taskId = res.body.data.task_id as string;
      const done = h.sandbox.complete(taskId, { status: 'succeed' });
      const videoId = (done.result?.videos as { id: string }[] | undefined)?.[0]?.id;
      // The table of the ids' owners refuses writes for a while (here: it is not there).
      await h.db.schema.renameTable('kling_relay_resources', 'kling_relay_resources_away');
      try {
        await request(h.url).get(`/kling/v1/videos/text2video/${taskId}`).set('X-User-Id', String(alice));
        await h.db('kling_relay_tasks').update({ next_check_at: 0 });
        await h.relay.reconcile();
        expect((await h.tasks())[0]?.state, 'not settled while its ids cannot be recorded').to.not.equal('succeed');
      } finally {
        await h.db.schema.renameTable('kling_relay_resources_away', 'kling_relay_resources');
      }
      await h.db('kling_relay_tasks').update({ next_check_at: 0 });
      expect(await h.relay.reconcile()).to.include({ finished: 1, errors: 0 });
      expect((await h.tasks())[0]?.state).to.equal('succeed');
      const rows = (await h.db('kling_relay_resources').select('resource_id', 'user_id')) as { resource_id: string; user_id: string }[];
      expect(rows.map((r) => [r.resource_id, String(r.user_id)])).to.deep.include([videoId, String(alice)]);
      const extend = await request(h.url).post('/kling/v1/videos/video-extend').set('X-User-Id', String(bob)).send({ video_id: videoId });
      expect([extend.status, extend.body.code]).to.deep.equal([400, 1201]);
    });
  });
}

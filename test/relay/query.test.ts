import { expect } from 'chai';
import express from 'express';
import request from 'supertest';
import { testDatabases } from '../support/databases.js';
import { startHarness, checkAndClose, type Harness } from '../support/harness.js';

const QPU = 500_000;

for (const database of testDatabases()) {
  describe(`relay queries on ${database.name}`, function () {
    let h: Harness;
    let alice: number;
    let bob: number;

    beforeEach(async () => {
      h = await startHarness(database);
      alice = await h.user(1_000_000);
      bob = await h.user(1_000_000);
    });
    afterEach(async () => checkAndClose(h));

    const as = (user: number) => ({
      post: (path: string, body: object) => request(h.url).post(`/kling${path}`).set('X-User-Id', String(user)).send(body),
      get: (path: string) => request(h.url).get(`/kling${path}`).set('X-User-Id', String(user)),
    });
    const klingGets = (taskId: string) => h.sandbox.requests.filter((r) => r.method === 'GET' && r.path.endsWith(`/${taskId}`)).length;

    async function submit(user: number, body: object = { prompt: 'a kite', duration: '10' }): Promise<string> {
      const res = await as(user).post('/v1/videos/text2video', body);
      expect(res.status).to.equal(200);
      return res.body.data.task_id as string;
    }

    it("answers the owner by Kling's task id and by its own external_task_id; another caller gets 404", async () => {
      const taskId = await submit(alice, { prompt: 'a kite', external_task_id: 'alice-1' });
      const byId = await as(alice).get(`/v1/videos/text2video/${taskId}`);
      expect(byId.status).to.equal(200);
      expect(byId.body.data).to.include({ task_id: taskId, task_status: 'submitted' });
      expect(byId.body.data.task_info).to.deep.equal({ external_task_id: 'alice-1' });
      const byExternal = await as(alice).get('/v1/videos/text2video/alice-1');
      expect(byExternal.body.data.task_id).to.equal(taskId);
      const trailingSlash = await as(alice).get(`/v1/videos/text2video/${taskId}/`);
      expect(trailingSlash.body.data.task_id).to.equal(taskId);
      const unified = await as(alice).get(`/v1/tasks/${taskId}`);
      expect(unified.body.data.task_id).to.equal(taskId);
      for (const path of [`/v1/videos/text2video/${taskId}`, `/v1/tasks/${taskId}`, '/v1/videos/text2video/alice-1']) {
        const other = await as(bob).get(path);
        expect([other.status, other.body.code], path).to.deep.equal([404, 1203]);
      }
      const wrongEndpoint = await as(alice).get(`/v1/images/generations/${taskId}`);
      expect([wrongEndpoint.status, wrongEndpoint.body.code]).to.deep.equal([404, 1203]);
    });

    it('compares caller ids byte for byte: ALICE, Alice, "alice " and alíce get 404 by id and by external_task_id, and an empty list', async () => {
      const taskId = await submit(alice, { prompt: 'a kite', external_task_id: 'Mine-1' });
      // A host whose callers have string ids (the harness's own users are numbers); checked_at ahead
      // keeps the query from refreshing (and settling) the task.
      await h.db('kling_relay_tasks').update({ user_id: 'alice', checked_at: Date.now() + 3_600_000 });
      const host = express()
        .use((req, res, next) => {
          // Encoded: a header value loses its trailing space on the way.
          res.locals.user = { id: decodeURIComponent(req.get('x-caller') ?? '') };
          next();
        })
        .use('/kling', h.relay.router);
      const get = (caller: string, path: string) => request(host).get(`/kling${path}`).set('X-Caller', encodeURIComponent(caller));
      const list = (caller: string, query = '') => get(caller, `/v1/videos/text2video${query}`);
      expect((await get('alice', `/v1/videos/text2video/${taskId}`)).body.data?.task_id).to.equal(taskId);
      expect((await list('alice')).body.data).to.have.length(1);
      for (const caller of ['ALICE', 'Alice', 'alice ', 'alíce']) {
        for (const path of [`/v1/videos/text2video/${taskId}`, '/v1/videos/text2video/Mine-1', `/v1/tasks/${taskId}`]) {
          const res = await get(caller, path);
          expect([res.status, res.body.code], `${caller} ${path}`).to.deep.equal([404, 1203]);
        }
        expect((await list(caller)).body.data, caller).to.deep.equal([]);
        expect((await list(caller, '?external_task_id=Mine-1')).body.data, caller).to.deep.equal([]);
      }
      // The caller's own look-alike ids are told apart too.
      for (const id of ['MINE-1', 'mine-1', 'Mine-1 ', 'Míne-1']) {
        const res = await get('alice', `/v1/videos/text2video/${encodeURIComponent(id)}`);
        expect([res.status, res.body.code], id).to.deep.equal([404, 1203]);
      }
    });

    it('refreshes a task that is not final from Kling and settles it through the one transition', async () => {
      const taskId = await submit(alice);
      const hold = Math.round(0.01 * 10 * QPU);
      expect(await h.balance(alice)).to.equal(1_000_000 - hold);
      h.sandbox.complete(taskId, { status: 'succeed' });
      const res = await as(alice).get(`/v1/videos/text2video/${taskId}`);
      expect(res.body.data.task_status).to.equal('succeed');
      expect(res.body.data.task_result.videos[0].duration).to.equal('10.1');
      // 10.1 s is more than the 10 s held: the charge stops at the hold and nothing comes back.
      expect(await h.balance(alice)).to.equal(1_000_000 - hold);
      expect((await h.ledger()).map((l) => [l.kind, Number(l.amount)])).to.deep.equal([['hold', -hold], ['settle', 0]]);
      const [row] = await h.rows('videos');
      expect(row).to.include({ status: 'succeed' });
      expect(JSON.parse(String(row?.result)).videos[0].duration).to.equal('10.1');
      // Final tasks are served from the database.
      const gets = klingGets(taskId);
      await as(alice).get(`/v1/videos/text2video/${taskId}`);
      expect(klingGets(taskId)).to.equal(gets);
    });

    it('refunds a task Kling failed, with its message as fail_reason', async () => {
      const taskId = await submit(alice);
      h.sandbox.complete(taskId, { status: 'failed', message: 'content moderation' });
      const res = await as(alice).get(`/v1/tasks/${taskId}`);
      expect(res.body.data).to.include({ task_status: 'failed', task_status_msg: 'content moderation' });
      expect(await h.balance(alice)).to.equal(1_000_000);
      const [row] = await h.rows('videos');
      expect(row).to.include({ status: 'failed', fail_reason: 'content moderation' });
    });

    it('keeps one refresh in flight per task and none within a few seconds of the last', async () => {
      const taskId = await submit(alice);
      h.sandbox.setStatus(taskId, 'processing');
      const answers = await Promise.all(Array.from({ length: 5 }, () => as(alice).get(`/v1/videos/text2video/${taskId}`)));
      for (const a of answers) expect(a.body.data.task_status).to.equal('processing');
      expect(klingGets(taskId)).to.equal(1);
      await as(alice).get(`/v1/videos/text2video/${taskId}`);
      expect(klingGets(taskId)).to.equal(1);
      expect((await h.tasks())[0]?.state).to.equal('processing');
    });

    it('lists the caller\'s tasks of an endpoint newest first, with Kling\'s paging limits', async () => {
      const ids = [await submit(alice), await submit(alice), await submit(alice)];
      await submit(bob);
      const first = await as(alice).get('/v1/videos/text2video?pageNum=1&pageSize=2');
      expect(first.body.data.map((t: { task_id: string }) => t.task_id)).to.deep.equal([ids[2], ids[1]]);
      const second = await as(alice).get('/v1/videos/text2video?pageNum=2&pageSize=2');
      expect(second.body.data.map((t: { task_id: string }) => t.task_id)).to.deep.equal([ids[0]]);
      const all = await as(alice).get('/v1/videos/text2video');
      expect(all.body.data).to.have.length(3);
      for (const bad of ['pageSize=501', 'pageSize=0', 'pageNum=1001', 'pageNum=x']) {
        const res = await as(alice).get(`/v1/videos/text2video?${bad}`);
        expect([res.status, res.body.code], bad).to.deep.equal([400, 1201]);
      }
      expect((await as(alice).get('/v1/images/generations')).body.data).to.deep.equal([]);
    });

    it('needs a caller, and answers 404/1202 for endpoints that cannot be queried', async () => {
      const res = await request(h.url).get('/kling/v1/videos/text2video/123');
      expect([res.status, res.body.code]).to.deep.equal([401, 1000]);
      const sync = await as(alice).get('/v1/videos/identify-face/123');
      expect([sync.status, sync.body.code]).to.deep.equal([404, 1202]);
    });
  });
}

import { expect } from 'chai';
import express from 'express';
import request from 'supertest';
import { callbackToken } from '../../lib/completion/token.js';
import { testDatabases } from '../support/databases.js';
import { CALLBACK_SECRET, startHarness, checkAndClose, type Harness } from '../support/harness.js';

const QPU = 500_000;

for (const database of testDatabases()) {
  describe(`relay.callback on ${database.name}`, function () {
    let h: Harness;
    let user: number;
    let callbackApp: express.Express;
    const start = 1_000_000;
    const hold = Math.round(0.01 * 10 * QPU);

    beforeEach(async () => {
      h = await startHarness(database);
      user = await h.user(start);
      callbackApp = express();
      callbackApp.post('/kling/callback', h.relay.callback);
    });
    afterEach(async () => checkAndClose(h));

    async function submit(): Promise<{ taskId: string; externalTaskId: string }> {
      const res = await request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ prompt: 'a kite', duration: '10' });
      expect(res.status).to.equal(200);
      const task = (await h.tasks()).find((t) => t.kling_task_id === res.body.data.task_id);
      return { taskId: res.body.data.task_id as string, externalTaskId: String(task?.external_task_id) };
    }

    const notice = (taskId: string, externalTaskId: string, status: string) => ({
      task_id: taskId,
      task_status: status,
      task_status_msg: '',
      task_info: { external_task_id: externalTaskId },
      created_at: Date.now(),
      updated_at: Date.now(),
      ...(status === 'succeed' ? { task_result: { videos: [{ id: 'v1', url: 'https://cdn.example.com/forged.mp4', duration: '10.0' }] } } : {}),
    });
    const send = (body: unknown, token: string | null) => request(callbackApp).post(`/kling/callback${token === null ? '' : `?token=${token}`}`).send(body as object);
    const klingQueries = () => h.sandbox.requests.filter((r) => r.method === 'GET').length;

    async function expectUnsettled(state: string): Promise<void> {
      expect((await h.tasks())[0]?.state).to.equal(state);
      expect((await h.ledger()).map((l) => l.kind)).to.deep.equal(['hold']);
      expect(await h.balance(user)).to.equal(start - hold);
    }

    it('refuses a missing, wrong or other task\'s token with 401 before touching anything, and Kling is not asked', async () => {
      const a = await submit();
      const b = await submit();
      h.sandbox.complete(a.taskId, { status: 'succeed' });
      for (const token of [null, 'nope', callbackToken(CALLBACK_SECRET, b.externalTaskId), callbackToken('another-secret-another-secret-xx', a.externalTaskId)]) {
        const res = await send(notice(a.taskId, a.externalTaskId, 'succeed'), token);
        expect(res.status, String(token)).to.equal(401);
      }
      expect(klingQueries()).to.equal(0);
      expect((await h.tasks()).map((t) => t.state)).to.deep.equal(['submitted', 'submitted']);
      expect(await h.balance(user)).to.equal(start - 2 * hold);
    });

    it("a success notice that beats Kling's create answer: the late answer leaves the settled task and the host row as they are", async () => {
      h.sandbox.hangNextCreate(800);
      const pending = request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ prompt: 'a kite', duration: '10' }).then((res) => res);
      let kling: ReturnType<typeof h.sandbox.tasks.all>[number] | undefined;
      for (let i = 0; i < 100 && !kling; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        kling = h.sandbox.tasks.all()[0];
      }
      if (!kling) throw new Error('Kling never got the create');
      const [task] = await h.tasks();
      h.sandbox.complete(kling.taskId, { status: 'succeed' });
      const early = await send(notice(kling.taskId, String(task?.external_task_id), 'succeed'), callbackToken(CALLBACK_SECRET, String(task?.external_task_id)));
      expect(early.status).to.equal(200);
      const [settledRow] = await h.rows('videos');
      expect(settledRow).to.include({ status: 'succeed', task_id: kling.taskId });

      const answer = await pending;
      expect([answer.status, answer.body.data.task_id]).to.deep.equal([200, kling.taskId]);
      const [after] = await h.tasks();
      expect(after).to.include({ state: 'succeed', kling_task_id: kling.taskId });
      const [row] = await h.rows('videos');
      expect(row, 'the host row keeps the final status and result').to.deep.equal(settledRow);
      expect((await h.ledger()).map((l) => l.kind)).to.deep.equal(['hold', 'settle']);
    });

    it('answers 400 for a malformed body and 404 for an unknown task', async () => {
      const a = await submit();
      const bad = await request(callbackApp).post(`/kling/callback?token=${callbackToken(CALLBACK_SECRET, a.externalTaskId)}`).set('Content-Type', 'application/json').send('{"task_id": ');
      expect(bad.status).to.equal(400);
      const unknown = 'kr-video-999-000000000000';
      const res = await send(notice('42', unknown, 'succeed'), callbackToken(CALLBACK_SECRET, unknown));
      expect(res.status).to.equal(404);
    });

    it('does not settle when the notice says succeed but Kling says processing', async () => {
      const a = await submit();
      h.sandbox.setStatus(a.taskId, 'processing');
      const res = await send(notice(a.taskId, a.externalTaskId, 'succeed'), callbackToken(CALLBACK_SECRET, a.externalTaskId));
      expect(res.status).to.equal(200);
      expect(klingQueries()).to.equal(1);
      await expectUnsettled('processing');
    });

    it('settles once for 20 concurrent identical success notices, with the result Kling confirms', async () => {
      const a = await submit();
      h.sandbox.complete(a.taskId, { status: 'succeed' });
      const token = callbackToken(CALLBACK_SECRET, a.externalTaskId);
      const answers = await Promise.all(Array.from({ length: 20 }, () => send(notice(a.taskId, a.externalTaskId, 'succeed'), token)));
      for (const answer of answers) expect(answer.status).to.equal(200);
      expect((await h.ledger()).map((l) => l.kind)).to.deep.equal(['hold', 'settle']);
      expect(await h.balance(user)).to.equal(start - hold);
      const [row] = await h.rows('videos');
      expect(row?.status).to.equal('succeed');
      // The forged URL of the notice is not what was stored: Kling's own answer is.
      expect(String(row?.result)).to.not.include('forged');
    });

    it('keeps succeed when a processing notice arrives after it, and refunds a confirmed failure', async () => {
      const a = await submit();
      h.sandbox.complete(a.taskId, { status: 'succeed' });
      const token = callbackToken(CALLBACK_SECRET, a.externalTaskId);
      expect((await send(notice(a.taskId, a.externalTaskId, 'succeed'), token)).status).to.equal(200);
      expect((await send(notice(a.taskId, a.externalTaskId, 'processing'), token)).status).to.equal(200);
      expect((await h.tasks())[0]?.state).to.equal('succeed');
      expect((await h.rows('videos'))[0]?.status).to.equal('succeed');

      const b = await submit();
      h.sandbox.complete(b.taskId, { status: 'failed', message: 'moderation' });
      expect((await send(notice(b.taskId, b.externalTaskId, 'failed'), callbackToken(CALLBACK_SECRET, b.externalTaskId))).status).to.equal(200);
      const failed = (await h.tasks()).find((t) => t.kling_task_id === b.taskId);
      expect(failed).to.include({ state: 'failed', status_msg: 'moderation' });
      expect(await h.balance(user)).to.equal(start - hold);
      const ledger = await h.ledger();
      expect(ledger.reduce((sum, l) => sum + Number(l.amount), 0)).to.equal((await h.balance(user)) - start);
    });

    it('moves the status forward on a processing notice without asking Kling', async () => {
      const a = await submit();
      const res = await send(notice(a.taskId, a.externalTaskId, 'processing'), callbackToken(CALLBACK_SECRET, a.externalTaskId));
      expect(res.status).to.equal(200);
      expect(klingQueries()).to.equal(0);
      await expectUnsettled('processing');
      expect((await h.rows('videos'))[0]?.status).to.equal('processing');
    });

    describe('for a notice without task_info.external_task_id (the seed\'s fallback)', () => {
      const bare = (taskId: string, status: string) => ({ task_id: taskId, task_status: status, task_status_msg: '', created_at: Date.now(), updated_at: Date.now() });

      it('finds the task by Kling\'s task_id and still demands that task\'s token', async () => {
        const a = await submit();
        const b = await submit();
        h.sandbox.complete(a.taskId, { status: 'succeed' });
        expect((await send(bare(a.taskId, 'succeed'), callbackToken(CALLBACK_SECRET, b.externalTaskId))).status).to.equal(401);
        expect((await send(bare(a.taskId, 'succeed'), 'f'.repeat(64))).status).to.equal(401);
        expect((await send(bare(a.taskId, 'succeed'), 'not-a-token')).status).to.equal(401);
        expect(klingQueries()).to.equal(0);
        expect((await send(bare(a.taskId, 'succeed'), callbackToken(CALLBACK_SECRET, a.externalTaskId))).status).to.equal(200);
        const settled = (await h.tasks()).find((t) => t.kling_task_id === a.taskId);
        expect(settled?.state).to.equal('succeed');
        expect((await h.tasks()).find((t) => t.kling_task_id === b.taskId)?.state).to.equal('submitted');
      });

      it('looks in the video table first, then the image table, when both carry the id', async () => {
        const video = await submit();
        const image = await request(h.url).post('/kling/v1/images/generations').set('X-User-Id', String(user)).send({ prompt: 'a kite', n: 1 });
        expect(image.status).to.equal(200);
        const imageTask = (await h.tasks()).find((t) => t.kling_task_id === image.body.data.task_id);
        // Two tasks that carry one Kling id (accounts are separate namespaces at Kling): by the bare id
        // alone, the video row is the one found.
        await h.db('kling_relay_tasks').where({ id: imageTask?.id }).update({ kling_task_id: video.taskId });
        h.sandbox.complete(video.taskId, { status: 'succeed' });
        expect((await send(bare(video.taskId, 'succeed'), callbackToken(CALLBACK_SECRET, video.externalTaskId))).status).to.equal(200);
        expect((await h.tasks()).find((t) => t.id === imageTask?.id)?.state).to.equal('submitted');
        expect((await h.rows('videos'))[0]?.status).to.equal('succeed');
        // The image task's own token still reaches the image task.
        expect((await send(bare(video.taskId, 'processing'), callbackToken(CALLBACK_SECRET, String(imageTask?.external_task_id)))).status).to.equal(200);
        expect((await h.tasks()).find((t) => t.id === imageTask?.id)?.state).to.equal('processing');
      });

      it('answers 404 for an unknown task_id and 400 for a notice that names no task', async () => {
        expect((await send(bare('no-such-task', 'succeed'), 'a'.repeat(64))).status).to.equal(404);
        expect((await send({ task_status: 'succeed' }, 'a'.repeat(64))).status).to.equal(400);
      });
    });

    it('settles once when a callback, a query refresh and a reconcile race on one task, 50 times over', async function () {
      this.timeout(120_000);
      const token = (externalTaskId: string) => callbackToken(CALLBACK_SECRET, externalTaskId);
      const tasks: string[] = [];
      const rich = 100 * hold;
      user = await h.user(rich);
      for (let round = 0; round < 50; round += 1) {
        const a = await submit();
        tasks.push(a.taskId);
        h.sandbox.complete(a.taskId, round % 5 === 4 ? { status: 'failed', message: 'moderation' } : { status: 'succeed' });
        // The query refresh and the reconciler both consider the task due now.
        await h.db('kling_relay_tasks').where({ kling_task_id: a.taskId }).update({ next_check_at: 0, checked_at: 0 });
        const [callback, query] = await Promise.all([
          send(notice(a.taskId, a.externalTaskId, round % 5 === 4 ? 'failed' : 'succeed'), token(a.externalTaskId)),
          request(h.url).get(`/kling/v1/videos/text2video/${a.taskId}`).set('X-User-Id', String(user)),
          h.relay.reconcile(),
        ]);
        expect(callback.status).to.equal(200);
        expect(query.status).to.equal(200);
        const mine = (await h.ledger()).filter((l) => l.kind === 'settle' || l.kind === 'refund');
        expect(mine.length, `round ${round}`).to.equal(round + 1);
      }
      const ledger = await h.ledger();
      const byTask = new Map<number, string[]>();
      for (const l of ledger) byTask.set(Number(l.task_id), [...(byTask.get(Number(l.task_id)) ?? []), String(l.kind)]);
      expect(byTask.size).to.equal(50);
      for (const [taskId, kinds] of byTask) expect(kinds, `task ${taskId}`).to.have.length(2);
      const failed = (await h.tasks()).filter((t) => t.state === 'failed').length;
      expect(failed).to.equal(10);
      expect(await h.balance(user)).to.equal(rich - 40 * hold);
    });
  });
}

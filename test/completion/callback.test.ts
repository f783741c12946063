import { expect } from 'chai';
import express from 'express';
import { request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
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

    /** The path and query of the callback URL Kling was given for this task. */
    function klingCallback(externalTaskId: string): string {
      const create = h.creates().find((r) => (r.body as Record<string, unknown>).external_task_id === externalTaskId);
      const url = new URL(String((create?.body as Record<string, unknown>).callback_url));
      return `${url.pathname}${url.search}`;
    }

    /** Every statement the relay sends to the database while `work` runs. */
    async function statementsDuring<T>(work: () => Promise<T>): Promise<{ result: T; statements: string[] }> {
      const statements: string[] = [];
      const listener = (query: { sql: string }) => statements.push(query.sql);
      h.db.on('query', listener);
      try {
        return { result: await work(), statements };
      } finally {
        h.db.removeListener('query', listener);
      }
    }

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

    it("settles through the callback URL Kling was given, which names the task and carries its token", async () => {
      const a = await submit();
      h.sandbox.complete(a.taskId, { status: 'succeed' });
      const url = new URL(`http://relay${klingCallback(a.externalTaskId)}`);
      expect([url.searchParams.get('task'), url.searchParams.get('token')]).to.deep.equal([a.externalTaskId, callbackToken(CALLBACK_SECRET, a.externalTaskId)]);
      // Kling's notice need not name the task in its body: the URL does.
      const bodyWithoutId = { task_id: a.taskId, task_status: 'succeed', task_status_msg: '', created_at: Date.now(), updated_at: Date.now() };
      const res = await request(callbackApp).post(klingCallback(a.externalTaskId)).send(bodyWithoutId);
      expect([res.status, res.body.code]).to.deep.equal([200, 0]);
      expect((await h.tasks())[0]?.state).to.equal('succeed');
      expect((await h.ledger()).map((l) => l.kind)).to.deep.equal(['hold', 'settle']);
    });

    it('refuses a wrong token for the task its URL names before reading the body or the database', async () => {
      const a = await submit();
      const wrong = `/kling/callback?task=${encodeURIComponent(a.externalTaskId)}&token=${'0'.repeat(64)}`;
      const { result, statements } = await statementsDuring(async () => {
        // The body is never finished: only an answer given without reading it arrives.
        const server = await new Promise<Server>((resolve) => {
          const s = callbackApp.listen(0, '127.0.0.1', () => resolve(s));
        });
        try {
          const { port } = server.address() as AddressInfo;
          return await new Promise<{ status: number | undefined; body: string }>((resolve, reject) => {
            const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: wrong, headers: { 'content-type': 'application/json', 'content-length': '100000' } }, (res) => {
              let body = '';
              res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk)).on('end', () => resolve({ status: res.statusCode, body }));
            });
            req.on('error', reject);
            req.write('{"task_id": "');
          });
        } finally {
          server.closeAllConnections();
          server.close();
        }
      });
      expect(result.status).to.equal(401);
      expect(JSON.parse(result.body)).to.include({ code: 1002 });
      expect(statements).to.deep.equal([]);
      await expectUnsettled('submitted');
    });

    it('answers known and unknown task ids alike without a valid token, whether the URL, the body or nothing names the task, and reads no database', async () => {
      const a = await submit();
      h.sandbox.complete(a.taskId, { status: 'succeed' });
      const bare = (taskId: string) => ({ task_id: taskId, task_status: 'succeed', task_status_msg: '', created_at: 1, updated_at: 1 });
      const answers: unknown[] = [];
      const { statements } = await statementsDuring(async () => {
        for (const taskId of [a.taskId, 'no-such-task']) {
          for (const token of [callbackToken(CALLBACK_SECRET, a.externalTaskId), 'f'.repeat(64), 'not-a-token']) {
            const res = await send(bare(taskId), token);
            answers.push({ status: res.status, body: res.body as unknown });
          }
        }
      });
      expect(statements).to.deep.equal([]);
      expect(new Set(answers.map((answer) => JSON.stringify(answer))).size, JSON.stringify(answers)).to.equal(1);
      expect(answers[0]).to.deep.include({ status: 401 });
      // A wrong token for a task the URL or the body names: one answer whether that task exists or not.
      const unknown = 'kr-video-999-000000000000';
      const named: unknown[] = [];
      const { statements: namedStatements } = await statementsDuring(async () => {
        for (const externalTaskId of [a.externalTaskId, unknown]) {
          const byUrl = await request(callbackApp).post(`/kling/callback?task=${externalTaskId}&token=${'f'.repeat(64)}`).send(bare(a.taskId));
          const byBody = await send(notice(a.taskId, externalTaskId, 'succeed'), 'f'.repeat(64));
          named.push(JSON.stringify([byUrl.status, byUrl.body, byBody.status, byBody.body]));
        }
      });
      expect(namedStatements).to.deep.equal([]);
      expect(named[0]).to.equal(named[1]);
      expect(klingQueries()).to.equal(0);
      await expectUnsettled('submitted');
    });

    it('refuses a body over the callback limit before parsing it, and takes the largest notice Kling sends', async () => {
      const a = await submit();
      const path = klingCallback(a.externalTaskId);
      // Not JSON at all: a body over the limit is refused for its size, not its syntax.
      const oversized = await request(callbackApp).post(path).set('Content-Type', 'application/json').send(`{"task_id": "${'x'.repeat(100_000)}`);
      expect([oversized.status, oversized.body.code]).to.deep.equal([413, 1200]);
      await expectUnsettled('submitted');
      // Nine images (the most one task makes), each behind a long signed CDN URL.
      h.sandbox.complete(a.taskId, { status: 'succeed' });
      const signed = (i: number) => `https://cdn.klingai.com/bs2/upload-kling-api/${i}/image.png?x-kcdn-pid=112452&Expires=1790000000&Signature=${'A'.repeat(1500)}`;
      const largest = { ...notice(a.taskId, a.externalTaskId, 'succeed'), task_result: { images: Array.from({ length: 9 }, (_, i) => ({ index: i, url: signed(i), watermark_url: signed(i) })) } };
      const res = await request(callbackApp).post(path).send(largest);
      expect(res.status).to.equal(200);
      expect((await h.tasks())[0]?.state).to.equal('succeed');
    });

    it('refuses a prefix of the right token, or the right token with characters added, with 401 and leaves the task as it was', async () => {
      const a = await submit();
      h.sandbox.complete(a.taskId, { status: 'succeed' });
      const right = callbackToken(CALLBACK_SECRET, a.externalTaskId);
      const task = encodeURIComponent(a.externalTaskId);
      for (const token of [right.slice(0, 63), right.slice(0, 32), right.slice(0, 1), `${right}0`, `${right}${right}`, `${right}%00`, `${right}%20`]) {
        for (const path of [`/kling/callback?task=${task}&token=${token}`, `/kling/callback?token=${token}`]) {
          const res = await request(callbackApp).post(path).send(notice(a.taskId, a.externalTaskId, 'succeed'));
          expect([res.status, res.body.code], path).to.deep.equal([401, 1002]);
        }
      }
      expect(klingQueries()).to.equal(0);
      await expectUnsettled('submitted');
      expect((await h.rows('videos'))[0]?.status).to.equal('submitted');
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

    describe('for a notice without task_info.external_task_id', () => {
      const bare = (taskId: string, status: string) => ({ task_id: taskId, task_status: status, task_status_msg: '', created_at: Date.now(), updated_at: Date.now() });

      it("finds the task its URL names, video or image, and demands that task's token", async () => {
        const a = await submit();
        const b = await submit();
        const image = await request(h.url).post('/kling/v1/images/generations').set('X-User-Id', String(user)).send({ prompt: 'a kite', n: 1 });
        expect(image.status).to.equal(200);
        const imageTask = (await h.tasks()).find((t) => t.kling_task_id === image.body.data.task_id);
        h.sandbox.complete(a.taskId, { status: 'succeed' });
        const urlOf = (externalTaskId: string, token: string) => `/kling/callback?task=${encodeURIComponent(externalTaskId)}&token=${token}`;
        expect((await request(callbackApp).post(urlOf(a.externalTaskId, callbackToken(CALLBACK_SECRET, b.externalTaskId))).send(bare(a.taskId, 'succeed'))).status).to.equal(401);
        expect((await request(callbackApp).post(urlOf(b.externalTaskId, callbackToken(CALLBACK_SECRET, a.externalTaskId))).send(bare(a.taskId, 'succeed'))).status).to.equal(401);
        // A body that names another task than the URL is not believed either.
        const other = await request(callbackApp).post(klingCallback(b.externalTaskId)).send(notice(a.taskId, a.externalTaskId, 'succeed'));
        expect([other.status, other.body.code]).to.deep.equal([400, 1200]);
        expect(klingQueries()).to.equal(0);
        expect((await request(callbackApp).post(klingCallback(a.externalTaskId)).send(bare(a.taskId, 'succeed'))).status).to.equal(200);
        expect((await request(callbackApp).post(klingCallback(String(imageTask?.external_task_id))).send(bare(String(image.body.data.task_id), 'processing'))).status).to.equal(200);
        const states = new Map((await h.tasks()).map((t) => [t.id, t.state]));
        expect([...states.values()]).to.deep.equal(['succeed', 'submitted', 'processing']);
        expect((await h.rows('videos')).map((r) => r.status)).to.deep.equal(['succeed', 'submitted']);
        expect((await h.rows('images')).map((r) => r.status)).to.deep.equal(['processing']);
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

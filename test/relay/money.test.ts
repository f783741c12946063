import { expect } from 'chai';
import type { Knex } from 'knex';
import request from 'supertest';
import { KnexQuotaStore } from '../../adapters/quota-store.js';
import { testDatabases } from '../support/databases.js';
import { startHarness, checkAndClose, type Harness } from '../support/harness.js';

const QPU = 500_000;
const START = 1_000_000;

for (const database of testDatabases()) {
  describe(`money paths on ${database.name}`, function () {
    let h: Harness;
    let user: number;

    beforeEach(async () => {
      h = await startHarness(database);
      user = await h.user(START);
    });
    afterEach(async () => checkAndClose(h));

    const post = (path: string, body: unknown, as: number = user) => request(h.url).post(`/kling${path}`).set('X-User-Id', String(as)).send(body as object);
    const money = async () => (await h.ledger()).map((l) => [l.kind, Number(l.amount)]);

    it('charges the seconds a shorter video delivered and refunds the rest, end to end', async () => {
      const res = await post('/v1/videos/text2video', { prompt: 'a kite', duration: '10' });
      expect(res.status).to.equal(200);
      const taskId = res.body.data.task_id as string;
      const hold = Math.round(0.01 * 10 * QPU);
      expect(await h.balance(user)).to.equal(START - hold);
      h.sandbox.complete(taskId, { status: 'succeed', duration: '7.3' });
      const done = await request(h.url).get(`/kling/v1/videos/text2video/${taskId}`).set('X-User-Id', String(user));
      expect(done.body.data.task_status).to.equal('succeed');
      // 7.3 s at 0.01 USD/s, every tenth of a second of it.
      const charge = 36_500;
      expect(await h.balance(user)).to.equal(START - charge);
      expect(await money()).to.deep.equal([['hold', -hold], ['settle', hold - charge]]);
      const [row] = await h.rows('videos');
      expect([Number(row?.quota), Number(row?.duration), row?.status]).to.deep.equal([charge, 7, 'succeed']);
      const [task] = await h.tasks();
      expect(Number(task?.charge_quota)).to.equal(charge);
    });

    const gets = () => h.sandbox.requests.filter((r) => r.method === 'GET');
    const hold = Math.round(0.01 * 5 * QPU);

    it('adopts a task Kling created although its create answered 5000, looking it up by external_task_id', async () => {
      h.sandbox.failNextCreateAfterCreating({ httpStatus: 500, code: 5000 });
      const res = await post('/v1/videos/text2video', { prompt: 'x', external_task_id: 'mine-5000' });
      expect(res.status).to.equal(200);
      const [made] = h.sandbox.tasks.all();
      expect(res.body.data).to.include({ task_id: made?.taskId, task_status: 'submitted' });
      expect(res.body.data.task_info).to.deep.equal({ external_task_id: 'mine-5000' });
      expect([h.creates().length, gets().length]).to.deep.equal([1, 1]);
      const [task] = await h.tasks();
      expect([task?.state, task?.kling_task_id]).to.deep.equal(['submitted', made?.taskId]);
      expect(await h.balance(user)).to.equal(START - hold);
      expect(await money()).to.deep.equal([['hold', -hold]]);
    });

    it('refunds a 5000 create at once when Kling does not have the task, after asking', async () => {
      h.sandbox.failNextCreate({ httpStatus: 500, code: 5000 });
      const res = await post('/v1/videos/text2video', { prompt: 'x' });
      expect([res.status, res.body.code]).to.deep.equal([502, 5000]);
      const [task] = await h.tasks();
      expect([h.creates().length, gets().map((g) => g.path)]).to.deep.equal([1, [`/v1/videos/text2video/${String(task?.external_task_id)}`]]);
      expect(task?.state).to.equal('failed');
      expect(await h.balance(user)).to.equal(START);
      expect(await money()).to.deep.equal([['hold', -hold], ['refund', hold]]);
    });

    it('leaves a 5002 create the lookup could not settle to the reconciler, which adopts it', async () => {
      h.sandbox.failNextCreateAfterCreating({ httpStatus: 504, code: 5002 });
      h.sandbox.failNextQuery('http-500');
      const res = await post('/v1/videos/text2video', { prompt: 'x' });
      expect([res.status, res.body.code]).to.deep.equal([502, 5000]);
      const [pending] = await h.tasks();
      expect([pending?.state, pending?.kling_task_id]).to.deep.equal(['pending', null]);
      expect(await h.balance(user)).to.equal(START - hold);
      await h.db('kling_relay_tasks').update({ next_check_at: 0 });
      expect(await h.relay.reconcile()).to.include({ claimed: 1, adopted: 1 });
      const [task] = await h.tasks();
      expect([task?.state, task?.kling_task_id]).to.deep.equal(['submitted', h.sandbox.tasks.all()[0]?.taskId]);
      expect(h.creates()).to.have.length(1);
      expect(await money()).to.deep.equal([['hold', -hold]]);
    });

    it('answers a resent submit with the first task: same body, same external_task_id, one hold, one Kling create', async () => {
      const body = { prompt: 'a kite', duration: '5', external_task_id: 'resend-1' };
      const first = await post('/v1/videos/text2video', body);
      expect(first.status).to.equal(200);
      const again = await post('/v1/videos/text2video', { external_task_id: 'resend-1', duration: '5', prompt: 'a kite' });
      expect(again.status).to.equal(200);
      expect(again.body.code).to.equal(0);
      expect(again.body.data).to.include({ task_id: first.body.data.task_id, task_status: 'submitted' });
      expect(again.body.data.task_info).to.deep.equal({ external_task_id: 'resend-1' });
      expect([h.creates().length, (await h.tasks()).length, (await h.rows('videos')).length]).to.deep.equal([1, 1, 1]);
      expect(await money()).to.deep.equal([['hold', -hold]]);
      expect(await h.balance(user)).to.equal(START - hold);
    });

    it('keeps a request hash only for a submit that names its external_task_id: the hash is what a resend is checked against', async () => {
      expect((await post('/v1/videos/text2video', { prompt: 'a kite', duration: '5' })).status).to.equal(200);
      expect((await post('/v1/videos/text2video', { prompt: 'a kite', duration: '5', external_task_id: 'hashed-1' })).status).to.equal(200);
      const tasks = await h.tasks();
      expect(tasks.map((t) => [t.client_task_id, typeof t.request_hash === 'string' && /^[0-9a-f]{64}$/.test(t.request_hash)])).to.deep.equal([
        [null, false],
        ['hashed-1', true],
      ]);
      expect(tasks[0]?.request_hash).to.equal(null);
    });

    it('answers 5 concurrent identical submits with one task: one hold, one Kling create, five answers with its task_id', async () => {
      const body = { prompt: 'a kite', external_task_id: 'burst-1' };
      const answers = await Promise.all(Array.from({ length: 5 }, () => post('/v1/videos/text2video', body)));
      expect(answers.map((a) => a.status)).to.deep.equal([200, 200, 200, 200, 200]);
      const [made] = h.sandbox.tasks.all();
      expect(answers.map((a) => a.body.data.task_id)).to.deep.equal(Array(5).fill(made?.taskId));
      expect(answers.map((a) => a.body.data.task_info.external_task_id)).to.deep.equal(Array(5).fill('burst-1'));
      expect([h.creates().length, (await h.tasks()).length, (await h.rows('videos')).length]).to.deep.equal([1, 1, 1]);
      expect(await money()).to.deep.equal([['hold', -hold]]);
      expect(await h.balance(user)).to.equal(START - hold);
    });

    it('refuses a different body with a used external_task_id: 400/1201 naming the field, nothing left behind', async () => {
      expect((await post('/v1/videos/text2video', { prompt: 'a kite', external_task_id: 'used-1' })).status).to.equal(200);
      const other = await post('/v1/videos/text2video', { prompt: 'a boat', external_task_id: 'used-1' });
      expect([other.status, other.body.code]).to.deep.equal([400, 1201]);
      expect(other.body.errors.map((e: { path: string }) => e.path)).to.deep.equal(['/external_task_id']);
      const elsewhere = await post('/v1/images/generations', { prompt: 'a kite', external_task_id: 'used-1' });
      expect([elsewhere.status, elsewhere.body.code]).to.deep.equal([400, 1201]);
      expect([h.creates().length, (await h.tasks()).length, (await h.rows('videos')).length, (await h.rows('images')).length]).to.deep.equal([1, 1, 1, 0]);
      expect(await money()).to.deep.equal([['hold', -hold]]);
      // Another caller's ids are its own.
      const bob = await h.user(START);
      expect((await post('/v1/videos/text2video', { prompt: 'a boat', external_task_id: 'used-1' }, bob)).status).to.equal(200);
    });

    it('leaves the host row of a refused create with quota 0 and the fail_reason', async () => {
      h.sandbox.failNextCreate({ httpStatus: 400, code: 1301, message: 'content security policy triggered' });
      const res = await post('/v1/videos/text2video', { prompt: 'x' });
      expect([res.status, res.body.code]).to.deep.equal([400, 1301]);
      const [row] = await h.rows('videos');
      expect([row?.status, Number(row?.quota), row?.fail_reason]).to.deep.equal(['failed', 0, 'submit failed: content security policy triggered']);
      expect(await h.balance(user)).to.equal(START);
      expect(await money()).to.deep.equal([['hold', -Math.round(0.01 * 5 * QPU)], ['refund', Math.round(0.01 * 5 * QPU)]]);
    });
  });
}

/** A host's store that refuses to hold for frozen users, as a host with account freezes would write one. */
class FreezingQuotaStore extends KnexQuotaStore {
  readonly frozen = new Set<string>();

  override async hold(trx: Knex.Transaction, userId: string, amount: number): Promise<boolean> {
    if (this.frozen.has(userId)) return false;
    return super.hold(trx, userId, amount);
  }
}

for (const database of testDatabases()) {
  describe(`a host's own quota store on ${database.name}`, function () {
    let h: Harness;
    const store = new FreezingQuotaStore();

    beforeEach(async () => {
      h = await startHarness(database, { relay: { quota: store } });
    });
    afterEach(async () => checkAndClose(h));

    it("holds through the host store's hold(): a frozen user is refused 402/1102 and nothing is left", async () => {
      const user = await h.user(START);
      store.frozen.add(String(user));
      const res = await request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ prompt: 'x' });
      expect([res.status, res.body.code]).to.deep.equal([402, 1102]);
      expect(await h.balance(user)).to.equal(START);
      expect([await h.rows('videos'), await h.tasks(), await h.ledger(), h.creates()]).to.deep.equal([[], [], [], []]);
      store.frozen.delete(String(user));
      const thawed = await request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ prompt: 'x' });
      expect(thawed.status).to.equal(200);
      expect(await h.balance(user)).to.equal(START - Math.round(0.01 * 5 * QPU));
    });
  });
}

for (const database of testDatabases()) {
  describe(`a hold that commits after the database deadline on ${database.name}`, function () {
    let h: Harness;

    beforeEach(async () => {
      h = await startHarness(database, { relay: { dbTimeoutMs: 300 } });
    });
    afterEach(async () => checkAndClose(h));

    it('is refunded without a POST, and its host row has quota 0 and the fail_reason', async () => {
      const user = await h.user(START);
      // Another writer holds the caller's row (on SQLite: the one connection) past the deadline.
      const blocker = await h.db.transaction();
      await blocker('users').where({ id: user }).update({ username: 'busy' });
      const res = await request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ prompt: 'x' });
      expect([res.status, res.body.code]).to.deep.equal([503, 5001]);
      await blocker.commit();
      let row: Record<string, unknown> | undefined;
      for (const until = Date.now() + 5_000; Date.now() < until; await new Promise((r) => setTimeout(r, 20))) {
        [row] = await h.rows('videos');
        if (row?.status === 'failed') break;
      }
      expect([row?.status, Number(row?.quota)]).to.deep.equal(['failed', 0]);
      expect(String(row?.fail_reason)).to.match(/after the database deadline/);
      expect(h.creates()).to.deep.equal([]);
      expect(await h.balance(user)).to.equal(START);
    });
  });
}

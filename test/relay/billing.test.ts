import { expect } from 'chai';
import request from 'supertest';
import { testDatabases } from '../support/databases.js';
import { startHarness, checkAndClose, type Harness } from '../support/harness.js';

const QPU = 500_000;

for (const database of testDatabases()) {
  describe(`billing 'charge-on-success' on ${database.name}`, function () {
    let h: Harness;
    let user: number;
    const start = 1_000_000;
    const price = Math.round(0.01 * 5 * QPU);

    beforeEach(async () => {
      h = await startHarness(database, { relay: { billing: 'charge-on-success' } });
      user = await h.user(start);
    });
    afterEach(async () => checkAndClose(h));

    const submit = (as = user) => request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(as)).send({ prompt: 'a kite' });
    const query = (taskId: string, as = user) => request(h.url).get(`/kling/v1/videos/text2video/${taskId}`).set('X-User-Id', String(as));

    it('checks the balance at submit and charges only on success, as seed 004 does', async () => {
      const res = await submit();
      expect(res.status).to.equal(200);
      expect(await h.balance(user)).to.equal(start);
      expect(await h.ledger()).to.deep.equal([]);
      h.sandbox.complete(res.body.data.task_id as string, { status: 'succeed' });
      expect((await query(res.body.data.task_id as string)).body.data.task_status).to.equal('succeed');
      expect(await h.balance(user)).to.equal(start - price);
      expect((await h.ledger()).map((l) => [l.kind, Number(l.amount)])).to.deep.equal([['settle', -price]]);
      const [usedRow] = (await h.db('users').where({ id: user })) as { used_quota: number | string }[];
      expect(Number(usedRow?.used_quota)).to.equal(price);
    });

    it('charges nothing for a failed task', async () => {
      const res = await submit();
      h.sandbox.complete(res.body.data.task_id as string, { status: 'failed', message: 'moderation' });
      expect((await query(res.body.data.task_id as string)).body.data.task_status).to.equal('failed');
      expect(await h.balance(user)).to.equal(start);
      expect((await h.ledger()).map((l) => [l.kind, Number(l.amount)])).to.deep.equal([['refund', 0]]);
    });

    it('counts the tasks still in flight: of 5 concurrent submits against a balance for one, one is accepted and the balance never goes negative', async () => {
      const poor = await h.user(price);
      const results = await Promise.all(Array.from({ length: 5 }, () => submit(poor)));
      expect(results.map((r) => r.status).sort()).to.deep.equal([200, 402, 402, 402, 402]);
      expect(results.filter((r) => r.status === 402).map((r) => r.body.code)).to.deep.equal([1102, 1102, 1102, 1102]);
      expect(h.creates()).to.have.length(1);
      expect(await h.tasks()).to.have.length(1);
      // While it runs, another submit is refused too: its estimate is spoken for.
      expect((await submit(poor)).status).to.equal(402);
      const accepted = results.find((r) => r.status === 200);
      h.sandbox.complete(accepted?.body.data.task_id as string, { status: 'succeed' });
      expect((await query(accepted?.body.data.task_id as string, poor)).body.data.task_status).to.equal('succeed');
      expect(await h.balance(poor)).to.equal(0);
    });

    it("frees a task's estimate once it is final", async () => {
      const two = await h.user(2 * price);
      const first = await submit(two);
      expect((await submit(two)).status).to.equal(200);
      expect((await submit(two)).status).to.equal(402);
      h.sandbox.complete(first.body.data.task_id as string, { status: 'failed', message: 'moderation' });
      expect((await query(first.body.data.task_id as string, two)).body.data.task_status).to.equal('failed');
      expect((await submit(two)).status).to.equal(200);
      expect(await h.balance(two)).to.equal(2 * price);
    });

    it('refuses a caller whose balance does not cover the estimate with 402/1102', async () => {
      const poor = await h.user(price - 1);
      const res = await submit(poor);
      expect([res.status, res.body.code]).to.deep.equal([402, 1102]);
      expect(await h.tasks()).to.deep.equal([]);
    });
  });
}

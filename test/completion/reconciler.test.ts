import { expect } from 'chai';
import request from 'supertest';
import { testDatabases } from '../support/databases.js';
import { startHarness, checkAndClose, type Harness } from '../support/harness.js';

const QPU = 500_000;

for (const database of testDatabases()) {
  describe(`reconciler on ${database.name}`, function () {
    let h: Harness;
    let user: number;
    const start = 1_000_000;
    const hold = Math.round(0.01 * 5 * QPU);

    beforeEach(async () => {
      h = await startHarness(database);
      user = await h.user(start);
    });
    afterEach(async () => checkAndClose(h));

    const submit = () => request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ prompt: 'a kite' });
    /** Time passes: every task is due for a check. */
    const makeDue = () => h.db('kling_relay_tasks').update({ next_check_at: 0 });
    const ledgerHolds = async () => (await h.ledger()).reduce((sum, l) => sum + Number(l.amount), 0) === (await h.balance(user)) - start;

    it('settles a task whose callback never came', async () => {
      const res = await submit();
      h.sandbox.complete(res.body.data.task_id as string, { status: 'succeed' });
      await makeDue();
      const report = await h.relay.reconcile();
      expect(report).to.include({ claimed: 1, finished: 1, errors: 0 });
      expect((await h.tasks())[0]?.state).to.equal('succeed');
      expect((await h.ledger()).map((l) => l.kind)).to.deep.equal(['hold', 'settle']);
      expect(await ledgerHolds()).to.equal(true);
      // Final tasks are not claimed again.
      await makeDue();
      expect((await h.relay.reconcile()).claimed).to.equal(0);
    });

    it('leaves a task that is still running for a later pass, further out each time', async () => {
      await submit();
      await makeDue();
      expect(await h.relay.reconcile()).to.include({ claimed: 1, finished: 0 });
      const [task] = await h.tasks();
      expect(task?.state).to.equal('submitted');
      expect(Number(task?.check_count)).to.equal(1);
      expect(Number(task?.next_check_at)).to.be.greaterThan(Date.now());
      expect(task?.lease_owner).to.equal(null);
    });

    it('adopts a task whose create answer was lost, by external_task_id, without posting again', async () => {
      h.sandbox.hangNextCreate();
      const res = await submit();
      expect(res.status).to.equal(504);
      await makeDue();
      const report = await h.relay.reconcile();
      expect(report).to.include({ adopted: 1, errors: 0 });
      const [task] = await h.tasks();
      const created = h.sandbox.tasks.all()[0];
      expect(task?.kling_task_id).to.equal(created?.taskId);
      expect(task?.state).to.equal('submitted');
      expect(h.creates()).to.have.length(1);
      h.sandbox.complete(String(created?.taskId), { status: 'succeed' });
      await makeDue();
      expect((await h.relay.reconcile()).finished).to.equal(1);
      expect(await h.balance(user)).to.equal(start - hold);
    });

    it('fails and refunds a task Kling never received', async () => {
      h.sandbox.hangNextCreate();
      await submit();
      h.sandbox.reset(); // Kling lost it
      await makeDue();
      expect(await h.relay.reconcile()).to.include({ expired: 1 });
      expect((await h.tasks())[0]?.state).to.equal('failed');
      expect(await h.balance(user)).to.equal(start);
      expect(await ledgerHolds()).to.equal(true);
    });

    it('fails and refunds a task past its timeout, or settles it if Kling says it succeeded at the last check', async () => {
      await h.close();
      h = await startHarness(database, { relay: { reconciler: { intervalMs: 1000, taskTimeoutMs: 1 } } });
      user = await h.user(start);
      const stuck = await submit();
      const done = await submit();
      h.sandbox.complete(done.body.data.task_id as string, { status: 'succeed' });
      await new Promise((resolve) => setTimeout(resolve, 5));
      await makeDue();
      expect(await h.relay.reconcile()).to.include({ finished: 1, expired: 1 });
      const tasks = await h.tasks();
      expect(tasks.find((t) => t.kling_task_id === stuck.body.data.task_id)?.state).to.equal('failed');
      expect(tasks.find((t) => t.kling_task_id === done.body.data.task_id)?.state).to.equal('succeed');
      expect(await h.balance(user)).to.equal(start - hold);
    });

    it('lets two relay processes on one database query each task once per pass', async () => {
      const second = h.anotherRelay();
      try {
        const ids: string[] = [];
        for (let i = 0; i < 8; i++) ids.push((await submit()).body.data.task_id as string);
        await makeDue();
        const [a, b] = await Promise.all([h.relay.reconcile(), second.reconcile()]);
        expect((a?.claimed ?? 0) + (b?.claimed ?? 0)).to.equal(8);
        // Each task checked by one of them: once each, with one Kling call per process (a list query of
        // the endpoint, or the single query of a lone task).
        expect((await h.tasks()).map((t) => Number(t.check_count))).to.deep.equal(ids.map(() => 1));
        const queries = h.sandbox.requests.filter((r) => r.method === 'GET');
        expect(queries.length).to.be.at.most(2);
        for (const id of ids) expect(queries.filter((r) => r.path.endsWith(`/${id}`)).length, id).to.be.at.most(1);
      } finally {
        second.close();
      }
    });
  });
}

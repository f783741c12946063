import { expect } from 'chai';
import request from 'supertest';
import { testDatabases } from '../support/databases.js';
import { checkAndClose, startHarness, type Harness } from '../support/harness.js';
import { allowHostStatus, refuseHostStatus } from '../support/host-triggers.js';

const QPU = 500_000;
for (const database of testDatabases()) {
  describe(`a status change the host row refuses, with a client callback_url, on ${database.name}`, function () {
    let h: Harness;
    let user: number;
    const start = 1_000_000;
    const hold = Math.round(0.01 * 5 * QPU);

    beforeEach(async () => {
      h = await startHarness(database);
      user = await h.user(start);
    });
    afterEach(async () => checkAndClose(h));

    async function submit(): Promise<string> {
      // Loopback: the delivery refuses to connect, so the notices stay in the outbox to be read.
      const res = await request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ prompt: 'a kite', callback_url: 'http://127.0.0.1:9/hook' });
      expect(res.status).to.equal(200);
      return res.body.data.task_id as string;
    }
    const makeDue = () => h.db('kling_relay_tasks').update({ next_check_at: 0 });
    const notices = async () => ((await h.db('kling_relay_outbox').select('status').orderBy('id')) as { status: string }[]).map((n) => n.status);

    /** Nothing of the refused change is left: its notice, the task's state, the ledger and the balance are as before. */
    async function expectUnchanged(): Promise<void> {
      expect(await notices(), 'outbox').to.deep.equal(['submitted']);
      const [task] = await h.tasks();
      const [row] = await h.rows('videos');
      expect(task?.state).to.equal('submitted');
      expect(row?.status).to.equal('submitted');
      expect((await h.ledger()).map((l) => l.kind)).to.deep.equal(['hold']);
      expect(await h.balance(user)).to.equal(start - hold);
    }

    it('a final transition whose host-row update fails after its notice was written leaves no notice, no state change, no money moved', async () => {
      const klingTaskId = await submit();
      await refuseHostStatus(database, h.db, 'succeed');
      h.sandbox.complete(klingTaskId, { status: 'succeed' });
      await makeDue();
      expect(await h.relay.reconcile()).to.include({ claimed: 1, finished: 0, errors: 1 });
      await expectUnchanged();
      // Once the host row takes it, the same change goes through, with its notice.
      await allowHostStatus(database, h.db);
      await makeDue();
      expect(await h.relay.reconcile()).to.include({ finished: 1, errors: 0 });
      expect(await notices()).to.deep.equal(['submitted', 'succeed']);
      expect(await h.balance(user)).to.equal(start - hold);
    });

    it("Kling's answer to a create the database refused is written again within seconds, not left to the reconciler", async () => {
      await refuseHostStatus(database, h.db, 'submitted');
      // Kling has the task: the caller gets its id, as when the write succeeds.
      const klingTaskId = await submit();
      expect((await h.tasks()).map((t) => [t.state, t.kling_task_id])).to.deep.equal([['pending', null]]);
      expect(await notices()).to.deep.equal([]);
      await allowHostStatus(database, h.db);
      // No reconciler runs here; the task's next check is at the answer deadline, 45 s away.
      const started = Date.now();
      while (Date.now() - started < 5_000 && (await h.tasks())[0]?.kling_task_id === null) await new Promise((resolve) => setTimeout(resolve, 50));
      expect((await h.tasks()).map((t) => [t.state, t.kling_task_id])).to.deep.equal([['submitted', klingTaskId]]);
      expect((await h.rows('videos')).map((r) => [r.task_id, r.status])).to.deep.equal([[klingTaskId, 'submitted']]);
      expect(await notices()).to.deep.equal(['submitted']);
      const query = await request(h.url).get(`/kling/v1/videos/text2video/${klingTaskId}`).set('X-User-Id', String(user));
      expect([query.status, query.body.data?.task_status]).to.deep.equal([200, 'submitted']);
      expect(await h.balance(user)).to.equal(start - hold);
    });

    it('a non-final change whose host-row update fails leaves no notice and no state change', async () => {
      const klingTaskId = await submit();
      await refuseHostStatus(database, h.db, 'processing');
      h.sandbox.setStatus(klingTaskId, 'processing');
      await makeDue();
      expect(await h.relay.reconcile()).to.include({ claimed: 1, progressed: 0, errors: 1 });
      await expectUnchanged();
      await allowHostStatus(database, h.db);
      await makeDue();
      expect(await h.relay.reconcile()).to.include({ progressed: 1, errors: 0 });
      expect(await notices()).to.deep.equal(['submitted', 'processing']);
      expect((await h.tasks())[0]?.state).to.equal('processing');
    });
  });
}

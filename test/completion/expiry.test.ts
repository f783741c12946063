import { expect } from 'chai';
import request from 'supertest';
import type { KlingRelay } from '../../lib/index.js';
import { testDatabases } from '../support/databases.js';
import { checkAndClose, startHarness, type Harness } from '../support/harness.js';
import { recordingLogger } from '../support/logger.js';

const QPU = 500_000;
/** The default reconciler.taskTimeoutMs. */
const TIMEOUT_MS = 86_400_000;


for (const database of testDatabases()) {
  describe(`no hold lives forever on ${database.name}`, function () {
    let h: Harness;
    let log: ReturnType<typeof recordingLogger>;
    let user: number;
    let relay: KlingRelay;
    let failed: { taskId: number; reason: string }[];
    const others: KlingRelay[] = [];
    const start = 1_000_000;
    const hold = Math.round(0.01 * 5 * QPU);

    beforeEach(async () => {
      log = recordingLogger();
      h = await startHarness(database, { relay: { logger: log } });
      user = await h.user(start);
      useRelay(h.relay);
    });
    afterEach(async () => {
      for (const other of others.splice(0)) other.close();
      await checkAndClose(h);
    });

    /** The relay instance whose reconciler the test runs, and whose `failed` events it records. */
    function useRelay(r: KlingRelay): KlingRelay {
      relay = r;
      failed = [];
      r.events.on('failed', (e) => failed.push({ taskId: e.taskId, reason: e.reason }));
      if (r !== h.relay) others.push(r);
      return r;
    }

    async function submit(): Promise<{ klingTaskId: string; id: number }> {
      const res = await request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ prompt: 'a kite' });
      expect(res.status).to.equal(200);
      const klingTaskId = res.body.data.task_id as string;
      return { klingTaskId, id: Number((await h.tasks()).find((t) => t.kling_task_id === klingTaskId)?.id) };
    }
    const makeDue = () => h.db('kling_relay_tasks').update({ next_check_at: 0 });
    /** The task was created longer ago than taskTimeoutMs. */
    const outlive = (id: number) => h.db('kling_relay_tasks').where({ id }).update({ created_at: Date.now() - TIMEOUT_MS - 60_000 });

    /** A check that fails before the timeout: an error, the hold stays, the task is checked again later. */
    async function expectKeptAfterFailedCheck(id: number): Promise<void> {
      await makeDue();
      expect(await relay.reconcile()).to.include({ claimed: 1, errors: 1, expired: 0, finished: 0 });
      const task = (await h.tasks()).find((t) => Number(t.id) === id);
      expect(task?.state).to.equal('submitted');
      expect(Number(task?.next_check_at)).to.be.greaterThan(Date.now());
      expect((await h.ledger()).map((l) => l.kind)).to.deep.equal(['hold']);
      expect(await h.balance(user)).to.equal(start - hold);
      expect(log.lines.filter((l) => l.level === 'warn' && l.message === 'reconcile check failed' && l.meta.taskId === id)).to.have.length(1);
      expect(failed).to.deep.equal([]);
    }

    /** The check that fails past the timeout ends the task: failed, refunded, logged at error, an event with the reason. */
    async function expectExpiredAfterFailedCheck(id: number, why: RegExp): Promise<void> {
      await outlive(id);
      await makeDue();
      expect(await relay.reconcile()).to.include({ claimed: 1, errors: 0, expired: 1 });
      const task = (await h.tasks()).find((t) => Number(t.id) === id);
      const row = (await h.rows('videos')).find((r) => Number(r.id) === Number(task?.host_row_id));
      expect(task?.state).to.equal('failed');
      expect(row?.status).to.equal('failed');
      expect(Number(row?.quota)).to.equal(0);
      expect(String(row?.fail_reason)).to.match(why);
      expect((await h.ledger()).map((l) => l.kind)).to.deep.equal(['hold', 'refund']);
      expect(await h.balance(user)).to.equal(start);
      const errors = log.lines.filter((l) => l.level === 'error' && l.meta.taskId === id);
      expect(errors.map((l) => l.message)).to.deep.equal(['task expired: failed and refunded']);
      expect(String(errors[0]?.meta.reason)).to.match(why);
      expect(failed).to.have.length(1);
      expect(failed[0]?.taskId).to.equal(id);
      expect(failed[0]?.reason).to.match(why);
      // Final: no pass claims it again.
      await makeDue();
      expect((await relay.reconcile()).claimed).to.equal(0);
    }

    it("ends a task whose account was removed from the configuration, once past taskTimeoutMs", async () => {
      const { id } = await submit();
      const keys = h.keys['acct-1'];
      if (!keys) throw new Error('no keys for acct-1');
      useRelay(h.anotherRelay({ logger: log, accounts: [{ id: 'acct-2', accessKey: keys.accessKey, secretKey: keys.secretKey, baseUrl: h.sandbox.url }] }));
      await expectKeptAfterFailedCheck(id);
      await expectExpiredAfterFailedCheck(id, /account acct-1 is no longer configured/);
    });

    it('a task Kling answers 404/1203 for although its Kling id is known: an error on a query and a reconcile, the hold kept; ended once past taskTimeoutMs', async () => {
      const { klingTaskId, id } = await submit();
      h.sandbox.loseTask(klingTaskId);
      // The caller's query asks Kling (never checked yet), is told not found, and answers from the row.
      const answer = await request(h.url).get(`/kling/v1/videos/text2video/${klingTaskId}`).set('X-User-Id', String(user));
      expect(answer.status).to.equal(200);
      expect(answer.body.data).to.include({ task_id: klingTaskId, task_status: 'submitted' });
      expect(log.lines.filter((l) => l.level === 'warn' && l.message === 'task refresh failed' && l.meta.taskId === id)).to.have.length(1);
      expect(await h.balance(user)).to.equal(start - hold);
      await expectKeptAfterFailedCheck(id);
      await expectExpiredAfterFailedCheck(id, /1203|not found/i);
      // Kling was asked each time: by the query and by both checks.
      expect(h.sandbox.requests.filter((r) => r.method === 'GET' && r.path.endsWith(`/${klingTaskId}`))).to.have.length(3);
    });

    it('a task Kling keeps answering an unknown status for: an error, then ended once past taskTimeoutMs', async () => {
      const { id } = await submit();
      h.sandbox.failNextQuery('unknown-status');
      await expectKeptAfterFailedCheck(id);
      h.sandbox.failNextQuery('unknown-status');
      await expectExpiredAfterFailedCheck(id, /unknown task_status "weird"/);
    });

    it('a task whose Kling is unreachable: an error, then ended once past taskTimeoutMs', async () => {
      const { id } = await submit();
      const keys = h.keys['acct-1'];
      if (!keys) throw new Error('no keys for acct-1');
      // Port 9 (discard) has no listener here: the connection is refused.
      useRelay(h.anotherRelay({ logger: log, accounts: [{ id: 'acct-1', accessKey: keys.accessKey, secretKey: keys.secretKey, baseUrl: 'http://127.0.0.1:9' }] }));
      await expectKeptAfterFailedCheck(id);
      await expectExpiredAfterFailedCheck(id, /last check failed/);
    });
  });
}

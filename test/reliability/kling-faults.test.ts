import { expect } from 'chai';
import express from 'express';
import request from 'supertest';
import winston from 'winston';
import Transport from 'winston-transport';
import { callbackToken } from '../../lib/completion/token.js';
import type { QueryFault } from '../../lib/sandbox/index.js';
import { testDatabases } from '../support/databases.js';
import { CALLBACK_SECRET, checkAndClose, startHarness, type Harness } from '../support/harness.js';

const QPU = 500_000;
const HOLD = Math.round(0.01 * 5 * QPU);
const START = 1_000_000;

/** A winston transport that keeps every line, so a test can read what an operator would. */
class Lines extends Transport {
  readonly lines: Record<string, unknown>[] = [];
  override log(info: Record<string, unknown>, next: () => void): void {
    this.lines.push(info);
    next();
  }
}

for (const database of testDatabases()) {
  describe(`Kling faults on ${database.name}`, function () {
    this.timeout(20_000);
    let h: Harness;
    let user: number;
    let logs: Lines;

    beforeEach(async () => {
      logs = new Lines();
      h = await startHarness(database, { relay: { logger: winston.createLogger({ level: 'debug', transports: [logs] }) } });
      user = await h.user(START);
    });
    afterEach(async () => checkAndClose(h));

    const submit = () => request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ prompt: 'a kite' });
    const makeDue = () => h.db('kling_relay_tasks').update({ next_check_at: 0, checked_at: 0 });

    it('Kling resets the connection after reading a create: no second POST, the reconciler adopts the task by external_task_id and settles it', async () => {
      h.sandbox.resetNextCreate();
      const res = await submit();
      expect([res.status, res.body.code]).to.deep.equal([502, 5000]);
      expect(h.creates()).to.have.length(1);
      const [kling] = h.sandbox.tasks.all();
      const [pending] = await h.tasks();
      // The hold stays: Kling may have the task. It is known by our external_task_id only.
      expect([pending?.state, pending?.kling_task_id]).to.deep.equal(['pending', null]);
      expect(kling?.externalTaskId).to.equal(pending?.external_task_id);
      expect(await h.balance(user)).to.equal(START - HOLD);

      await makeDue();
      expect(await h.relay.reconcile()).to.include({ adopted: 1, errors: 0 });
      const [adopted] = await h.tasks();
      expect([adopted?.state, adopted?.kling_task_id]).to.deep.equal(['submitted', kling?.taskId]);
      expect((await h.rows('videos'))[0]?.task_id).to.equal(kling?.taskId);

      h.sandbox.complete(kling?.taskId ?? '', { status: 'succeed' });
      await makeDue();
      expect(await h.relay.reconcile()).to.include({ finished: 1 });
      expect(h.creates(), 'never posted again').to.have.length(1);
      expect((await h.ledger()).map((l) => l.kind)).to.deep.equal(['hold', 'settle']);
    });

    const faults: QueryFault[] = ['garbage', 'unknown-status', 'no-data', 'huge'];
    for (const fault of faults) {
      it(`Kling answers a query with ${fault}: transient for the reconciler, a query refresh and a callback confirm; nothing moves until a good answer`, async () => {
        const res = await submit();
        const taskId = res.body.data.task_id as string;
        // Kling really finished the task; only its answers about it are broken.
        h.sandbox.complete(taskId, { status: 'succeed' });
        const unchanged = async (): Promise<void> => {
          const [task] = await h.tasks();
          expect(task?.state, fault).to.equal('submitted');
          expect((await h.ledger()).map((l) => l.kind)).to.deep.equal(['hold']);
          expect(await h.balance(user)).to.equal(START - HOLD);
          expect((await h.rows('videos'))[0]?.status).to.equal('submitted');
        };

        h.sandbox.failNextQuery(fault);
        await makeDue();
        expect(await h.relay.reconcile()).to.include({ claimed: 1, finished: 0, errors: 1 });
        await unchanged();

        h.sandbox.failNextQuery(fault);
        await makeDue();
        const query = await request(h.url).get(`/kling/v1/videos/text2video/${taskId}`).set('X-User-Id', String(user));
        // Served from the database: the caller still sees the task, as it was.
        expect([query.status, query.body.data.task_status]).to.deep.equal([200, 'submitted']);
        await unchanged();

        const [task] = await h.tasks();
        const callbackApp = express().post('/kling/callback', h.relay.callback);
        h.sandbox.failNextQuery(fault);
        const notice = { task_id: taskId, task_status: 'succeed', task_info: { external_task_id: task?.external_task_id } };
        const confirmed = await request(callbackApp).post(`/kling/callback?token=${callbackToken(CALLBACK_SECRET, String(task?.external_task_id))}`).send(notice);
        // Not 200: Kling retries the notice; nothing was settled on a broken confirmation.
        expect([confirmed.status, confirmed.body.code]).to.deep.equal([502, 5000]);
        await unchanged();

        if (fault === 'huge') {
          // The client stops reading at its cap (16 MiB) instead of buffering Kling's 20 MB.
          const capped = logs.lines.filter((l) => /over the \d+-byte limit/.test(String(l.error ?? l.message)));
          expect(capped.length, 'reconcile line naming the cap').to.be.at.least(1);
        }

        await makeDue();
        expect(await h.relay.reconcile()).to.include({ finished: 1, errors: 0 });
        expect((await h.ledger()).map((l) => l.kind)).to.deep.equal(['hold', 'settle']);
      });
    }
  });
}

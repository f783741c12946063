import { expect } from 'chai';
import type { Knex } from 'knex';
import request from 'supertest';
import type { TaskTransition } from '../../lib/index.js';
import { testDatabases } from '../support/databases.js';
import { checkAndClose, startHarness, type Harness } from '../support/harness.js';

const HOLD = Math.round(0.01 * 5 * 500_000);
const START = 1_000_000;

/**
 * A host's settle hook: it writes its own audit row, then throws while `failing` is set, as a host's
 * write that breaks (a full disk, a constraint) would.
 */
function auditHook(state: { failing: boolean; seen: TaskTransition[] }) {
  return async (trx: Knex.Transaction, change: TaskTransition): Promise<void> => {
    state.seen.push(change);
    await trx('host_audit').insert({ task_id: change.taskId, to_state: change.to, charge: change.charge, refund: change.refund });
    if (state.failing) throw new Error('the host could not write its log');
  };
}

for (const database of testDatabases()) {
  describe(`onTransition, in the transaction of a task's final transition, on ${database.name}`, function () {
    let h: Harness;
    let state: { failing: boolean; seen: TaskTransition[] };

    beforeEach(async () => {
      state = { failing: false, seen: [] };
      h = await startHarness(database, { accounts: [{ id: 'kling-main', channelId: 12 }], relay: { onTransition: auditHook(state) } });
      await h.db.schema.dropTableIfExists('host_audit');
      await h.db.schema.createTable('host_audit', (t) => {
        t.increments('id');
        t.integer('task_id').notNullable();
        t.string('to_state', 16).notNullable();
        t.bigInteger('charge').notNullable();
        t.bigInteger('refund').notNullable();
      });
    });
    afterEach(async () => {
      await h.db.schema.dropTableIfExists('host_audit');
      await checkAndClose(h);
    });

    async function submit(user: number): Promise<string> {
      const res = await request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ prompt: 'a heron in the reeds', duration: '5' });
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      return res.body.data.task_id as string;
    }

    async function pass(): Promise<{ finished: number; errors: number }> {
      await h.db('kling_relay_tasks').update({ next_check_at: 0 }); // time passes: the task is due
      return h.relay.reconcile();
    }

    it('hands the settle to the hook with the task, user, channel, hold and charge, and commits its writes with it', async () => {
      const user = await h.user(START);
      const klingId = await submit(user);
      h.sandbox.complete(klingId, { status: 'succeed' });
      expect((await pass()).finished).to.equal(1);

      expect(state.seen).to.have.length(1);
      const [task] = await h.tasks();
      expect(state.seen[0]).to.deep.include({
        taskId: Number(task?.id),
        klingTaskId: klingId,
        table: 'video',
        hostTable: 'videos',
        userId: String(user),
        accountId: 'kling-main',
        channelId: 12,
        type: 'text2video',
        from: 'submitted',
        to: 'succeed',
        billing: 'hold',
        hold: HOLD,
        charge: HOLD,
        refund: 0,
      });
      const audit = (await h.db('host_audit').select('to_state', 'charge')) as { to_state: string; charge: number | string }[];
      expect(audit.map((a) => [a.to_state, Number(a.charge)])).to.deep.equal([['succeed', HOLD]]);
    });

    it('hands a failure to the hook with the refund', async () => {
      const user = await h.user(START);
      const klingId = await submit(user);
      h.sandbox.complete(klingId, { status: 'failed', message: 'content risk' });
      await pass();
      expect(state.seen.map((c) => [c.to, c.charge, c.refund])).to.deep.equal([['failed', 0, HOLD]]);
      expect(await h.balance(user)).to.equal(START);
    });

    it('rolls the whole settle back when the hook throws, and settles on a later pass', async () => {
      const user = await h.user(START);
      const klingId = await submit(user);
      h.sandbox.complete(klingId, { status: 'succeed' });
      state.failing = true;
      const failed = await pass();
      expect([failed.finished, failed.errors]).to.deep.equal([0, 1]);

      const [task] = await h.tasks();
      expect(task).to.include({ state: 'submitted', charge_quota: null });
      expect(task?.next_check_at, 'rescheduled for a later pass').to.not.equal(null);
      const [row] = await h.rows('videos');
      expect(row).to.include({ status: 'submitted', result: '' });
      expect((await h.ledger()).map((l) => l.kind)).to.deep.equal(['hold']);
      expect(await h.balance(user)).to.equal(START - HOLD);
      expect(await h.db('host_audit').select('*'), "the hook's own write went with it").to.deep.equal([]);

      state.failing = false;
      expect((await pass()).finished).to.equal(1);
      const [settled] = await h.tasks();
      expect(settled).to.include({ state: 'succeed' });
      expect((await h.rows('videos'))[0]).to.include({ status: 'succeed' });
      expect((await h.ledger()).map((l) => l.kind)).to.deep.equal(['hold', 'settle']);
      expect(await h.db('host_audit').select('*')).to.have.length(1);
    });
  });
}

import { expect } from 'chai';
import type { Knex } from 'knex';
import { OutboxStore, type NewOutboxNotice } from '../../adapters/outbox-store.js';
import { testDatabases } from '../support/databases.js';

const T0 = 1_700_000_000_000;
const LEASE = 30_000;

for (const database of testDatabases()) {
  describe(`client callback outbox on ${database.name}`, function () {
    let db: Knex;
    const outbox = new OutboxStore();
    let seq = 0;

    const notice = (taskId: number, status: string, createdAt = T0): NewOutboxNotice => ({
      notice_id: `msg_test_${++seq}`,
      task_id: taskId,
      status,
      url: 'https://client.example.com/hook',
      body: JSON.stringify({ task_id: `k-${taskId}`, task_status: status }),
      created_at: createdAt,
    });
    const claimed = (rows: { task_id: number; status: string }[]) => rows.map((r) => `${r.task_id}:${r.status}`);

    beforeEach(async () => {
      db = database.connect();
      await db.schema.dropTableIfExists(outbox.table);
      await Promise.all([outbox.migrate(db), outbox.migrate(db)]);
    });
    afterEach(async () => {
      await db.schema.dropTableIfExists(outbox.table);
      await db.destroy();
    });

    it('keeps one notice per task and status: a second one for the same status is ignored', async () => {
      await outbox.add(db, notice(1, 'submitted'));
      await db.transaction((trx) => outbox.add(trx, notice(1, 'submitted')));
      await outbox.add(db, notice(1, 'succeed'));
      const rows = await outbox.forTask(db, 1);
      expect(rows.map((r) => [r.status, r.state, r.attempts, r.next_attempt_at])).to.deep.equal([
        ['submitted', 'pending', 0, T0],
        ['succeed', 'pending', 0, T0],
      ]);
      expect(rows[0]?.notice_id).to.equal('msg_test_1');
    });

    it('claims only the oldest pending notice of a task; the next once the earlier is delivered or given up', async () => {
      await outbox.add(db, notice(1, 'submitted'));
      await outbox.add(db, notice(1, 'processing'));
      await outbox.add(db, notice(1, 'succeed'));
      await outbox.add(db, notice(2, 'submitted'));
      await outbox.add(db, notice(3, 'submitted', T0 + 60_000)); // not due yet
      const first = await outbox.claimDue(db, 'a', T0, LEASE, 10);
      expect(claimed(first)).to.deep.equal(['1:submitted', '2:submitted']);
      expect(await outbox.claimDue(db, 'a', T0 + 1, LEASE, 10), 'leased notices and their successors wait').to.deep.equal([]);
      expect(await outbox.markDelivered(db, first[0]?.id ?? 0, 'a', 1, 200, T0 + 2)).to.equal(true);
      expect(claimed(await outbox.claimDue(db, 'a', T0 + 3, LEASE, 10))).to.deep.equal(['1:processing']);
      const [processing] = await outbox.forTask(db, 1).then((rows) => rows.filter((r) => r.status === 'processing'));
      expect(await outbox.markFailed(db, processing?.id ?? 0, 'a', { attempts: 1, error: 'HTTP 500', httpStatus: 500, retryAt: null }, T0 + 4)).to.equal(true);
      expect(claimed(await outbox.claimDue(db, 'a', T0 + 5, LEASE, 10))).to.deep.equal(['1:succeed']);
      const rows = await outbox.forTask(db, 1);
      expect(rows.map((r) => [r.status, r.state, r.attempts, r.last_error, r.last_http_status])).to.deep.equal([
        ['submitted', 'delivered', 1, null, 200],
        ['processing', 'gave_up', 1, 'HTTP 500', 500],
        ['succeed', 'pending', 0, null, null],
      ]);
      expect(rows[1]?.gave_up_at).to.equal(T0 + 4);
    });

    it('lets two owners claiming at once win disjoint notices, together all of them', async () => {
      for (let task = 1; task <= 12; task++) await outbox.add(db, notice(task, 'submitted'));
      const [a, b] = await Promise.all([outbox.claimDue(db, 'a', T0, LEASE, 12), outbox.claimDue(db, 'b', T0, LEASE, 12)]);
      const ids = [...(a ?? []), ...(b ?? [])].map((r) => r.id);
      expect(ids).to.have.length(12);
      expect(new Set(ids).size).to.equal(12);
      for (const row of a ?? []) expect(row.lease_owner).to.equal('a');
    });

    it('re-checks the due time and the lease in the claim itself', async () => {
      await outbox.add(db, notice(1, 'submitted'));
      const [row] = await outbox.forTask(db, 1);
      const id = row?.id ?? 0;
      // Both saw the notice due; a claims it first, fails the attempt and puts it back for later.
      expect(await outbox.claim(db, id, 'a', T0, LEASE)).to.equal(true);
      expect(await outbox.claim(db, id, 'b', T0, LEASE), 'leased').to.equal(false);
      expect(await outbox.markFailed(db, id, 'a', { attempts: 1, error: 'connect ECONNREFUSED', httpStatus: null, retryAt: T0 + 1_000 }, T0 + 10)).to.equal(true);
      expect(await outbox.claim(db, id, 'b', T0 + 20, LEASE), 'free again, but not due yet').to.equal(false);
      expect(await outbox.claim(db, id, 'b', T0 + 1_000, LEASE)).to.equal(true);
      // b dies mid-attempt: its lease runs out, and a takes over.
      expect(await outbox.claim(db, id, 'a', T0 + 1_000 + LEASE - 1, LEASE)).to.equal(false);
      expect(await outbox.claim(db, id, 'a', T0 + 1_001 + LEASE, LEASE)).to.equal(true);
      // The old owner's late outcome is not recorded over the new lease.
      expect(await outbox.markDelivered(db, id, 'b', 2, 200, T0 + 1_002 + LEASE)).to.equal(false);
      expect(await outbox.markFailed(db, id, 'b', { attempts: 2, error: 'x', httpStatus: null, retryAt: null }, T0 + 1_002 + LEASE)).to.equal(false);
      expect((await outbox.forTask(db, 1))[0]).to.include({ state: 'pending', lease_owner: 'a', attempts: 1 });
      expect(await outbox.markDelivered(db, id, 'a', 2, 204, T0 + 1_003 + LEASE)).to.equal(true);
      expect((await outbox.forTask(db, 1))[0]).to.include({ state: 'delivered', lease_owner: null, attempts: 2, last_http_status: 204, delivered_at: T0 + 1_003 + LEASE });
      expect(await outbox.claim(db, id, 'b', T0 + 10 * LEASE, LEASE), 'delivered is final').to.equal(false);
    });
    it('prunes delivered and given-up notices that ended before a time, oldest first and at most a limit; never a pending one', async () => {
      for (let task = 1; task <= 5; task++) await outbox.add(db, notice(task, 'succeed'));
      const [d1, d2, g3, d4] = await outbox.claimDue(db, 'a', T0, LEASE, 10);
      await outbox.markDelivered(db, d1?.id ?? 0, 'a', 1, 200, T0 + 10);
      await outbox.markDelivered(db, d2?.id ?? 0, 'a', 1, 200, T0 + 20);
      await outbox.markFailed(db, g3?.id ?? 0, 'a', { attempts: 1, error: 'HTTP 410', httpStatus: 410, retryAt: null }, T0 + 30);
      await outbox.markDelivered(db, d4?.id ?? 0, 'a', 1, 200, T0 + 1_000);
      // Task 5's notice stays pending (leased by a, never answered); a later one is retried.
      await outbox.add(db, notice(6, 'succeed'));
      const tasks = async () => (await db(outbox.table).select('task_id').orderBy('task_id')).map((r: { task_id: number }) => Number(r.task_id));

      expect(await outbox.prune(db, T0 + 100, 2), 'two at most, oldest first').to.equal(2);
      expect(await tasks()).to.deep.equal([3, 4, 5, 6]);
      expect(await outbox.prune(db, T0 + 100, 10), 'the given-up one; the later delivery stays').to.equal(1);
      expect(await tasks()).to.deep.equal([4, 5, 6]);
      expect(await outbox.prune(db, T0 + 10 * LEASE, 10), 'pending notices are never pruned').to.equal(1);
      expect(await tasks()).to.deep.equal([5, 6]);
      expect(await outbox.prune(db, T0 + 10 * LEASE, 10)).to.equal(0);
    });
  });
}

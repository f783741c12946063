import { expect } from 'chai';
import { HostTable } from '../../adapters/host-table.js';
import { KnexQuotaStore } from '../../adapters/quota-store.js';
import { isUniqueViolation, RelayStore } from '../../adapters/relay-store.js';
import type { NewHostRow, NewRelayTask, RelayTask } from '../../adapters/types.js';
import { silentLogger } from '../../lib/logger.js';
import { accept, finish, hold, type TaskLifeDeps } from '../../lib/task/life.js';
import { taskStorage } from '../../lib/task/pick.js';
import { testDatabases } from '../support/databases.js';
import { checkAndClose, startHarness, type Harness } from '../support/harness.js';

const HOLD = 25_000;

/**
 * A task's settlement as the relay's storage for each database writes it: on better-sqlite3, MariaDB
 * and PostgreSQL with the storage's own statements (a read of the task through knex, then one
 * compare-and-set write in the group commit). test/storage/parity.test.ts compares every storage's
 * rows with knex's; these are the edges: what knex is asked, racing settlements, a refused one.
 */
for (const database of testDatabases()) {
  describe(`a task's settlement on ${database.name}, through the relay's storage for it`, function () {
    let h: Harness;
    let deps: TaskLifeDeps;
    const store = new RelayStore();
    const host = new HostTable({ name: 'videos' }, 'video');

    beforeEach(async () => {
      h = await startHarness(database);
      const storage = taskStorage({ db: h.db, store, hosts: { video: host, image: new HostTable({ name: 'images' }, 'image') }, quota: new KnexQuotaStore() });
      deps = { storage, db: h.db, store, quotaPerUnit: 500_000, logger: silentLogger };
    });
    afterEach(async () => {
      deps.storage.close?.();
      await checkAndClose(h);
    });

    /** A held task Kling accepted (`submitted`), per request at 0.05 units (25000 quota). */
    async function submitted(user: number, klingTaskId: string): Promise<RelayTask> {
      const now = Date.now();
      const userId = String(user);
      const row: NewHostRow = {
        task_id: '', user_id: userId, username: 'u', channel_id: 'main', model: 'kling-v1', provider: 'kling', type: 'text2video', status: '', quota: HOLD, mode: 'std', duration: 5, result: '', fail_reason: '', created_at: 1, updated_at: 1,
      };
      const externalId = { before: 'kr-video-', after: `-${Math.random().toString(16).slice(2, 14)}` };
      const task = (hostRowId: string): NewRelayTask => ({
        external_task_id: `${externalId.before}${hostRowId}${externalId.after}`, client_task_id: null, request_hash: null, kling_task_id: null, account_id: 'main',
        endpoint: '/v1/videos/text2video', client_endpoint: null, request_type: 'text2video', table_kind: 'video', host_row_id: hostRowId, user_id: userId, state: 'pending', billing: 'hold',
        hold_quota: HOLD, charge_quota: null, model: 'kling-v1', slots: 1, pricing: JSON.stringify({ type: 'per_request', unit: 0.05 }), status_msg: null, result: null, deductions: null, kling_created_at: null,
        kling_updated_at: null, client_callback_url: null, queued_body: null, lease_owner: null, lease_until: null, next_check_at: now + 60_000, check_count: 0, checked_at: null,
        created_at: now, updated_at: now,
      });
      const held = await hold(deps, { table: 'video', userId, billing: 'hold', amount: HOLD, row, task, externalId, now });
      await accept(deps, held, { klingTaskId, status: 'submitted', createdAt: now, updatedAt: now }, 60_000);
      return held;
    }

    it("settles with the storage's own statements: knex only reads the task; the task, host row, balance, used quota and ledger move together", async () => {
      const user = await h.user(100_000);
      const win = await submitted(user, 'kling-win');
      const lose = await submitted(user, 'kling-lose');
      const sql: string[] = [];
      const record = (query: { sql: string }): void => void sql.push(query.sql);
      h.db.on('query', record);
      try {
        expect(await finish(deps, win.id, { status: 'succeed', result: { videos: [{ url: 'https://cdn.example.com/v-1.mp4', duration: '5' }] } })).to.equal(true);
        expect(await finish(deps, lose.id, { status: 'failed', reason: 'content refused' })).to.equal(true);
      } finally {
        h.db.removeListener('query', record);
      }
      // Each settlement reads its task through knex; what it writes goes through the storage's own statements.
      expect(sql.map((text) => text.split(' ', 1)[0]?.toLowerCase())).to.deep.equal(['select', 'select']);
      const tasks = await h.tasks();
      expect(tasks.map((t) => [t.kling_task_id, t.state, Number(t.charge_quota), t.status_msg, t.next_check_at])).to.deep.equal([
        ['kling-win', 'succeed', HOLD, null, null],
        ['kling-lose', 'failed', 0, 'content refused', null],
      ]);
      expect((await h.rows('videos')).map((r) => [r.task_id, r.status, Number(r.quota), Number(r.duration), r.fail_reason])).to.deep.equal([
        ['kling-win', 'succeed', HOLD, 5, ''],
        ['kling-lose', 'failed', 0, 5, 'content refused'],
      ]);
      expect((await h.ledger()).map((l) => [l.kind, Number(l.amount)])).to.deep.equal([['hold', -HOLD], ['hold', -HOLD], ['settle', 0], ['refund', HOLD]]);
      expect(await h.balance(user)).to.equal(100_000 - HOLD);
      const used = (await h.db('users').where({ id: user }).first('used_quota')) as { used_quota: unknown };
      expect(Number(used.used_quota)).to.equal(HOLD);
      // Settled once: a late duplicate changes nothing.
      expect(await finish(deps, lose.id, { status: 'failed', reason: 'again' })).to.equal(false);
      expect(await h.balance(user)).to.equal(100_000 - HOLD);
    });

    it('lets exactly one of ten settlements of one task at once apply, successes and failures mixed: one final ledger row, the balance moved once', async () => {
      const user = await h.user(100_000);
      const task = await submitted(user, 'kling-race');
      const outcomes = Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? { status: 'failed' as const, reason: `failure ${i}` } : { status: 'succeed' as const, result: { videos: [] } }));
      const applied = await Promise.all(outcomes.map((outcome) => finish(deps, task.id, outcome)));
      expect(applied.filter(Boolean)).to.have.length(1);
      const [row] = await h.tasks();
      const finals = (await h.ledger()).filter((l) => l.kind !== 'hold');
      expect(finals).to.have.length(1);
      if (row?.state === 'failed') {
        expect([finals[0]?.kind, Number(finals[0]?.amount), await h.balance(user)]).to.deep.equal(['refund', HOLD, 100_000]);
      } else {
        expect([row?.state, finals[0]?.kind, Number(finals[0]?.amount), await h.balance(user)]).to.deep.equal(['succeed', 'settle', 0, 100_000 - HOLD]);
      }
    });

    it('refuses a settlement the ledger refuses and leaves its task, host row and balance as they were; the one beside it in the group applies', async () => {
      const user = await h.user(100_000);
      const refused = await submitted(user, 'kling-refused');
      const other = await submitted(user, 'kling-other');
      // A final ledger row already there (written by hand): a second final row for the task is refused.
      await store.addLedger(h.db, { task_id: refused.id, user_id: String(user), kind: 'refund', amount: 0 });
      const answers = await Promise.allSettled([finish(deps, refused.id, { status: 'succeed', result: { videos: [] } }), finish(deps, other.id, { status: 'failed', reason: 'content refused' })]);
      expect(answers.map((a) => a.status)).to.deep.equal(['rejected', 'fulfilled']);
      expect(isUniqueViolation((answers[0] as PromiseRejectedResult).reason)).to.equal(true);
      expect((await h.tasks()).map((t) => [t.kling_task_id, t.state])).to.deep.equal([['kling-refused', 'submitted'], ['kling-other', 'failed']]);
      expect((await h.rows('videos')).map((r) => [r.task_id, r.status])).to.deep.equal([['kling-refused', 'submitted'], ['kling-other', 'failed']]);
      expect(await h.balance(user)).to.equal(100_000 - HOLD);
      // The hand-written row goes, so that the harness's ledger check at the end holds.
      await h.db(store.tables.ledger).where({ task_id: refused.id, kind: 'refund' }).del();
    });
  });
}

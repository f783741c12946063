import { expect } from 'chai';
import type { Knex } from 'knex';
import {
  HostTable,
  KnexQuotaStore,
  RelayStore,
  assertQuotaStore,
  createDefaultHostTables,
  insertReturningId,
  isUniqueViolation,
} from '../../adapters/index.js';
import type { HostTableOptions, NewHostRow, RelayTask } from '../../adapters/index.js';
import { KlingRelayConfigError } from '../../lib/errors.js';
import { testDatabases } from '../support/databases.js';
import { newTask } from '../support/tasks.js';

const HOST_TABLES = ['videos', 'images', 'users', 'host_clips', 'wallets'];

/** A host Video table that renamed some columns and lacks others. */
const MAPPED_VIDEO: HostTableOptions = {
  name: 'host_clips',
  columns: { task_id: 'kling_id', user_id: 'owner_id', status: 'state', quota: 'cost', fail_reason: false, mode: false },
};

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function configError(fn: () => unknown, code: string, mentions: string): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown, 'expected a config error').to.be.instanceOf(KlingRelayConfigError);
  expect((thrown as KlingRelayConfigError).code).to.equal(code);
  expect((thrown as Error).message).to.contain(mentions);
}

async function refused(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  expect.fail('expected the database to refuse the write');
}


function hostRow(overrides: Partial<NewHostRow> = {}): NewHostRow {
  return {
    task_id: '',
    user_id: '1',
    username: 'alice',
    channel_id: 'main',
    model: 'kling-v2-1',
    provider: 'kling',
    type: 'text2video',
    status: '',
    quota: 2_500_000,
    mode: 'std',
    duration: 5,
    result: '',
    fail_reason: '',
    created_at: 1_700_000_000,
    updated_at: 1_700_000_000,
    ...overrides,
  };
}

for (const database of testDatabases()) {
  describe(`storage on ${database.name}`, function () {
    let db: Knex;
    const store = new RelayStore();
    let hostTablesAfterMigrate: boolean[] = [];

    async function dropAll(): Promise<void> {
      for (const table of [...Object.values(store.tables), ...HOST_TABLES]) await db.schema.dropTableIfExists(table);
    }

    async function addUser(quota: number, username = 'alice'): Promise<string> {
      return insertReturningId(db, 'users', 'id', { username, quota, used_quota: 0 });
    }

    before(async function () {
      db = database.connect();
      await dropAll();
      await store.migrate(db);
      hostTablesAfterMigrate = await Promise.all(['videos', 'images', 'users'].map((t) => db.schema.hasTable(t)));
      await createDefaultHostTables(db);
      await createDefaultHostTables(db, { video: MAPPED_VIDEO, image: false, users: { table: 'wallets', usedColumn: false } });
    });

    after(async function () {
      if (!db) return;
      await dropAll();
      await db.destroy();
    });

    beforeEach(async function () {
      for (const table of Object.values(store.tables)) await db(table).del();
    });

    describe('migrate', function () {
      it('creates the relay tables, twice without complaint, and never a host table', async function () {
        await store.migrate(db);
        await store.migrate(db);
        for (const table of ['kling_relay_tasks', 'kling_relay_ledger', 'kling_relay_resources', 'kling_relay_outbox']) {
          expect(await db.schema.hasTable(table), table).to.equal(true);
        }
        expect(hostTablesAfterMigrate).to.deep.equal([false, false, false]);
      });

      it('uses a configured prefix, and survives two instances migrating at once', async function () {
        const other = new RelayStore({ prefix: 'krs_other_' });
        try {
          await Promise.all([other.migrate(db), other.migrate(db)]);
          expect(await db.schema.hasTable('krs_other_ledger')).to.equal(true);
        } finally {
          for (const table of Object.values(other.tables)) await db.schema.dropTableIfExists(table);
        }
      });

      it("makes a user's external_task_id unique on an earlier version's tasks table, or keeps its plain index while old duplicates forbid it", async function () {
        const old = new RelayStore({ prefix: 'krs_old_' });
        const table = old.tables.tasks;
        const oldTask = (clientTaskId: string | null): Record<string, unknown> => {
          const { request_hash: _hash, ...row } = newTask({ user_id: 'u', client_task_id: clientTaskId });
          return row;
        };
        try {
          await old.migrate(db);
          // As an earlier version left it: no request_hash, a plain (user_id, client_task_id) index.
          await db.schema.alterTable(table, (t) => void t.dropUnique(['user_id', 'client_task_id'], 'krs_old_tasks_client_once'));
          await db.schema.alterTable(table, (t) => void t.index(['user_id', 'client_task_id'], 'krs_old_tasks_user_client'));
          await db.schema.alterTable(table, (t) => void t.dropColumn('request_hash'));
          await db(table).insert([oldTask('dup'), oldTask('dup')]);

          const warnings: string[] = [];
          const logger = { warn: (message: string) => void warnings.push(message) };
          await old.migrate(db, logger);
          expect(warnings).to.have.length(1);
          expect(warnings[0]).to.contain('external_task_id');
          expect(await db.schema.hasColumn(table, 'request_hash')).to.equal(true);
          await db(table).insert(oldTask('dup'));

          await db(table).where({ client_task_id: 'dup' }).del();
          await old.migrate(db, logger);
          await old.migrate(db, logger);
          expect(warnings).to.have.length(1);
          await old.insertTask(db, newTask({ user_id: 'u', client_task_id: 'once' }));
          expect(isUniqueViolation(await refused(old.insertTask(db, newTask({ user_id: 'u', client_task_id: 'once' }))))).to.equal(true);
          await old.insertTask(db, newTask({ user_id: 'v', client_task_id: 'once' }));
          await old.insertTask(db, newTask({ user_id: 'u', client_task_id: null }));
          await old.insertTask(db, newTask({ user_id: 'u', client_task_id: null }));
        } finally {
          for (const t of Object.values(old.tables)) await db.schema.dropTableIfExists(t);
        }
      });

      if (database.name === 'mysql') {
        // MySQL commits each DDL statement: a migrate killed between CREATE TABLE and its indexes
        // leaves a ledger without the unique keys that stop a second settle.
        it('finishes on MySQL a migrate that died after creating a table but before its indexes', async function () {
          const other = new RelayStore({ prefix: 'krs_crash_' });
          try {
            await other.migrate(db);
            for (const index of ['krs_crash_ledger_task_kind', 'krs_crash_ledger_task_terminal', 'krs_crash_ledger_user']) {
              await db.raw('ALTER TABLE ?? DROP INDEX ??', ['krs_crash_ledger', index]);
            }
            // Without its keys the ledger takes a second final movement for a task.
            await other.addLedger(db, { task_id: 1, user_id: 'c1', kind: 'settle', amount: 5 });
            await other.addLedger(db, { task_id: 1, user_id: 'c1', kind: 'refund', amount: 5 });
            await db('krs_crash_ledger').where({ kind: 'refund' }).del();

            await other.migrate(db);
            const indexes = (await db('information_schema.statistics').where({ table_schema: db.raw('DATABASE()'), table_name: 'krs_crash_ledger' }).distinct('index_name')) as Record<string, string>[];
            expect(indexes.map((i) => i.index_name ?? i.INDEX_NAME).sort()).to.deep.equal(['PRIMARY', 'krs_crash_ledger_task_kind', 'krs_crash_ledger_task_terminal', 'krs_crash_ledger_user']);
            expect(isUniqueViolation(await refused(other.addLedger(db, { task_id: 1, user_id: 'c1', kind: 'refund', amount: 5 })))).to.equal(true);
          } finally {
            for (const table of Object.values(other.tables)) await db.schema.dropTableIfExists(table);
          }
        });
      }
    });

    describe('identifiers and configuration', function () {
      it('rejects a table name that is not a plain identifier', function () {
        configError(() => new HostTable({ name: 'users; drop table' }), 'ERR_KLING_RELAY_IDENTIFIER', 'tables.video.name');
        configError(() => new KnexQuotaStore({ table: 'users; drop table' }), 'ERR_KLING_RELAY_IDENTIFIER', 'quota.table');
        configError(() => new KnexQuotaStore({ quotaColumn: 'quota`' }), 'ERR_KLING_RELAY_IDENTIFIER', 'quota.quotaColumn');
        configError(() => new RelayStore({ prefix: 'kr-' }), 'ERR_KLING_RELAY_IDENTIFIER', 'tablePrefix');
        configError(() => new HostTable({ name: 'x'.repeat(65) }), 'ERR_KLING_RELAY_IDENTIFIER', '64');
        configError(() => new HostTable({ name: '1videos' }), 'ERR_KLING_RELAY_IDENTIFIER', 'tables.video.name');
        configError(() => new RelayStore({ prefix: 'p'.repeat(60) }), 'ERR_KLING_RELAY_IDENTIFIER', 'tablePrefix');
      });

      it('rejects a bad column mapping', function () {
        configError(() => new HostTable({ name: 'videos', columns: { task_id: 'task id' } }), 'ERR_KLING_RELAY_IDENTIFIER', 'tables.video.columns.task_id');
        configError(() => new HostTable({ name: 'images', columns: { quota: false } }, 'image'), 'ERR_KLING_RELAY_HOST_TABLE', 'tables.image.columns.quota');
        const unknownColumn = { name: 'videos', columns: { price: 'price' } } as unknown as HostTableOptions;
        configError(() => new HostTable(unknownColumn), 'ERR_KLING_RELAY_HOST_TABLE', 'tables.video.columns.price');
        configError(() => new HostTable({ name: 'videos', columns: { model: 'status' } }), 'ERR_KLING_RELAY_HOST_TABLE', '"status"');
        configError(() => new KnexQuotaStore({ tabel: 'users' } as never), 'ERR_KLING_RELAY_QUOTA_STORE', 'quota.tabel');
      });

      it('checks a host QuotaStore at run time', function () {
        configError(() => assertQuotaStore(null, 'quota'), 'ERR_KLING_RELAY_QUOTA_STORE', 'quota');
        const partial = { hold: async () => true, credit: async () => {}, debit: async () => {}, balance: async () => 0 };
        configError(() => assertQuotaStore(partial, 'quota'), 'ERR_KLING_RELAY_QUOTA_STORE', '"addUsed"');
        expect(() => assertQuotaStore(new KnexQuotaStore(), 'quota')).not.to.throw();
      });
    });

    describe('host tables', function () {
      it('inserts, updates and reads a row of the default Video table', async function () {
        const videos = new HostTable({ name: 'videos' });
        const row = hostRow({ user_id: '7' });
        const id = await videos.insert(db, row);
        expect(id).to.be.a('string').and.match(/^\d+$/);
        expect(await videos.get(db, id)).to.deep.equal({ id, ...row });

        const changed = await db.transaction((trx) =>
          videos.update(trx, id, { task_id: 'k-100', status: 'succeed', result: '{"videos":[]}', updated_at: 1_700_000_100 }),
        );
        expect(changed).to.equal(true);
        const updated = await videos.get(db, id);
        expect(updated).to.include({ task_id: 'k-100', status: 'succeed', result: '{"videos":[]}', updated_at: 1_700_000_100, quota: 2_500_000 });
        expect(await videos.findByTaskId(db, 'k-100')).to.deep.equal(updated);
        expect(await videos.findByTaskId(db, 'k-missing')).to.equal(undefined);
        expect(await videos.get(db, '999999')).to.equal(undefined);
      });

      it('leaves duration out of the default Image table', async function () {
        const images = new HostTable({ name: 'images' }, 'image');
        expect(images.has('duration')).to.equal(false);
        const id = await images.insert(db, hostRow({ type: 'omni-image', duration: 5 }));
        const row = await images.get(db, id);
        expect(row).to.include({ type: 'omni-image', duration: 0 });
      });

      it('stores a fractional duration as whole seconds', async function () {
        const videos = new HostTable({ name: 'videos' });
        const id = await videos.insert(db, hostRow({ duration: 5.1 }));
        await videos.update(db, id, { duration: 9.6 });
        expect((await videos.get(db, id))?.duration).to.equal(10);
      });

      it('maps renamed columns and never writes an absent one', async function () {
        const clips = new HostTable(MAPPED_VIDEO);
        expect(clips.has('fail_reason')).to.equal(false);
        const id = await clips.insert(db, hostRow({ task_id: 'k-map', user_id: '3', status: 'submitted', quota: 42, fail_reason: 'ignored', mode: 'pro' }));

        const raw = (await db('host_clips').where('id', id).first()) as Record<string, unknown>;
        expect(raw).to.include.keys('kling_id', 'owner_id', 'state', 'cost');
        expect(raw).not.to.have.any.keys('task_id', 'fail_reason', 'mode', 'status', 'quota');

        expect(await clips.get(db, id)).to.include({ id, task_id: 'k-map', user_id: '3', status: 'submitted', quota: 42, fail_reason: '', mode: '' });
        expect(await clips.update(db, id, { fail_reason: 'only an absent column' })).to.equal(false);
        expect(await clips.update(db, id, { status: 'failed', fail_reason: 'absent' })).to.equal(true);
        expect(await clips.findByTaskId(db, 'k-map')).to.include({ status: 'failed', fail_reason: '' });
      });
    });

    describe('quota store', function () {
      const quota = new KnexQuotaStore();

      it('holds at the exact boundary and never goes negative', async function () {
        const user = await addUser(100);
        expect(await db.transaction((trx) => quota.hold(trx, user, 101))).to.equal(false);
        expect(await quota.balance(db, user)).to.equal(100);
        expect(await db.transaction((trx) => quota.hold(trx, user, 100))).to.equal(true);
        expect(await quota.balance(db, user)).to.equal(0);
        expect(await db.transaction((trx) => quota.hold(trx, user, 1))).to.equal(false);
        expect(await quota.balance(db, user)).to.equal(0);
        expect(await db.transaction((trx) => quota.hold(trx, '999999', 1))).to.equal(false);
        expect(await quota.balance(db, '999999')).to.equal(null);
      });

      it('credits, debits and counts used quota', async function () {
        const user = await addUser(5_000_000_000);
        await db.transaction(async (trx) => {
          await quota.debit(trx, user, 1_000_000_000);
          await quota.credit(trx, user, 250);
          await quota.addUsed(trx, user, 999_999_750);
        });
        expect(await quota.balance(db, user)).to.equal(4_000_000_250);
        const raw = (await db('users').where('id', user).first()) as Record<string, unknown>;
        expect(Number(raw.used_quota)).to.equal(999_999_750);
      });

      it('skips used quota when the host keeps none', async function () {
        const wallets = new KnexQuotaStore({ table: 'wallets', usedColumn: false });
        const user = await insertReturningId(db, 'wallets', 'id', { username: 'bob', quota: 10 });
        await db.transaction(async (trx) => {
          expect(await wallets.hold(trx, user, 4)).to.equal(true);
          await wallets.addUsed(trx, user, 4);
        });
        expect(await wallets.balance(db, user)).to.equal(6);
      });

      it('lets exactly 3 of 10 concurrent holds through a balance for 3', async function () {
        const user = await addUser(30);
        const results = await Promise.all(
          Array.from({ length: 10 }, () =>
            db.transaction(async (trx) => {
              const held = await quota.hold(trx, user, 10);
              // Keep the row lock a moment so the other holds really wait on it.
              await sleep(20);
              return held;
            }),
          ),
        );
        expect(results.filter(Boolean)).to.have.length(3);
        expect(await quota.balance(db, user)).to.equal(0);
      });

      it('refuses amounts that are not non-negative integers', async function () {
        const user = await addUser(10);
        await db.transaction(async (trx) => {
          for (const amount of [-1, 1.5, Number.NaN]) {
            let thrown: unknown;
            try {
              await quota.hold(trx, user, amount);
            } catch (err) {
              thrown = err;
            }
            expect(thrown, String(amount)).to.be.instanceOf(RangeError);
          }
        });
        expect(await db.transaction((trx) => quota.hold(trx, user, 0))).to.equal(true);
        expect(await quota.balance(db, user)).to.equal(10);
      });
    });

    describe('tasks', function () {
      it('reads back every field, numbers as numbers', async function () {
        const task = newTask({
          client_task_id: 'mine-1',
          kling_task_id: 'k-1',
          host_row_id: '12345',
          user_id: '77',
          hold_quota: 5_000_000_000,
          charge_quota: 4_000_000_000,
          status_msg: 'ok',
          result: JSON.stringify({ videos: [{ id: 'v1', url: 'https://x/y.mp4', duration: '5.1' }] }),
          kling_created_at: 1_722_222_222_222,
          kling_updated_at: 1_722_222_233_333,
          client_callback_url: 'https://client.example/cb',
          lease_owner: 'worker-1',
          lease_until: 1_800_000_000_000,
          next_check_at: 1_700_000_015_000,
          check_count: 3,
          checked_at: 1_700_000_010_000,
          created_at: 1_700_000_000_001,
          updated_at: 1_700_000_000_002,
        });
        const id = await store.insertTask(db, task);
        expect(id).to.be.a('number');
        const read = await store.getTask(db, id);
        expect(read).to.deep.equal({ id, ...task });
        const numeric: (keyof RelayTask)[] = ['id', 'hold_quota', 'charge_quota', 'kling_created_at', 'kling_updated_at', 'lease_until', 'next_check_at', 'check_count', 'checked_at', 'created_at', 'updated_at'];
        for (const field of numeric) expect(typeof read?.[field], field).to.equal('number');
        expect(await store.getByExternalId(db, task.external_task_id)).to.deep.equal(read);
        expect(await store.getByKlingTaskId(db, 'k-1')).to.deep.equal(read);
        expect(await store.getByExternalId(db, 'nope')).to.equal(undefined);
        expect(await store.getTask(db, id + 1000)).to.equal(undefined);

        const empty = await store.getTask(db, await store.insertTask(db, newTask()));
        expect(empty).to.include({ charge_quota: null, lease_until: null, next_check_at: null, client_task_id: null });
      });

      it('refuses a second task with the same external_task_id', async function () {
        const task = newTask();
        await store.insertTask(db, task);
        const err = await refused(store.insertTask(db, { ...task, host_row_id: '2' }));
        expect(isUniqueViolation(err)).to.equal(true);
      });

      it('updates by compare-and-set on the state', async function () {
        const id = await store.insertTask(db, newTask({ state: 'pending' }));
        expect(await store.updateTask(db, id, { state: 'submitted', kling_task_id: 'k-cas' }, ['pending'])).to.equal(true);
        expect(await store.updateTask(db, id, { state: 'processing' }, ['pending'])).to.equal(false);
        expect(await store.updateTask(db, id, { state: 'processing' }, [])).to.equal(false);
        expect(await store.updateTask(db, id + 1000, { state: 'processing' })).to.equal(false);
        const task = await store.getTask(db, id);
        expect(task).to.include({ state: 'submitted', kling_task_id: 'k-cas' });
        expect(task?.updated_at).to.be.greaterThan(1_700_000_000_000);
        expect(await store.updateTask(db, id, { check_count: 4, updated_at: 5 })).to.equal(true);
        expect(await store.getTask(db, id)).to.include({ check_count: 4, updated_at: 5 });
      });

      it('lets exactly one of two racing transitions win', async function () {
        const id = await store.insertTask(db, newTask({ state: 'processing' }));
        const transition = (state: 'succeed' | 'failed'): Promise<boolean> =>
          db.transaction(async (trx) => {
            const won = await store.updateTask(trx, id, { state }, ['submitted', 'processing']);
            await sleep(30);
            return won;
          });
        const results = await Promise.all([transition('succeed'), transition('failed')]);
        expect(results.filter(Boolean)).to.have.length(1);
        const final = await store.getTask(db, id);
        expect(final?.state).to.equal(results[0] ? 'succeed' : 'failed');
      });

      it('finds a task only for its own user', async function () {
        await store.insertTask(db, newTask({ user_id: 'a', kling_task_id: 'k-a', client_task_id: 'shared', created_at: 1000 }));
        await store.insertTask(db, newTask({ user_id: 'b', kling_task_id: 'k-b', client_task_id: 'shared', created_at: 2000 }));
        await store.insertTask(db, newTask({ user_id: 'a', kling_task_id: 'k-a2', client_task_id: 'own', created_at: 1500 }));

        expect(await store.findForUser(db, 'a', 'k-b')).to.equal(undefined);
        expect(await store.findForUser(db, 'b', 'k-a')).to.equal(undefined);
        expect((await store.findForUser(db, 'a', 'k-a'))?.kling_task_id).to.equal('k-a');
        expect((await store.findForUser(db, 'a', 'shared'))?.kling_task_id).to.equal('k-a');
        expect((await store.findForUser(db, 'a', 'own'))?.kling_task_id).to.equal('k-a2');
        expect((await store.findForUser(db, 'b', 'shared'))?.kling_task_id).to.equal('k-b');
        expect((await store.findForUser(db, 'a', 'k-a', '/v1/videos/text2video'))?.kling_task_id).to.equal('k-a');
        expect(await store.findForUser(db, 'a', 'k-a', '/v1/images/omni-image')).to.equal(undefined);
        expect(await store.findForUser(db, 'c', 'shared')).to.equal(undefined);
      });

      it('lists a user’s tasks of one endpoint, newest first, by page', async function () {
        const created = [1000, 2000, 3000, 3000, 5000];
        const ids: number[] = [];
        for (const [i, at] of created.entries()) ids.push(await store.insertTask(db, newTask({ user_id: 'u', created_at: at, client_task_id: `c${i}` })));
        await store.insertTask(db, newTask({ user_id: 'other', created_at: 9000 }));
        await store.insertTask(db, newTask({ user_id: 'u', endpoint: '/v1/images/omni-image', created_at: 9000 }));

        const expected = [ids[4], ids[3], ids[2], ids[1], ids[0]];
        const page = async (n: number, size: number): Promise<number[]> =>
          (await store.listForUser(db, 'u', '/v1/videos/text2video', n, size)).map((t) => t.id);
        expect(await page(1, 2)).to.deep.equal(expected.slice(0, 2));
        expect(await page(2, 2)).to.deep.equal(expected.slice(2, 4));
        expect(await page(3, 2)).to.deep.equal(expected.slice(4));
        expect(await page(4, 2)).to.deep.equal([]);
        expect(await page(1, 500)).to.deep.equal(expected);
        const [first] = await store.listForUser(db, 'u', '/v1/videos/text2video', 1, 1);
        expect(first?.created_at).to.be.a('number').and.equal(5000);
      });
    });

    describe('ledger', function () {
      it('allows hold then settle, refuses a second settle and a refund after settle', async function () {
        const taskId = await store.insertTask(db, newTask({ user_id: 'l1' }));
        await store.addLedger(db, { task_id: taskId, user_id: 'l1', kind: 'hold', amount: -100 });
        await store.addLedger(db, { task_id: taskId, user_id: 'l1', kind: 'settle', amount: 20 });
        expect(isUniqueViolation(await refused(store.addLedger(db, { task_id: taskId, user_id: 'l1', kind: 'settle', amount: 20 })))).to.equal(true);
        expect(isUniqueViolation(await refused(store.addLedger(db, { task_id: taskId, user_id: 'l1', kind: 'refund', amount: 100 })))).to.equal(true);
        expect(isUniqueViolation(await refused(store.addLedger(db, { task_id: taskId, user_id: 'l1', kind: 'hold', amount: -100 })))).to.equal(true);

        const rows = await store.ledgerFor(db, taskId);
        expect(rows.map((r) => [r.kind, r.amount, r.task_id, r.user_id])).to.deep.equal([
          ['hold', -100, taskId, 'l1'],
          ['settle', 20, taskId, 'l1'],
        ]);
        for (const row of rows) for (const field of ['id', 'task_id', 'amount', 'created_at'] as const) expect(row[field]).to.be.a('number');
      });

      it('refuses a settle after a refund', async function () {
        const taskId = await store.insertTask(db, newTask({ user_id: 'l2' }));
        await store.addLedger(db, { task_id: taskId, user_id: 'l2', kind: 'hold', amount: -50 });
        await store.addLedger(db, { task_id: taskId, user_id: 'l2', kind: 'refund', amount: 50 });
        expect(isUniqueViolation(await refused(store.addLedger(db, { task_id: taskId, user_id: 'l2', kind: 'settle', amount: 0 })))).to.equal(true);
      });

      it('rolls the whole transaction back when the ledger refuses', async function () {
        const taskId = await store.insertTask(db, newTask({ user_id: 'l3', state: 'processing' }));
        await store.addLedger(db, { task_id: taskId, user_id: 'l3', kind: 'refund', amount: 100 });
        const err = await refused(
          db.transaction(async (trx) => {
            await store.updateTask(trx, taskId, { state: 'succeed' }, ['processing']);
            await store.addLedger(trx, { task_id: taskId, user_id: 'l3', kind: 'settle', amount: 10 });
          }),
        );
        expect(isUniqueViolation(err)).to.equal(true);
        expect((await store.getTask(db, taskId))?.state).to.equal('processing');
      });

      it('sums a user’s movements as a number', async function () {
        const t1 = await store.insertTask(db, newTask({ user_id: 's1' }));
        const t2 = await store.insertTask(db, newTask({ user_id: 's1' }));
        const t3 = await store.insertTask(db, newTask({ user_id: 's2' }));
        await store.addLedger(db, { task_id: t1, user_id: 's1', kind: 'hold', amount: -3_000_000_000 });
        await store.addLedger(db, { task_id: t1, user_id: 's1', kind: 'settle', amount: 500_000_000 });
        await store.addLedger(db, { task_id: t2, user_id: 's1', kind: 'hold', amount: -70 });
        await store.addLedger(db, { task_id: t2, user_id: 's1', kind: 'refund', amount: 70 });
        await store.addLedger(db, { task_id: t3, user_id: 's2', kind: 'hold', amount: -9 });
        expect(await store.ledgerSum(db, 's1')).to.equal(-2_500_000_000);
        expect(await store.ledgerSum(db, 's2')).to.equal(-9);
        expect(await store.ledgerSum(db, 'nobody')).to.equal(0);
      });

      it('recognises only unique violations', function () {
        expect(isUniqueViolation(new Error('boom'))).to.equal(false);
        expect(isUniqueViolation(undefined)).to.equal(false);
        expect(isUniqueViolation(new Error('wrapped', { cause: Object.assign(new Error('dup'), { code: '23505' }) }))).to.equal(true);
      });
    });

    describe('reconciler leases', function () {
      const now = 1_700_000_100_000;

      async function seedDue(count: number): Promise<number[]> {
        const ids: number[] = [];
        for (let i = 0; i < count; i++) ids.push(await store.insertTask(db, newTask({ state: i % 2 ? 'processing' : 'submitted', next_check_at: now - 1000 + i })));
        return ids;
      }

      it('gives two racing owners disjoint sets of due tasks', async function () {
        const due = await seedDue(8);
        await store.insertTask(db, newTask({ state: 'succeed', next_check_at: now - 5000 }));
        await store.insertTask(db, newTask({ state: 'submitted', next_check_at: now + 5000 }));
        await store.insertTask(db, newTask({ state: 'submitted', next_check_at: null }));
        await store.insertTask(db, newTask({ state: 'submitted', next_check_at: now - 5000, lease_owner: 'c', lease_until: now + 1 }));

        const [a, b] = await Promise.all([store.claimDue(db, 'a', now, 60_000, 20), store.claimDue(db, 'b', now, 60_000, 20)]);
        const aIds = a.map((t) => t.id);
        const bIds = b.map((t) => t.id);
        expect(aIds.filter((id) => bIds.includes(id))).to.deep.equal([]);
        expect([...aIds, ...bIds].sort((x, y) => x - y)).to.deep.equal(due);
        for (const task of a) expect(task).to.include({ lease_owner: 'a', lease_until: now + 60_000 });
        for (const task of b) expect(task).to.include({ lease_owner: 'b', lease_until: now + 60_000 });
        expect(await store.claimDue(db, 'c', now, 60_000, 20)).to.deep.equal([]);
      });

      it('claims a batch with one write, whatever its size: a read of the due tasks, one update, a read of the rows won', async function () {
        const due = await seedDue(12);
        const sql: string[] = [];
        const record = (query: { sql: string }): void => void sql.push(query.sql);
        db.on('query', record);
        try {
          expect((await store.claimDue(db, 'a', now, 60_000, 20)).map((t) => t.id)).to.deep.equal(due);
        } finally {
          db.removeListener('query', record);
        }
        expect(sql.map((text) => text.split(' ', 1)[0]?.toLowerCase())).to.deep.equal(['select', 'update', 'select']);
      });

      it('claims at most `limit`, oldest due first', async function () {
        const due = await seedDue(5);
        const claimed = await store.claimDue(db, 'a', now, 1000, 2);
        expect(claimed.map((t) => t.id)).to.deep.equal(due.slice(0, 2));
      });

      it('lets another owner reclaim an expired lease, and only the owner release it', async function () {
        const [id] = await seedDue(1);
        expect((await store.claimDue(db, 'a', now, 1000, 10)).map((t) => t.id)).to.deep.equal([id]);
        expect(await store.claimDue(db, 'b', now + 999, 1000, 10)).to.deep.equal([]);
        expect(await store.claimDue(db, 'b', now + 1000, 1000, 10)).to.deep.equal([]);
        const reclaimed = await store.claimDue(db, 'b', now + 1001, 1000, 10);
        expect(reclaimed.map((t) => [t.id, t.lease_owner, t.lease_until])).to.deep.equal([[id, 'b', now + 2001]]);

        if (id === undefined) throw new Error('no task');
        expect(await store.releaseLease(db, id, 'a', now + 30_000)).to.equal(false);
        expect(await store.releaseLease(db, id, 'b', now + 30_000)).to.equal(true);
        expect(await store.getTask(db, id)).to.include({ lease_owner: null, lease_until: null, next_check_at: now + 30_000 });
        expect(await store.claimDue(db, 'a', now + 29_999, 1000, 10)).to.deep.equal([]);
        expect(await store.claimDue(db, 'a', now + 30_000, 1000, 10)).to.have.length(1);
      });
    });

    describe('resources', function () {
      it('remembers the account and the caller that created a resource, first record wins', async function () {
        await store.recordResource(db, 'video-1', 'video', 'acct-a', 'u1');
        await store.recordResource(db, 'video-1', 'video', 'acct-b', 'u2');
        await store.recordResource(db, 'session-9', 'session', 'acct-c', 'u1');
        expect(await store.accountForResources(db, ['unknown', 'video-1'], 'u1')).to.deep.equal({ account: 'acct-a', foreign: undefined });
        expect(await store.accountForResources(db, ['session-9', 'video-1'], 'u1')).to.deep.equal({ account: 'acct-c', foreign: undefined });
        expect(await store.accountForResources(db, ['unknown'], 'u1')).to.deep.equal({ account: undefined, foreign: undefined });
        expect(await store.accountForResources(db, [], 'u1')).to.deep.equal({ account: undefined, foreign: undefined });
        // Another caller's ids, also ones that differ only in case or a trailing space.
        expect(await store.accountForResources(db, ['unknown', 'video-1'], 'u2')).to.deep.equal({ account: 'acct-a', foreign: 'video-1' });
        for (const lookalike of ['U1', 'u1 ', 'ú1']) expect((await store.accountForResources(db, ['video-1'], lookalike)).foreign, lookalike).to.equal('video-1');
        // A row recorded before the owner column existed serves every caller.
        await db(store.tables.resources).insert({ resource_id: 'old-1', kind: 'video', account_id: 'acct-d', user_id: null, created_at: 1 });
        expect(await store.accountForResources(db, ['old-1'], 'u2')).to.deep.equal({ account: 'acct-d', foreign: undefined });
      });
    });
  });
}

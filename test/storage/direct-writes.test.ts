import { expect } from 'chai';
import knex, { type Knex } from 'knex';
import request from 'supertest';
import type { DirectWrites, HoldWrite } from '../../adapters/direct-writes.js';
import { createDefaultHostTables } from '../../adapters/host-schema.js';
import { HostTable } from '../../adapters/host-table.js';
import { MysqlDirect } from '../../adapters/mysql-direct.js';
import { PgDirect } from '../../adapters/pg-direct.js';
import { KnexQuotaStore } from '../../adapters/quota-store.js';
import { isUniqueViolation, RelayStore } from '../../adapters/relay-store.js';
import type { NewRelayTask, RelayTask } from '../../adapters/types.js';
import { finish } from '../../lib/task/life.js';
import { loggableError } from '../../lib/loggable-error.js';
import { KnexTaskStorage } from '../../lib/task/knex-storage.js';
import { silentLogger } from '../../lib/logger.js';
import { testDatabases } from '../support/databases.js';
import { checkAndClose, startHarness, type Harness } from '../support/harness.js';

const HOLD = 25_000;

/** The direct writes of a server database (SQLite has its own, tested in sqlite-direct.test.ts). */
function directWritesFor(db: Knex, store: RelayStore): DirectWrites {
  const direct = MysqlDirect.for(db, store) ?? PgDirect.for(db, store);
  if (!direct) throw new Error('no direct writes for this database');
  return direct;
}

for (const database of testDatabases().filter((d) => d.name !== 'sqlite')) {
  describe(`adapters/${database.name === 'mysql' ? 'mysql' : 'pg'}-direct: the submit's writes on ${database.name} without knex's runner`, function () {
    let h: Harness;
    let direct: DirectWrites;
    const store = new RelayStore();
    const host = new HostTable({ name: 'videos' }, 'video');
    const quota = new KnexQuotaStore();

    beforeEach(async () => {
      h = await startHarness(database);
      direct = directWritesFor(h.db, store);
    });
    afterEach(async () => {
      direct.close?.();
      await checkAndClose(h);
    });

    /** The server's count of deadlocks it broke: PostgreSQL's per database, MariaDB's since it started. */
    async function deadlocks(): Promise<number> {
      if (database.name === 'mysql') {
        const [rows] = (await h.db.raw("SHOW GLOBAL STATUS LIKE 'Innodb_deadlocks'")) as [{ Value: string }[]];
        return Number(rows[0]?.Value);
      }
      const result = (await h.db.raw('SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()')) as { rows: { deadlocks: string }[] };
      return Number(result.rows[0]?.deadlocks);
    }

    /** Waits until one statement waits for a lock: PostgreSQL says so; on MariaDB an UPDATE still running is one. */
    async function aStatementWaits(): Promise<void> {
      const waiting = async (): Promise<number> => {
        if (database.name === 'mysql') {
          const [rows] = (await h.db.raw("SELECT COUNT(*) AS n FROM information_schema.processlist WHERE command = 'Query' AND info LIKE 'UPDATE %'")) as [{ n: number }[]];
          return Number(rows[0]?.n);
        }
        const result = (await h.db.raw("SELECT COUNT(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()")) as { rows: { n: string }[] };
        return Number(result.rows[0]?.n);
      };
      for (let i = 0; i < 200 && (await waiting()) === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(await waiting(), 'a write waits for the other transaction').to.equal(1);
    }

    /**
     * Another transaction, heavier than any group (MariaDB's InnoDB ends the lighter side of a deadlock;
     * PostgreSQL the side that waited first, here the group), with the table its weight is in.
     */
    async function heavyTransaction(): Promise<Knex.Transaction> {
      await h.db.schema.dropTableIfExists('kling_test_weight');
      await h.db.schema.createTable('kling_test_weight', (t) => t.integer('n'));
      const other = await h.db.transaction();
      await other('kling_test_weight').insert(Array.from({ length: 500 }, (_, n) => ({ n })));
      return other;
    }

    function holdOf(userId: number, amount = HOLD, clientTaskId: string | null = null): HoldWrite {
      const now = Date.now();
      const user = String(userId);
      const task: NewRelayTask = {
        external_task_id: '', client_task_id: clientTaskId, request_hash: clientTaskId === null ? null : 'hash', kling_task_id: null, account_id: 'main',
        endpoint: '/v1/videos/text2video', client_endpoint: null, request_type: 'text2video', table_kind: 'video', host_row_id: '', user_id: user, state: 'pending', billing: 'hold',
        hold_quota: amount, charge_quota: null, model: 'kling-v1', slots: 1, pricing: '{}', status_msg: null, result: null, deductions: null, kling_created_at: null,
        kling_updated_at: null, client_callback_url: null, queued_body: null, lease_owner: null, lease_until: null, next_check_at: now + 60_000, check_count: 0, checked_at: null,
        created_at: now, updated_at: now,
      };
      const hostRow = { task_id: '', user_id: user, username: 'u', channel_id: 'main', model: 'kling-v1', provider: 'kling', type: 'text2video', status: '', quota: amount, mode: 'std', duration: 5, result: '', fail_reason: '', created_at: 1, updated_at: 1 };
      return { quota, host, userId: user, amount, hostRow, task, externalId: { before: 'kr-video-', after: `-${Math.random().toString(16).slice(2, 14)}` } };
    }

    it('holds: the balance, the host row, the task row with the host row id in its external id, and the ledger hold, committed', async () => {
      const user = await h.user(100_000);
      const task = await direct.hold(holdOf(user));
      expect(task).to.not.equal(undefined);
      const [row] = await h.rows('videos');
      expect(task?.host_row_id).to.equal(String(row?.id));
      expect(task?.external_task_id).to.match(new RegExp(`^kr-video-${String(row?.id)}-[0-9a-f]+$`));
      const [stored] = await h.tasks();
      expect([Number(stored?.id), stored?.external_task_id, stored?.host_row_id, stored?.state]).to.deep.equal([task?.id, task?.external_task_id, task?.host_row_id, 'pending']);
      expect((await h.ledger()).map((l) => [Number(l.task_id), l.kind, Number(l.amount)])).to.deep.equal([[task?.id, 'hold', -HOLD]]);
      expect(Number(row?.quota)).to.equal(HOLD);
      expect(await h.balance(user)).to.equal(100_000 - HOLD);
    });

    // MariaDB/MySQL only: its writer opens a connection of its own from knex's settings (PostgreSQL's
    // uses knex's pool, and the test server trusts any password).
    if (database.name === 'mysql') it('connects with the password knex was given: a wrong one is refused as knex refuses it', async () => {
      const url = new URL(process.env.TEST_MYSQL_URL ?? '');
      url.password = 'not-the-password-of-this-user';
      // A settings object, as a host passes it; knex keeps the password out of the object's enumerable keys.
      const wrong = knex({ client: 'mysql2', connection: { host: url.hostname, port: Number(url.port), user: decodeURIComponent(url.username), password: url.password, database: url.pathname.slice(1) }, pool: { min: 0, max: 1 }, acquireConnectionTimeout: 2_000 });
      const writes = directWritesFor(wrong, store);
      try {
        const byKnex = await wrong.raw('SELECT 1').then(() => 'connected', (error: { code?: string }) => error.code);
        const user = await h.user(100_000);
        const byDirect = await writes.hold(holdOf(user)).then(() => 'connected', (error: { code?: string }) => error.code);
        expect(byKnex).to.equal('ER_ACCESS_DENIED_ERROR');
        expect(byDirect).to.equal(byKnex);
      } finally {
        writes.close?.();
        await wrong.destroy();
      }
    });

    it('refuses a hold the balance does not cover and leaves nothing behind', async () => {
      const user = await h.user(HOLD - 1);
      expect(await direct.hold(holdOf(user))).to.equal(undefined);
      expect([await h.rows('videos'), await h.tasks(), await h.ledger()]).to.deep.equal([[], [], []]);
      expect(await h.balance(user)).to.equal(HOLD - 1);
    });

    it('holds an amount of 0 when the balance is not negative', async () => {
      const user = await h.user(0);
      const task = await direct.hold(holdOf(user, 0));
      expect(task?.hold_quota).to.equal(0);
      expect((await h.ledger()).map((l) => Number(l.amount))).to.deep.equal([0]);
      expect(await h.balance(user)).to.equal(0);
    });

    it('gives a burst of 50 holds with a balance for 20 exactly 20 tasks, 20 ledger holds, 20 host rows and a balance of 0', async () => {
      const user = await h.user(20 * HOLD);
      const answers = await Promise.all(Array.from({ length: 50 }, () => direct.hold(holdOf(user))));
      const held = answers.filter((task) => task !== undefined);
      expect(held).to.have.length(20);
      expect(await h.balance(user)).to.equal(0);
      const tasks = await h.tasks();
      const ledger = await h.ledger();
      expect(tasks.map((t) => Number(t.id)).sort((a, b) => a - b)).to.deep.equal(held.map((t) => t?.id).sort((a, b) => Number(a) - Number(b)));
      expect(ledger.filter((l) => l.kind === 'hold').map((l) => Number(l.task_id)).sort((a, b) => a - b)).to.deep.equal(tasks.map((t) => Number(t.id)).sort((a, b) => a - b));
      expect((await h.rows('videos')).map((r) => String(r.id)).sort()).to.deep.equal(tasks.map((t) => String(t.host_row_id)).sort());
    });

    it('refuses only the write that fails inside a group: a duplicate external_task_id undoes its own hold and rows, not the others', async () => {
      const user = await h.user(10 * HOLD);
      const first = await direct.hold(holdOf(user, HOLD, 'mine-1'));
      // Three together, in one group: the middle one repeats the caller's external_task_id.
      const answers = await Promise.allSettled([direct.hold(holdOf(user, HOLD, 'mine-2')), direct.hold(holdOf(user, HOLD, 'mine-1')), direct.hold(holdOf(user, HOLD, 'mine-3'))]);
      expect(answers.map((a) => a.status)).to.deep.equal(['fulfilled', 'rejected', 'fulfilled']);
      expect(isUniqueViolation((answers[1] as PromiseRejectedResult).reason)).to.equal(true);
      const tasks = await h.tasks();
      expect(tasks.map((t) => t.client_task_id).sort()).to.deep.equal(['mine-1', 'mine-2', 'mine-3']);
      expect(tasks.find((t) => t.client_task_id === 'mine-1')?.id).to.satisfy((id: unknown) => Number(id) === first?.id);
      expect(await h.rows('videos')).to.have.length(3);
      expect((await h.ledger()).filter((l) => l.kind === 'hold')).to.have.length(3);
      expect(await h.balance(user)).to.equal(7 * HOLD);
    });

    // MariaDB/MySQL only: a multi-statement text's error does not say which statement failed.
    if (database.name === 'mysql') it('names the failed statement of a write in a group from its place in the text, and asks the database nothing more', async () => {
      // The texts the writer's own connection sends, recorded as its driver's connections send them.
      const texts: string[] = [];
      type Connection = { query(sql: string, ...rest: unknown[]): unknown };
      const client = h.db.client as { driver: { createConnection(settings: unknown): Connection } };
      const driver = client.driver;
      const recording = {
        createConnection(settings: unknown): Connection {
          const connection = driver.createConnection(settings);
          const query = connection.query.bind(connection);
          connection.query = (sql, ...rest) => {
            texts.push(sql);
            return query(sql, ...rest);
          };
          return connection;
        },
      };
      client.driver = recording;
      let writes: DirectWrites;
      try {
        writes = directWritesFor(h.db, store);
      } finally {
        client.driver = driver;
      }
      try {
        const user = await h.user(10 * HOLD);
        await writes.hold(holdOf(user, HOLD, 'mine-1'));
        texts.length = 0;
        // Three together, in one group: the middle one repeats the caller's client_task_id, so its task insert fails.
        const answers = await Promise.allSettled([writes.hold(holdOf(user, HOLD, 'mine-2')), writes.hold(holdOf(user, HOLD, 'mine-1')), writes.hold(holdOf(user, HOLD, 'mine-3'))]);
        expect(answers.map((a) => a.status)).to.deep.equal(['fulfilled', 'rejected', 'fulfilled']);
        const error = (answers[1] as PromiseRejectedResult).reason as { code?: string; sql?: string };
        expect([error.code, error.sql, loggableError(error).statement]).to.deep.equal(['ER_DUP_ENTRY', 'INSERT INTO `kling_relay_tasks`', 'insert kling_relay_tasks']);
        // One text per round trip: the group, its rollback, then the writes one by one, each after a
        // savepoint, the failed one's savepoint rolled back, and the COMMIT.
        expect(texts.map((text) => text.split(/[\s;]/, 1)[0])).to.deep.equal(['BEGIN', 'ROLLBACK', 'BEGIN', 'SAVEPOINT', 'SAVEPOINT', 'ROLLBACK', 'SAVEPOINT', 'COMMIT']);
        expect(await h.balance(user)).to.equal(7 * HOLD);
      } finally {
        writes.close?.();
      }
    });

    if (database.name === 'mysql') it("names a failure in a hold's last statement, the ledger insert, and leaves nothing of the hold", async () => {
      const user = await h.user(10 * HOLD);
      const { ledger } = store.tables;
      await h.db.schema.alterTable(ledger, (t) => t.renameColumn('amount', 'amount_gone'));
      try {
        const error = await direct.hold(holdOf(user)).then(() => undefined, (e: unknown) => e as { code?: string; sql?: string });
        expect([error?.code, error?.sql]).to.deep.equal(['ER_BAD_FIELD_ERROR', `INSERT INTO \`${ledger}\``]);
      } finally {
        await h.db.schema.alterTable(ledger, (t) => t.renameColumn('amount_gone', 'amount'));
      }
      expect([await h.rows('videos'), await h.tasks(), await h.ledger()]).to.deep.equal([[], [], []]);
      expect(await h.balance(user)).to.equal(10 * HOLD);
    });

    if (database.name === 'mysql') it("names a failure in the host row's update after Kling's answer, and leaves the task as it was", async () => {
      const user = await h.user(10 * HOLD);
      const task = await direct.hold(holdOf(user));
      if (!task) throw new Error('the hold should pass');
      await h.db.schema.alterTable('videos', (t) => t.renameColumn('status', 'status_gone'));
      try {
        const now = Date.now();
        const error = await direct
          .accept({ host, taskId: task.id, hostRowId: task.host_row_id, patch: { kling_task_id: 'kling-a', state: 'submitted', updated_at: now }, hostPatch: () => ({ task_id: 'kling-a', status: 'submitted' }) })
          .then(() => undefined, (e: unknown) => e as { code?: string; sql?: string });
        expect([error?.code, error?.sql]).to.deep.equal(['ER_BAD_FIELD_ERROR', 'UPDATE `videos`']);
      } finally {
        await h.db.schema.alterTable('videos', (t) => t.renameColumn('status_gone', 'status'));
      }
      expect((await h.tasks()).map((t) => [t.kling_task_id, t.state])).to.deep.equal([[null, 'pending']]);
    });

    // A deadlock the database breaks by ending one transaction: here the group's, in its one-by-one run.
    it("runs a group again when a deadlock ends its one-by-one transaction: the writes the deadlock undid commit, the refused one stays refused", async () => {
      const [first, second, third] = [await h.user(10 * HOLD), await h.user(10 * HOLD), await h.user(10 * HOLD)];
      await direct.hold(holdOf(first, HOLD, 'taken'));
      const before = await deadlocks();
      // Another transaction locks the third caller's balance row.
      const other = await heavyTransaction();
      try {
        await other('users').where({ id: third }).update({ quota: other.raw('quota') });
        // One group: the first caller's hold repeats a client_task_id and fails at once, so the group
        // runs one by one; there the second caller's hold locks its row and the third's waits.
        const answers = Promise.allSettled([direct.hold(holdOf(first, HOLD, 'taken')), direct.hold(holdOf(second)), direct.hold(holdOf(third))]);
        await aStatementWaits();
        // The other transaction now waits for the second caller's row: a circle.
        await other('users').where({ id: second }).update({ quota: other.raw('quota') });
        await other.commit();
        const settled = await answers;
        expect(settled.map((a) => a.status)).to.deep.equal(['rejected', 'fulfilled', 'fulfilled']);
        expect(isUniqueViolation((settled[0] as PromiseRejectedResult).reason)).to.equal(true);
      } finally {
        if (!other.isCompleted()) await other.rollback();
        await h.db.schema.dropTableIfExists('kling_test_weight');
      }
      expect(await deadlocks(), 'the database broke a deadlock').to.be.greaterThan(before);
      expect([await h.balance(first), await h.balance(second), await h.balance(third)]).to.deep.equal([9 * HOLD, 9 * HOLD, 9 * HOLD]);
      expect((await h.tasks()).map((t) => t.user_id).sort()).to.deep.equal([first, second, third].map(String).sort());
      expect((await h.ledger()).filter((l) => l.kind === 'hold')).to.have.length(3);
      expect(await h.rows('videos')).to.have.length(3);
    });

    it("runs a write alone in its group again when the database breaks a deadlock with it: Kling's answer is recorded", async () => {
      const user = await h.user(10 * HOLD);
      const task = await direct.hold(holdOf(user));
      if (!task) throw new Error('the hold should pass');
      const before = await deadlocks();
      // Another transaction locks the task's host row; the answer's write locks the task row, then waits for it.
      const other = await heavyTransaction();
      try {
        await other('videos').where({ id: task.host_row_id }).update({ status: other.raw('status') });
        const now = Date.now();
        const write = { host, taskId: task.id, hostRowId: task.host_row_id, patch: { kling_task_id: 'kling-a', state: 'submitted' as const, updated_at: now }, hostPatch: () => ({ task_id: 'kling-a', status: 'submitted' }) };
        const accepted = direct.accept(write).catch((error: unknown) => error);
        await aStatementWaits();
        await other(store.tables.tasks).where({ id: task.id }).update({ updated_at: other.raw('updated_at') });
        await other.commit();
        expect(await accepted).to.equal(true);
      } finally {
        if (!other.isCompleted()) await other.rollback();
        await h.db.schema.dropTableIfExists('kling_test_weight');
      }
      expect(await deadlocks(), 'the database broke a deadlock').to.be.greaterThan(before);
      expect((await h.tasks()).map((t) => [t.kling_task_id, t.state])).to.deep.equal([['kling-a', 'submitted']]);
      expect((await h.rows('videos')).map((r) => [r.task_id, r.status])).to.deep.equal([['kling-a', 'submitted']]);
    });

    it("records Kling's answer on a pending task and its host row, and only the Kling id once a final transition came first", async () => {
      const user = await h.user(10 * HOLD);
      const accept = (id: number, hostRowId: string, klingTaskId: string): Promise<boolean> => {
        const now = Date.now();
        return direct.accept({
          host, taskId: id, hostRowId,
          patch: { kling_task_id: klingTaskId, state: 'submitted', kling_created_at: now, kling_updated_at: now, next_check_at: now + 1000, updated_at: now },
          hostPatch: (moved) => (moved ? { task_id: klingTaskId, status: 'submitted', updated_at: 7 } : { task_id: klingTaskId }),
        });
      };
      const a = await direct.hold(holdOf(user));
      const b = await direct.hold(holdOf(user));
      if (!a || !b) throw new Error('both holds should pass');
      expect(await accept(a.id, a.host_row_id, 'kling-a')).to.equal(true);
      // b is settled before its answer is recorded (a callback overtook the submit).
      const storage = new KnexTaskStorage({ db: h.db, store, hosts: { video: host, image: new HostTable({ name: 'images' }, 'image') }, quota });
      const deps = { storage, db: h.db, store, quotaPerUnit: 500_000, logger: silentLogger };
      expect(await finish(deps, b.id, { status: 'succeed', result: { videos: [] } })).to.equal(true);
      expect(await accept(b.id, b.host_row_id, 'kling-b')).to.equal(false);
      const tasks = await h.tasks();
      const rows = await h.rows('videos');
      expect(tasks.map((t) => [t.kling_task_id, t.state])).to.deep.equal([['kling-a', 'submitted'], ['kling-b', 'succeed']]);
      expect(rows.map((r) => [r.task_id, r.status])).to.deep.equal([['kling-a', 'submitted'], ['kling-b', 'succeed']]);
      expect(Number(rows[0]?.updated_at)).to.equal(7);
    });

    // Two groups at the database at once, each on a connection of the writer's own.
    it("takes the callers' balance rows in one order in every group: two groups at once, each caller's holds in the opposite order, no deadlock", async () => {
      const users: number[] = [];
      for (let i = 0; i < 8; i++) users.push(await h.user(100 * HOLD));
      const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
      // Both connections of the writer logged in first.
      await Promise.all([direct.hold(holdOf(users[0] as number)), turn().then(() => turn()).then(() => direct.hold(holdOf(users[1] as number)))]);
      const before = await deadlocks();
      const held: (RelayTask | undefined)[] = [];
      for (let round = 0; round < 10; round++) {
        // The first group takes the callers last to first; the second, sent while the first is at the
        // database, first to last: in the order they came, each would wait for the other.
        const first = [...users].reverse().map((user) => direct.hold(holdOf(user)));
        await turn();
        await turn();
        const second = users.map((user) => direct.hold(holdOf(user)));
        held.push(...(await Promise.all([...first, ...second])));
      }
      const answers = held;
      expect(answers.filter((task) => task === undefined)).to.deep.equal([]);
      for (const [i, user] of users.entries()) expect(await h.balance(user)).to.equal((i < 2 ? 79 : 80) * HOLD);
      // A backend reports its deadlocks when it ends.
      direct.close?.();
      let after = before;
      for (let i = 0; i < 50 && after === before; i++) {
        await new Promise((resolve) => setTimeout(resolve, 40));
        after = await deadlocks();
      }
      expect(after - before).to.equal(0);
    });

    // MariaDB/MySQL only: its writer opens connections of its own from knex's settings, which a host's
    // `afterCreate` never sees; such a relay keeps knex's path, on connections where it ran.
    if (database.name === 'mysql') it("keeps the host's pool.afterCreate: a relay's submits are written where it ran (its session's auto-increment step shows in the ids)", async () => {
      type Session = { query(sql: string, done: (error?: Error) => void): void };
      const afterCreate = (c: Session, done: (error?: Error) => void): void => c.query('SET SESSION auto_increment_increment = 10', done);
      const own = knex({ client: 'mysql2', connection: process.env.TEST_MYSQL_URL, pool: { min: 0, max: 2, afterCreate } });
      let host: Harness | undefined;
      try {
        host = await startHarness(database, { relay: { db: own } });
        const user = await host.user(100_000);
        for (const prompt of ['a kite', 'a boat']) {
          const res = await request(host.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ prompt });
          expect(res.status).to.equal(200);
        }
        const ids = (await host.rows('videos')).map((row) => Number(row.id));
        expect(ids).to.have.length(2);
        expect((ids[1] as number) - (ids[0] as number)).to.equal(10);
      } finally {
        await checkAndClose(host);
        await own.destroy();
      }
    });

    // PostgreSQL only: its writer opens a connection of its own from knex's settings, where knex sets
    // each connection's schema search path itself, and where a host's `afterCreate` may set it instead.
    if (database.name === 'pg') {
      const SCHEMA = 'kling_relay_host_schema';
      const variants: [string, Knex.Config][] = [
        ["knex's searchPath", { searchPath: [SCHEMA] }],
        ["the host's pool.afterCreate", { pool: { min: 0, max: 2, afterCreate: (c: { query(sql: string, done: (error?: Error) => void): void }, done: (error?: Error) => void) => c.query(`SET search_path TO ${SCHEMA}`, done) } }],
      ];
      for (const [how, settings] of variants) {
        it(`writes into the host's own schema when ${how} names it, not into a table of the same name in public`, async () => {
          await h.db.raw(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
          await h.db.raw(`CREATE SCHEMA ${SCHEMA}`);
          const own = knex({ client: 'pg', connection: process.env.TEST_PG_URL, pool: { min: 0, max: 2 }, ...settings });
          const writes = directWritesFor(own, store);
          try {
            await createDefaultHostTables(own);
            await store.migrate(own);
            const [inserted] = (await own('users').insert({ username: 'schema-user', quota: 100_000, used_quota: 0 }).returning('id')) as { id: number }[];
            const user = Number(inserted?.id);
            const publicUser = await h.user(100_000);
            expect(user, 'the same id in both schemas').to.equal(publicUser);
            const task = await writes.hold(holdOf(user));
            expect(task).to.not.equal(undefined);
            const balance = async (db: Knex) => Number(((await db('users').where({ id: user }).first('quota')) as { quota: number }).quota);
            expect([await balance(own), (await own('kling_relay_tasks')).length, (await own('kling_relay_ledger')).length, (await own('videos')).length]).to.deep.equal([100_000 - HOLD, 1, 1, 1]);
            expect([await balance(h.db), await h.tasks(), await h.ledger(), await h.rows('videos')]).to.deep.equal([100_000, [], [], []]);
          } finally {
            writes.close?.();
            await own.destroy();
            await h.db.raw(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
          }
        });
      }
    }
  });
}

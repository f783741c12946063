import { expect } from 'chai';
import express from 'express';
import knex, { type Knex } from 'knex';
import request from 'supertest';
import { KnexQuotaStore } from '../../adapters/quota-store.js';
import type { FetchLike } from '../../lib/upstream/client.js';
import { testDatabases, type TestDatabase } from '../support/databases.js';
import { checkAndClose, startHarness, type Harness } from '../support/harness.js';
import { allowHostStatus, refuseHostStatus } from '../support/host-triggers.js';
import { silentLogger } from '../../lib/logger.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';

const QPU = 500_000;
const HOLD = Math.round(0.01 * 5 * QPU);
const START = 1_000_000;

/** The server's id of the connection running `db`'s next statement (a transaction's own connection). */
async function connectionId(database: TestDatabase, db: Knex | Knex.Transaction): Promise<number> {
  if (database.name === 'mysql') {
    const [rows] = (await db.raw('SELECT CONNECTION_ID() AS id')) as [{ id: number }[]];
    return Number(rows[0]?.id);
  }
  const result = (await db.raw('SELECT pg_backend_pid() AS id')) as { rows: { id: number }[] };
  return Number(result.rows[0]?.id);
}

/** Kills a connection from another one, as an operator or a failover would, and waits until it is gone. */
async function kill(database: TestDatabase, admin: Knex, id: number): Promise<void> {
  if (database.name === 'mysql') await admin.raw(`KILL CONNECTION ${id}`);
  else await admin.raw('SELECT pg_terminate_backend(?, 5000)', [id]);
  const list = database.name === 'mysql' ? 'information_schema.PROCESSLIST' : 'pg_stat_activity';
  const column = database.name === 'mysql' ? 'ID' : 'pid';
  for (let i = 0; i < 100; i++) {
    const left = (await admin(list).where(column, id).count({ n: '*' })) as { n: number | string }[];
    if (Number(left[0]?.n) === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`connection ${id} is still there`);
}

/** Every connection to this test's database except the admin's own. */
async function otherConnections(database: TestDatabase, admin: Knex): Promise<number[]> {
  if (database.name === 'mysql') {
    const [rows] = (await admin.raw('SELECT ID AS id FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND ID <> CONNECTION_ID()')) as [{ id: number }[]];
    return rows.map((r) => Number(r.id));
  }
  const result = (await admin.raw('SELECT pid AS id FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()')) as { rows: { id: number }[] };
  return result.rows.map((r) => Number(r.id));
}

/**
 * The host's quota store with a fault hook: after the conditional hold statement, while the hold
 * transaction is still open, its connection is killed. QuotaStore is the host's own extension point,
 * so the relay runs exactly its production code around it.
 */
class KillAfterHold extends KnexQuotaStore {
  armed = false;
  killed: number | undefined;
  constructor(private readonly database: TestDatabase, private readonly admin: () => Knex) {
    super();
  }
  override async hold(trx: Knex.Transaction, userId: string, amount: number): Promise<boolean> {
    const held = await super.hold(trx, userId, amount);
    if (this.armed) {
      this.armed = false;
      this.killed = await connectionId(this.database, trx);
      await kill(this.database, this.admin(), this.killed);
    }
    return held;
  }
}

/** The relay's knex, pointed at a proxy in front of the real server. */
function throughProxy(database: TestDatabase, proxy: TcpProxy, poolSize = 4): Knex {
  const url = new URL(database.name === 'mysql' ? (process.env.TEST_MYSQL_URL ?? '') : (process.env.TEST_PG_URL ?? ''));
  url.hostname = '127.0.0.1';
  url.port = String(proxy.port);
  const silent = { error() {}, warn() {}, debug() {}, deprecate() {} };
  return knex({ client: database.name === 'mysql' ? 'mysql2' : 'pg', connection: url.toString(), pool: { min: 0, max: poolSize }, acquireConnectionTimeout: 3_000, log: silent });
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 250; i++) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

for (const database of testDatabases().filter((d) => d.name !== 'sqlite')) {
  describe(`database faults on ${database.name}`, function () {
    this.timeout(20_000);
    let h: Harness | undefined;
    let admin: Knex;
    let user: number;

    beforeEach(() => {
      admin = database.connect();
    });
    afterEach(async () => {
      await checkAndClose(h);
      h = undefined;
      await admin.destroy();
    });

    const submit = (url: string) => request(url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ prompt: 'a kite' });

    it('connection killed after the hold, before the Kling call: 503, no hold remains, Kling got no POST; the next submit works', async () => {
      const quota = new KillAfterHold(database, () => admin);
      h = await startHarness(database, { relay: { quota } });
      user = await h.user(START);
      quota.armed = true;
      const res = await submit(h.url);
      expect(quota.killed, 'the hook killed the hold transaction').to.be.a('number');
      expect([res.status, res.body.code]).to.deep.equal([503, 5001]);
      expect(h.creates()).to.deep.equal([]);
      expect(await h.tasks()).to.deep.equal([]);
      expect(await h.ledger()).to.deep.equal([]);
      expect(await h.rows('videos')).to.deep.equal([]);
      expect(await h.balance(user)).to.equal(START);

      // The pool drops the dead connection; the next request gets a fresh one.
      const again = await submit(h.url);
      expect(again.status).to.equal(200);
      expect(h.creates()).to.have.length(1);
      expect(await h.balance(user)).to.equal(START - HOLD);
    });

    it('connections killed after the hold committed, as Kling is called: the task goes on, held once, and settles', async () => {
      let armed = true;
      const killing: FetchLike = async (url, init) => {
        if (armed && init.method === 'POST') {
          armed = false;
          // Every connection of the relay's pool dies while the create is on its way to Kling.
          for (const id of await otherConnections(database, admin)) await kill(database, admin, id);
        }
        return (globalThis.fetch as unknown as FetchLike)(url, init);
      };
      h = await startHarness(database, { relay: { fetch: killing } });
      user = await h.user(START);
      const res = await submit(h.url);
      expect(armed, 'the hook ran').to.equal(false);
      // The hold committed before the call; the Kling id is recorded on a fresh connection after it.
      expect(res.status).to.equal(200);
      const taskId = res.body.data.task_id as string;
      expect(h.creates()).to.have.length(1);
      const [task] = await h.tasks();
      expect([task?.state, task?.kling_task_id]).to.deep.equal(['submitted', taskId]);
      expect(await h.balance(user)).to.equal(START - HOLD);
      h.sandbox.complete(taskId, { status: 'succeed' });
      await h.db('kling_relay_tasks').update({ next_check_at: 0 });
      expect(await h.relay.reconcile()).to.include({ finished: 1, errors: 0 });
      expect((await h.ledger()).map((l) => l.kind)).to.deep.equal(['hold', 'settle']);
    });

    describe('behind a TCP proxy', () => {
      let proxy: TcpProxy;
      let relayDb: Knex;
      beforeEach(async () => {
        const url = new URL(database.name === 'mysql' ? (process.env.TEST_MYSQL_URL ?? '') : (process.env.TEST_PG_URL ?? ''));
        proxy = await startTcpProxy(url.hostname, Number(url.port));
        relayDb = throughProxy(database, proxy);
        h = await startHarness(database, { relay: { db: relayDb, dbTimeoutMs: 1_500 } });
        user = await h.user(START);
        // The relay works through the proxy before the fault.
        expect((await submit(h.url)).status).to.equal(200);
      });
      afterEach(async () => {
        await proxy.close();
        await relayDb.destroy();
      });

      it('database black-holed: 503 within the deadline, nothing half-written, no POST, even once the connections die', async () => {
        proxy.blackHole();
        const started = Date.now();
        const res = await submit(h!.url);
        expect([res.status, res.body.code]).to.deep.equal([503, 5001]);
        // dbTimeoutMs (1.5 s) plus scheduling slack: the client does not wait on the database for ever.
        expect(Date.now() - started).to.be.below(4_000);
        // Reads go around the proxy: only the first task is there.
        expect(await h!.tasks()).to.have.length(1);
        expect((await h!.ledger()).map((l) => l.kind)).to.deep.equal(['hold']);
        expect(await h!.balance(user)).to.equal(START - HOLD);
        // The stuck transaction fails when its connection goes; still nothing is written or posted.
        await proxy.close();
        await new Promise((resolve) => setTimeout(resolve, 200));
        expect(await h!.tasks()).to.have.length(1);
        expect(await h!.rows('videos')).to.have.length(1);
        expect(h!.creates()).to.have.length(1);
      });

      it("the relay's open connections hang for good while new ones work: 503 within the deadline, then submits go through on new connections", async () => {
        proxy.blackHoleOpen();
        const started = Date.now();
        const res = await submit(h!.url);
        expect([res.status, res.body.code]).to.deep.equal([503, 5001]);
        expect(Date.now() - started).to.be.below(4_000);
        // The writer gives up the groups its hanging connections never answer and opens others.
        let answer = res;
        while (answer.status !== 200 && Date.now() - started < 12_000) answer = await submit(h!.url);
        expect([answer.status, answer.body.code], 'a submit after the hang').to.deep.equal([200, 0]);
        // The group deadline: twice dbTimeoutMs, 5 s at least; then slack.
        expect(Date.now() - started, 'recovered after the group deadline and slack').to.be.below(8_000);
        expect(h!.creates()).to.have.length(2);
        // Each task that reached Kling is held once. A hold that committed after its submit's deadline
        // (queued behind the hanging groups) never reached Kling; its refund reads the task through
        // knex's pool, whose old connections hang too until the query deadline drops them, so it may
        // still be pending here (the reconciler refunds it once it finds that Kling never got it).
        const tasks = await h!.tasks();
        const sent = tasks.filter((t) => t.kling_task_id !== null);
        expect(sent).to.have.length(2);
        const ledger = await h!.ledger();
        for (const task of sent) expect(ledger.filter((l) => Number(l.task_id) === Number(task.id)).map((l) => l.kind)).to.deep.equal(['hold']);
        for (const task of tasks.filter((t) => t.kling_task_id === null)) expect(task.state).to.be.oneOf(['pending', 'failed']);
      });

      it("the relay's pool connections hang for good: a task query answers 503 once its deadline passes, and later queries work on new connections", async function () {
        this.timeout(40_000);
        const taskId = (await h!.tasks())[0]?.kling_task_id as string;
        const query = () => request(h!.url).get(`/kling/v1/videos/text2video/${taskId}`).set('X-User-Id', String(user)).timeout(15_000);
        // The task is read through knex's pool: its connection is open when the proxy starts to swallow.
        expect((await query()).status).to.equal(200);
        proxy.blackHoleOpen();
        const started = Date.now();
        const hung = await query();
        expect([hung.status, hung.body.code]).to.deep.equal([503, 5001]);
        // The query deadline is the group deadline (twice dbTimeoutMs, 5 s at least), then slack.
        expect(Date.now() - started, 'answered after the query deadline').to.be.within(4_500, 8_000);
        // Each connection that hung is dropped from the pool; a query on a new one is answered.
        let answer = hung;
        while (answer.status !== 200 && Date.now() - started < 30_000) answer = await query();
        expect([answer.status, answer.body.data?.task_id]).to.deep.equal([200, taskId]);
      });

      it("a host's quota store (holds in knex transactions) and the pool's connections hang for good: 503s, then submits go through on new connections", async function () {
        this.timeout(40_000);
        // A second relay on a pool of two, whose holds run in knex transactions (a quota store of the host's own).
        class HostQuota extends KnexQuotaStore {
          override hold(trx: Knex.Transaction, userId: string, amount: number): Promise<boolean> {
            return super.hold(trx, userId, amount);
          }
        }
        const small = throughProxy(database, proxy, 2);
        try {
          const relay = h!.anotherRelay({ db: small, quota: new HostQuota(), dbTimeoutMs: 1_500 });
          const app = express();
          app.use('/kling', (_req, res, next) => {
            res.locals.user = { id: user };
            next();
          }, relay.router);
          const post = () => request(app).post('/kling/v1/videos/text2video').send({ prompt: 'a kite' }).timeout(15_000);
          // Both pool connections open before the fault.
          expect((await Promise.all([post(), post()])).map((r) => r.status)).to.deep.equal([200, 200]);
          proxy.blackHoleOpen();
          const started = Date.now();
          let answer = await post();
          expect([answer.status, answer.body.code]).to.deep.equal([503, 5001]);
          while (answer.status !== 200 && Date.now() - started < 30_000) answer = await post();
          expect([answer.status, answer.body.code], 'a submit after the hang').to.deep.equal([200, 0]);
          // The connection deadline: twice dbTimeoutMs, 5 s at least; then slack.
          expect(Date.now() - started, 'recovered after the connection deadline and slack').to.be.below(12_000);
          relay.close();
        } finally {
          await small.destroy();
        }
      });

      it('database stalled past the deadline, then back: 503, and the hold that commits late is refunded without a POST', async () => {
        proxy.stall();
        const res = await submit(h!.url);
        expect([res.status, res.body.code]).to.deep.equal([503, 5001]);
        proxy.release();
        const late = await waitFor('the late hold to be refunded', async () => {
          const tasks = await h!.tasks();
          return tasks.length === 2 && tasks[1]?.state === 'failed' ? tasks[1] : undefined;
        });
        expect(late.kling_task_id).to.equal(null);
        expect(String(late.status_msg)).to.match(/after the database deadline/);
        expect(h!.creates()).to.have.length(1);
        const lateLedger = (await h!.ledger()).filter((l) => Number(l.task_id) === Number(late.id));
        expect(lateLedger.map((l) => [l.kind, Number(l.amount)])).to.deep.equal([['hold', -HOLD], ['refund', HOLD]]);
        expect(await h!.balance(user)).to.equal(START - HOLD);
      });

      it("a late hold whose refund the database refuses at first is refunded on a later try, not left to the reconciler", async () => {
        // A relay whose error log the test reads.
        await checkAndClose(h);
        const errors: string[] = [];
        h = await startHarness(database, { relay: { db: relayDb, dbTimeoutMs: 1_500, logger: { ...silentLogger, error: (message: string) => void errors.push(message) } } });
        user = await h.user(START);
        await refuseHostStatus(database, h.db, 'failed');
        proxy.stall();
        const res = await submit(h.url);
        expect([res.status, res.body.code]).to.deep.equal([503, 5001]);
        proxy.release();
        await waitFor('the refund to be refused', async () => (errors.includes('could not refund a late hold') ? true : undefined));
        expect((await h.tasks()).map((t) => t.state)).to.deep.equal(['pending']);
        await allowHostStatus(database, h.db);
        // No reconciler runs here, and the task's next check is at the answer deadline.
        const late = await waitFor('the late hold to be refunded', async () => {
          const [task] = await h!.tasks();
          return task?.state === 'failed' ? task : undefined;
        });
        expect(String(late.status_msg)).to.match(/after the database deadline/);
        expect(h.creates()).to.have.length(0);
        expect((await h.ledger()).map((l) => [l.kind, Number(l.amount)])).to.deep.equal([['hold', -HOLD], ['refund', HOLD]]);
        expect(await h.balance(user)).to.equal(START);
      });
    });
  });
}

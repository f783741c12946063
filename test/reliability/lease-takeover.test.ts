import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import request from 'supertest';
import { testDatabases } from '../support/databases.js';
import { CALLBACK_SECRET, checkAndClose, startHarness, type Harness } from '../support/harness.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/reconcile-once.ts', import.meta.url));
const START = 1_000_000;
const TASKS = 3;
/** The killed process's lease: long enough to outlive its (hung) Kling calls, short for the test. */
const LEASE_MS = 4_000;

async function until(what: string, probe: () => Promise<boolean> | boolean, limitMs = 15_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

// Two processes need a database both can reach: MariaDB and PostgreSQL.
for (const database of testDatabases().filter((d) => d.name !== 'sqlite')) {
  describe(`reconcile leases across processes on ${database.name}`, function () {
    this.timeout(40_000);
    let h: Harness;
    let child: ChildProcess | undefined;
    afterEach(async () => {
      if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await checkAndClose(h);
    });

    it('a relay process killed while it holds leases: another instance finishes those tasks once the lease runs out, each once', async () => {
      h = await startHarness(database);
      const user = await h.user(START);
      const ids: string[] = [];
      for (let i = 0; i < TASKS; i++) {
        const res = await request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ prompt: `kite ${i}` });
        expect(res.status).to.equal(200);
        ids.push(res.body.data.task_id as string);
      }
      for (const id of ids) h.sandbox.complete(id, { status: 'succeed' });
      await h.db('kling_relay_tasks').update({ next_check_at: 0 });
      const held = await h.balance(user);

      // The other process's query (one list query for the account's tasks of the endpoint) reaches Kling
      // and is never answered: its pass is stuck holding leases.
      h.sandbox.hangNextQueries(1);
      const account = h.keys['acct-1'];
      const url = database.name === 'mysql' ? process.env.TEST_MYSQL_URL : process.env.TEST_PG_URL;
      let output = '';
      child = spawn(process.execPath, ['--import', 'tsx', FIXTURE], {
        env: {
          ...process.env,
          DB_CLIENT: database.name === 'mysql' ? 'mysql2' : 'pg',
          DB_URL: url,
          KLING_URL: h.sandbox.url,
          KLING_ACCOUNT_ID: 'acct-1',
          KLING_ACCESS_KEY: account?.accessKey,
          KLING_SECRET_KEY: account?.secretKey,
          CALLBACK_SECRET,
          UPSTREAM_TIMEOUT_MS: '3000',
          LEASE_MS: String(LEASE_MS),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
      const exited = new Promise<NodeJS.Signals | null>((resolve) => child?.once('exit', (_code, signal) => resolve(signal)));
      await until('the other process to query Kling about its tasks', () => h.sandbox.requests.filter((r) => r.method === 'GET').length === 1);
      const leased = await h.tasks();
      const owners = new Set(leased.map((t) => t.lease_owner));
      expect(owners.size, output).to.equal(1);
      expect([...owners][0], 'leased by the other process').to.match(new RegExp(`^relay-${String(child.pid)}-`));
      child.kill('SIGKILL');
      expect(await exited).to.equal('SIGKILL');
      expect(output, 'the pass never finished').to.equal('');

      // While the dead process's lease runs, this instance leaves its tasks alone.
      expect(await h.relay.reconcile()).to.include({ claimed: 0 });
      expect((await h.tasks()).map((t) => t.state)).to.deep.equal(['submitted', 'submitted', 'submitted']);
      const leaseUntil = Math.max(...leased.map((t) => Number(t.lease_until)));
      await until('the lease to run out', () => Date.now() > leaseUntil);

      expect(await h.relay.reconcile()).to.include({ claimed: TASKS, finished: TASKS, errors: 0 });
      expect((await h.tasks()).map((t) => t.state)).to.deep.equal(['succeed', 'succeed', 'succeed']);
      const ledger = await h.ledger();
      for (const task of await h.tasks()) {
        expect(ledger.filter((l) => Number(l.task_id) === Number(task.id)).map((l) => l.kind), `task ${String(task.id)}`).to.deep.equal(['hold', 'settle']);
      }
      // Settled at the actual price (here the whole hold): the balance did not move again.
      expect(await h.balance(user)).to.equal(held);
    });
  });
}

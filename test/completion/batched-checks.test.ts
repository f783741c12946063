import { expect } from 'chai';
import request from 'supertest';
import type { PricingRule } from '../../lib/pricing/index.js';
import type { RecordedRequest } from '../../lib/sandbox/index.js';
import { testDatabases } from '../support/databases.js';
import { startHarness, checkAndClose, type Harness, TEST_PRICING } from '../support/harness.js';

const START = 100_000_000;
const T2V = '/text-to-video/kling-3.0-turbo';
const V1 = '/v1/videos/text2video';
/**
 * Kling's deadline: a loaded test machine answers slowly while 120 tasks are submitted (the sandbox
 * runs in the relay's process); every other test submits a few, and one waits for the deadline of
 * creates that are never answered.
 */
const MANY_TIMEOUT_MS = 15_000;
const FEW_TIMEOUT_MS = 3_000;
const PRICING: PricingRule[] = [
  ...TEST_PRICING,
  { model: 'kling-3.0-turbo', type: 'text-to-video', mode: '*', duration: '*', pricing_type: 'per_second', price: 0.112, currency: 'USD' },
];

for (const database of testDatabases()) {
  describe(`reconciler: batched checks on ${database.name}`, function () {
    this.timeout(120_000);
    let h: Harness;
    let user: number;

    beforeEach(async function () {
      const many = this.currentTest?.title.includes('120 standard tasks') === true;
      h = await startHarness(database, { accounts: [{ id: 'a', apiKey: true }, { id: 'b', apiKey: true }], relay: { upstreamTimeoutMs: many ? MANY_TIMEOUT_MS : FEW_TIMEOUT_MS, pricing: PRICING } });
      user = await h.user(START);
    });
    afterEach(async () => checkAndClose(h));

    const submit = (path: string, prompt: string) => request(h.url).post(`/kling${path}`).set('X-User-Id', String(user)).send({ prompt });
    /** `count` tasks submitted ten at a time; their Kling ids. */
    async function submitMany(path: string, count: number): Promise<string[]> {
      const ids: string[] = [];
      for (let i = 0; i < count; i += 10) {
        const answers = await Promise.all(Array.from({ length: Math.min(10, count - i) }, (_, j) => submit(path, `task ${i + j}`)));
        for (const res of answers) {
          expect(res.status, JSON.stringify(res.body)).to.equal(200);
          ids.push(String(res.body.data.id ?? res.body.data.task_id));
        }
      }
      return ids;
    }
    /** Time passes: every task is due for a check. */
    const makeDue = () => h.db('kling_relay_tasks').update({ next_check_at: 0 });
    /** The GETs Kling received since `from` (an index into its requests). */
    const queriesSince = (from: number): RecordedRequest[] => h.sandbox.requests.slice(from).filter((r) => r.method === 'GET');
    const states = async () => Object.fromEntries((await h.tasks()).map((t) => [String(t.kling_task_id ?? t.external_task_id), t.state]));
    const accountOf = (taskId: string) => h.sandbox.tasks.getTask(taskId)?.accessKey;

    it("asks Kling about 120 standard tasks of two accounts in a call per account and 50 tasks, and settles each once", async () => {
      const ids = await submitMany(T2V, 120);
      const [succeed, failed, running] = [ids.slice(0, 40), ids.slice(40, 80), ids.slice(80)];
      for (const id of succeed) h.sandbox.complete(id, { status: 'succeed' });
      for (const id of failed) h.sandbox.complete(id, { status: 'failed', message: 'content risk control' });
      for (const id of running) h.sandbox.setStatus(id, 'processing');
      await makeDue();
      const from = h.sandbox.requests.length;

      const report = await h.relay.reconcile();
      expect(report).to.include({ claimed: 120, finished: 80, progressed: 40, errors: 0 });

      const queries = queriesSince(from);
      const perAccount = [h.keys.a, h.keys.b].map((keys) => ids.filter((id) => accountOf(id) === keys?.accessKey).length);
      expect(queries).to.have.length(perAccount.reduce((calls, n) => calls + Math.ceil(n / 50), 0));
      expect(queries.length).to.be.at.most(4);
      expect(queries.every((q) => q.path === '/tasks' && Object.keys(q.query).join() === 'task_ids')).to.equal(true);
      // Each task asked once, with the account that created it.
      const asked = queries.flatMap((q) => q.query.task_ids?.split(',').map((id) => [id, q.accessKey]) ?? []);
      expect(asked.map(([id]) => id).sort()).to.deep.equal([...ids].sort());
      for (const [id, key] of asked) expect(key, String(id)).to.equal(accountOf(String(id)));

      const now = await states();
      for (const id of succeed) expect(now[id], id).to.equal('succeed');
      for (const id of failed) expect(now[id], id).to.equal('failed');
      for (const id of running) expect(now[id], id).to.equal('processing');
      const rows = await h.rows('videos');
      expect(rows.filter((r) => r.status === 'succeed' || r.status === 'succeeded')).to.have.length(40);
      const ledger = await h.ledger();
      expect(ledger.filter((l) => l.kind === 'settle')).to.have.length(40);
      expect(ledger.filter((l) => l.kind === 'refund')).to.have.length(40);

      // A second pass asks about the running tasks only, and settles nothing twice.
      for (const id of running) h.sandbox.complete(id, { status: 'succeed' });
      await makeDue();
      const again = h.sandbox.requests.length;
      const second = await h.relay.reconcile();
      expect(second, JSON.stringify([second, await states()])).to.include({ claimed: 40, finished: 40, errors: 0 });
      expect(queriesSince(again).length).to.be.at.most(2);
      const settled = (await h.ledger()).filter((l) => l.kind === 'settle' || l.kind === 'refund');
      expect(settled).to.have.length(120);
      expect(new Set(settled.map((l) => Number(l.task_id))).size).to.equal(120);
    });

    it('asks by external_task_ids for tasks whose create answer was lost: adopts those Kling has, fails and refunds those it never got', async () => {
      const hung: Promise<request.Response>[] = [];
      for (let i = 0; i < 3; i++) {
        const made = h.sandbox.tasks.all().length;
        h.sandbox.hangNextCreate();
        hung.push(submit(T2V, `lost answer ${i}`).then((res) => res));
        while (h.sandbox.tasks.all().length === made) await new Promise((resolve) => setTimeout(resolve, 5));
      }
      for (const res of await Promise.all(hung)) expect(res.status).to.equal(504);
      const [kept, done, lost] = h.sandbox.tasks.all();
      h.sandbox.complete(String(done?.taskId), { status: 'succeed' });
      h.sandbox.loseTask(String(lost?.taskId));
      const held = await h.balance(user);
      await makeDue();
      const from = h.sandbox.requests.length;

      const report = await h.relay.reconcile();
      expect(report).to.include({ claimed: 3, adopted: 2, finished: 1, expired: 1, errors: 0 });
      const queries = queriesSince(from);
      const byExternal = queries.flatMap((q) => q.query.external_task_ids?.split(',') ?? []);
      expect(byExternal.sort()).to.deep.equal([kept, done, lost].map((t) => String(t?.externalTaskId)).sort());
      expect(queries.every((q) => q.path === '/tasks' && q.query.task_ids === undefined)).to.equal(true);
      expect(queries.length).to.be.at.most(2);
      const tasks = await h.tasks();
      const find = (t: typeof kept) => tasks.find((row) => row.external_task_id === t?.externalTaskId);
      expect([find(kept)?.state, find(kept)?.kling_task_id]).to.deep.equal(['submitted', kept?.taskId]);
      expect([find(done)?.state, find(done)?.kling_task_id]).to.deep.equal(['succeed', done?.taskId]);
      expect([find(lost)?.state, find(lost)?.kling_task_id]).to.deep.equal(['failed', null]);
      expect(await h.balance(user)).to.be.greaterThan(held);
    });

    it('reschedules each task of a batch call that failed, counting an error each, and settles them when the next call succeeds', async () => {
      const ids = await submitMany(T2V, 3);
      for (const id of ids) h.sandbox.complete(id, { status: 'succeed' });
      h.sandbox.failNextQuery('http-500');
      await makeDue();
      const from = h.sandbox.requests.length;
      const report = await h.relay.reconcile();
      // The failed call is one of at most two (one per account); its tasks wait for a later pass.
      const failedCall = queriesSince(from)[0];
      const inFailed = failedCall?.query.task_ids?.split(',') ?? [];
      expect(report).to.include({ claimed: 3, errors: inFailed.length, finished: 3 - inFailed.length });
      const tasks = await h.tasks();
      for (const id of inFailed) {
        const task = tasks.find((t) => t.kling_task_id === id);
        expect([task?.state, Number(task?.check_count), task?.lease_owner]).to.deep.equal(['submitted', 1, null]);
        expect(Number(task?.next_check_at)).to.be.greaterThan(Date.now());
      }
      await makeDue();
      expect(await h.relay.reconcile()).to.include({ claimed: inFailed.length, finished: inFailed.length, errors: 0 });
      expect(Object.values(await states())).to.deep.equal(['succeed', 'succeed', 'succeed']);
    });

    it('asks again at once when the connection of a batch call drops (a keep-alive connection Kling closed)', async () => {
      const ids = await submitMany(T2V, 6);
      for (const id of ids) h.sandbox.complete(id, { status: 'succeed' });
      h.sandbox.failNextQuery('reset');
      await makeDue();
      const from = h.sandbox.requests.length;
      expect(await h.relay.reconcile()).to.include({ claimed: 6, finished: 6, errors: 0 });
      const asked = queriesSince(from).flatMap((q) => q.query.task_ids?.split(',') ?? []);
      expect(asked.length).to.be.greaterThan(ids.length);
      expect([...new Set(asked)].sort()).to.deep.equal([...ids].sort());
    });

    it('reschedules a task Kling leaves out of a batch answer and applies the others', async () => {
      const ids = await submitMany(T2V, 4);
      for (const id of ids) h.sandbox.complete(id, { status: 'failed', message: 'bad luck' });
      h.sandbox.loseTask(ids[0]);
      await makeDue();
      expect(await h.relay.reconcile()).to.include({ claimed: 4, finished: 3, errors: 1, expired: 0 });
      const task = (await h.tasks()).find((t) => t.kling_task_id === ids[0]);
      expect([task?.state, Number(task?.check_count)]).to.deep.equal(['submitted', 1]);
      expect((await h.ledger()).filter((l) => l.kind === 'refund')).to.have.length(3);
    });

    it("leaves the tasks of an account no longer configured for later, and checks the other account's", async () => {
      const ids = await submitMany(T2V, 20);
      for (const id of ids) h.sandbox.complete(id, { status: 'succeed' });
      const onA = ids.filter((id) => accountOf(id) === h.keys.a?.accessKey);
      const second = h.anotherRelay({ accounts: [{ id: 'b', apiKey: String(h.keys.b?.apiKeys?.[0]), baseUrl: h.sandbox.url }] });
      try {
        await makeDue();
        const from = h.sandbox.requests.length;
        expect(await second.reconcile()).to.include({ claimed: 20, finished: 20 - onA.length, errors: onA.length });
        expect(queriesSince(from).every((q) => q.accessKey === h.keys.b?.accessKey)).to.equal(true);
        const now = await states();
        for (const id of ids) expect(now[id], id).to.equal(onA.includes(id) ? 'submitted' : 'succeed');
      } finally {
        second.close();
      }
    });

    it("checks /v1 tasks through Kling's list query per account and endpoint, falling back to the single query for a task not listed", async () => {
      const ids = await submitMany(V1, 120);
      ids.forEach((id, i) => {
        if (i % 3 === 0) h.sandbox.complete(id, { status: 'succeed' });
        else if (i % 3 === 1) h.sandbox.complete(id, { status: 'failed', message: 'bad luck' });
      });
      const missing = ids[7] as string;
      h.sandbox.loseTask(missing);
      await makeDue();
      const from = h.sandbox.requests.length;

      const report = await h.relay.reconcile();
      expect(report).to.include({ claimed: 120, finished: 79, errors: 1 });
      const queries = queriesSince(from);
      const lists = queries.filter((q) => q.path === V1);
      expect(lists.map((q) => q.query)).to.deep.equal(lists.map(() => ({ pageNum: '1', pageSize: '500' })));
      expect(lists.map((q) => q.accessKey).sort()).to.deep.equal([h.keys.a?.accessKey, h.keys.b?.accessKey].sort());
      expect(queries.filter((q) => q.path !== V1).map((q) => q.path), JSON.stringify(queries.map((q) => [q.path, q.query]))).to.deep.equal([`${V1}/${missing}`]);

      const now = await states();
      ids.forEach((id, i) => {
        if (id !== missing) expect(now[id], id).to.equal(i % 3 === 0 ? 'succeed' : i % 3 === 1 ? 'failed' : 'submitted');
      });
      expect(now[missing]).to.equal('submitted');
      const ledger = await h.ledger();
      expect(ledger.filter((l) => l.kind === 'settle' || l.kind === 'refund')).to.have.length(79);
    });

    it('pages through newer tasks of the account in the list to find the due ones', async () => {
      await h.close();
      h = await startHarness(database, { accounts: [{ id: 'a', apiKey: true }], relay: { upstreamTimeoutMs: FEW_TIMEOUT_MS, pricing: PRICING } });
      user = await h.user(START);
      const ids = await submitMany(V1, 2);
      // 600 newer tasks of the same account and endpoint, made without the relay.
      const token = await h.sandbox.token(h.keys.a);
      for (let i = 0; i < 600; i += 50) {
        await Promise.all(Array.from({ length: 50 }, () => request(h.sandbox.url).post(V1).set('Authorization', `Bearer ${token}`).send({ prompt: 'elsewhere' }).expect(200)));
      }
      for (const id of ids) h.sandbox.complete(id, { status: 'succeed' });
      await makeDue();
      const from = h.sandbox.requests.length;
      expect(await h.relay.reconcile()).to.include({ claimed: 2, finished: 2, errors: 0 });
      // Two pages of 500: the two due tasks are past the 600 newer ones.
      expect(queriesSince(from).map((q) => [q.path, q.query])).to.deep.equal([
        [V1, { pageNum: '1', pageSize: '500' }],
        [V1, { pageNum: '2', pageSize: '500' }],
      ]);
    });
  });
}

import { expect } from 'chai';
import express from 'express';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import request from 'supertest';
import type { KlingRelay } from '../../lib/index.js';
import { testDatabases } from '../support/databases.js';
import { checkAndClose, type Harness, type HarnessAccount, startHarness } from '../support/harness.js';
import { startReceiver } from '../callbacks/receiver.js';

const VIDEO = '/v1/videos/text2video';
const FINAL = ['succeed', 'failed'];

/** The relay account of a sandbox access key. */
function accountOf(h: Harness, accessKey: string | undefined): string {
  return Object.entries(h.keys).find(([, k]) => k.accessKey === accessKey)?.[0] ?? '?';
}

/** The most slots each account held at once at the sandbox (Kling), by relay account. */
function peaks(h: Harness): Record<string, number> {
  const found: Record<string, number> = {};
  for (const usage of h.sandbox.slots()) found[accountOf(h, usage.accessKey)] = Math.max(found[accountOf(h, usage.accessKey)] ?? 0, usage.peak);
  return found;
}

/** How many tasks Kling made for each of the relay's external_task_ids. */
function madePerTask(h: Harness): Map<string, number> {
  const made = new Map<string, number>();
  for (const task of h.sandbox.tasks.all()) made.set(String(task.externalTaskId), (made.get(String(task.externalTaskId)) ?? 0) + 1);
  return made;
}

/**
 * Kling finishes every task it runs, then each relay runs a reconciler pass (which settles them and
 * sends queued tasks to the freed slots), until every task of the relay is final.
 */
async function drain(h: Harness, relays: KlingRelay[] = [h.relay]): Promise<void> {
  for (let round = 0; round < 200; round++) {
    for (const task of h.sandbox.tasks.all()) if (task.status === 'submitted' || task.status === 'processing') h.sandbox.complete(task.taskId, { status: 'succeed' });
    await Promise.all(relays.map((relay) => relay.reconcile()));
    if ((await h.tasks()).every((t) => FINAL.includes(String(t.state)))) return;
  }
  throw new Error(`tasks never all finished: ${JSON.stringify((await h.tasks()).map((t) => t.state))}`);
}

/** A second relay on the harness's database, served over HTTP like the first; closed by the returned function. */
async function serve(relay: KlingRelay): Promise<{ url: string; close(): void }> {
  const app = express();
  app.use('/kling', (req, res, next) => {
    res.locals.user = { id: Number(req.get('x-user-id')) };
    next();
  }, relay.router);
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close() {
      server.close();
      server.closeAllConnections();
      relay.close();
    },
  };
}

for (const database of testDatabases()) {
  describe(`dispatch: the queue of tasks waiting for a free Kling slot on ${database.name}`, function () {
    this.timeout(120_000);
    let h: Harness | undefined;
    afterEach(async () => checkAndClose(h));

    const start = (accounts: HarnessAccount[], queue: Record<string, number> = {}, relay: Record<string, unknown> = {}) =>
      startHarness(database, { accounts, relay: { reconciler: { intervalMs: 1 }, queue, ...relay } });
    const submit = (user: number, prompt: string, extra: Record<string, unknown> = {}, url = h?.url ?? '') =>
      request(url).post(`/kling${VIDEO}`).set('X-User-Id', String(user)).send({ prompt, model_name: 'kling-v2-6', ...extra });
    const get = (user: number, id: string) => request(h?.url ?? '').get(`/kling${VIDEO}/${id}`).set('X-User-Id', String(user));

    it('accepts a submit with no free slot at once, held and queued with its body, queryable by its id, and sends it when a slot frees', async () => {
      h = await start([{ id: 'a', concurrency: 2 }]);
      const user = await h.user(100_000_000);
      const answers = [];
      for (let i = 0; i < 4; i++) answers.push(await submit(user, `task ${i}`, i === 3 ? { external_task_id: 'mine-3' } : {}));
      expect(answers.map((r) => r.status)).to.deep.equal([200, 200, 200, 200]);
      // Two sent to Kling; two queued, answered in Kling's envelope with the relay's id.
      expect(h.creates()).to.have.length(2);
      const queued = answers.slice(2).map((r) => r.body as { code: number; data: Record<string, unknown> });
      for (const body of queued) {
        expect(body.code).to.equal(0);
        expect(body.data.task_status).to.equal('submitted');
        expect(String(body.data.task_status_msg)).to.match(/queued/);
        expect(String(body.data.task_id)).to.match(/^kr-video-/);
      }
      expect(queued[1]?.data.task_info).to.deep.equal({ external_task_id: 'mine-3' });
      const rows = await h.tasks();
      expect(rows.map((t) => t.state)).to.deep.equal(['submitted', 'submitted', 'queued', 'queued']);
      expect(rows.map((t) => t.external_task_id).slice(2)).to.deep.equal(queued.map((b) => b.data.task_id));
      // The body kept is the validated request, without the caller's own ids.
      const kept = JSON.parse(String(rows[3]?.queued_body)) as Record<string, unknown>;
      expect(kept).to.include({ prompt: 'task 3', model_name: 'kling-v2-6' });
      expect(kept).to.not.have.property('external_task_id');
      // Held like any task: four holds, the host rows written.
      expect((await h.ledger()).map((l) => l.kind)).to.deep.equal(['hold', 'hold', 'hold', 'hold']);
      expect(await h.rows('videos')).to.have.length(4);
      const held = await h.balance(user);
      expect(held).to.equal(100_000_000 - rows.reduce((sum, t) => sum + Number(t.hold_quota), 0));

      // Queried by the relay's id and by the caller's own: submitted, queued; Kling is not asked.
      const relayId = String(queued[0]?.data.task_id);
      for (const id of [relayId, 'mine-3']) {
        const shown = await get(user, id);
        expect([shown.status, shown.body.data.task_status, shown.body.data.task_status_msg]).to.deep.equal([200, 'submitted', 'queued: waiting for a free Kling slot']);
      }
      expect(h.sandbox.requests.filter((r) => r.method === 'GET')).to.have.length(0);
      // The reconciler leaves queued tasks alone while no slot frees.
      await h.relay.reconcile();
      expect(h.creates()).to.have.length(2);
      expect((await h.tasks()).map((t) => t.state)).to.deep.equal(['submitted', 'submitted', 'queued', 'queued']);

      // One task ends: its slot goes to the oldest queued task.
      const [first] = h.sandbox.tasks.all();
      h.sandbox.complete(String(first?.taskId), { status: 'succeed' });
      await h.relay.reconcile();
      expect(h.creates()).to.have.length(3);
      const sent = (await h.tasks())[2];
      expect(sent?.state).to.equal('submitted');
      const klingId = String(sent?.kling_task_id);
      expect(h.sandbox.tasks.getTask(klingId)?.externalTaskId).to.equal(relayId);
      // Kling's id now, by the relay's id and by Kling's.
      for (const id of [relayId, klingId]) expect((await get(user, id)).body.data).to.include({ task_id: klingId, task_status: 'submitted', task_status_msg: '' });

      await drain(h);
      expect((await h.tasks()).map((t) => t.state)).to.deep.equal(['succeed', 'succeed', 'succeed', 'succeed']);
      expect((await get(user, 'mine-3')).body.data.task_status).to.equal('succeed');
      expect(peaks(h)).to.deep.equal({ a: 2 });
      expect([...madePerTask(h).values()]).to.deep.equal([1, 1, 1, 1]);
    });

    it("calls the caller's callback_url for a queued task as for any: Kling's id, submitted, then succeed", async () => {
      const receiver = await startReceiver();
      try {
        h = await start([{ id: 'a', concurrency: 1 }], {}, { clientCallbacks: { allowHosts: ['127.0.0.1'], timeoutMs: 2_000 } });
        const user = await h.user(100_000_000);
        expect((await submit(user, 'runs')).status).to.equal(200);
        const queued = await submit(user, 'waits', { external_task_id: 'job-q', callback_url: receiver.url });
        expect(queued.body.data.task_status_msg).to.match(/queued/);
        await drain(h);
        await h.relay.reconcile();
        const klingId = String((await h.tasks())[1]?.kling_task_id);
        expect(receiver.statuses()).to.deep.equal(['submitted', 'succeed']);
        for (const notice of receiver.requests) expect(notice.body).to.deep.include({ task_id: klingId, task_info: { external_task_id: 'job-q' } });
      } finally {
        await receiver.stop();
      }
    });

    it("answers a queued task of Kling's standard family in that family's shape, and finds it by the relay's id", async () => {
      h = await start([{ id: 'keyed', apiKey: true, concurrency: 1 }]);
      const user = await h.user(100_000_000);
      const post = (body: Record<string, unknown>) => request(h?.url ?? '').post('/kling/text-to-video/kling-3.0-turbo').set('X-User-Id', String(user)).send(body);
      expect((await post({ prompt: 'runs' })).status).to.equal(200);
      const queued = await post({ prompt: 'waits', options: { external_task_id: 'std-q' } });
      expect(queued.status, JSON.stringify(queued.body)).to.equal(200);
      const data = queued.body.data as Record<string, unknown>;
      expect(Object.keys(data).sort()).to.deep.equal(['create_time', 'external_id', 'id', 'status', 'update_time']);
      expect(data).to.include({ status: 'submitted', external_id: 'std-q' });
      expect(String(data.id)).to.match(/^kr-video-/);
      const found = await request(h.url).get(`/kling/tasks?task_ids=${String(data.id)}`).set('X-User-Id', String(user));
      expect(found.body.data).to.have.length(1);
      expect(found.body.data[0]).to.include({ id: data.id, status: 'submitted', external_id: 'std-q' });
      expect(String(found.body.data[0].message)).to.match(/queued/);
      await drain(h);
      const task = (await h.tasks())[1];
      const byKling = await request(h.url).get(`/kling/tasks?task_ids=${String(task?.kling_task_id)}`).set('X-User-Id', String(user));
      expect(byKling.body.data[0]).to.include({ id: task?.kling_task_id, external_id: 'std-q' });
      expect(h.creates().map((c) => c.path)).to.deep.equal(['/text-to-video/kling-3.0-turbo', '/text-to-video/kling-3.0-turbo']);
    });

    it("serves callers in turn: one caller's backlog does not stand before another caller's task", async () => {
      h = await start([{ id: 'a', concurrency: 1 }]);
      const busy = await h.user(100_000_000);
      const other = await h.user(100_000_000);
      for (let i = 0; i < 6; i++) expect((await submit(busy, `busy ${i}`)).status).to.equal(200);
      expect((await submit(other, 'mine')).status).to.equal(200);
      const sentOrder: string[] = [];
      h.relay.events.on('dequeued', (e) => sentOrder.push(e.userId));
      await drain(h);
      // busy's oldest queued task was first in line; other's one comes right after it, not after all five.
      expect(sentOrder.slice(0, 2)).to.deep.equal([String(busy), String(other)]);
      expect(sentOrder).to.have.length(6);
      expect(peaks(h)).to.deep.equal({ a: 1 });
    });

    it('keeps queued tasks across a restart: a new relay on the same database sends them', async () => {
      h = await start([{ id: 'a', concurrency: 1 }]);
      const user = await h.user(100_000_000);
      for (let i = 0; i < 3; i++) expect((await submit(user, `task ${i}`)).status).to.equal(200);
      // The first relay runs no more passes, as a process that stopped; a new one starts on the database.
      const restarted = h.anotherRelay();
      try {
        await drain(h, [restarted]);
      } finally {
        restarted.close();
      }
      expect((await h.tasks()).map((t) => t.state)).to.deep.equal(['succeed', 'succeed', 'succeed']);
      expect([...madePerTask(h).values()]).to.deep.equal([1, 1, 1]);
      expect(peaks(h)).to.deep.equal({ a: 1 });
    });

    it('never sends one queued task twice when two relays on one database dispatch at once', async () => {
      h = await start([
        { id: 'a', concurrency: 3, klingConcurrency: 3 },
        { id: 'b', concurrency: 3, klingConcurrency: 3 },
      ]);
      const users = [await h.user(100_000_000), await h.user(100_000_000)];
      const second = await serve(h.anotherRelay());
      const relays = [h.relay, h.anotherRelay()];
      try {
        // Every slot taken first, so that the other 14 queue, half of them through each relay.
        for (let i = 0; i < 6; i++) expect((await submit(users[0] ?? 0, `runs ${i}`)).status).to.equal(200);
        const answers = await Promise.all(Array.from({ length: 14 }, (_, i) => submit(users[i % 2] ?? 0, `task ${i}`, {}, i % 2 === 0 ? h?.url : second.url)));
        expect(answers.map((r) => r.status)).to.deep.equal(Array(14).fill(200));
        expect((await h.tasks()).filter((t) => t.state === 'queued')).to.have.length(14);
        await drain(h, relays);
      } finally {
        second.close();
        relays[1]?.close();
      }
      const tasks = await h.tasks();
      expect(tasks.map((t) => t.state)).to.deep.equal(Array(20).fill('succeed'));
      // Each task made once at Kling, on the account the relay recorded.
      const made = madePerTask(h);
      expect(tasks.map((t) => made.get(String(t.external_task_id)))).to.deep.equal(Array(20).fill(1));
      for (const task of h.sandbox.tasks.all()) expect(accountOf(h, task.accessKey)).to.equal(tasks.find((t) => t.external_task_id === task.externalTaskId)?.account_id);
      expect(Object.values(peaks(h)).every((peak) => peak <= 3)).to.equal(true);
    });

    it('refuses a submit over the queue length or the caller cap with 429 and Retry-After, holding nothing', async () => {
      h = await start([{ id: 'a', concurrency: 1 }], { maxLength: 2, perCaller: 3 });
      const [u1, u2] = [await h.user(100_000_000), await h.user(100_000_000)];
      for (let i = 0; i < 3; i++) expect((await submit(u1, `u1 ${i}`)).status).to.equal(200);
      const capped = await submit(u1, 'u1 over');
      expect([capped.status, capped.body.code, capped.headers['retry-after']]).to.deep.equal([429, 1303, '10']);
      expect(capped.body.message).to.match(/3 tasks queued or running/);
      // The queue holds two (u1's): another caller is refused for the queue's length.
      const full = await submit(u2, 'u2');
      expect([full.status, full.body.code, full.headers['retry-after']]).to.deep.equal([429, 1303, '10']);
      expect(full.body.message).to.match(/queue is full/);
      expect(await h.balance(u2)).to.equal(100_000_000);
      expect(await h.tasks()).to.have.length(3);
      expect(await h.ledger()).to.have.length(3);
      expect(await h.rows('videos')).to.have.length(3);
      await drain(h);
    });

    it('reads the queue once in a pass that finds nothing waiting (every task that ends kicks one)', async () => {
      h = await start([{ id: 'a', concurrency: 1 }], { maxWaitMs: 200 });
      const user = await h.user(100_000_000);
      expect((await submit(user, 'runs')).status).to.equal(200);
      await drain(h);
      const reads: string[] = [];
      const record = (query: { sql: string; bindings?: unknown[] }): void => {
        if (query.bindings?.includes('queued')) reads.push(query.sql);
      };
      h.db.on('query', record);
      try {
        await h.relay.reconcile();
      } finally {
        h.db.removeListener('query', record);
      }
      expect(reads).to.have.length(1);
    });

    it('fails a task queued longer than maxWaitMs, refunds its hold and says why', async () => {
      h = await start([{ id: 'a', concurrency: 1 }], { maxWaitMs: 200 });
      const user = await h.user(100_000_000);
      expect((await submit(user, 'runs')).status).to.equal(200);
      const waiting = await submit(user, 'waits');
      const before = await h.balance(user);
      await new Promise((resolve) => setTimeout(resolve, 300));
      await h.relay.reconcile();
      const shown = await get(user, String(waiting.body.data.task_id));
      expect(shown.body.data.task_status).to.equal('failed');
      expect(shown.body.data.task_status_msg).to.match(/no Kling slot came free within 200 ms/);
      const task = (await h.tasks())[1];
      expect(task?.state).to.equal('failed');
      expect(await h.balance(user)).to.equal(before + Number(task?.hold_quota));
      expect(h.creates()).to.have.length(1);
      expect((await h.ledger()).filter((l) => Number(l.task_id) === Number(task?.id)).map((l) => l.kind)).to.deep.equal(['hold', 'refund']);
      await drain(h);
    });

    it('50 concurrent submits from 5 callers on two accounts of 3 slots: all accepted, at most 3 running per account, all settled once, callers served in turn', async () => {
      h = await start([
        { id: 'a', concurrency: 3, klingConcurrency: 3 },
        { id: 'b', concurrency: 3, klingConcurrency: 3 },
      ]);
      const metrics = await h.relay.metrics(new Registry());
      const callers: number[] = [];
      for (let i = 0; i < 5; i++) callers.push(await h.user(100_000_000));
      const dequeued: string[] = [];
      const queueEvents: { depth: number }[] = [];
      h.relay.events.on('dequeued', (e) => dequeued.push(e.userId));
      h.relay.events.on('queue', (e) => queueEvents.push(e));
      const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => submit(callers[i % 5] ?? 0, `task ${i}`)));
      expect(answers.map((r) => r.status)).to.deep.equal(Array(50).fill(200));
      const queuedAtOnce = (await h.tasks()).filter((t) => t.state === 'queued').length;
      // Never more than the 6 slots sent at once. A decision counts the holds placed before it that
      // its read may not show yet, and holds that committed while it read (a group of them) count
      // twice: then a task a slot was free for waits for the queue's next pass, and the tasks after
      // it wait behind it.
      expect(queuedAtOnce).to.be.at.least(44).and.below(50);
      // A pass fills the free slots, then the queue and the slots in use are reported.
      await h.relay.reconcile();
      const busy = await metrics.metrics();
      expect(busy).to.include('kling_relay_queue_depth 44');
      for (const account of ['a', 'b']) expect(busy).to.include(`kling_relay_slots_in_use{account="${account}",model="kling-v2-6",pack="video"} 3`);
      expect(busy).to.match(/kling_relay_queue_oldest_wait_seconds [0-9.]+/);
      await drain(h);
      const tasks = await h.tasks();
      expect(tasks.map((t) => t.state)).to.deep.equal(Array(50).fill('succeed'));
      expect(peaks(h)).to.deep.equal({ a: 3, b: 3 });
      // Kling never refused a create: every create it got it made, once per task.
      expect(h.creates()).to.have.length(50);
      expect([...madePerTask(h).values()]).to.deep.equal(Array(50).fill(1));
      // Every hold settled once: one hold and one settle per task, balances = start - charges.
      const ledger = await h.ledger();
      for (const task of tasks) expect(ledger.filter((l) => Number(l.task_id) === Number(task.id)).map((l) => l.kind)).to.deep.equal(['hold', 'settle']);
      for (const caller of callers) {
        const charged = tasks.filter((t) => t.user_id === String(caller)).reduce((sum, t) => sum + Number(t.charge_quota), 0);
        expect(await h.balance(caller)).to.equal(100_000_000 - charged);
      }
      // Each round of freed slots went to every caller before any got a second one.
      expect(dequeued).to.have.length(queuedAtOnce);
      expect(new Set(dequeued.slice(0, 5)).size).to.equal(5);
      expect(queueEvents.at(-1)?.depth).to.equal(0);
      const text = await metrics.metrics();
      expect(text).to.include(`kling_relay_tasks_queued_total{type="text2video"} ${queuedAtOnce}`);
      expect(text).to.include(`kling_relay_queue_wait_seconds_count{type="text2video"} ${queuedAtOnce}`);
      expect(text).to.include('kling_relay_queue_depth 0');
    });
  });
}

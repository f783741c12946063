import { expect } from 'chai';
import express from 'express';
import request from 'supertest';
import { callbackToken } from '../../lib/completion/token.js';
import type { PricingRule } from '../../lib/pricing/index.js';
import { testDatabases } from '../support/databases.js';
import { CALLBACK_SECRET, startHarness, checkAndClose, type Harness, type HarnessOptions, TEST_PRICING } from '../support/harness.js';
import { expectNothingLeft } from '../support/nothing-left.js';

const QPU = 500_000;
const START = 1_000_000;
const T2V = '/text-to-video/kling-3.0-turbo';
/** Kling 3.0 Turbo's prices per second: 720p and 1080p. */
const PRICING: PricingRule[] = [
  ...TEST_PRICING,
  { model: 'kling-3.0-turbo', type: 'text-to-video', mode: '720p', duration: '*', pricing_type: 'per_second', price: 0.112, currency: 'USD' },
  { model: 'kling-3.0-turbo', type: 'text-to-video', mode: '1080p', duration: '*', pricing_type: 'per_second', price: 0.14, currency: 'USD' },
];

for (const database of testDatabases()) {
  describe(`relay: Kling's standard family on ${database.name}`, function () {
    let h: Harness | undefined;
    let user: number;

    async function start(options: HarnessOptions = {}): Promise<Harness> {
      h = await startHarness(database, { accounts: [{ id: 'keyed', apiKey: true }], relay: { pricing: PRICING }, ...options });
      user = await h.user(START);
      return h;
    }
    afterEach(async () => {
      await checkAndClose(h);
      h = undefined;
    });

    const post = (harness: Harness, path: string, body: unknown) => request(harness.url).post(`/kling${path}`).set('X-User-Id', String(user)).send(body as object);

    it("submits with an API-key account: holds the path model's price, records the rows, sends the relay's ids in options, answers Kling's shape with the caller's id", async () => {
      const harness = await start();
      const res = await post(harness, T2V, {
        prompt: 'a paper boat',
        settings: { resolution: '1080p', duration: 10 },
        options: { external_task_id: 'mine-1', callback_url: 'https://client.example.com/hook', watermark_info: { enabled: true } },
      });
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      expect(res.body).to.include({ code: 0, message: 'SUCCEED' });
      const data = res.body.data as Record<string, unknown>;
      expect(Object.keys(data).sort()).to.deep.equal(['create_time', 'external_id', 'id', 'status', 'update_time']);
      expect(data).to.include({ status: 'submitted', external_id: 'mine-1' });

      const price = Math.round(0.14 * 10 * QPU);
      expect(await harness.balance(user)).to.equal(START - price);
      const [row] = await harness.rows('videos');
      expect(row).to.include({ task_id: data.id, status: 'submitted', type: 'text-to-video', model: 'kling-3.0-turbo', mode: '1080p', channel_id: 'keyed' });
      expect(Number(row?.quota)).to.equal(price);
      expect(Number(row?.duration)).to.equal(10);
      const [task] = await harness.tasks();
      expect(task).to.include({ client_task_id: 'mine-1', kling_task_id: data.id, state: 'submitted', endpoint: T2V, client_callback_url: 'https://client.example.com/hook' });
      expect((await harness.ledger()).map((l) => [l.kind, Number(l.amount)])).to.deep.equal([['hold', -price]]);

      const [create] = harness.creates();
      expect(create?.path).to.equal(T2V);
      expect(create?.headers.authorization).to.equal(`Bearer ${harness.keys.keyed?.apiKeys?.[0] ?? ''}`);
      const sent = create?.body as { options: Record<string, unknown>; settings: unknown; prompt: string };
      const ours = String(task?.external_task_id);
      expect(sent.options).to.deep.equal({
        watermark_info: { enabled: true },
        external_task_id: ours,
        callback_url: `http://127.0.0.1:9/kling/callback?task=${ours}&account=keyed&token=${callbackToken(CALLBACK_SECRET, ours)}`,
      });
      expect(sent.settings).to.deep.equal({ resolution: '1080p', aspect_ratio: '16:9', duration: 10 });
      expect(JSON.stringify(sent)).to.not.include('client.example.com').and.not.include('mine-1');
      expect(harness.sandbox.tasks.getTask(String(data.id))?.family).to.equal('standard');
    });

    it("never shows the relay's external id: a caller without one (or with an empty one) gets none", async () => {
      const harness = await start();
      for (const options of [undefined, { external_task_id: '' }]) {
        const res = await post(harness, T2V, { prompt: 'a kite', ...(options ? { options } : {}) });
        expect(res.status).to.equal(200);
        expect(res.body.data).to.not.have.property('external_id');
        expect(res.body.data.status).to.equal('submitted');
      }
      expect((await harness.tasks()).map((t) => t.client_task_id)).to.deep.equal([null, null]);
    });

    it('answers a resent submit (same body, same external id) with the first task in the same shape, holding once', async () => {
      const harness = await start();
      const body = { prompt: 'a boat', options: { external_task_id: 'again' } };
      const first = await post(harness, T2V, body);
      const second = await post(harness, T2V, body);
      expect(second.status).to.equal(200);
      expect(second.body.data).to.deep.equal({ ...first.body.data, status: 'submitted' });
      expect(harness.creates()).to.have.length(1);
      expect((await harness.ledger()).map((l) => l.kind)).to.deep.equal(['hold']);
    });

    it('chooses only API-key accounts, whatever the weights', async () => {
      const harness = await start({ accounts: [{ id: 'pair', weight: 1000 }, { id: 'keyed', apiKey: true, weight: 1 }] });
      for (let i = 0; i < 3; i++) expect((await post(harness, T2V, { prompt: `boat ${i}` })).status).to.equal(200);
      expect((await harness.tasks()).map((t) => t.account_id)).to.deep.equal(['keyed', 'keyed', 'keyed']);
      // The v1 family still uses both.
      expect((await post(harness, '/v1/videos/text2video', { prompt: 'a cat' })).status).to.equal(200);
    });

    it('refuses with 503 when no account has an API key, leaving nothing behind', async () => {
      const harness = await start({ accounts: [{ id: 'pair' }] });
      const res = await post(harness, T2V, { prompt: 'a boat' });
      expect(res.status).to.equal(503);
      expect(res.body.code).to.equal(5001);
      expect(res.body.message).to.match(/no Kling account with an API key/);
      await expectNothingLeft(harness, user, START);
    });

    it('refuses a body its schema refuses with 400/1201 naming the field, leaving nothing behind', async () => {
      const harness = await start();
      const res = await post(harness, T2V, { prompt: 'shot 1, 2, a; shot 2, 2, b;', settings: { duration: 5 } });
      expect(res.status).to.equal(400);
      expect(res.body.code).to.equal(1201);
      expect(res.body.errors.map((e: { path: string }) => e.path)).to.deep.equal(['/prompt', '/settings/duration']);
      const model = await post(harness, T2V, { prompt: 'a', model_name: 'kling-v3' });
      expect(model.body.errors).to.deep.equal([{ path: '/model_name', message: 'the model is part of the path; this endpoint takes no model_name' }]);
      await expectNothingLeft(harness, user, START);
    });

    it('answers 404 to a GET of a standard path (tasks are queried through /tasks)', async () => {
      const harness = await start();
      const res = await request(harness.url).get(`/kling${T2V}`).set('X-User-Id', String(user));
      expect(res.status).to.equal(404);
    });

    it("settles on Kling's new-shape callback, confirmed through GET /tasks", async () => {
      const harness = await start();
      const res = await post(harness, T2V, { prompt: 'a boat', settings: { duration: 5 } });
      const id = String(res.body.data.id);
      harness.sandbox.complete(id, { status: 'succeed' });
      await harness.sandbox.callbacksIdle();
      const notice = harness.sandbox.callbacks.map((c) => c.body).find((b) => 'status' in b && b.status === 'succeeded');
      expect(notice).to.not.equal(undefined);
      const [task] = await harness.tasks();
      const url = new URL(String((harness.creates()[0]?.body as { options: { callback_url: string } }).options.callback_url));
      const app = express();
      app.post('/kling/callback', harness.relay.callback);
      const answer = await request(app).post(`${url.pathname}${url.search}`).send(notice as object);
      expect(answer.status, JSON.stringify(answer.body)).to.equal(200);

      const price = Math.round(0.112 * 5 * QPU);
      const [settled] = await harness.tasks();
      expect(settled).to.include({ state: 'succeed', kling_task_id: id });
      expect(Number(settled?.charge_quota)).to.be.within(1, price);
      expect((await harness.ledger()).map((l) => l.kind)).to.deep.equal(['hold', 'settle']);
      const [row] = await harness.rows('videos');
      expect(row?.status).to.equal('succeed');
      expect(JSON.parse(String(row?.result)).videos[0]).to.include({ duration: '5.1' });
      expect(harness.sandbox.requests.filter((r) => r.method === 'GET').map((r) => `${r.path}?${new URLSearchParams(r.query).toString()}`)).to.deep.equal([`/tasks?task_ids=${id}`]);
      expect(task?.external_task_id).to.equal(settled?.external_task_id);
    });

    it("adopts a task Kling made although it answered 5000, found by the relay's external id through GET /tasks", async () => {
      const harness = await start();
      harness.sandbox.failNextCreateAfterCreating({ code: 5000 });
      const res = await post(harness, T2V, { prompt: 'a boat', options: { external_task_id: 'mine-2' } });
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      const [task] = await harness.tasks();
      expect(res.body.data).to.include({ id: task?.kling_task_id, external_id: 'mine-2' });
      expect(task?.state).to.equal('submitted');
      const query = harness.sandbox.requests.find((r) => r.method === 'GET');
      expect([query?.path, query?.query]).to.deep.equal(['/tasks', { external_task_ids: String(task?.external_task_id) }]);
      expect((await harness.ledger()).map((l) => l.kind)).to.deep.equal(['hold']);
    });

    it('refunds a create Kling answered 5000 to when GET /tasks does not know the task', async () => {
      const harness = await start();
      harness.sandbox.failNextCreate({ code: 5000 });
      const res = await post(harness, T2V, { prompt: 'a boat' });
      expect(res.status).to.equal(502);
      const [task] = await harness.tasks();
      expect(task?.state).to.equal('failed');
      expect((await harness.ledger()).map((l) => l.kind)).to.deep.equal(['hold', 'refund']);
      expect(await harness.balance(user)).to.equal(START);
    });

    it("answers the caller's GET /tasks in Kling's shape, refreshed from Kling, its own tasks only", async () => {
      const harness = await start();
      const mine = await post(harness, T2V, { prompt: 'a boat', options: { external_task_id: 'mine-3' } });
      const id = String(mine.body.data.id);
      const other = await harness.user(START);
      const theirs = await request(harness.url).post(`/kling${T2V}`).set('X-User-Id', String(other)).send({ prompt: 'their boat' });
      const v1 = await post(harness, '/v1/videos/text2video', { prompt: 'a v1 cat' });
      harness.sandbox.complete(id, { status: 'succeed' });
      const ask = (query: string) => request(harness.url).get(`/kling/tasks?${query}`).set('X-User-Id', String(user));

      const byId = await ask(`task_ids=${id},${String(theirs.body.data.id)},${String(v1.body.data.task_id)},nope`);
      expect(byId.status).to.equal(200);
      const [task, ...rest] = byId.body.data as Record<string, unknown>[];
      expect(rest).to.deep.equal([]);
      expect(task).to.include({ id, status: 'succeeded', message: '', external_id: 'mine-3' });
      expect((task?.outputs as Record<string, unknown>[])[0]).to.include({ type: 'video', duration: '5.1' });
      expect(task?.billing).to.deep.equal([{ charge_type: 'unit', amount: harness.sandbox.tasks.getTask(id)?.finalUnitDeduction, package_type: 'video' }]);
      expect((await harness.tasks()).find((t) => t.kling_task_id === id)?.state).to.equal('succeed');

      const byOwnId = await ask('external_task_ids=mine-3');
      expect((byOwnId.body.data as { id: string }[]).map((t) => t.id)).to.deep.equal([id]);
      const ours = String((await harness.tasks()).find((t) => t.kling_task_id === id)?.external_task_id);
      expect((await ask(`external_task_ids=${ours}`)).body.data).to.deep.equal([]);

      for (const [query, path] of [['', '/task_ids'], [`task_ids=${id}&external_task_ids=mine-3`, '/external_task_ids'], ['task_ids=,', '/task_ids']] as const) {
        const bad = await ask(query);
        expect([bad.status, bad.body.code, bad.body.errors?.[0]?.path], query).to.deep.equal([400, 1201, path]);
      }
    });

    it("writes the caller's callback notices in Kling's standard shape", async () => {
      const harness = await start({ relay: { pricing: PRICING, reconciler: { intervalMs: 1, taskTimeoutMs: 86_400_000 } } });
      const res = await post(harness, T2V, { prompt: 'a boat', options: { external_task_id: 'mine-4', callback_url: 'https://client.example.com/hook' } });
      const id = String(res.body.data.id);
      harness.sandbox.complete(id, { status: 'succeed' });
      await new Promise((resolve) => setTimeout(resolve, 5));
      await harness.relay.reconcile();
      const rows: { body: string }[] = await harness.db('kling_relay_outbox').select('body').orderBy('id');
      const bodies = rows.map((r) => JSON.parse(r.body) as Record<string, unknown>);
      expect(bodies.map((b) => b.status)).to.include.members(['submitted', 'succeeded']);
      const last = bodies[bodies.length - 1];
      expect(last).to.include({ id, status: 'succeeded', external_id: 'mine-4' });
      expect(last).to.not.have.property('task_id');
      expect((last?.outputs as { type: string }[])[0]?.type).to.equal('video');
    });

    it('settles and refunds through the reconciler, which asks GET /tasks', async () => {
      const harness = await start({ relay: { pricing: PRICING, reconciler: { intervalMs: 1, taskTimeoutMs: 86_400_000 } } });
      const ok = String((await post(harness, T2V, { prompt: 'a boat' })).body.data.id);
      const bad = String((await post(harness, T2V, { prompt: 'a storm' })).body.data.id);
      harness.sandbox.complete(ok, { status: 'succeed' });
      harness.sandbox.complete(bad, { status: 'failed', message: 'content risk control' });
      await new Promise((resolve) => setTimeout(resolve, 5));
      await harness.relay.reconcile();
      const states = Object.fromEntries((await harness.tasks()).map((t) => [t.kling_task_id, [t.state, t.status_msg]]));
      expect(states).to.deep.equal({ [ok]: ['succeed', null], [bad]: ['failed', 'content risk control'] });
      expect((await harness.ledger()).map((l) => l.kind).sort()).to.deep.equal(['hold', 'hold', 'refund', 'settle']);
      expect(harness.sandbox.requests.filter((r) => r.method === 'GET').every((r) => r.path === '/tasks')).to.equal(true);
    });
  });
}

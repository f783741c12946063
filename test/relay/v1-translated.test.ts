import { expect } from 'chai';
import express from 'express';
import request from 'supertest';
import { callbackToken } from '../../lib/completion/token.js';
import type { PricingRule } from '../../lib/pricing/index.js';
import { startReceiver, type Receiver } from '../callbacks/receiver.js';
import { IMAGE_URL } from '../fixtures/media.js';
import { testDatabases } from '../support/databases.js';
import { CALLBACK_SECRET, checkAndClose, startHarness, TEST_PRICING, type Harness, type HarnessOptions } from '../support/harness.js';
import { expectNothingLeft } from '../support/nothing-left.js';

const QPU = 500_000;
const START = 1_000_000;
const T2V = '/v1/videos/text2video';
const I2V = '/v1/videos/image2video';
const STANDARD_T2V = '/text-to-video/kling-3.0-turbo';
const STANDARD_I2V = '/image-to-video/kling-3.0-turbo';
/** Kling 3.0 Turbo's prices per second, as the standard family's types; the v1 type's rule must not apply. */
const PRICING: PricingRule[] = [
  ...TEST_PRICING,
  { model: 'kling-3.0-turbo', type: 'text-to-video', mode: '720p', duration: '*', pricing_type: 'per_second', price: 0.112, currency: 'USD' },
  { model: 'kling-3.0-turbo', type: 'text-to-video', mode: '1080p', duration: '*', pricing_type: 'per_second', price: 0.14, currency: 'USD' },
  { model: 'kling-3.0-turbo', type: 'image-to-video', mode: '720p', duration: '*', pricing_type: 'per_second', price: 0.1, currency: 'USD' },
  { model: 'kling-3.0-turbo', type: 'image-to-video', mode: '1080p', duration: '*', pricing_type: 'per_second', price: 0.13, currency: 'USD' },
];

for (const database of testDatabases()) {
  describe(`relay: /v1 requests for models only Kling's standard family serves, on ${database.name}`, function () {
    this.timeout(60_000);
    let h: Harness | undefined;
    let receiver: Receiver | undefined;
    let user: number;

    async function start(options: HarnessOptions = {}): Promise<Harness> {
      h = await startHarness(database, {
        accounts: [{ id: 'pair' }, { id: 'keyed', apiKey: true }],
        relay: { pricing: PRICING, clientCallbacks: { allowHosts: ['127.0.0.1'], timeoutMs: 2_000 }, reconciler: { intervalMs: 1_000, taskTimeoutMs: 86_400_000 } },
        ...options,
      });
      user = await h.user(START);
      return h;
    }
    afterEach(async () => {
      await receiver?.stop();
      receiver = undefined;
      await checkAndClose(h);
      h = undefined;
    });

    const post = (harness: Harness, path: string, body: unknown) => request(harness.url).post(`/kling${path}`).set('X-User-Id', String(user)).send(body as object);
    const get = (harness: Harness, path: string) => request(harness.url).get(`/kling${path}`).set('X-User-Id', String(user));
    /** Time passes: every task is due for the reconciler, which then settles and delivers notices. */
    async function reconcileNow(harness: Harness): Promise<void> {
      await harness.db('kling_relay_tasks').update({ next_check_at: 0 });
      await harness.relay.reconcile();
    }

    it("gives a Kling /v1 SDK's text2video request for kling-3.0-turbo a video: the standard body sent, /v1 answers, /v1 queries, a /v1 callback, settled once", async () => {
      const harness = await start();
      receiver = await startReceiver();
      const res = await post(harness, T2V, {
        model_name: 'kling-3.0-turbo',
        prompt: 'a paper boat on a river',
        negative_prompt: '',
        mode: 'pro',
        duration: '10',
        aspect_ratio: '9:16',
        sound: 'on',
        watermark_info: { enabled: true },
        callback_url: receiver.url,
        external_task_id: 'sdk-1',
      });
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      expect(res.body).to.include({ code: 0, message: 'SUCCEED' });
      const data = res.body.data as Record<string, unknown>;
      expect(Object.keys(data).sort()).to.deep.equal(['created_at', 'task_id', 'task_info', 'task_status', 'updated_at']);
      expect(data).to.deep.include({ task_status: 'submitted', task_info: { external_task_id: 'sdk-1' } });
      const id = String(data.task_id);
      expect(data.created_at).to.equal(harness.sandbox.tasks.getTask(id)?.createdAt);

      // Priced as the standard entry prices it (1080p, 10 s), on the API-key account.
      const price = Math.round(0.14 * 10 * QPU);
      expect(await harness.balance(user)).to.equal(START - price);
      const [row] = await harness.rows('videos');
      expect(row).to.include({ task_id: id, status: 'submitted', type: 'text-to-video', model: 'kling-3.0-turbo', mode: '1080p', channel_id: 'keyed' });
      expect(Number(row?.quota)).to.equal(price);
      const [task] = await harness.tasks();
      expect(task).to.include({ endpoint: STANDARD_T2V, client_endpoint: T2V, client_task_id: 'sdk-1', kling_task_id: id, account_id: 'keyed', client_callback_url: receiver.url });

      // Kling got the standard family's body, exactly.
      const [create] = harness.creates();
      expect(create?.path).to.equal(STANDARD_T2V);
      expect(create?.headers.authorization).to.equal(`Bearer ${harness.keys.keyed?.apiKeys?.[0] ?? ''}`);
      const ours = String(task?.external_task_id);
      expect(create?.body).to.deep.equal({
        prompt: 'a paper boat on a river',
        settings: { resolution: '1080p', aspect_ratio: '9:16', duration: 10 },
        options: {
          watermark_info: { enabled: true },
          external_task_id: ours,
          callback_url: `http://127.0.0.1:9/kling/callback?task=${ours}&account=keyed&token=${callbackToken(CALLBACK_SECRET, ours)}`,
        },
      });

      // Queried as a /v1 task, by Kling's id and by the caller's own.
      const pending = await get(harness, `${T2V}/${id}`);
      expect(pending.status).to.equal(200);
      expect(pending.body.data).to.deep.include({ task_id: id, task_status: 'submitted', task_info: { external_task_id: 'sdk-1' } });

      harness.sandbox.complete(id, { status: 'succeed' });
      await reconcileNow(harness);
      await reconcileNow(harness);
      const kling = harness.sandbox.tasks.getTask(id);
      for (const path of [`${T2V}/${id}`, `${T2V}/sdk-1`, `/v1/tasks/${id}`]) {
        const done = await get(harness, path);
        expect(done.status, path).to.equal(200);
        const shown = done.body.data as Record<string, unknown>;
        expect(shown, path).to.deep.include({ task_id: id, task_status: 'succeed', task_status_msg: '', task_info: { external_task_id: 'sdk-1' }, final_unit_deduction: kling?.finalUnitDeduction });
        expect(shown, path).to.not.have.property('status');
        const [video] = (shown.task_result as { videos: Record<string, unknown>[] }).videos;
        expect(video).to.include({ duration: '10.1' });
        expect(video?.url).to.be.a('string').and.not.equal('');
        expect(video?.id).to.be.a('string').and.not.equal('');
      }
      const listed = await get(harness, `${T2V}?pageNum=1&pageSize=10`);
      expect((listed.body.data as { task_id: string }[]).map((t) => t.task_id)).to.deep.equal([id]);
      const byQuery = await get(harness, `${T2V}?external_task_id=sdk-1`);
      expect((byQuery.body.data as { task_id: string }[]).map((t) => t.task_id)).to.deep.equal([id]);
      // The caller speaks /v1: the task is not one of its standard-family tasks, nor another /v1 path's.
      expect((await get(harness, `/tasks?task_ids=${id}`)).body.data).to.deep.equal([]);
      expect((await get(harness, `${I2V}/${id}`)).status).to.equal(404);

      // Settled once; the host row shows the result.
      expect((await harness.ledger()).map((l) => l.kind)).to.deep.equal(['hold', 'settle']);
      const [settled] = await harness.rows('videos');
      expect(settled?.status).to.equal('succeed');
      expect(JSON.parse(String(settled?.result)).videos[0]).to.include({ duration: '10.1' });
      // Kling was asked in the standard family's words.
      expect(harness.sandbox.requests.filter((r) => r.method === 'GET').every((r) => r.path === '/tasks')).to.equal(true);

      // The caller's callback_url heard /v1's callback body.
      const notices = receiver.requests.map((r) => r.body);
      expect(notices.map((n) => n.task_status)).to.deep.equal(['submitted', 'succeed']);
      const last = notices[1];
      expect(last).to.deep.include({ task_id: id, task_status: 'succeed', task_info: { external_task_id: 'sdk-1' }, final_unit_deduction: kling?.finalUnitDeduction });
      expect(last).to.not.have.property('id');
      expect((last?.task_result as { videos: { duration: string }[] }).videos[0]?.duration).to.equal('10.1');
    });

    it('translates an image2video request for kling-3.0-turbo to contents (prompt, first_frame), refunds a failure at Kling and shows it as /v1 failed', async () => {
      const harness = await start();
      const res = await post(harness, I2V, { model_name: 'kling-3.0-turbo', image: IMAGE_URL, prompt: 'the cat waves', mode: 'std', duration: '5' });
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      const id = String(res.body.data.task_id);
      expect(res.body.data).to.deep.include({ task_status: 'submitted', task_info: {} });
      const price = Math.round(0.1 * 5 * QPU);
      expect(await harness.balance(user)).to.equal(START - price);
      const [create] = harness.creates();
      expect(create?.path).to.equal(STANDARD_I2V);
      const body = create?.body as Record<string, unknown>;
      expect(body.contents).to.deep.equal([{ type: 'prompt', text: 'the cat waves' }, { type: 'first_frame', url: IMAGE_URL }]);
      expect(body.settings).to.deep.equal({ resolution: '720p', duration: 5 });
      expect(Object.keys(body.options as object).sort()).to.deep.equal(['callback_url', 'external_task_id']);
      expect(Object.keys(body).sort()).to.deep.equal(['contents', 'options', 'settings']);
      const [row] = await harness.rows('videos');
      expect(row).to.include({ type: 'image-to-video', model: 'kling-3.0-turbo', mode: '720p' });

      harness.sandbox.complete(id, { status: 'failed', message: 'content risk control' });
      await reconcileNow(harness);
      const shown = await get(harness, `${I2V}/${id}`);
      expect(shown.body.data).to.deep.include({ task_id: id, task_status: 'failed', task_status_msg: 'content risk control' });
      expect(shown.body.data).to.not.have.property('task_result');
      expect((await harness.ledger()).map((l) => l.kind)).to.deep.equal(['hold', 'refund']);
      expect(await harness.balance(user)).to.equal(START);
      expect((await harness.rows('videos'))[0]?.status).to.equal('failed');
    });

    it('refuses every /v1 field the model cannot take with 400/1201, each named at its pointer, leaving nothing behind', async () => {
      const harness = await start();
      const t2v = await post(harness, T2V, {
        model_name: 'kling-3.0-turbo',
        prompt: 'a boat',
        negative_prompt: 'blur',
        cfg_scale: 0.3,
        camera_control: { type: 'down_back' },
        sound: 'off',
      });
      expect([t2v.status, t2v.body.code]).to.deep.equal([400, 1201]);
      expect(t2v.body.errors.map((e: { path: string }) => e.path)).to.deep.equal(['/negative_prompt', '/cfg_scale', '/camera_control', '/sound']);
      expect(t2v.body.message).to.include('/negative_prompt').and.include('kling-3.0-turbo');

      const shots = await post(harness, T2V, { model_name: 'kling-3.0-turbo', multi_shot: true, shot_type: 'intelligence', prompt: 'a boat, then a storm' });
      expect(shots.status).to.equal(400);
      expect(shots.body.errors.map((e: { path: string }) => e.path)).to.deep.equal(['/shot_type']);
      const semicolon = await post(harness, T2V, { model_name: 'kling-3.0-turbo', multi_shot: true, shot_type: 'customize', multi_prompt: [{ index: 1, prompt: 'a boat; a storm', duration: '5' }] });
      expect(semicolon.status).to.equal(400);
      expect(semicolon.body.errors.map((e: { path: string }) => e.path)).to.deep.equal(['/multi_prompt/0/prompt']);

      const tail = await post(harness, I2V, { model_name: 'kling-3.0-turbo', image: IMAGE_URL, image_tail: IMAGE_URL, prompt: 'a' });
      expect([tail.status, tail.body.code]).to.deep.equal([400, 1201]);
      expect(tail.body.errors).to.have.length(1);
      expect(tail.body.errors[0].path).to.equal('/image_tail');
      expect(tail.body.errors[0].message).to.match(/end frame/);

      const i2v = await post(harness, I2V, {
        model_name: 'kling-3.0-turbo',
        image: IMAGE_URL,
        prompt: 'a',
        static_mask: IMAGE_URL,
        dynamic_masks: [{ mask: IMAGE_URL, trajectories: [{ x: 1, y: 1 }, { x: 2, y: 2 }] }],
        aspect_ratio: '1:1',
        voice_list: [{ voice_id: 'v-1' }],
        sound: 'on',
      });
      expect(i2v.status, JSON.stringify(i2v.body)).to.equal(400);
      expect(i2v.body.errors.map((e: { path: string }) => e.path)).to.deep.equal(['/static_mask', '/dynamic_masks', '/aspect_ratio', '/voice_list']);

      const noImage = await post(harness, I2V, { model_name: 'kling-3.0-turbo', image_tail: IMAGE_URL, prompt: 'a' });
      expect(noImage.body.errors.map((e: { path: string }) => e.path)).to.deep.equal(['/image', '/image_tail']);

      // 4k is refused as on any model but kling-v3; the target's rules run too (a multi-shot prompt's durations).
      const fourK = await post(harness, T2V, { model_name: 'kling-3.0-turbo', prompt: 'a', mode: '4k' });
      expect([fourK.status, fourK.body.errors[0].path]).to.deep.equal([400, '/mode']);
      const syntax = await post(harness, T2V, { model_name: 'kling-3.0-turbo', prompt: 'shot 1, 2, a; shot 2, 2, b;', duration: '5' });
      expect(syntax.status).to.equal(400);
      expect(syntax.body.errors.map((e: { path: string }) => e.path)).to.include('/prompt');
      await expectNothingLeft(harness, user, START);
    });

    it("writes a customize multi_prompt as the standard family's shot syntax in prompt, shots numbered in index order", async () => {
      const harness = await start();
      const res = await post(harness, T2V, {
        model_name: 'kling-3.0-turbo',
        multi_shot: true,
        shot_type: 'customize',
        multi_prompt: [{ index: 2, prompt: 'a storm', duration: '3' }, { index: 1, prompt: 'a boat', duration: '2' }],
        duration: '5',
      });
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      expect(harness.creates()[0]?.body).to.deep.include({ prompt: 'shot 1, 2, a boat; shot 2, 3, a storm;', settings: { resolution: '720p', aspect_ratio: '16:9', duration: 5 } });

      const i2v = await post(harness, I2V, { model_name: 'kling-3.0-turbo', image: IMAGE_URL, multi_shot: true, shot_type: 'customize', multi_prompt: [{ index: 1, prompt: 'waves', duration: '5' }], duration: '5' });
      expect(i2v.status, JSON.stringify(i2v.body)).to.equal(200);
      expect((harness.creates()[1]?.body as { contents: unknown }).contents).to.deep.equal([{ type: 'prompt', text: 'shot 1, 5, waves;' }, { type: 'first_frame', url: IMAGE_URL }]);
    });

    it('refuses with 503 when no account has an API key, leaving nothing behind; other /v1 models still use key pairs', async () => {
      const harness = await start({ accounts: [{ id: 'pair' }] });
      const res = await post(harness, T2V, { model_name: 'kling-3.0-turbo', prompt: 'a boat' });
      expect([res.status, res.body.code]).to.deep.equal([503, 5001]);
      expect(res.body.message).to.match(/API key/);
      await expectNothingLeft(harness, user, START);
      const v3 = await post(harness, T2V, { model_name: 'kling-v3', prompt: 'a boat' });
      expect(v3.status).to.equal(200);
      expect(harness.creates()[0]?.path).to.equal(T2V);
    });

    it("refunds a create Kling answered 5000 to and does not have, and adopts one it made although it answered 5000, answering /v1's create shape", async () => {
      const harness = await start();
      harness.sandbox.failNextCreate({ code: 5000 });
      const lost = await post(harness, T2V, { model_name: 'kling-3.0-turbo', prompt: 'a boat' });
      expect([lost.status, lost.body.code]).to.deep.equal([502, 5000]);
      expect((await harness.tasks())[0]?.state).to.equal('failed');
      expect((await harness.ledger()).map((l) => l.kind)).to.deep.equal(['hold', 'refund']);
      expect(await harness.balance(user)).to.equal(START);

      harness.sandbox.failNextCreateAfterCreating({ code: 5000 });
      const adopted = await post(harness, T2V, { model_name: 'kling-3.0-turbo', prompt: 'a kite', external_task_id: 'sdk-2' });
      expect(adopted.status, JSON.stringify(adopted.body)).to.equal(200);
      const task = (await harness.tasks()).find((t) => t.client_task_id === 'sdk-2');
      expect(adopted.body.data).to.deep.include({ task_id: task?.kling_task_id, task_status: 'submitted', task_info: { external_task_id: 'sdk-2' } });
      expect(adopted.body.data).to.not.have.property('id');
      // Both creates were looked up by the relay's external id, in the standard family's words.
      const lookUps = harness.sandbox.requests.filter((r) => r.method === 'GET').map((r) => [r.path, Object.keys(r.query)]);
      expect(lookUps).to.deep.equal([['/tasks', ['external_task_ids']], ['/tasks', ['external_task_ids']]]);
      expect(harness.sandbox.requests.filter((r) => r.method === 'GET')[1]?.query).to.deep.equal({ external_task_ids: String(task?.external_task_id) });
      expect(task?.state).to.equal('submitted');
    });

    it("settles on Kling's standard-shape callback (confirmed through GET /tasks) and writes the caller's notice in /v1's shape", async () => {
      const harness = await start();
      const res = await post(harness, T2V, { model_name: 'kling-3.0-turbo', prompt: 'a boat', callback_url: 'https://client.example.com/hook' });
      const id = String(res.body.data.task_id);
      harness.sandbox.complete(id, { status: 'succeed' });
      await harness.sandbox.callbacksIdle();
      const notice = harness.sandbox.callbacks.map((c) => c.body).find((b) => 'status' in b && b.status === 'succeeded');
      expect(notice).to.include({ id });
      const url = new URL(String((harness.creates()[0]?.body as { options: { callback_url: string } }).options.callback_url));
      const app = express();
      app.post('/kling/callback', harness.relay.callback);
      const answer = await request(app).post(`${url.pathname}${url.search}`).send(notice as object);
      expect(answer.status, JSON.stringify(answer.body)).to.equal(200);

      expect((await harness.tasks())[0]).to.include({ state: 'succeed', kling_task_id: id });
      expect((await harness.ledger()).map((l) => l.kind)).to.deep.equal(['hold', 'settle']);
      expect(harness.sandbox.requests.filter((r) => r.method === 'GET').map((r) => [r.path, r.query])).to.deep.equal([['/tasks', { task_ids: id }]]);
      const rows: { body: string }[] = await harness.db('kling_relay_outbox').select('body').orderBy('id');
      const last = JSON.parse(String(rows[rows.length - 1]?.body)) as Record<string, unknown>;
      expect(last).to.include({ task_id: id, task_status: 'succeed' });
      expect(last).to.not.have.property('outputs');
      expect((last.task_result as { videos: { duration: string }[] }).videos[0]?.duration).to.equal('5.1');
    });

    it('answers a resent submit (same body, same external_task_id) with the first task in /v1 shape, holding once', async () => {
      const harness = await start();
      const body = { model_name: 'kling-3.0-turbo', prompt: 'a boat', external_task_id: 'again' };
      const first = await post(harness, T2V, body);
      const second = await post(harness, T2V, body);
      expect(second.status, JSON.stringify(second.body)).to.equal(200);
      expect(second.body.data).to.deep.include({ task_id: first.body.data.task_id, task_status: 'submitted', task_info: { external_task_id: 'again' } });
      expect(harness.creates()).to.have.length(1);
      expect((await harness.ledger()).map((l) => l.kind)).to.deep.equal(['hold']);
    });
  });
}

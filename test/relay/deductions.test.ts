import { expect } from 'chai';
import request from 'supertest';
import { startReceiver, type Receiver } from '../callbacks/receiver.js';
import { testDatabases } from '../support/databases.js';
import { checkAndClose, startHarness, type Harness } from '../support/harness.js';

const QPU = 500_000;
const START = 1_000_000;
/** What Kling reports for a task paid partly from a resource pack and partly from the balance. */
const DEDUCTIONS = { unit: '1.5', balance: { quota: '0.588', list_price: '0.7' } };
const DEDUCTION_FIELDS = ['final_unit_deduction', 'final_balance_deduction'];

for (const database of testDatabases()) {
  describe(`what Kling reports for a task, kept, on ${database.name}`, function () {
    this.timeout(30_000);
    let h: Harness;
    let alice: number;
    let receiver: Receiver | undefined;

    async function start(options: Parameters<typeof startHarness>[1] = {}): Promise<void> {
      h = await startHarness(database, options);
      alice = await h.user(START);
    }
    afterEach(async () => {
      await receiver?.stop();
      receiver = undefined;
      await checkAndClose(h);
    });

    const post = (path: string, body: object) => request(h.url).post(`/kling${path}`).set('X-User-Id', String(alice)).send(body);
    const get = (path: string) => request(h.url).get(`/kling${path}`).set('X-User-Id', String(alice));

    async function submit(body: object): Promise<string> {
      const res = await post('/v1/videos/text2video', { prompt: 'a kite', duration: '5', ...body });
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      return res.body.data.task_id as string;
    }

    it("a finished video task's query answers, list, resent submit and host row carry watermark_url and Kling's deductions as Kling reported them", async () => {
      await start();
      const body = { external_task_id: 'wm-1', watermark_info: { enabled: true } };
      const taskId = await submit(body);
      h.sandbox.complete(taskId, { status: 'succeed', deductions: DEDUCTIONS });
      const kling = h.sandbox.tasks.getTask(taskId);
      const watermark = (kling?.result as { videos: { watermark_url?: string }[] }).videos[0]?.watermark_url;
      expect(watermark, 'the sandbox made a watermarked copy').to.be.a('string').and.not.equal('');

      const answers = [
        (await get(`/v1/videos/text2video/${taskId}`)).body.data,
        (await get('/v1/videos/text2video')).body.data[0],
        (await get(`/v1/tasks/${taskId}`)).body.data,
        (await get('/v1/videos/text2video?external_task_id=wm-1')).body.data[0],
        // A resent submit is answered with the task as it stands.
        (await post('/v1/videos/text2video', { prompt: 'a kite', duration: '5', ...body })).body.data,
      ] as Record<string, unknown>[];
      for (const [i, data] of answers.entries()) {
        expect(data, `answer ${i}`).to.deep.include({
          task_id: taskId,
          task_status: 'succeed',
          final_unit_deduction: '1.5',
          final_balance_deduction: { quota: '0.588', list_price: '0.7' },
        });
        expect(data.task_result, `answer ${i}`).to.deep.equal(kling?.result);
      }
      const [row] = await h.rows('videos');
      expect(JSON.parse(String(row?.result)).videos[0].watermark_url).to.equal(watermark);
      // The charge is still computed from the result: 5.1 s delivered, capped at the 5 s held.
      expect(await h.balance(alice)).to.equal(START - 0.01 * 5 * QPU);
      expect(h.creates()).to.have.length(1);
    });

    it('a refunded task shows the deductions Kling reported for it, and none when Kling reported none or never had the task', async () => {
      await start();
      const zero = await submit({ external_task_id: 'zero' });
      const silent = await submit({ external_task_id: 'silent' });
      h.sandbox.complete(zero, { status: 'failed', message: 'content policy' });
      h.sandbox.complete(silent, { status: 'failed', message: 'content policy', deductions: null });
      h.sandbox.failNextCreate({ code: 1201, message: 'bad prompt' });
      expect((await post('/v1/videos/text2video', { prompt: 'a kite', external_task_id: 'refused' })).status).to.equal(400);

      const shown = async (id: string) => (await get(`/v1/videos/text2video/${id}`)).body.data as Record<string, unknown>;
      const zeroAnswer = await shown('zero');
      expect(zeroAnswer).to.deep.include({ task_status: 'failed', final_unit_deduction: '0', final_balance_deduction: { quota: '0', list_price: '0' } });
      for (const id of ['silent', 'refused']) {
        const data = await shown(id);
        expect(data.task_status, id).to.equal('failed');
        expect(data, id).to.not.have.any.keys(...DEDUCTION_FIELDS);
      }
      expect(await h.balance(alice)).to.equal(START);
    });

    it("a caller's callback notice carries watermark_url and Kling's deductions", async () => {
      receiver = await startReceiver();
      await start({ relay: { clientCallbacks: { allowHosts: ['127.0.0.1'], timeoutMs: 2_000 } } });
      const taskId = await submit({ callback_url: receiver.url, watermark_info: { enabled: true } });
      h.sandbox.complete(taskId, { status: 'succeed', deductions: DEDUCTIONS });
      await h.db('kling_relay_tasks').update({ next_check_at: 0 });
      expect(await h.relay.reconcile()).to.include({ finished: 1 });
      const done = receiver.requests.find((r) => r.body.task_status === 'succeed')?.body;
      expect(done).to.deep.include({ task_id: taskId, final_unit_deduction: '1.5', final_balance_deduction: { quota: '0.588', list_price: '0.7' } });
      const watermark = (h.sandbox.tasks.getTask(taskId)?.result as { videos: { watermark_url: string }[] }).videos[0]?.watermark_url;
      expect((done?.task_result as { videos: { watermark_url?: string }[] }).videos[0]?.watermark_url).to.be.a('string').and.equal(watermark);
      const submitted = receiver.requests.find((r) => r.body.task_status === 'submitted')?.body;
      expect(submitted, 'a task not final has no deductions yet').to.not.have.any.keys(...DEDUCTION_FIELDS);
    });

    it("a sync task's answer and its task object carry Kling's deductions", async () => {
      await start();
      const res = await post('/v1/audio/tts', { text: 'Hello from the relay test', voice_id: 'oversea_male1' });
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      expect(res.body.data).to.deep.include({ final_unit_deduction: '0.05', final_balance_deduction: { quota: '0', list_price: '0' } });
      const stored = await get(`/v1/tasks/${res.body.data.task_id as string}`);
      expect(stored.body.data).to.deep.include({ task_status: 'succeed', final_unit_deduction: '0.05', final_balance_deduction: { quota: '0', list_price: '0' } });
    });

    it("adds the deductions column to an earlier version's tasks table, and keeps what Kling reports there", async () => {
      await start();
      await h.db.schema.alterTable('kling_relay_tasks', (t) => void t.dropColumn('deductions'));
      await h.relay.migrate();
      expect(await h.db.schema.hasColumn('kling_relay_tasks', 'deductions')).to.equal(true);
      const taskId = await submit({});
      h.sandbox.complete(taskId, { status: 'succeed', deductions: DEDUCTIONS });
      const data = (await get(`/v1/videos/text2video/${taskId}`)).body.data as Record<string, unknown>;
      expect(data).to.deep.include({ final_unit_deduction: '1.5', final_balance_deduction: { quota: '0.588', list_price: '0.7' } });
    });
  });
}

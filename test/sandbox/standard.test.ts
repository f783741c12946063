import { expect } from 'chai';
import { Webhook } from 'standardwebhooks';
import { DEFAULT_SANDBOX_ACCOUNT, type KlingSandbox, type SandboxAccount, startKlingSandbox } from '../../lib/sandbox/index.js';
import { type Answer, type Receiver, call, startReceiver, waitFor } from './helpers.js';

const API_KEY = DEFAULT_SANDBOX_ACCOUNT.apiKeys?.[0] ?? '';
const SECRET = `whsec_${Buffer.from('sandbox-webhook-secret-standard-01').toString('base64')}`;
const OTHER: SandboxAccount = { accessKey: 'ak-other', secretKey: 'sk-other-0123456789abcdef', apiKeys: ['other-api-key'], webhookSecret: SECRET };
const ACCOUNTS = [{ ...DEFAULT_SANDBOX_ACCOUNT, apiKeys: [API_KEY] }, OTHER];

const T2V = '/text-to-video/kling-3.0-turbo';
const I2V = '/image-to-video/kling-2.6';

function asKey(key = API_KEY): { authorization: string } {
  return { authorization: `Bearer ${key}` };
}

async function createT2V(sandbox: KlingSandbox, options: Record<string, unknown> = {}, key = API_KEY, settings: Record<string, unknown> = { duration: 5 }): Promise<Answer> {
  return call(sandbox, 'POST', T2V, { body: { prompt: 'a paper boat', settings, options }, ...asKey(key) });
}

async function getTasks(sandbox: KlingSandbox, query: string, key = API_KEY): Promise<Answer> {
  return call(sandbox, 'GET', `/tasks?${query}`, asKey(key));
}

async function listTasks(sandbox: KlingSandbox, body: unknown, key = API_KEY): Promise<Answer> {
  return call(sandbox, 'POST', '/tasks', { body, ...asKey(key) });
}

describe('kling sandbox: the standard family', () => {
  let sandbox: KlingSandbox;
  before(async () => {
    sandbox = await startKlingSandbox({ schedule: 'manual', accounts: ACCOUNTS });
  });
  afterEach(() => sandbox.reset());
  after(() => sandbox.close());

  describe('authentication: API keys only', () => {
    it('creates with an API key, and refuses a valid key-pair JWT, an unknown key and no key with 401', async () => {
      const ok = await createT2V(sandbox);
      expect(ok.status, ok.text).to.equal(200);
      const jwt = await call(sandbox, 'POST', T2V, { body: { prompt: 'p' } });
      expect([jwt.status, jwt.json.code]).to.deep.equal([401, 1002]);
      expect(jwt.json.message).to.match(/API keys only/);
      const unknown = await createT2V(sandbox, {}, 'no-such-key');
      expect([unknown.status, unknown.json.code]).to.deep.equal([401, 1002]);
      const none = await call(sandbox, 'POST', T2V, { body: { prompt: 'p' }, authorization: null });
      expect([none.status, none.json.code]).to.deep.equal([401, 1001]);
      const query = await call(sandbox, 'GET', '/tasks?task_ids=1');
      expect([query.status, query.json.code]).to.deep.equal([401, 1002]);
      expect(sandbox.tasks.all()).to.have.length(1);
      expect(sandbox.requests.map((r) => r.accessKey)).to.deep.equal([DEFAULT_SANDBOX_ACCOUNT.accessKey, undefined, undefined, undefined, undefined]);
    });

    it('still takes JWTs on v1 paths', async () => {
      const v1 = await call(sandbox, 'POST', '/v1/videos/text2video', { body: { prompt: 'p' } });
      expect(v1.status).to.equal(200);
      expect(v1.json.data).to.have.property('task_id');
    });
  });

  describe('create', () => {
    it("answers {id, status, create_time, update_time, external_id} and keeps the task's options", async () => {
      const answer = await createT2V(sandbox, { external_task_id: 'mine-1', callback_url: 'https://cb.example.com/k' });
      expect(answer.status).to.equal(200);
      expect(answer.json).to.include({ code: 0, message: 'SUCCEED' });
      const data = answer.json.data as Record<string, unknown>;
      expect(Object.keys(data).sort()).to.deep.equal(['create_time', 'external_id', 'id', 'status', 'update_time']);
      expect(data).to.include({ status: 'submitted', external_id: 'mine-1' });
      expect(data.id).to.match(/^\d{18}$/);
      expect(data.create_time).to.be.a('number').and.equal(data.update_time);
      const task = sandbox.tasks.getTask(data.id as string);
      expect(task).to.include({ family: 'standard', path: T2V, externalTaskId: 'mine-1', callbackUrl: 'https://cb.example.com/k' });
    });

    it('treats an empty external_task_id as none, and refuses one already used by the account', async () => {
      const blank = await createT2V(sandbox, { external_task_id: '' });
      expect(blank.json.data).to.not.have.property('external_id');
      await createT2V(sandbox, { external_task_id: 'dup' });
      const again = await createT2V(sandbox, { external_task_id: 'dup' });
      expect([again.status, again.json.code]).to.deep.equal([400, 1201]);
      // Another account has its own ids.
      expect((await createT2V(sandbox, { external_task_id: 'dup' }, 'other-api-key')).status).to.equal(200);
    });

    it('refuses a body without its input, malformed JSON, a data: prefix and unknown paths', async () => {
      const noPrompt = await call(sandbox, 'POST', T2V, { body: { settings: {} }, ...asKey() });
      expect([noPrompt.status, noPrompt.json.code, noPrompt.json.message]).to.deep.equal([400, 1201, 'prompt is required']);
      const noContents = await call(sandbox, 'POST', I2V, { body: { contents: [] }, ...asKey() });
      expect([noContents.status, noContents.json.message]).to.deep.equal([400, 'contents is required']);
      const broken = await call(sandbox, 'POST', T2V, { rawBody: '{"prompt":', ...asKey() });
      expect([broken.status, broken.json.code]).to.deep.equal([400, 1200]);
      const prefixed = await call(sandbox, 'POST', I2V, { body: { contents: [{ type: 'first_frame', url: 'data:image/png;base64,iVBORw0KGgo=' }] }, ...asKey() });
      expect([prefixed.status, prefixed.json.code]).to.deep.equal([400, 1201]);
      const unknownModel = await call(sandbox, 'POST', '/text-to-video/kling-3.0-omni', { body: { prompt: 'p' }, ...asKey() });
      expect([unknownModel.status, unknownModel.json.code]).to.deep.equal([404, 1202]);
      expect(sandbox.tasks.all()).to.have.length(0);
    });

    it('applies the create fault switches', async () => {
      sandbox.failNextCreate({ code: 1303 });
      const busy = await createT2V(sandbox);
      expect([busy.status, busy.json.code]).to.deep.equal([429, 1303]);
      sandbox.failNextCreateAfterCreating({ code: 5000 });
      const ambiguous = await createT2V(sandbox, { external_task_id: 'maybe' });
      expect(ambiguous.status).to.equal(500);
      expect(sandbox.tasks.findByExternalId(DEFAULT_SANDBOX_ACCOUNT.accessKey, 'maybe')?.family).to.equal('standard');
    });
  });

  describe('GET /tasks', () => {
    it('answers the tasks asked for by id or by external id, in the order asked, finished with outputs and billing', async () => {
      const a = (await createT2V(sandbox, { external_task_id: 'ext-a', watermark_info: { enabled: true } }, API_KEY, { duration: 10 })).json.data.id as string;
      const b = (await createT2V(sandbox, { external_task_id: 'ext-b' })).json.data.id as string;
      sandbox.complete(a, { status: 'succeed' });
      sandbox.setStatus(b, 'processing');

      const byId = await getTasks(sandbox, `task_ids=${b},${a}`);
      expect(byId.status).to.equal(200);
      const [taskB, taskA] = byId.json.data as Record<string, unknown>[];
      expect(taskB).to.deep.include({ id: b, status: 'processing', message: '', external_id: 'ext-b', outputs: [], billing: [] });
      expect(taskA).to.include({ id: a, status: 'succeeded', message: '', external_id: 'ext-a' });
      expect(Object.keys(taskA ?? {}).sort()).to.deep.equal(['billing', 'create_time', 'external_id', 'id', 'message', 'outputs', 'status', 'update_time']);
      const [video] = taskA?.outputs as Record<string, unknown>[];
      expect(video).to.include({ type: 'video', duration: '10.1' });
      expect(video?.url).to.match(/^https:\/\/.+\.mp4$/);
      expect(video?.watermark_url).to.match(/-wm\.mp4$/);
      expect(taskA?.billing).to.deep.equal([{ charge_type: 'unit', amount: sandbox.tasks.getTask(a)?.finalUnitDeduction, package_type: 'video' }]);
      expect(Number(sandbox.tasks.getTask(a)?.finalUnitDeduction)).to.be.greaterThan(0);

      const byExternal = await getTasks(sandbox, 'external_task_ids=ext-a');
      expect((byExternal.json.data as { id: string }[]).map((t) => t.id)).to.deep.equal([a]);
    });

    it("bills the units of Kling's price list: resolution, native audio, a reference video, voice items, motion control rounded", async () => {
      const frame = { type: 'first_frame', url: 'https://x.test/a.png' };
      const cases: [string, Record<string, unknown>, string, string][] = [
        // path, body, seconds delivered, units billed
        ['/text-to-video/kling-3.0-turbo', { prompt: 'p', settings: { duration: 10, resolution: '1080p' } }, '10.1', '10'],
        ['/text-to-video/kling-3.0-turbo', { prompt: 'p' }, '5', '4'],
        ['/text-to-video/kling-3.0', { prompt: 'p', settings: { duration: 5, resolution: '720p', audio: 'off' } }, '5', '3'],
        ['/text-to-video/kling-3.0', { prompt: 'p', settings: { duration: 5, resolution: '1080p', audio: 'native' } }, '5', '6'],
        ['/image-to-video/kling-3.0', { contents: [frame], settings: { duration: 5, resolution: '4k', audio: 'native' } }, '5', '15'],
        ['/omni-video/kling-3.0-omni', { contents: [{ type: 'prompt', text: 'p' }], settings: { duration: 5, audio: 'native' } }, '5', '4'],
        ['/omni-video/kling-3.0-omni', { contents: [{ type: 'feature_video', url: 'https://x.test/v.mp4' }], settings: { duration: 8 } }, '8.1', '7.2'],
        ['/omni-video/kling-o1', { contents: [{ type: 'base_video', url: 'https://x.test/v.mp4' }], settings: { duration: 5, resolution: '1080p' } }, '5', '6'],
        ['/omni-video/kling-o1', { contents: [frame], settings: { duration: 5 } }, '5', '3'],
        ['/text-to-video/kling-2.6', { prompt: 'p', settings: { duration: 10 } }, '10', '3'],
        ['/image-to-video/kling-2.6', { contents: [frame, { type: 'voice', voice_id: 'v', id: 'v' }], settings: { duration: 10, resolution: '1080p', audio: 'native' } }, '10', '12'],
        ['/image-to-video/kling-2.5-turbo', { contents: [frame], settings: { duration: 10, resolution: '1080p' } }, '7.2', '3.6'],
        ['/motion-control/kling-2.6', { contents: [frame], settings: { character_orientation: 'video' } }, '9.6', '5'],
        ['/motion-control/kling-3.0', { contents: [frame], settings: { character_orientation: 'video', resolution: '1080p' } }, '4.4', '4.8'],
      ];
      for (const [path, body, seconds, units] of cases) {
        const created = await call(sandbox, 'POST', path, { body, ...asKey() });
        const id = created.json.data.id as string;
        sandbox.complete(id, { status: 'succeed', duration: seconds });
        const [task] = (await getTasks(sandbox, `task_ids=${id}`)).json.data as Record<string, unknown>[];
        expect(task?.billing, `${path} ${JSON.stringify(body.settings)}`).to.deep.equal([{ charge_type: 'unit', amount: units, package_type: 'video' }]);
      }
    });

    it('reports a failure with its message and no charge, and a balance charge as cash', async () => {
      const failed = (await createT2V(sandbox)).json.data.id as string;
      sandbox.complete(failed, { status: 'failed', message: 'content risk control' });
      const cash = (await createT2V(sandbox)).json.data.id as string;
      sandbox.complete(cash, { status: 'succeed', deductions: { unit: '0', balance: { quota: '0.7', list_price: '1.4' } } });
      const answer = await getTasks(sandbox, `task_ids=${failed},${cash}`);
      const [f, c] = answer.json.data as Record<string, unknown>[];
      expect(f).to.deep.include({ status: 'failed', message: 'content risk control', outputs: [], billing: [] });
      expect(c?.billing).to.deep.equal([{ charge_type: 'cash', cash_type: 'balance', amount: '0.7', currency: 'USD', list_price: '1.4' }]);
    });

    it("leaves out ids of no task, of another account's, of a v1 task and of a lost task", async () => {
      const mine = (await createT2V(sandbox)).json.data.id as string;
      const theirs = (await createT2V(sandbox, {}, 'other-api-key')).json.data.id as string;
      const v1 = (await call(sandbox, 'POST', '/v1/videos/text2video', { body: { prompt: 'p' } })).json.data.task_id as string;
      const lost = (await createT2V(sandbox)).json.data.id as string;
      sandbox.loseTask(lost);
      const answer = await getTasks(sandbox, `task_ids=${mine},${theirs},${v1},${lost},123`);
      expect((answer.json.data as { id: string }[]).map((t) => t.id)).to.deep.equal([mine]);
      // And a v1 query does not see a standard task.
      const v1Query = await call(sandbox, 'GET', `/v1/videos/text2video/${mine}`);
      expect(v1Query.status).to.equal(404);
    });

    it('needs exactly one of task_ids and external_task_ids, naming at least one task', async () => {
      for (const query of ['', 'task_ids=1&external_task_ids=2', 'task_ids=', 'external_task_ids=,']) {
        const answer = await getTasks(sandbox, query);
        expect([answer.status, answer.json.code], query).to.deep.equal([400, 1201]);
      }
    });

    it('applies the query fault switches', async () => {
      const id = (await createT2V(sandbox)).json.data.id as string;
      sandbox.failNextQuery('http-500');
      expect((await getTasks(sandbox, `task_ids=${id}`)).status).to.equal(500);
      sandbox.failNextQuery('unknown-status');
      expect((await getTasks(sandbox, `task_ids=${id}`)).json.data[0].status).to.equal('weird');
      sandbox.failNextQuery('no-data');
      expect((await getTasks(sandbox, `task_ids=${id}`)).json).to.not.have.property('data');
      expect((await getTasks(sandbox, `task_ids=${id}`)).json.data[0].status).to.equal('submitted');
    });
  });

  describe('POST /tasks', () => {
    it('lists the account’s tasks newest first, a page at a time through next_cursor', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push((await createT2V(sandbox)).json.data.id as string);
      await createT2V(sandbox, {}, 'other-api-key');
      const first = await listTasks(sandbox, { limit: 2 });
      expect(first.status).to.equal(200);
      expect(first.json.data).to.include({ count: 2, has_more: true });
      const seen = (first.json.data.result as { id: string }[]).map((t) => t.id);
      let cursor = first.json.data.next_cursor as string;
      while (cursor !== '') {
        // A cursor replaces every other field.
        const page = await listTasks(sandbox, { cursor, limit: 500, filters: [{ key: 'status', values: ['failed'] }] });
        seen.push(...(page.json.data.result as { id: string }[]).map((t) => t.id));
        cursor = page.json.data.next_cursor as string;
        expect(page.json.data.has_more).to.equal(cursor !== '');
      }
      expect(seen).to.deep.equal([...ids].reverse());
    });

    it('filters by status and product type, within the time window (times as numbers or strings)', async () => {
      const done = (await createT2V(sandbox)).json.data.id as string;
      const waiting = (await createT2V(sandbox)).json.data.id as string;
      sandbox.complete(done, { status: 'succeed' });
      const succeeded = await listTasks(sandbox, { filters: [{ key: 'status', values: ['succeeded'] }, { key: 'product_type', values: ['video'] }] });
      expect((succeeded.json.data.result as { id: string }[]).map((t) => t.id)).to.deep.equal([done]);
      const images = await listTasks(sandbox, { filters: [{ key: 'product_type', values: ['image'] }] });
      expect(images.json.data).to.deep.include({ result: [], count: 0, has_more: false, next_cursor: '' });
      const created = sandbox.tasks.getTask(waiting)?.createdAt ?? 0;
      const window = await listTasks(sandbox, { start_time: String(created + 1), end_time: created + 60_000 });
      expect(window.json.data.result).to.deep.equal([]);
      const all = await listTasks(sandbox, { start_time: created - 60_000, end_time: String(created + 60_000) });
      expect(all.json.data.count).to.equal(2);
    });

    it('refuses a limit over 500, unknown filters, a window that ends before it starts and a made-up cursor', async () => {
      for (const body of [
        { limit: 501 },
        { limit: 0 },
        { filters: [{ key: 'model', values: ['x'] }] },
        { filters: [{ key: 'status', values: ['succeed'] }] },
        { start_time: 2000, end_time: 1000 },
        { cursor: 'not-a-cursor' },
      ]) {
        const answer = await listTasks(sandbox, body);
        expect([answer.status, answer.json.code], JSON.stringify(body)).to.deep.equal([400, 1201]);
      }
    });
  });

  describe('callbacks', () => {
    let receiver: Receiver;
    beforeEach(async () => {
      receiver = await startReceiver();
    });
    afterEach(() => receiver.close());

    it('posts the standard task object to options.callback_url on each change, signed for an account with a webhook secret', async () => {
      const created = await createT2V(sandbox, { callback_url: receiver.url, external_task_id: 'cb-1' }, 'other-api-key');
      const id = created.json.data.id as string;
      sandbox.setStatus(id, 'processing');
      sandbox.complete(id, { status: 'succeed' });
      await waitFor(() => receiver.raw.length === 3);
      await sandbox.callbacksIdle();
      const bodies = receiver.raw.map((r) => JSON.parse(r.body) as Record<string, unknown>);
      expect(bodies.map((b) => b.status)).to.deep.equal(['submitted', 'processing', 'succeeded']);
      expect(bodies[2]).to.include({ id, external_id: 'cb-1', message: '' });
      expect(bodies[2]).to.not.have.property('task_id');
      expect((bodies[2]?.outputs as { type: string }[])[0]?.type).to.equal('video');
      expect(bodies[2]?.billing).to.deep.equal([{ charge_type: 'unit', amount: sandbox.tasks.getTask(id)?.finalUnitDeduction, package_type: 'video' }]);
      for (const r of receiver.raw) {
        expect(() => new Webhook(SECRET).verify(r.body, r.headers as Record<string, string>)).to.not.throw();
      }
      expect(sandbox.callbacks.map((c) => c.status)).to.deep.equal([200, 200, 200]);
    });

    it('sends nothing without a callback_url', async () => {
      const id = (await createT2V(sandbox)).json.data.id as string;
      sandbox.complete(id, { status: 'succeed' });
      await sandbox.callbacksIdle();
      expect(sandbox.callbacks).to.deep.equal([]);
    });
  });

  describe('schedule', () => {
    it('moves a task through processing to succeeded on its own', async () => {
      const timed = await startKlingSandbox({ schedule: { processingAfterMs: 20, finalAfterMs: 60 } });
      try {
        const id = (await createT2V(timed)).json.data.id as string;
        await waitFor(() => timed.tasks.getTask(id)?.status === 'succeed');
        const answer = await getTasks(timed, `task_ids=${id}`);
        expect(answer.json.data[0]).to.include({ status: 'succeeded' });
      } finally {
        await timed.close();
      }
    });
  });
});

import { expect } from 'chai';
import { createHmac } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { testDatabases } from '../support/databases.js';
import { checkAndClose, startHarness, type Harness } from '../support/harness.js';

/**
 * A Kling client written only from Kling's documentation (authentication, envelope, task queries), with nothing
 * relay-specific: a token signed per request (HS256, typ JWT, iss = access key, exp = now + 1800,
 * nbf = now - 5), `Authorization: Bearer <token>`, JSON bodies, the `{code, message, request_id, data}`
 * envelope. It signs with node:crypto rather than jose so that it shares no code with the check it meets.
 */
class DocumentedKlingClient {
  constructor(
    private readonly baseUrl: string,
    private readonly accessKey: string,
    private readonly secretKey: string,
  ) {}

  token(): string {
    const now = Math.floor(Date.now() / 1000);
    const part = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url');
    const unsigned = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ iss: this.accessKey, exp: now + 1800, nbf: now - 5 })}`;
    return `${unsigned}.${createHmac('sha256', this.secretKey).update(unsigned).digest('base64url')}`;
  }

  async call(method: 'GET' | 'POST', path: string, body?: object): Promise<{ status: number; json: KlingAnswer }> {
    const res = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers: { Authorization: `Bearer ${this.token()}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, json: (await res.json()) as KlingAnswer };
  }

  createText2Video(body: object) {
    return this.call('POST', '/v1/videos/text2video', body);
  }

  getText2Video(taskIdOrExternalId: string) {
    return this.call('GET', `/v1/videos/text2video/${encodeURIComponent(taskIdOrExternalId)}`);
  }

  /** Polls until the task is final, as Kling's guides suggest; bounded so a broken relay fails the test. */
  async waitForText2Video(taskId: string, polls = 200): Promise<KlingTask> {
    for (let i = 0; i < polls; i++) {
      const { json } = await this.getText2Video(taskId);
      if (json.code !== 0) throw new Error(`query failed: ${JSON.stringify(json)}`);
      const task = json.data as KlingTask;
      if (task.task_status === 'succeed' || task.task_status === 'failed') return task;
      await sleep(100);
    }
    throw new Error(`task ${taskId} not final after ${polls} polls`);
  }
}

interface KlingAnswer {
  code: number;
  message: string;
  request_id: string;
  data?: unknown;
  errors?: unknown;
}

interface KlingTask {
  task_id: string;
  task_status: string;
  task_status_msg?: string;
  task_info: { external_task_id?: string };
  task_result?: { videos: { id: string; url: string; duration: string }[] };
  created_at: number;
  updated_at: number;
}

const BODY = { model_name: 'kling-v1', prompt: 'a paper boat on a rainy street', mode: 'std', duration: '5' };
/** TEST_PRICING: 0.01 USD per second, 5 s, 500000 quota per USD. */
const PRICE = 25_000;

for (const database of testDatabases()) {
  describe(`an existing Kling client pointed at the relay, signing its own JWTs, on ${database.name}`, function () {
    let h: Harness;
    let userId: number;
    let kling: DocumentedKlingClient;

    beforeEach(async () => {
      // Tasks go processing and succeed on their own, as Kling's do.
      h = await startHarness(database, { sandbox: { schedule: { processingAfterMs: 50, finalAfterMs: 150 } } });
      userId = await h.user(10_000_000);
      const keys = h.klingKeys(userId);
      // The only change to the client's set-up: the base URL.
      kling = new DocumentedKlingClient(`${h.url}/kling`, keys.accessKey, keys.secretKey);
    });
    afterEach(async () => checkAndClose(h));

    it('submits a text-to-video task, polls until succeed, and reads the video URL; the user is charged once', async () => {
      const before = Date.now();
      const created = await kling.createText2Video(BODY);
      expect(created.status, JSON.stringify(created.json)).to.equal(200);
      expect(created.json).to.include({ code: 0 });
      expect(created.json.request_id).to.be.a('string').and.not.equal('');
      const data = created.json.data as KlingTask;
      expect(data.task_status).to.equal('submitted');
      expect(data.task_id).to.be.a('string').and.not.equal('');
      expect(await h.balance(userId)).to.equal(10_000_000 - PRICE);

      const task = await kling.waitForText2Video(data.task_id);
      expect(task.task_status).to.equal('succeed');
      const url = task.task_result?.videos[0]?.url;
      // The URL Kling (here the sandbox) produced for this very task.
      expect(url).to.equal((h.sandbox.tasks.getTask(data.task_id)?.result as KlingTask['task_result'])?.videos[0]?.url);
      expect(url).to.match(/^https?:\/\//);
      expect(task.created_at).to.be.within(before, Date.now());
      expect(task.updated_at).to.be.within(task.created_at, Date.now());

      expect(await h.balance(userId)).to.equal(10_000_000 - PRICE);
      const [row] = await h.rows('videos');
      expect(row).to.include({ task_id: data.task_id, status: 'succeed', user_id: userId });
    });

    it('uses the paths with and without a trailing slash as Kling accepts them', async () => {
      const created = await kling.call('POST', '/v1/videos/text2video/', BODY);
      expect(created.status, JSON.stringify(created.json)).to.equal(200);
      const taskId = (created.json.data as KlingTask).task_id;
      for (const path of [`/v1/videos/text2video/${taskId}/`, `/v1/videos/text2video/${taskId}`]) {
        const got = await kling.call('GET', path);
        expect(got.status, path).to.equal(200);
        expect((got.json.data as KlingTask).task_id, path).to.equal(taskId);
      }
      for (const path of ['/v1/videos/text2video/', '/v1/videos/text2video/?pageNum=1&pageSize=30', '/v1/videos/text2video']) {
        const list = await kling.call('GET', path);
        expect(list.status, path).to.equal(200);
        expect((list.json.data as KlingTask[]).map((t) => t.task_id), path).to.deep.equal([taskId]);
      }
    });

    it('finds a task by its own external_task_id, in the path and in the query string', async () => {
      const created = await kling.createText2Video({ ...BODY, external_task_id: 'order-42' });
      const data = created.json.data as KlingTask;
      expect(data.task_info).to.deep.equal({ external_task_id: 'order-42' });
      // Kling got the relay's own external_task_id, so two tenants' ids cannot collide there.
      expect(h.creates()[0]?.body).to.have.property('external_task_id').that.is.a('string').and.not.equal('order-42');

      // Polling with the query-string form sees the task progress as the path form does.
      let listedStatus = '';
      for (let i = 0; i < 100 && listedStatus !== 'succeed'; i++) {
        const { json } = await kling.call('GET', '/v1/videos/text2video?external_task_id=order-42');
        listedStatus = (json.data as KlingTask[])[0]?.task_status ?? '';
        if (listedStatus !== 'succeed') await sleep(100);
      }
      expect(listedStatus).to.equal('succeed');
      const task = await kling.waitForText2Video('order-42');
      expect(task).to.include({ task_id: data.task_id, task_status: 'succeed' });
      expect(task.task_info).to.deep.equal({ external_task_id: 'order-42' });
      expect(task.task_result?.videos[0]?.url).to.match(/^https?:\/\//);
      const listed = await kling.call('GET', '/v1/videos/text2video?external_task_id=order-42');
      expect(listed.status).to.equal(200);
      expect((listed.json.data as KlingTask[]).map((t) => [t.task_id, t.task_status])).to.deep.equal([[data.task_id, 'succeed']]);
      const none = await kling.call('GET', '/v1/videos/text2video?external_task_id=order-43');
      expect(none.json.data).to.deep.equal([]);
    });

    it("pages the list with Kling's defaults (pageNum 1, pageSize 30) and limits (1..1000, 1..500), times in ms", async () => {
      const before = Date.now();
      const ids: string[] = [];
      for (let i = 0; i < 32; i++) ids.push(((await kling.createText2Video(BODY)).json.data as KlingTask).task_id);
      const newestFirst = [...ids].reverse();
      const page = async (query: string): Promise<KlingTask[]> => {
        const { status, json } = await kling.call('GET', `/v1/videos/text2video${query}`);
        expect(status, `${query}: ${JSON.stringify(json)}`).to.equal(200);
        expect(json.code).to.equal(0);
        return json.data as KlingTask[];
      };
      const first = await page('');
      expect(first.map((t) => t.task_id)).to.deep.equal(newestFirst.slice(0, 30));
      for (const t of first) {
        expect(t.created_at, 'created_at in ms').to.be.within(before, Date.now());
        expect(t.updated_at, 'updated_at in ms').to.be.within(before, Date.now());
      }
      expect((await page('?pageNum=2')).map((t) => t.task_id)).to.deep.equal(newestFirst.slice(30));
      expect((await page('?pageNum=2&pageSize=10')).map((t) => t.task_id)).to.deep.equal(newestFirst.slice(10, 20));
      expect((await page('?pageSize=500')).map((t) => t.task_id)).to.deep.equal(newestFirst);
      expect(await page('?pageNum=1000&pageSize=1')).to.deep.equal([]);
      for (const bad of ['pageNum=0', 'pageNum=1001', 'pageSize=0', 'pageSize=501', 'pageNum=abc', 'pageSize=2.5']) {
        const { status, json } = await kling.call('GET', `/v1/videos/text2video?${bad}`);
        expect(status, bad).to.equal(400);
        expect(json.code, bad).to.equal(1201);
        expect(json.message, bad).to.be.a('string').and.not.equal('');
        expect(json.request_id, bad).to.be.a('string').and.not.equal('');
      }
    });

    it("answers errors with Kling's code, message and request_id", async () => {
      const cases: [string, Promise<{ status: number; json: KlingAnswer }>, number, number][] = [
        ['unknown task', kling.getText2Video('no-such-task'), 404, 1203],
        ['invalid body', kling.createText2Video({ ...BODY, duration: '7' }), 400, 1201],
        ['unknown endpoint', kling.call('POST', '/v1/videos/no-such-endpoint', BODY), 404, 1202],
      ];
      for (const [what, call, status, code] of cases) {
        const answer = await call;
        expect(answer.status, what).to.equal(status);
        expect(answer.json.code, what).to.equal(code);
        expect(answer.json.message, what).to.be.a('string').and.not.equal('');
        expect(answer.json.request_id, what).to.be.a('string').and.not.equal('');
        expect(answer.json, what).to.not.have.property('data');
      }
      expect(await h.balance(userId)).to.equal(10_000_000);
    });
  });
}

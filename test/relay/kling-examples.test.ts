import { expect } from 'chai';
import request from 'supertest';
import { callbackToken } from '../../lib/completion/token.js';
import type { TaskOutcome } from '../../lib/sandbox/index.js';
import { testDatabases } from '../support/databases.js';
import { CALLBACK_SECRET, startHarness, checkAndClose, type Harness } from '../support/harness.js';

type Json = Record<string, unknown>;

/**
 * Kling's worked examples of the standard family (docs/kling.md), each body as Kling's docs give it
 * (the abbreviated URLs of the docs written out in full), with the settings the relay fills in from
 * Kling's documented defaults when the example leaves them out (docs/schemas.md).
 */
interface Example {
  title: string;
  path: string;
  body: Json;
  filled: Json;
  outcome: TaskOutcome;
}

const EXAMPLES: Example[] = [
  {
    title: 'text-to-video on kling-3.0-turbo',
    path: '/text-to-video/kling-3.0-turbo',
    body: {
      prompt: 'A girl sat on the train, looking out the window with a melancholic expression, her head swaying with the train.',
      options: { callback_url: 'https://xxx/callback', watermark_info: { enabled: false }, external_task_id: '' },
      settings: { duration: 3, resolution: '720p', aspect_ratio: '9:16' },
    },
    filled: {},
    outcome: { status: 'succeed', duration: '3.0' },
  },
  {
    title: 'image-to-video on kling-3.0-turbo (first frame, 1080p, 10 s, watermark)',
    path: '/image-to-video/kling-3.0-turbo',
    body: {
      contents: [
        { type: 'prompt', text: 'The girl in the picture turns her head and smiles.' },
        { type: 'first_frame', url: 'https://p1-kling.klingai.com/kcdn/cdn-kcdn112452/kling-api-document/image_25.png' },
      ],
      settings: { resolution: '1080p', duration: 10 },
      options: { watermark_info: { enabled: true } },
    },
    filled: {},
    outcome: { status: 'succeed', duration: '10.0' },
  },
  {
    title: 'omni-video on kling-3.0-omni with a feature video (4k, audio off, multi-shot, no duration)',
    path: '/omni-video/kling-3.0-omni',
    body: {
      contents: [
        { type: 'prompt', text: 'Follow the camera movement of @video_1: a red sports car drives along a coastal road at sunset.' },
        { type: 'feature_video', url: 'https://p1-kling.klingai.com/kcdn/cdn-kcdn112452/kling-api-document/video_7.1.mp4', id: 'video_1' },
      ],
      settings: { resolution: '4k', audio: 'off', multi_shot: true },
    },
    filled: { duration: 5 },
    outcome: { status: 'failed', message: 'Failure to pass the risk control system' },
  },
  {
    title: 'motion control on kling-3.0 (prompt, image, video; orientation video, 1080p, original audio)',
    path: '/motion-control/kling-3.0',
    body: {
      contents: [
        { type: 'prompt', text: 'The character dances on a stage with spotlights.' },
        { type: 'image', url: 'https://p1-kling.klingai.com/kcdn/cdn-kcdn112452/kling-api-document/image_7.png' },
        { type: 'video', url: 'https://p1-kling.klingai.com/kcdn/cdn-kcdn112452/kling-api-document/video_3.mp4' },
      ],
      settings: { character_orientation: 'video', resolution: '1080p', audio: 'original' },
    },
    filled: {},
    outcome: { status: 'succeed', duration: '7.4', deductions: { unit: '8.88', balance: { quota: '0.84', list_price: '1.2' } } },
  },
];

for (const database of testDatabases()) {
  describe(`relay: Kling's worked examples of the standard family, through the relay to the sandbox, on ${database.name}`, function () {
    let h: Harness | undefined;
    let user: number;

    async function start(): Promise<Harness> {
      h = await startHarness(database, { accounts: [{ id: 'keyed', apiKey: true }] });
      user = await h.user(1_000_000);
      return h;
    }
    afterEach(async () => {
      await checkAndClose(h);
      h = undefined;
    });

    /** What Kling itself answers to `GET /tasks` for this query, asked with the relay's account key. */
    async function klingAnswer(harness: Harness, query: string): Promise<Json[]> {
      const key = harness.keys.keyed?.apiKeys?.[0] ?? '';
      const res = await fetch(`${harness.sandbox.url}/tasks?${query}`, { headers: { Authorization: `Bearer ${key}` } });
      const envelope = (await res.json()) as { data: Json[] };
      return envelope.data;
    }

    for (const example of EXAMPLES) {
      it(`${example.title}: Kling's create answer, Kling gets the body with the relay's ids, the final task as Kling shows it`, async () => {
        const harness = await start();
        const res = await request(harness.url).post(`/kling${example.path}`).set('X-User-Id', String(user)).send(structuredClone(example.body));
        expect(res.status, JSON.stringify(res.body)).to.equal(200);
        expect(Object.keys(res.body).sort()).to.deep.equal(['code', 'data', 'message', 'request_id']);
        expect(res.body).to.include({ code: 0, message: 'SUCCEED' });
        expect(res.body.request_id).to.be.a('string').and.not.equal('');
        const data = res.body.data as Json;
        // No external_task_id given (or an empty one): no external_id, as Kling leaves out what it was not given.
        expect(Object.keys(data).sort()).to.deep.equal(['create_time', 'id', 'status', 'update_time']);
        expect(data.status).to.equal('submitted');
        expect(data.id).to.be.a('string').and.not.equal('');
        expect(data.create_time).to.be.a('number');
        expect(data.update_time).to.be.a('number');

        const [task] = await harness.tasks();
        const ours = String(task?.external_task_id);
        const [create] = harness.creates();
        expect(create?.path).to.equal(example.path);
        const options = { ...(example.body.options as Json | undefined), external_task_id: ours, callback_url: `http://127.0.0.1:9/kling/callback?task=${ours}&account=keyed&token=${callbackToken(CALLBACK_SECRET, ours)}` };
        expect(create?.body).to.deep.equal({ ...example.body, settings: { ...(example.body.settings as Json), ...example.filled }, options });

        const id = String(data.id);
        harness.sandbox.complete(id, example.outcome);
        const shown = await request(harness.url).get(`/kling/tasks?task_ids=${id}`).set('X-User-Id', String(user));
        expect(shown.status).to.equal(200);
        expect(shown.body).to.include({ code: 0, message: 'SUCCEED' });
        const [kling] = await klingAnswer(harness, `task_ids=${id}`);
        const { external_id: relays, ...asKlingShowsIt } = kling ?? {};
        expect(relays).to.equal(ours);
        expect(shown.body.data).to.deep.equal([asKlingShowsIt]);
      });
    }

    it("Kling's query example (GET /tasks?external_task_ids=123) finds the caller's task by its own id", async () => {
      const harness = await start();
      const [example] = EXAMPLES;
      if (!example) throw new Error('no example');
      // The create example with the id the query example asks for.
      const body = { ...example.body, options: { ...(example.body.options as Json), external_task_id: '123' } };
      const created = await request(harness.url).post(`/kling${example.path}`).set('X-User-Id', String(user)).send(body);
      expect(created.body.data).to.include({ external_id: '123', status: 'submitted' });
      const id = String(created.body.data.id);
      harness.sandbox.complete(id, { status: 'succeed', duration: '3.0' });

      const res = await request(harness.url).get('/kling/tasks?external_task_ids=123').set('Content-Type', 'application/json').set('X-User-Id', String(user));
      expect(res.status).to.equal(200);
      const [kling] = await klingAnswer(harness, `task_ids=${id}`);
      expect(res.body.data).to.deep.equal([{ ...kling, external_id: '123' }]);
      const [item] = res.body.data as Json[];
      expect(Object.keys(item ?? {}).sort()).to.deep.equal(['billing', 'create_time', 'external_id', 'id', 'message', 'outputs', 'status', 'update_time']);
      expect(item).to.include({ id, status: 'succeeded', message: '' });
    });

    it("Kling's cursor listing example (POST /tasks) is taken as it is, and lists the caller's tasks in its window", async () => {
      const harness = await start();
      const listing = {
        start_time: 1781193600000,
        end_time: 1781516352968,
        cursor: '',
        limit: 500,
        filters: [
          { key: 'status', values: ['succeeded'] },
          { key: 'product_type', values: ['video'] },
        ],
      };
      const [example] = EXAMPLES;
      if (!example) throw new Error('no example');
      const created = await request(harness.url).post(`/kling${example.path}`).set('X-User-Id', String(user)).send(structuredClone(example.body));
      const id = String(created.body.data.id);
      harness.sandbox.complete(id, { status: 'succeed', duration: '3.0' });
      await request(harness.url).get(`/kling/tasks?task_ids=${id}`).set('X-User-Id', String(user));
      // The example's window (June 2026): the task made now is not in it; the same body with the
      // window moved over now finds it (the other pages send the times as strings).
      const inWindow = await request(harness.url).post('/kling/tasks').set('X-User-Id', String(user)).send(listing);
      expect(inWindow.status, JSON.stringify(inWindow.body)).to.equal(200);
      expect(inWindow.body.data).to.deep.equal({ result: [], count: 0, next_cursor: '', has_more: false });
      const now = Date.now();
      const moved = { ...listing, start_time: String(now - 60_000), end_time: String(now + 60_000) };
      const found = await request(harness.url).post('/kling/tasks').set('X-User-Id', String(user)).send(moved);
      expect(found.status, JSON.stringify(found.body)).to.equal(200);
      const [kling] = await klingAnswer(harness, `task_ids=${id}`);
      const { external_id: _ours, ...asKlingShowsIt } = kling ?? {};
      expect(found.body.data).to.deep.equal({ result: [asKlingShowsIt], count: 1, next_cursor: '', has_more: false });
    });
  });
}

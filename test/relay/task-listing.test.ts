import { expect } from 'chai';
import request from 'supertest';
import type { PricingRule } from '../../lib/pricing/index.js';
import { testDatabases } from '../support/databases.js';
import { startHarness, checkAndClose, type Harness, TEST_PRICING } from '../support/harness.js';

const START = 10_000_000;
const T2V = '/text-to-video/kling-3.0-turbo';
const DAY_MS = 24 * 60 * 60 * 1000;
const PRICING: PricingRule[] = [
  ...TEST_PRICING,
  { model: 'kling-3.0-turbo', type: 'text-to-video', mode: '*', duration: '*', pricing_type: 'per_second', price: 0.112, currency: 'USD' },
];

type Json = Record<string, unknown>;

for (const database of testDatabases()) {
  describe(`relay: POST /tasks, the caller's cursor listing, on ${database.name}`, function () {
    let h: Harness | undefined;
    let user: number;

    async function start(): Promise<Harness> {
      h = await startHarness(database, { accounts: [{ id: 'keyed', apiKey: true }], relay: { pricing: PRICING } });
      user = await h.user(START);
      return h;
    }
    afterEach(async () => {
      await checkAndClose(h);
      h = undefined;
    });

    const create = async (harness: Harness, prompt: string, who = user, externalTaskId?: string): Promise<string> => {
      const options = externalTaskId === undefined ? {} : { options: { external_task_id: externalTaskId } };
      const res = await request(harness.url).post(`/kling${T2V}`).set('X-User-Id', String(who)).send({ prompt, ...options });
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      return String(res.body.data.id);
    };
    const list = (harness: Harness, body: unknown, who = user) => request(harness.url).post('/kling/tasks').set('X-User-Id', String(who)).send(body as object);
    const ids = (data: { result: Json[] }): string[] => data.result.map((t) => String(t.id));

    it("pages through the caller's tasks newest first with an opaque cursor, in the shape GET /tasks shows them", async () => {
      const harness = await start();
      const made: string[] = [];
      for (let i = 0; i < 5; i++) made.push(await create(harness, `boat ${i}`, user, `mine-${i}`));
      const newestFirst = [...made].reverse();

      const first = await list(harness, { limit: 2 });
      expect(first.status, JSON.stringify(first.body)).to.equal(200);
      expect(first.body).to.include({ code: 0, message: 'SUCCEED' });
      expect(Object.keys(first.body.data).sort()).to.deep.equal(['count', 'has_more', 'next_cursor', 'result']);
      expect(first.body.data).to.include({ count: 2, has_more: true });
      expect(ids(first.body.data)).to.deep.equal(newestFirst.slice(0, 2));

      // The items are what GET /tasks answers for the same tasks: the caller's external id, never the relay's.
      const shown = await request(harness.url).get(`/kling/tasks?task_ids=${newestFirst.slice(0, 2).join(',')}`).set('X-User-Id', String(user));
      expect(first.body.data.result).to.deep.equal(shown.body.data);
      expect(first.body.data.result[0]).to.include({ external_id: 'mine-4', status: 'submitted' });

      // A task made between two pages does not move the pages: it is newer than the listing's window,
      // which the cursor keeps (the times given with it are ignored); the limit is each page's own.
      const later = await create(harness, 'a late boat');
      const second = await list(harness, { cursor: first.body.data.next_cursor, limit: 2, start_time: 0 });
      expect(second.status, JSON.stringify(second.body)).to.equal(200);
      expect(second.body.data).to.include({ count: 2, has_more: true });
      expect(ids(second.body.data)).to.deep.equal(newestFirst.slice(2, 4));
      const third = await list(harness, { cursor: second.body.data.next_cursor });
      expect(third.body.data).to.deep.include({ count: 1, has_more: false, next_cursor: '' });
      expect(ids(third.body.data)).to.deep.equal(newestFirst.slice(4));

      // A new listing sees the new task; by default a page holds up to 100 tasks.
      const fresh = await list(harness, {});
      expect(fresh.body.data).to.include({ count: 6, has_more: false, next_cursor: '' });
      expect(ids(fresh.body.data)).to.deep.equal([later, ...newestFirst]);
      // Kling's listing is the standard family's: the relay did not ask Kling for it.
      expect(harness.sandbox.requests.filter((r) => r.path === '/tasks' && r.method === 'POST')).to.deep.equal([]);
    });

    it("never shows one caller another caller's tasks, nor the caller's v1 tasks, and refuses another caller's cursor", async () => {
      const harness = await start();
      const other = await harness.user(START);
      const mine = [await create(harness, 'mine a'), await create(harness, 'mine b')];
      const theirs = [await create(harness, 'theirs a', other), await create(harness, 'theirs b', other)];
      const v1 = await request(harness.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ prompt: 'a v1 cat' });
      expect(v1.status).to.equal(200);
      // A /v1 request for kling-3.0-turbo runs as a standard task, but its caller sees it as /v1's.
      const translated = await request(harness.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ model_name: 'kling-3.0-turbo', prompt: 'a v1 turbo cat' });
      expect(translated.status, JSON.stringify(translated.body)).to.equal(200);

      expect(ids((await list(harness, {})).body.data)).to.deep.equal([...mine].reverse());
      expect(ids((await list(harness, {}, other)).body.data)).to.deep.equal([...theirs].reverse());

      const cursor = String((await list(harness, { limit: 1 }, other)).body.data.next_cursor);
      const stolen = await list(harness, { cursor });
      expect([stolen.status, stolen.body.code, stolen.body.errors?.[0]?.path]).to.deep.equal([400, 1201, '/cursor']);
      // The owner's next page is the other task.
      expect(ids((await list(harness, { cursor }, other)).body.data)).to.deep.equal([theirs[0]]);
    });

    it('filters by status (in Kling words) and by product type', async () => {
      const harness = await start();
      const ok = await create(harness, 'a boat');
      const bad = await create(harness, 'a storm');
      const waiting = await create(harness, 'a kite');
      harness.sandbox.complete(ok, { status: 'succeed' });
      harness.sandbox.complete(bad, { status: 'failed', message: 'content risk control' });
      // The listing answers from the relay's database; a query brings the two finished tasks into it.
      await request(harness.url).get(`/kling/tasks?task_ids=${ok},${bad}`).set('X-User-Id', String(user));

      const by = async (key: string, values: string[]): Promise<string[]> => {
        const res = await list(harness, { filters: [{ key, values }] });
        expect(res.status, JSON.stringify(res.body)).to.equal(200);
        return ids(res.body.data);
      };
      expect(await by('status', ['succeeded'])).to.deep.equal([ok]);
      expect(await by('status', ['failed'])).to.deep.equal([bad]);
      expect(await by('status', ['submitted', 'processing'])).to.deep.equal([waiting]);
      expect(await by('status', ['succeeded', 'failed'])).to.deep.equal([bad, ok]);
      expect(await by('product_type', ['video'])).to.deep.equal([waiting, bad, ok]);
      expect(await by('product_type', ['image', 'try_on'])).to.deep.equal([]);
      const both = await list(harness, { filters: [{ key: 'status', values: ['succeeded'] }, { key: 'product_type', values: ['video'] }] });
      expect(both.body.data.result.map((t: Json) => [t.id, t.status])).to.deep.equal([[ok, 'succeeded']]);
      expect((await list(harness, { filters: [{ key: 'product_type', values: ['image'] }] })).body.data).to.deep.equal({ result: [], count: 0, next_cursor: '', has_more: false });
    });

    it('lists the tasks created in the window: the last 30 days by default, start_time and end_time as numbers or strings', async () => {
      const harness = await start();
      const old = await create(harness, 'an old boat');
      const recent = await create(harness, 'a recent boat');
      const longAgo = Date.now() - 40 * DAY_MS;
      await harness.db('kling_relay_tasks').where('kling_task_id', old).update({ created_at: longAgo });

      expect(ids((await list(harness, {})).body.data)).to.deep.equal([recent]);
      expect(ids((await list(harness, { start_time: longAgo - 1000 })).body.data)).to.deep.equal([recent, old]);
      expect(ids((await list(harness, { start_time: String(longAgo - 1000), end_time: String(longAgo + 1000) })).body.data)).to.deep.equal([old]);
      expect(ids((await list(harness, { start_time: longAgo - 50 * DAY_MS, end_time: longAgo - 1 })).body.data)).to.deep.equal([]);
      // Kling's own example sends an empty cursor with the times: an empty cursor is none.
      expect(ids((await list(harness, { cursor: '', start_time: longAgo - 1000, limit: 500 })).body.data)).to.deep.equal([recent, old]);
    });

    it('refuses a bad body with 400/1201 naming the field, and a cursor it did not make', async () => {
      const harness = await start();
      await create(harness, 'a boat');
      await create(harness, 'a kite');
      const cursor = String((await list(harness, { limit: 1 })).body.data.next_cursor);
      // Base64url's last character of a 32-byte signature carries 4 bits; flipping its lowest bit
      // spells the same bytes another way. Only the relay's own spelling of its signature is a cursor.
      const base64url = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      const swap = (char: string, bit: number): string => base64url[base64url.indexOf(char) ^ bit] ?? '';
      const [payload = '', mac = ''] = cursor.split('.');
      const altered = `${payload}.${swap(mac.charAt(0), 32)}${mac.slice(1)}`;
      const respelled = `${payload}.${mac.slice(0, -1)}${swap(mac.charAt(mac.length - 1), 1)}`;
      expect(Buffer.from(respelled.split('.')[1] ?? '', 'base64url')).to.deep.equal(Buffer.from(mac, 'base64url'));
      const bad: [unknown, string][] = [
        [{ limit: 501 }, '/limit'],
        [{ limit: 0 }, '/limit'],
        [{ limit: '10' }, '/limit'],
        [{ start_time: 'yesterday' }, '/start_time'],
        [{ end_time: -5 }, '/end_time'],
        [{ start_time: 2000, end_time: 1000 }, '/start_time'],
        [{ filters: { key: 'status' } }, '/filters'],
        [{ filters: [{ key: 'model', values: ['x'] }] }, '/filters/0/key'],
        [{ filters: [{ key: 'status', values: ['succeed'] }] }, '/filters/0/values/0'],
        [{ filters: [{ key: 'product_type', values: 'video' }] }, '/filters/0/values'],
        [{ cursor: 'not-a-cursor' }, '/cursor'],
        [{ cursor: altered }, '/cursor'],
        [{ cursor: respelled }, '/cursor'],
        [{ cursor: 5 }, '/cursor'],
        [[], ''],
      ];
      for (const [body, path] of bad) {
        const res = await list(harness, body);
        expect([res.status, res.body.code, res.body.errors?.[0]?.path], JSON.stringify(body)).to.deep.equal([400, 1201, path]);
        expect(res.body.message, JSON.stringify(body)).to.include(`invalid request: ${path || '/'} `);
      }
      const notJson = await request(harness.url).post('/kling/tasks').set('X-User-Id', String(user)).set('Content-Type', 'application/json').send('{"limit": ');
      expect([notJson.status, notJson.body.code]).to.deep.equal([400, 1200]);
      const noCaller = await request(harness.url).post('/kling/tasks').send({});
      expect([noCaller.status, noCaller.body.code]).to.deep.equal([401, 1000]);
    });
  });
}

import { expect } from 'chai';
import request from 'supertest';
import { createKlingRelay } from '../../lib/index.js';
import { silentLogger } from '../../lib/logger.js';
import { testDatabases } from '../support/databases.js';
import { CALLBACK_SECRET, TEST_PRICING, checkAndClose, type Harness, startHarness } from '../support/harness.js';

/** The relay account each sandbox task was created with, by task. */
function accountsOfTasks(h: Harness): string[] {
  return h.sandbox.tasks.all().map((task) => Object.entries(h.keys).find(([, k]) => k.accessKey === task.accessKey)?.[0] ?? '?');
}

function peakPerAccount(h: Harness): Record<string, number> {
  const peaks: Record<string, number> = {};
  for (const usage of h.sandbox.slots()) {
    const id = Object.entries(h.keys).find(([, k]) => k.accessKey === usage.accessKey)?.[0] ?? '?';
    peaks[`${id} ${usage.pack} ${usage.model}`] = usage.peak;
  }
  return peaks;
}

for (const database of testDatabases()) {
  describe(`dispatch: slots per account and model version on ${database.name}`, function () {
    this.timeout(60_000);
    let h: Harness | undefined;
    let user: number;
    afterEach(async () => checkAndClose(h));

    const post = (url: string, path: string, body: object) => request(url).post(`/kling${path}`).set('X-User-Id', String(user)).send(body);

    it('sends each task to an account with a free slot, counted from the database, so two relay processes agree', async () => {
      h = await startHarness(database, {
        accounts: [
          { id: 'a', concurrency: 3, klingConcurrency: 3 },
          { id: 'b', concurrency: 3, klingConcurrency: 3 },
        ],
      });
      user = await h.user(100_000_000);
      const other = h.anotherRelay();
      const express = (await import('express')).default;
      const app = express();
      app.use('/kling', (req, res, next) => {
        res.locals.user = { id: Number(req.get('x-user-id')) };
        next();
      }, other.router);
      const server = app.listen(0, '127.0.0.1');
      await new Promise((resolve) => server.once('listening', resolve));
      const otherUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
      try {
        for (let i = 0; i < 6; i++) {
          const res = await post(i % 2 === 0 ? h.url : otherUrl, '/v1/videos/text2video', { prompt: `task ${i}`, model_name: 'kling-v2-6' });
          expect(res.status, JSON.stringify(res.body)).to.equal(200);
        }
      } finally {
        server.close();
        server.closeAllConnections();
        other.close();
      }
      expect(accountsOfTasks(h).sort()).to.deep.equal(['a', 'a', 'a', 'b', 'b', 'b']);
      expect(peakPerAccount(h)).to.deep.equal({ 'a video kling-v2-6': 3, 'b video kling-v2-6': 3 });
      const tasks = await h.tasks();
      expect(tasks.map((t) => Number(t.slots))).to.deep.equal([1, 1, 1, 1, 1, 1]);
    });

    it('frees a slot when a task ends, counts image tasks per image and each model version apart', async () => {
      h = await startHarness(database, {
        accounts: [
          { id: 'a', concurrency: { 'kling-v2-6': 1, default: 3 }, klingConcurrency: { 'kling-v2-6': 1, default: 3 } },
          { id: 'b', concurrency: { 'kling-v2-6': 1, default: 3 }, klingConcurrency: { 'kling-v2-6': 1, default: 3 } },
        ],
      });
      user = await h.user(100_000_000);
      const first = await post(h.url, '/v1/videos/text2video', { prompt: 'one', model_name: 'kling-v2-6' });
      const second = await post(h.url, '/v1/videos/text2video', { prompt: 'two', model_name: 'kling-v2-6' });
      expect([first.status, second.status]).to.deep.equal([200, 200]);
      expect(new Set(accountsOfTasks(h))).to.deep.equal(new Set(['a', 'b']));

      // Another model version has its own slots on both accounts.
      for (let i = 0; i < 6; i++) expect((await post(h.url, '/v1/videos/text2video', { prompt: `v3 ${i}`, model_name: 'kling-v3' })).status).to.equal(200);

      // Ending the first kling-v2-6 task frees its account's slot, and the next one goes there.
      const ended = accountsOfTasks(h)[0];
      h.sandbox.complete(String(first.body.data.task_id), { status: 'succeed' });
      const queried = await request(h.url).get(`/kling/v1/videos/text2video/${String(first.body.data.task_id)}`).set('X-User-Id', String(user));
      expect(queried.body.data.task_status).to.equal('succeed');
      expect((await post(h.url, '/v1/videos/text2video', { prompt: 'three', model_name: 'kling-v2-6' })).status).to.equal(200);
      expect(accountsOfTasks(h).at(-1)).to.equal(ended);

      // Images: two of 2 images fill one account each (3 slots), then one of 1 image fits in either.
      for (let i = 0; i < 2; i++) expect((await post(h.url, '/v1/images/generations', { prompt: `img ${i}`, model_name: 'kling-v3', n: 2 })).status).to.equal(200);
      expect(new Set(accountsOfTasks(h).slice(-2))).to.deep.equal(new Set(['a', 'b']));
      const images = (await h.tasks()).filter((t) => t.table_kind === 'image');
      expect(images.map((t) => Number(t.slots))).to.deep.equal([2, 2]);
      expect(Object.values(peakPerAccount(h)).every((peak) => peak <= 3)).to.equal(true);
    });

    it('refuses a malformed concurrency option with a coded error naming the account', async () => {
      h = undefined;
      const db = database.connect();
      for (const [concurrency, words] of [
        [0, 'must be an integer >= 1'],
        [{ 'kling-v3': 2.5 }, '["kling-v3"] must be an integer >= 1'],
        [{ '': 2 }, 'names an empty model version'],
        ['3', 'must be an integer >= 1'],
      ] as const) {
        expect(() =>
          createKlingRelay({
            db,
            accounts: [{ id: 'a', apiKey: 'k', concurrency: concurrency as never }],
            callbackUrl: 'http://127.0.0.1:9/kling/callback',
            callbackSecret: CALLBACK_SECRET,
            pricing: TEST_PRICING,
            logger: silentLogger,
          }),
        ).to.throw(/accounts\[0\]\.concurrency/)
          .with.property('message')
          .that.includes(words);
      }
      await db.destroy();
    });
  });
}

import { expect } from 'chai';
import request from 'supertest';
import { testDatabases } from '../support/databases.js';
import { startHarness, checkAndClose, type Harness } from '../support/harness.js';

const HOLD = Math.round(0.01 * 10 * 500_000);

// A host that is neither one-api nor new-api, with its own status words, Kling's seconds as text and
// the estimate kept on failure: plain table options. No extra columns, so on SQLite the submit's
// writes go through the direct templates, elsewhere through knex; both must write the host's words.
for (const database of testDatabases()) {
  describe(`a host table with its own status words, on ${database.name}`, function () {
    let h: Harness;

    beforeEach(async () => {
      h = await startHarness(database, {
        relay: {
          tables: {
            video: {
              name: 'jobs',
              columns: { username: false, channel_id: false, model: false, provider: false, type: false, mode: false, fail_reason: 'error' },
              statuses: { pending: 'queued', submitted: 'queued', processing: 'running', succeed: 'done', failed: 'error' },
              duration: 'text',
              failedQuota: 'estimate',
            },
          },
        },
      });
      await h.db.schema.dropTableIfExists('jobs');
      await h.db.schema.createTable('jobs', (t) => {
        t.increments('id').primary();
        t.string('task_id', 191).notNullable().defaultTo('');
        t.string('user_id', 64).notNullable();
        t.string('status', 32).notNullable().defaultTo('');
        t.bigInteger('quota').notNullable().defaultTo(0);
        t.string('duration', 16).notNullable().defaultTo('');
        t.text('result').nullable();
        t.text('error').nullable();
        t.bigInteger('created_at').notNullable().defaultTo(0);
        t.bigInteger('updated_at').notNullable().defaultTo(0);
      });
    });
    afterEach(async () => {
      await h.db.schema.dropTableIfExists('jobs');
      await checkAndClose(h);
    });

    async function submit(user: number): Promise<string> {
      const res = await request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ prompt: 'a heron in the reeds', duration: '10' });
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      return res.body.data.task_id as string;
    }

    async function pass(): Promise<void> {
      await h.db('kling_relay_tasks').update({ next_check_at: 0 });
      await h.relay.reconcile();
    }

    it("writes the host's words for each state, and Kling's seconds as text", async () => {
      const user = await h.user(10_000_000);
      const klingId = await submit(user);
      expect(await h.db('jobs').first('status', 'duration', 'task_id')).to.deep.equal({ status: 'queued', duration: '10', task_id: klingId });
      h.sandbox.setStatus(klingId, 'processing');
      await pass();
      expect((await h.db('jobs').first('status')).status).to.equal('running');
      h.sandbox.complete(klingId, { status: 'succeed' });
      await pass();
      const done = (await h.db('jobs').first('*')) as Record<string, unknown>;
      expect(done).to.include({ status: 'done', duration: '10.1' });
      expect(Number(done.quota)).to.equal(HOLD);
    });

    it('keeps the estimate in a failed row while the hold goes back', async () => {
      const user = await h.user(10_000_000);
      const klingId = await submit(user);
      h.sandbox.complete(klingId, { status: 'failed', message: 'content risk' });
      await pass();
      const failed = (await h.db('jobs').first('*')) as Record<string, unknown>;
      expect(failed).to.include({ status: 'error', error: 'content risk' });
      expect(Number(failed.quota)).to.equal(HOLD);
      expect(await h.balance(user)).to.equal(10_000_000);
    });
  });
}

import { expect } from 'chai';
import type { Knex } from 'knex';
import request from 'supertest';
import { ONE_API_TABLES, createAppTables, dropAppTables } from '../fixtures/app-schemas.js';
import { testDatabases } from '../support/databases.js';
import { startHarness, type Harness } from '../support/harness.js';

const QPU = 500_000;
const CHANNEL = 7;
/** TEST_PRICING: text2video 0.01 USD a second, image-generation 0.02 USD an image. */
const VIDEO_ESTIMATE = Math.round(0.01 * 5 * QPU);
const IMAGE_ESTIMATE = Math.round(0.02 * 2 * QPU);

type Row = Record<string, unknown>;

/** A one-api user as its own sign-up creates one (password NOT NULL), with a balance. */
async function oneApiUser(db: Knex, quota: number): Promise<number> {
  await db('users').insert({ username: 'alice', password: 'hashed', display_name: 'Alice', quota, used_quota: 0, request_count: 0 });
  const row = (await db('users').where('username', 'alice').first('id')) as { id: number | string };
  return Number(row.id);
}

async function only(db: Knex, table: string): Promise<Row> {
  const rows = (await db(table).select('*')) as Row[];
  expect(rows, `${table} rows`).to.have.length(1);
  return rows[0] as Row;
}

/** Waits for the first row of a table to be committed (the submit's hold transaction). */
async function firstRow(db: Knex, table: string): Promise<Row> {
  for (let i = 0; i < 200; i++) {
    const row = (await db(table).first('*')) as Row | undefined;
    if (row) return row;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`no row in ${table}`);
}

async function reconcileDue(h: Harness): Promise<void> {
  await h.db('kling_relay_tasks').update({ next_check_at: 0 });
  await h.relay.reconcile();
}

/** What one-api's own GetKlingVideoResult reads back from `result`: Kling's task object (its callback notification). */
function storedTask(row: Row): { task_id: string; task_status: string; task_status_msg: string; created_at: number; task_result?: Record<string, { url: string; id?: string; duration?: string }[]> } {
  return JSON.parse(String(row.result)) as ReturnType<typeof storedTask>;
}

const num = (value: unknown): number => Number(value);

for (const database of testDatabases()) {
  describe(`profile 'one-api' on one-api's own tables, on ${database.name}`, function () {
    let h: Harness;
    let user: number;

    beforeEach(async () => {
      h = await startHarness(database, { accounts: [{ id: 'kling-main', channelId: CHANNEL }], relay: { profile: 'one-api' } });
      await createAppTables(h.db, database.name, ONE_API_TABLES);
      await h.db('channels').insert({ id: CHANNEL, type: 50, name: 'kling', used_quota: 0 });
      user = await oneApiUser(h.db, 1_000_000);
    });
    afterEach(async () => {
      await dropAppTables(h.db, ONE_API_TABLES);
      await h.close();
    });

    it("fits the schema check: integer channel_id, one-api's extra columns", async () => {
      expect(await h.relay.checkHostTables()).to.deep.equal([]);
    });

    it('records a video task as one-api does, and charges it on success with its consume log, request count and channel quota', async () => {
      h.sandbox.hangNextCreate(300);
      const answer = request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ prompt: 'a heron in the reeds', duration: '5' }).then((r) => r);
      expect((await firstRow(h.db, 'videos')).status, 'before Kling answered').to.equal('pending');
      const res = await answer;
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      const klingId = res.body.data.task_id as string;

      const submitted = await only(h.db, 'videos');
      expect(submitted).to.include({ task_id: klingId, status: 'submitted', provider: 'kling', type: 'text2video', username: `user${user}`, duration: '5' });
      expect(num(submitted.channel_id)).to.equal(CHANNEL);
      expect(num(submitted.user_id)).to.equal(user);
      expect(num(submitted.quota)).to.equal(VIDEO_ESTIMATE);
      expect(num((await only(h.db, 'users')).quota), 'charge-on-success: nothing taken at submit').to.equal(1_000_000);

      h.sandbox.complete(klingId, { status: 'succeed' });
      await reconcileDue(h);

      const done = await only(h.db, 'videos');
      const task = storedTask(done);
      const video = task.task_result?.videos?.[0];
      expect(task).to.include({ task_id: klingId, task_status: 'succeed' });
      expect(task.created_at).to.be.above(0);
      expect(done).to.include({ status: 'succeed', store_url: video?.url, video_id: video?.id, duration: video?.duration });
      expect(done.duration, "Kling's seconds as reported").to.equal('5.1');
      expect(num(done.quota)).to.equal(VIDEO_ESTIMATE);
      const account = await only(h.db, 'users');
      expect([num(account.quota), num(account.used_quota), num(account.request_count)]).to.deep.equal([1_000_000 - VIDEO_ESTIMATE, VIDEO_ESTIMATE, 1]);
      expect(num((await only(h.db, 'channels')).used_quota)).to.equal(VIDEO_ESTIMATE);
      const log = await only(h.db, 'logs');
      expect(log).to.include({ username: 'alice', model_name: done.model });
      expect([num(log.type), num(log.user_id), num(log.quota), num(log.channel_id)]).to.deep.equal([2, user, VIDEO_ESTIMATE, CHANNEL]);
      expect(String(log.content)).to.contain(klingId);
    });

    it('keeps the estimate on a failed video and charges and logs nothing', async () => {
      const res = await request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ prompt: 'a heron in the reeds', duration: '5' });
      const klingId = res.body.data.task_id as string;
      h.sandbox.complete(klingId, { status: 'failed', message: 'content risk' });
      await reconcileDue(h);

      const failed = await only(h.db, 'videos');
      expect(failed).to.include({ status: 'failed', fail_reason: 'content risk' });
      expect(num(failed.quota), 'the estimate stays, as one-api leaves it').to.equal(VIDEO_ESTIMATE);
      expect(storedTask(failed)).to.include({ task_id: klingId, task_status: 'failed', task_status_msg: 'content risk' });
      const account = await only(h.db, 'users');
      expect([num(account.quota), num(account.used_quota), num(account.request_count)]).to.deep.equal([1_000_000, 0, 0]);
      expect(await h.db('logs').select('*')).to.deep.equal([]);
      expect(num((await only(h.db, 'channels')).used_quota)).to.equal(0);
    });

    it('marks the row failed when Kling refuses the create, with nothing charged', async () => {
      h.sandbox.failNextCreate({ code: 1301, message: 'content risk' });
      const res = await request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ prompt: 'a heron in the reeds', duration: '5' });
      expect(res.status).to.equal(400);
      const failed = await only(h.db, 'videos');
      expect(failed.status).to.equal('failed');
      expect(String(failed.fail_reason)).to.contain('content risk');
      expect(num((await only(h.db, 'users')).quota)).to.equal(1_000_000);
      expect(await h.db('logs').select('*')).to.deep.equal([]);
    });

    it('records an image task in images (n, no type column) and charges it on success', async () => {
      const res = await request(h.url).post('/kling/v1/images/generations').set('X-User-Id', String(user)).send({ prompt: 'a heron, watercolour', n: 2 });
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      const klingId = res.body.data.task_id as string;
      const submitted = await only(h.db, 'images');
      expect(submitted).to.include({ task_id: klingId, status: 'submitted', provider: 'kling', username: `user${user}` });
      expect([num(submitted.n), num(submitted.channel_id), num(submitted.quota)]).to.deep.equal([2, CHANNEL, IMAGE_ESTIMATE]);
      expect(await h.db('videos').select('*')).to.deep.equal([]);

      h.sandbox.complete(klingId, { status: 'succeed' });
      await reconcileDue(h);
      const done = await only(h.db, 'images');
      const task = storedTask(done);
      expect(task).to.include({ task_id: klingId, task_status: 'succeed' });
      expect(task.task_result?.images).to.have.length(2);
      expect(done).to.include({ status: 'succeed', store_url: task.task_result?.images?.[0]?.url });
      expect(num(done.quota)).to.equal(IMAGE_ESTIMATE);
      const account = await only(h.db, 'users');
      expect([num(account.quota), num(account.request_count)]).to.deep.equal([1_000_000 - IMAGE_ESTIMATE, 1]);
      const log = await only(h.db, 'logs');
      expect([num(log.type), num(log.quota), num(log.channel_id)]).to.deep.equal([2, IMAGE_ESTIMATE, CHANNEL]);
    });

    it('keeps the estimate on a failed image and charges nothing', async () => {
      const res = await request(h.url).post('/kling/v1/images/generations').set('X-User-Id', String(user)).send({ prompt: 'a heron, watercolour', n: 2 });
      const klingId = res.body.data.task_id as string;
      h.sandbox.complete(klingId, { status: 'failed', message: 'image refused' });
      await reconcileDue(h);
      const failed = await only(h.db, 'images');
      expect(failed).to.include({ status: 'failed', fail_reason: 'image refused' });
      expect(num(failed.quota)).to.equal(IMAGE_ESTIMATE);
      expect(storedTask(failed)).to.include({ task_status: 'failed' });
      expect(num((await only(h.db, 'users')).quota)).to.equal(1_000_000);
      expect(await h.db('logs').select('*')).to.deep.equal([]);
    });
  });
}

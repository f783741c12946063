import { expect } from 'chai';
import type { Knex } from 'knex';
import request from 'supertest';
import { NEW_API_TABLES, createAppTables, dropAppTables } from '../fixtures/app-schemas.js';
import { testDatabases } from '../support/databases.js';
import { startHarness, type Harness } from '../support/harness.js';

const QPU = 500_000;
const CHANNEL = 3;
/** TEST_PRICING: text2video 0.01 USD a second, image-generation 0.02 USD an image. */
const VIDEO_ESTIMATE = Math.round(0.01 * 5 * QPU);
const IMAGE_ESTIMATE = Math.round(0.02 * 2 * QPU);
const START = 1_000_000;

type Row = Record<string, unknown>;

async function newApiUser(db: Knex, quota: number): Promise<number> {
  await db('users').insert({ username: 'bob', password: 'hashed', display_name: 'Bob', quota });
  const row = (await db('users').where('username', 'bob').first('id')) as { id: number | string };
  return Number(row.id);
}

async function onlyTask(db: Knex): Promise<Row> {
  const rows = (await db('tasks').select('*')) as Row[];
  expect(rows, 'tasks rows').to.have.length(1);
  return rows[0] as Row;
}

async function firstTask(db: Knex): Promise<Row> {
  for (let i = 0; i < 200; i++) {
    const row = (await db('tasks').first('*')) as Row | undefined;
    if (row) return row;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error('no row in tasks');
}

async function reconcileDue(h: Harness): Promise<void> {
  await h.db('kling_relay_tasks').update({ next_check_at: 0 });
  await h.relay.reconcile();
}

/** new-api's `data`: Kling's query answer, which its Kling adaptor parses (data.task_status, data.task_result.videos[0]). */
interface Envelope {
  code: number;
  data: { task_id: string; task_status: string; task_status_msg: string; created_at: number; task_result?: Record<string, { url: string; duration?: string }[]> };
}
function envelope(row: Row): Envelope {
  // pg returns a json column parsed, MariaDB and SQLite as its text.
  return (typeof row.data === 'string' ? JSON.parse(row.data) : row.data) as Envelope;
}

const num = (value: unknown): number => Number(value);

async function balance(db: Knex, user: number): Promise<number> {
  return num(((await db('users').where('id', user).first('quota')) as { quota: unknown }).quota);
}

for (const database of testDatabases()) {
  describe(`profile 'new-api' on new-api's tasks table, on ${database.name}`, function () {
    let h: Harness;
    let user: number;

    beforeEach(async () => {
      h = await startHarness(database, { accounts: [{ id: 'kling-main', channelId: CHANNEL }], relay: { profile: 'new-api' } });
      await createAppTables(h.db, database.name, NEW_API_TABLES);
      user = await newApiUser(h.db, START);
    });
    afterEach(async () => {
      await dropAppTables(h.db, NEW_API_TABLES);
      await h.close();
    });

    it('fits the schema check: integer channel_id, JSON data column', async () => {
      expect(await h.relay.checkHostTables()).to.deep.equal([]);
    });

    it("moves a video task through new-api's status words, progress and times, with Kling's answer in data", async () => {
      h.sandbox.hangNextCreate(300);
      const answer = request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ prompt: 'a heron in the reeds', duration: '5' }).then((r) => r);
      const early = await firstTask(h.db);
      expect(early).to.include({ status: 'NOT_START', progress: '0%', platform: 'kling-relay' });
      expect(early.data, 'the JSON column stays NULL until Kling answers').to.equal(null);
      const res = await answer;
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      const klingId = res.body.data.task_id as string;

      const submitted = await onlyTask(h.db);
      expect(submitted).to.include({ task_id: klingId, status: 'SUBMITTED', progress: '10%', action: 'text2video', platform: 'kling-relay' });
      expect([num(submitted.user_id), num(submitted.channel_id), num(submitted.quota)]).to.deep.equal([user, CHANNEL, VIDEO_ESTIMATE]);
      expect(num(submitted.submit_time)).to.be.above(0);
      expect(await balance(h.db, user), 'new-api takes the estimate at submit').to.equal(START - VIDEO_ESTIMATE);

      h.sandbox.setStatus(klingId, 'processing');
      await reconcileDue(h);
      const running = await onlyTask(h.db);
      expect(running).to.include({ status: 'IN_PROGRESS', progress: '30%' });
      expect(num(running.start_time)).to.be.above(0);

      h.sandbox.complete(klingId, { status: 'succeed' });
      await reconcileDue(h);
      const done = await onlyTask(h.db);
      expect(done).to.include({ status: 'SUCCESS', progress: '100%' });
      expect(num(done.finish_time)).to.be.at.least(num(running.start_time));
      const data = envelope(done);
      expect(data.code).to.equal(0);
      expect(data.data).to.include({ task_id: klingId, task_status: 'succeed' });
      expect(data.data.task_result?.videos?.[0]?.url).to.match(/^https?:\/\//);
      expect(num(done.quota)).to.equal(VIDEO_ESTIMATE);
      expect(await balance(h.db, user)).to.equal(START - VIDEO_ESTIMATE);
    });

    it('refunds a failed video and marks it FAILURE with its reason', async () => {
      const res = await request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ prompt: 'a heron in the reeds', duration: '5' });
      const klingId = res.body.data.task_id as string;
      h.sandbox.complete(klingId, { status: 'failed', message: 'content risk' });
      await reconcileDue(h);
      const failed = await onlyTask(h.db);
      expect(failed).to.include({ status: 'FAILURE', progress: '100%', fail_reason: 'content risk' });
      expect(num(failed.finish_time)).to.be.above(0);
      expect(envelope(failed).data).to.include({ task_id: klingId, task_status: 'failed', task_status_msg: 'content risk' });
      expect(await balance(h.db, user), 'the hold goes back').to.equal(START);
    });

    it('refunds a create Kling refused', async () => {
      h.sandbox.failNextCreate({ code: 1301, message: 'content risk' });
      const res = await request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ prompt: 'a heron in the reeds', duration: '5' });
      expect(res.status).to.equal(400);
      const failed = await onlyTask(h.db);
      expect(failed).to.include({ status: 'FAILURE', progress: '100%' });
      expect(await balance(h.db, user)).to.equal(START);
    });

    it('records an image task in the same table, settles and refunds it', async () => {
      const first = await request(h.url).post('/kling/v1/images/generations').set('X-User-Id', String(user)).send({ prompt: 'a heron, watercolour', n: 2 });
      expect(first.status, JSON.stringify(first.body)).to.equal(200);
      const klingId = first.body.data.task_id as string;
      const submitted = await onlyTask(h.db);
      expect(submitted).to.include({ task_id: klingId, status: 'SUBMITTED', action: 'image-generation' });
      expect(num(submitted.quota)).to.equal(IMAGE_ESTIMATE);
      h.sandbox.complete(klingId, { status: 'succeed' });
      await reconcileDue(h);
      const done = await onlyTask(h.db);
      expect(done).to.include({ status: 'SUCCESS', progress: '100%' });
      expect(envelope(done).data.task_result?.images).to.have.length(2);
      expect(await balance(h.db, user)).to.equal(START - IMAGE_ESTIMATE);

      const second = await request(h.url).post('/kling/v1/images/generations').set('X-User-Id', String(user)).send({ prompt: 'a heron, ink', n: 2 });
      h.sandbox.complete(second.body.data.task_id as string, { status: 'failed', message: 'image refused' });
      await reconcileDue(h);
      const failed = (await h.db('tasks').where('task_id', second.body.data.task_id as string).first('*')) as Row;
      expect(failed).to.include({ status: 'FAILURE', fail_reason: 'image refused' });
      expect(await balance(h.db, user)).to.equal(START - IMAGE_ESTIMATE);
    });
  });
}

import { expect } from 'chai';
import request from 'supertest';
import { testDatabases } from '../support/databases.js';
import { startHarness, checkAndClose, type Harness } from '../support/harness.js';

const QPU = 500_000;

// A host whose Video table has its own column names and lacks the optional columns: the submit's
// writes (on SQLite the direct transactions, elsewhere knex's) must land in the mapped columns only.
for (const database of testDatabases()) {
  describe(`relay submit into a host table with its own column names, on ${database.name}`, function () {
    let h: Harness;

    beforeEach(async () => {
      h = await startHarness(database, {
        relay: {
          tables: {
            video: {
              name: 'media_jobs',
              columns: {
                id: 'job_id', task_id: 'upstream_id', user_id: 'owner', status: 'state_text', quota: 'cost', duration: 'secs',
                result: 'outcome', created_at: 'created', updated_at: 'touched',
                username: false, channel_id: false, model: false, provider: false, type: false, mode: false, fail_reason: false,
              },
            },
          },
        },
      });
      // The host's own table, next to the harness's (h.db: on SQLite each connect() is a new file).
      await h.db.schema.dropTableIfExists('media_jobs');
      await h.db.schema.createTable('media_jobs', (t) => {
          t.increments('job_id').primary();
          t.string('upstream_id', 191).notNullable().defaultTo('');
          t.string('owner', 64).notNullable();
          t.string('state_text', 32).notNullable().defaultTo('');
          t.bigInteger('cost').notNullable().defaultTo(0);
          t.integer('secs').notNullable().defaultTo(0);
          t.text('outcome').nullable();
          t.bigInteger('created').notNullable().defaultTo(0);
          t.bigInteger('touched').notNullable().defaultTo(0);
      });
    });
    afterEach(async () => {
      await h.db.schema.dropTableIfExists('media_jobs');
      await checkAndClose(h);
    });

    it('writes the row under the host names, then Kling id and status, and settles into them', async () => {
      const user = await h.user(10_000_000);
      const before = Math.floor(Date.now() / 1000);
      const res = await request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ prompt: 'a heron in the reeds', duration: '10' });
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      const klingId = res.body.data.task_id as string;
      const price = Math.round(0.01 * 10 * QPU);

      const rows = (await h.db('media_jobs').select('*')) as Record<string, unknown>[];
      expect(rows).to.have.length(1);
      const [row] = rows;
      expect(row).to.include({ upstream_id: klingId, owner: String(user), state_text: 'submitted', outcome: '' });
      expect(Number(row?.cost)).to.equal(price);
      expect(Number(row?.secs)).to.equal(10);
      expect(Number(row?.created)).to.be.within(before, before + 60);
      expect(Number(row?.touched)).to.be.at.least(Number(row?.created));
      expect(await h.rows('videos'), "the default table, which this host does not use").to.deep.equal([]);
      const [task] = await h.tasks();
      expect(task).to.include({ host_row_id: String(row?.job_id), kling_task_id: klingId, state: 'submitted' });
      expect(await h.balance(user)).to.equal(10_000_000 - price);

      h.sandbox.complete(klingId, { status: 'succeed' });
      await h.db('kling_relay_tasks').update({ next_check_at: 0 }); // time passes: the task is due for a check
      expect((await h.relay.reconcile()).finished).to.equal(1);
      const [done] = (await h.db('media_jobs').select('*')) as Record<string, unknown>[];
      expect(done).to.include({ upstream_id: klingId, state_text: 'succeed' });
      expect((JSON.parse(String(done?.outcome)) as { videos: unknown[] }).videos, 'the result, in the mapped column').to.have.length(1);
    });

    it('answers 402 and writes nothing into the mapped table when the balance is short', async () => {
      const user = await h.user(10);
      const res = await request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ prompt: 'a heron in the reeds' });
      expect(res.status).to.equal(402);
      expect(res.body.code).to.equal(1102);
      expect(await h.db('media_jobs').select('*')).to.deep.equal([]);
      expect(await h.tasks()).to.deep.equal([]);
      expect(await h.ledger()).to.deep.equal([]);
      expect(await h.balance(user)).to.equal(10);
    });
  });
}

import { expect } from 'chai';
import express from 'express';
import knex, { type Knex } from 'knex';
import request from 'supertest';
import { HostTable } from '../../adapters/host-table.js';
import { KnexQuotaStore } from '../../adapters/quota-store.js';
import { RelayStore } from '../../adapters/relay-store.js';
import { callbackToken } from '../../lib/completion/token.js';
import { finish, type TaskLifeDeps } from '../../lib/task/life.js';
import { KnexTaskStorage } from '../../lib/task/knex-storage.js';
import type { KlingRelay } from '../../lib/index.js';
import { silentLogger } from '../../lib/logger.js';
import { testDatabases } from '../support/databases.js';
import { CALLBACK_SECRET, checkAndClose, startHarness, type Harness } from '../support/harness.js';

const QPU = 500_000;
const RESULT = { videos: [{ id: 'v1', url: 'https://cdn.example.com/v1.mp4', duration: '5.0' }] };

/** A statement's text and values as knex reports them in its query events. */
interface Query {
  sql: string;
  bindings?: unknown[];
}

for (const database of testDatabases()) {
  describe(`a final status against a non-final change racing it on ${database.name}`, function () {
    let h: Harness;
    let user: number;
    let single: Knex;
    let second: KlingRelay;
    let app: express.Express;
    let deps: TaskLifeDeps;
    const start = 1_000_000;
    const hold = Math.round(0.01 * 5 * QPU);

    beforeEach(async () => {
      h = await startHarness(database);
      user = await h.user(start);
      // One connection: whichever transaction holds it runs to its commit before the other starts,
      // which makes the interleaving below the same on every run.
      single = knex({ ...(h.db.client as { config: Knex.Config }).config, pool: { min: 0, max: 1 } });
      second = h.anotherRelay({ db: single });
      app = express();
      app.post('/kling/callback', second.callback);
      app.use('/kling', (_req, res, next) => {
        res.locals.user = { id: user };
        next();
      }, second.router);
      const store = new RelayStore();
      const hosts = { video: new HostTable({ name: 'videos' }, 'video'), image: new HostTable({ name: 'images' }, 'image') };
      deps = { db: single, store, storage: new KnexTaskStorage({ db: single, store, hosts, quota: new KnexQuotaStore() }), quotaPerUnit: QPU, logger: silentLogger };
    });
    afterEach(async () => {
      second?.close();
      await single?.destroy();
      await checkAndClose(h);
    });

    /**
     * Starts finish(succeed) for the task the moment the relay's compare-and-set moving it to
     * `state` answers, before the rest of that change is written; resolves to whether it applied.
     */
    function finishWhenMovedTo(state: string): () => Promise<boolean> {
      let finished: Promise<boolean> | undefined;
      single.removeAllListeners('query-response');
      single.on('query-response', (_response: unknown, query: Query) => {
        const bindings = query.bindings ?? [];
        // The statement that sets the task's state (a lease claim names states only in its where).
        if (finished || !/^update\b.*kling_relay_tasks.*\bset\b.*[`"]state[`"]\s*=/i.test(query.sql) || !bindings.includes(state)) return;
        // The compare-and-set ends `where id = ? and state in (...)`: the id comes before the states.
        const states = /in\s*\(([^)]*)\)\s*$/i.exec(query.sql)?.[1]?.split(',').length ?? 0;
        finished = finish(deps, Number(bindings[bindings.length - 1 - states]), { status: 'succeed', result: RESULT });
      });
      return () => finished ?? Promise.reject(new Error(`no compare-and-set to ${state} was seen`));
    }

    async function expectSettled(klingTaskId: string): Promise<void> {
      const task = (await h.tasks()).find((t) => t.kling_task_id === klingTaskId);
      const row = (await h.rows('videos')).find((r) => r.id === task?.host_row_id || Number(r.id) === Number(task?.host_row_id));
      expect(task?.state, 'relay task').to.equal('succeed');
      expect(row?.status, 'host row').to.equal('succeed');
      expect(Number(row?.quota)).to.equal(hold);
      expect(JSON.parse(String(row?.result))).to.deep.equal(RESULT);
      const answer = await request(h.url).get(`/kling/v1/videos/text2video/${klingTaskId}`).set('X-User-Id', String(user));
      expect(answer.body.data.task_status).to.equal('succeed');
    }

    it('a processing notice, a query refresh and a reconcile whose change is overtaken by the final transition leave the host row succeed', async () => {
      for (const source of ['notice', 'refresh', 'reconcile'] as const) {
        const submitted = await request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ prompt: `a kite by ${source}` });
        expect(submitted.status).to.equal(200);
        const klingTaskId = submitted.body.data.task_id as string;
        const task = (await h.tasks()).find((t) => t.kling_task_id === klingTaskId);
        const finished = finishWhenMovedTo('processing');
        h.sandbox.setStatus(klingTaskId, 'processing');
        if (source === 'notice') {
          const body = { task_id: klingTaskId, task_status: 'processing', task_status_msg: '', task_info: { external_task_id: task?.external_task_id }, created_at: Date.now(), updated_at: Date.now() };
          expect((await request(app).post(`/kling/callback?token=${callbackToken(CALLBACK_SECRET, String(task?.external_task_id))}`).send(body)).status).to.equal(200);
        } else if (source === 'refresh') {
          await h.db('kling_relay_tasks').where({ id: task?.id }).update({ checked_at: 0 });
          expect((await request(app).get(`/kling/v1/videos/text2video/${klingTaskId}`)).status).to.equal(200);
        } else {
          await h.db('kling_relay_tasks').where({ id: task?.id }).update({ next_check_at: 0 });
          expect(await second.reconcile()).to.include({ claimed: 1, progressed: 1, errors: 0 });
        }
        expect(await finished(), source).to.equal(true);
        await expectSettled(klingTaskId);
      }
      expect(await h.balance(user)).to.equal(start - 3 * hold);
    });

    it("the submit's record of Kling's answer, overtaken by the final transition, leaves the host row succeed", async () => {
      const finished = finishWhenMovedTo('submitted');
      // A submit without a callback_url records the answer outside knex, in one direct write (no
      // statement of another can come between, and knex's query events do not see it); with one, it
      // takes knex's path. test/storage/direct-writes.test.ts races the direct write itself.
      const submitted = await request(app).post('/kling/v1/videos/text2video').send({ prompt: 'a kite', callback_url: 'http://127.0.0.1:9/hook' });
      expect(submitted.status).to.equal(200);
      expect(await finished()).to.equal(true);
      await expectSettled(submitted.body.data.task_id as string);
    });
  });
}

import { expect } from 'chai';
import express from 'express';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import request from 'supertest';
import { callbackToken } from '../../lib/completion/token.js';
import type { RelayEventMap, RelayEventName } from '../../lib/index.js';
import { testDatabases } from '../support/databases.js';
import { CALLBACK_SECRET, checkAndClose, startHarness, type Harness } from '../support/harness.js';

const QPU = 500_000;
/** TEST_PRICING: text2video at 0.01 USD per second. */
const HOLD_10S = Math.round(0.01 * 10 * QPU);

type Seen = { [K in RelayEventName]: { name: K; payload: RelayEventMap[K][0] } }[RelayEventName];

/** The value of one sample line of prom-client's text output, e.g. `name{label="x"} 3`. */
function sample(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `) || (labels === '' && l.startsWith(`${name} `)));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

for (const database of testDatabases()) {
  describe(`relay events and Prometheus metrics on ${database.name}`, function () {
    let h: Harness;
    let server: Server | undefined;
    afterEach(async () => {
      if (server) await new Promise<void>((resolve) => server?.close(() => resolve()));
      server = undefined;
      await checkAndClose(h);
    });

    it('emits submitted, callback, settled, failed, refunded and reconcile after each commit, and counts them on /metrics', async () => {
      // intervalMs 1: a task is due for the reconciler as soon as Kling accepted it.
      h = await startHarness(database, { relay: { reconciler: { intervalMs: 1 } } });
      const seen: Seen[] = [];
      for (const name of ['submitted', 'settled', 'failed', 'refunded', 'callback', 'reconcile'] as const) {
        h.relay.events.on(name, ((payload: unknown) => void seen.push({ name, payload } as Seen)) as never);
      }
      // A listener that throws must not fail the request whose transaction already committed.
      h.relay.events.on('submitted', () => {
        throw new Error('a broken listener');
      });
      // When an event is emitted its rows are committed: another connection sees them.
      const statesAtEmit: Promise<string>[] = [];
      h.relay.events.on('settled', (e) => statesAtEmit.push(h.db('kling_relay_tasks').where({ id: e.taskId }).first('state').then((r: { state: string }) => r.state)));

      const registry = new Registry();
      expect(await h.relay.metrics(registry)).to.equal(registry);
      // Attaching twice changes nothing (no double counting).
      await h.relay.metrics(registry);
      const app = express();
      app.get('/metrics', (_req, res) => {
        void registry.metrics().then((text) => res.type(registry.contentType).send(text));
      });
      app.post('/kling/callback', h.relay.callback);
      server = await new Promise<Server>((resolve) => {
        const s = app.listen(0, '127.0.0.1', () => resolve(s));
      });
      const hostUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

      const user = await h.user(1_000_000);
      const submit = async () => {
        const res = await request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ prompt: 'a kite', duration: '10' });
        expect(res.status).to.equal(200);
        return res.body.data.task_id as string;
      };
      const a = await submit();
      const b = await submit();
      h.sandbox.failNextCreate({ code: 1301, message: 'content risk' });
      const refused = await request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ prompt: 'a kite', duration: '10' });
      expect([refused.status, refused.body.code]).to.deep.equal([400, 1301]);

      // Task a: Kling finishes it and calls back 1.5 s after its updated_at.
      h.sandbox.complete(a, { status: 'succeed' });
      const tasks = await h.tasks();
      const external = String(tasks.find((t) => t.kling_task_id === a)?.external_task_id);
      const notice = { task_id: a, task_status: 'succeed', task_info: { external_task_id: external }, created_at: Date.now() - 5_000, updated_at: Date.now() - 1_500 };
      const cb = await request(hostUrl).post(`/kling/callback?token=${callbackToken(CALLBACK_SECRET, external)}`).send(notice);
      expect(cb.status).to.equal(200);

      // Task b: Kling fails it; no callback reaches the host, the reconciler finds out.
      h.sandbox.complete(b, { status: 'failed', message: 'risk control' });
      const report = await h.relay.reconcile();
      expect(report).to.include({ claimed: 1, finished: 1 });

      const names = seen.map((e) => e.name);
      expect(names).to.deep.equal(['submitted', 'submitted', 'submitted', 'failed', 'refunded', 'callback', 'settled', 'failed', 'refunded', 'reconcile']);
      const byName = <K extends RelayEventName>(name: K) => seen.filter((e) => e.name === name).map((e) => e.payload as RelayEventMap[K][0]);
      expect(byName('submitted')[0]).to.include({ userId: String(user), accountId: 'acct-1', type: 'text2video', path: '/v1/videos/text2video', hold: HOLD_10S });
      expect(byName('failed').map((e) => e.reason)).to.deep.equal(['submit failed: content risk', 'risk control']);
      expect(byName('refunded').map((e) => e.amount)).to.deep.equal([HOLD_10S, HOLD_10S]);
      const [callback] = byName('callback');
      expect(callback).to.include({ externalTaskId: external, status: 'succeed' });
      expect(callback?.delayMs).to.be.within(1_500, 60_000);
      expect(byName('settled')[0]).to.include({ type: 'text2video', hold: HOLD_10S, charge: HOLD_10S, externalTaskId: external });
      expect(byName('reconcile')[0]).to.include({ claimed: 1, finished: 1, errors: 0 });
      expect(await Promise.all(statesAtEmit)).to.deep.equal(['succeed']);

      const res = await request(hostUrl).get('/metrics');
      expect(res.status).to.equal(200);
      expect(res.headers['content-type']).to.match(/^text\/plain/);
      const text = res.text;
      expect(sample(text, 'kling_relay_tasks_submitted_total', '{type="text2video",account="acct-1"}')).to.equal(3);
      expect(sample(text, 'kling_relay_tasks_settled_total', '{type="text2video"}')).to.equal(1);
      expect(sample(text, 'kling_relay_tasks_failed_total', '{type="text2video"}')).to.equal(2);
      expect(sample(text, 'kling_relay_quota_held_total', '{type="text2video"}')).to.equal(3 * HOLD_10S);
      expect(sample(text, 'kling_relay_quota_charged_total', '{type="text2video"}')).to.equal(HOLD_10S);
      expect(sample(text, 'kling_relay_quota_refunded_total', '{type="text2video"}')).to.equal(2 * HOLD_10S);
      expect(sample(text, 'kling_relay_callbacks_total', '{status="succeed"}')).to.equal(1);
      expect(sample(text, 'kling_relay_callback_delay_seconds_count', '{status="succeed"}')).to.equal(1);
      expect(sample(text, 'kling_relay_callback_delay_seconds_bucket', '{le="1",status="succeed"}')).to.equal(0);
      expect(sample(text, 'kling_relay_callback_delay_seconds_bucket', '{le="60",status="succeed"}')).to.equal(1);
      expect(sample(text, 'kling_relay_reconcile_passes_total')).to.equal(1);
      expect(sample(text, 'kling_relay_reconcile_tasks_total', '{outcome="finished"}')).to.equal(1);
      expect(sample(text, 'kling_relay_reconcile_duration_seconds_count')).to.equal(1);
      // The money the metrics counted is the money the ledger moved.
      expect(await h.balance(user)).to.equal(1_000_000 - HOLD_10S);
    });

    it('relay.metrics() without a registry makes its own', async () => {
      h = await startHarness(database);
      const registry = await h.relay.metrics();
      const user = await h.user(1_000_000);
      const res = await request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ prompt: 'a kite', duration: '10' });
      expect(res.status).to.equal(200);
      expect(sample(await registry.metrics(), 'kling_relay_tasks_submitted_total', '{type="text2video",account="acct-1"}')).to.equal(1);
    });
  });
}

import { expect } from 'chai';
import express from 'express';
import { readFileSync } from 'node:fs';
import sinon from 'sinon';
import { Webhook } from 'standardwebhooks';
import request from 'supertest';
import { callbackToken } from '../../lib/completion/token.js';
import type { KlingRelayOptions } from '../../lib/index.js';
import { testDatabases } from '../support/databases.js';
import { CALLBACK_SECRET, checkAndClose, startHarness, type Harness } from '../support/harness.js';
import { recordingLogger } from '../support/logger.js';
import { startReceiver, type Receiver } from './receiver.js';

/** A Standard Webhooks secret: whsec_ + base64 of 32 bytes. */
export const CLIENT_SECRET = `whsec_${Buffer.from('client-callback-secret-for-tests!').toString('base64')}`;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

for (const database of testDatabases()) {
  describe(`client callbacks on ${database.name}`, function () {
    this.timeout(60_000);
    let h: Harness;
    let receiver: Receiver;
    let user: number;

    async function start(clientCallbacks: KlingRelayOptions['clientCallbacks'] = {}, relay: Partial<KlingRelayOptions> = {}): Promise<void> {
      h = await startHarness(database, { relay: { clientCallbacks: { secret: CLIENT_SECRET, allowHosts: ['127.0.0.1'], timeoutMs: 2_000, ...clientCallbacks }, ...relay } });
      user = await h.user(10_000_000);
    }

    beforeEach(async () => {
      receiver = await startReceiver();
    });
    afterEach(async () => {
      await receiver.stop();
      await checkAndClose(h);
    });

    const submit = (body: Record<string, unknown>) => request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ prompt: 'a kite', ...body });
    /** Time passes for the reconciler: every task is due for a check. */
    const makeDue = () => h.db('kling_relay_tasks').update({ next_check_at: 0 });
    const outbox = async () => (await h.db('kling_relay_outbox').select('*').orderBy('id')) as Record<string, unknown>[];
    async function submitted(body: Record<string, unknown> = {}): Promise<string> {
      const res = await submit({ callback_url: receiver.url, ...body });
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      return res.body.data.task_id as string;
    }

    it('notifies on success with Kling\'s callback body: its task_id, the caller\'s external_task_id, the result, signed', async () => {
      await start();
      const taskId = await submitted({ external_task_id: 'job-1', callback_url: `${receiver.url}?token=client-own-token` });
      expect(receiver.requests, 'nothing is sent before a reconcile pass').to.have.length(0);
      const first = await h.relay.reconcile();
      expect(first.callbacks).to.deep.equal({ claimed: 1, delivered: 1, retrying: 0, gaveUp: 0 });
      h.sandbox.complete(taskId, { status: 'succeed' });
      await makeDue();
      const second = await h.relay.reconcile();
      expect(second).to.include({ finished: 1 });
      expect(second.callbacks).to.deep.equal({ claimed: 1, delivered: 1, retrying: 0, gaveUp: 0 });

      expect(receiver.statuses()).to.deep.equal(['submitted', 'succeed']);
      expect(receiver.requests.map((r) => r.path)).to.deep.equal(['/hook?token=client-own-token', '/hook?token=client-own-token']);
      const [task] = await h.tasks();
      const kling = h.sandbox.tasks.getTask(taskId);
      const done = receiver.requests[1]?.body;
      expect(Object.keys(done ?? {})).to.deep.equal(['task_id', 'task_status', 'task_status_msg', 'task_info', 'task_result', 'final_unit_deduction', 'final_balance_deduction', 'created_at', 'updated_at']);
      expect(done).to.deep.include({ final_unit_deduction: kling?.finalUnitDeduction, final_balance_deduction: kling?.finalBalanceDeduction });
      expect(done).to.deep.include({ task_id: taskId, task_status: 'succeed', task_info: { external_task_id: 'job-1' } });
      expect(done?.task_result).to.deep.equal(JSON.parse(String(task?.result)));
      expect((done?.task_result as { videos: { url: string }[] }).videos[0]?.url).to.be.a('string').and.not.equal('');
      expect(done?.created_at).to.equal(kling?.createdAt);
      expect(done?.updated_at).to.be.a('number').and.at.least(Number(done?.created_at));
      const opening = receiver.requests[0]?.body;
      expect(opening).to.deep.include({ task_id: taskId, task_status: 'submitted', task_status_msg: '', task_info: { external_task_id: 'job-1' } });
      expect(opening).to.not.have.property('task_result');
      // Never our own external_task_id.
      expect(receiver.requests.map((r) => r.raw).join()).to.not.include(String(task?.external_task_id));

      const webhook = new Webhook(CLIENT_SECRET);
      for (const r of receiver.requests) {
        expect(r.headers['content-type']).to.equal('application/json');
        expect(webhook.verify(r.raw, r.headers as Record<string, string>)).to.deep.equal(r.body);
        expect(r.headers['webhook-signature']).to.match(/^v1,[A-Za-z0-9+/]+=*$/);
      }
      expect(new Set(receiver.requests.map((r) => r.headers['webhook-id'])).size).to.equal(2);
      // A receiver with another secret, or a body changed on the way, does not verify.
      const other = new Webhook(`whsec_${Buffer.from('another-secret-another-secret-xx').toString('base64')}`);
      const r0 = receiver.requests[0];
      expect(() => other.verify(r0?.raw ?? '', r0?.headers as Record<string, string>)).to.throw();
      expect(() => webhook.verify((r0?.raw ?? '').replace('submitted', 'succeed'), r0?.headers as Record<string, string>)).to.throw();

      const rows = await outbox();
      expect(rows.map((r) => [r.status, r.state, Number(r.attempts), r.last_error])).to.deep.equal([['submitted', 'delivered', 1, null], ['succeed', 'delivered', 1, null]]);
      expect(rows.every((r) => Number(r.delivered_at) > 0)).to.equal(true);
    });

    it('notifies every status on failure, in order, with the reason and no task_result', async () => {
      await start();
      const taskId = await submitted();
      h.sandbox.setStatus(taskId, 'processing');
      await makeDue();
      expect(await h.relay.reconcile()).to.include({ progressed: 1 });
      h.sandbox.complete(taskId, { status: 'failed', message: 'content policy' });
      await makeDue();
      expect(await h.relay.reconcile()).to.include({ finished: 1 });
      expect(receiver.statuses()).to.deep.equal(['submitted', 'processing', 'failed']);
      const failed = receiver.requests[2]?.body;
      expect(failed).to.deep.include({ task_id: taskId, task_status: 'failed', task_status_msg: 'content policy', task_info: {} });
      expect(failed).to.not.have.property('task_result');
      expect(await h.balance(user)).to.equal(10_000_000);
    });

    it('receiver down, then up: the notice is delivered by a later pass, not before it is due', async () => {
      await start();
      await receiver.stop();
      await submitted();
      const down = await h.relay.reconcile();
      expect(down.callbacks).to.deep.equal({ claimed: 1, delivered: 0, retrying: 1, gaveUp: 0 });
      let [row] = await outbox();
      expect([row?.state, Number(row?.attempts)]).to.deep.equal(['pending', 1]);
      expect(String(row?.last_error)).to.match(/ECONNREFUSED/);
      expect(Number(row?.next_attempt_at)).to.be.greaterThan(Date.now());
      await receiver.start();
      // Not due yet: the pass leaves it alone.
      expect((await h.relay.reconcile()).callbacks?.claimed).to.equal(0);
      expect(receiver.requests).to.have.length(0);
      await sleep(Number(row?.next_attempt_at) - Date.now() + 50);
      const up = await h.relay.reconcile();
      expect(up.callbacks).to.deep.equal({ claimed: 1, delivered: 1, retrying: 0, gaveUp: 0 });
      expect(receiver.statuses()).to.deep.equal(['submitted']);
      [row] = await outbox();
      expect([row?.state, Number(row?.attempts), row?.last_error]).to.deep.equal(['delivered', 2, null]);
    });

    it('receiver answers 500, then 200: retried with the same webhook-id and body, signed afresh, and counted', async () => {
      await start();
      const registry = await h.relay.metrics();
      receiver.answerNext(500);
      await submitted();
      expect((await h.relay.reconcile()).callbacks).to.include({ retrying: 1 });
      let [row] = await outbox();
      expect([Number(row?.last_http_status), row?.last_error]).to.deep.equal([500, 'HTTP 500']);
      await sleep(Number(row?.next_attempt_at) - Date.now() + 50);
      expect((await h.relay.reconcile()).callbacks).to.include({ delivered: 1 });
      [row] = await outbox();
      expect([row?.state, Number(row?.attempts), Number(row?.last_http_status)]).to.deep.equal(['delivered', 2, 200]);
      const [a, b] = receiver.requests;
      expect(a?.headers['webhook-id']).to.equal(b?.headers['webhook-id']);
      expect(a?.raw).to.equal(b?.raw);
      const webhook = new Webhook(CLIENT_SECRET);
      expect(webhook.verify(b?.raw ?? '', b?.headers as Record<string, string>)).to.deep.equal(b?.body);
      const text = await registry.metrics();
      expect(text).to.include('kling_relay_client_callback_attempts_total{outcome="retrying"} 1');
      expect(text).to.include('kling_relay_client_callback_attempts_total{outcome="delivered"} 1');
    });

    it('deletes notices keepForMs after they were delivered or given up, in a later pass; never a pending one', async () => {
      const logger = recordingLogger();
      // keepForMs well past a pass's own length: a pass that took longer than it (a loaded machine)
      // would rightly delete the notice it delivered itself, before this test looks.
      await start({ keepForMs: 1_000, retryForMs: 60_000 }, { logger });
      const delivered = await submitted();
      const down = await startReceiver();
      await down.stop();
      await submitted({ callback_url: down.url });
      const pass = await h.relay.reconcile();
      expect(pass.callbacks).to.deep.include({ claimed: 2, delivered: 1, retrying: 1 });
      expect((await outbox()).map((n) => n.state)).to.deep.equal(['delivered', 'pending']);
      await sleep(1_100);
      await h.relay.reconcile();
      const left = await outbox();
      expect(left.map((n) => n.state), 'the delivered notice is gone, the one still retried stays').to.deep.equal(['pending']);
      expect(left[0]?.url).to.equal(down.url);
      expect(logger.lines.filter((line) => line.message === 'client callback notices deleted').map((line) => line.meta)).to.deep.equal([{ count: 1, endedBefore: logger.lines.find((line) => line.message === 'client callback notices deleted')?.meta.endedBefore }]);
      // The task itself is untouched: its status is still answered.
      const res = await request(h.url).get(`/kling/v1/videos/text2video/${delivered}`).set('X-User-Id', String(user));
      expect(res.status).to.equal(200);
    });

    it('keeps ended notices for ever with keepForMs: null', async () => {
      await start({ keepForMs: null });
      await submitted();
      await h.relay.reconcile();
      await sleep(20);
      await h.relay.reconcile();
      expect((await outbox()).map((n) => n.state)).to.deep.equal(['delivered']);
    });

    it('holds a task\'s later notice while an earlier one is pending, then sends both in order', async () => {
      await start();
      receiver.answerNext(503);
      const taskId = await submitted();
      await h.relay.reconcile();
      h.sandbox.complete(taskId, { status: 'succeed' });
      await makeDue();
      const pass = await h.relay.reconcile();
      expect(pass).to.include({ finished: 1 });
      // succeed is due but waits for submitted, which is not due yet.
      expect(pass.callbacks?.claimed).to.equal(0);
      expect(receiver.statuses()).to.deep.equal(['submitted']);
      const [first] = await outbox();
      await sleep(Number(first?.next_attempt_at) - Date.now() + 50);
      expect((await h.relay.reconcile()).callbacks).to.deep.equal({ claimed: 2, delivered: 2, retrying: 0, gaveUp: 0 });
      expect(receiver.statuses()).to.deep.equal(['submitted', 'submitted', 'succeed']);
    });

    it('duplicate and late Kling callbacks: one notice per status change, never an older status after the final one', async () => {
      await start();
      const taskId = await submitted();
      const task = (await h.tasks())[0];
      const externalTaskId = String(task?.external_task_id);
      const callbackApp = express().post('/kling/callback', h.relay.callback);
      const notice = (status: string) => ({ task_id: taskId, task_status: status, task_status_msg: '', task_info: { external_task_id: externalTaskId }, created_at: Date.now(), updated_at: Date.now() });
      const send = (status: string) => request(callbackApp).post(`/kling/callback?token=${callbackToken(CALLBACK_SECRET, externalTaskId)}`).send(notice(status));
      h.sandbox.setStatus(taskId, 'processing');
      expect((await Promise.all([send('processing'), send('processing'), send('processing')])).map((r) => r.status)).to.deep.equal([200, 200, 200]);
      h.sandbox.complete(taskId, { status: 'succeed' });
      expect((await Promise.all(Array.from({ length: 5 }, () => send('succeed')))).map((r) => r.status)).to.deep.equal([200, 200, 200, 200, 200]);
      // A late processing notice after the final one changes nothing.
      expect((await send('processing')).status).to.equal(200);
      await h.relay.reconcile();
      await h.relay.reconcile();
      expect(receiver.statuses()).to.deep.equal(['submitted', 'processing', 'succeed']);
      expect((await outbox()).map((r) => r.status)).to.deep.equal(['submitted', 'processing', 'succeed']);
    });

    it('a status Kling announced before its create answer arrived still gets its notice', async () => {
      await start();
      h.sandbox.hangNextCreate(800);
      // supertest sends on then(): start the submit now, and look at it while Kling holds the answer.
      const pending = submit({ callback_url: receiver.url }).then((res) => res);
      let task: Record<string, unknown> | undefined;
      for (let i = 0; i < 100 && !task; i++) {
        await sleep(20);
        task = h.sandbox.tasks.all().length > 0 ? (await h.tasks())[0] : undefined;
      }
      const externalTaskId = String(task?.external_task_id);
      const kling = h.sandbox.tasks.all()[0];
      h.sandbox.setStatus(String(kling?.taskId), 'processing');
      const callbackApp = express().post('/kling/callback', h.relay.callback);
      const early = await request(callbackApp)
        .post(`/kling/callback?token=${callbackToken(CALLBACK_SECRET, externalTaskId)}`)
        .send({ task_id: kling?.taskId, task_status: 'processing', task_info: { external_task_id: externalTaskId } });
      expect(early.status).to.equal(200);
      expect((await h.tasks())[0]?.state).to.equal('processing');
      expect(await outbox(), 'no Kling id yet: nothing to announce').to.deep.equal([]);
      expect((await pending).status).to.equal(200);
      await h.relay.reconcile();
      expect(receiver.bodies().map((b) => [b.task_id, b.task_status])).to.deep.equal([[kling?.taskId, 'processing']]);
    });

    it('two relay instances reconciling at once: no notice delivered twice', async () => {
      await start();
      receiver.answer = 200;
      const second = h.anotherRelay();
      try {
        const ids: string[] = [];
        for (let i = 0; i < 6; i++) ids.push(await submitted());
        for (const id of ids) h.sandbox.complete(id, { status: 'succeed' });
        await makeDue();
        for (let round = 0; round < 3; round++) {
          const [a, b] = await Promise.all([h.relay.reconcile(), second.reconcile()]);
          if (round === 0) expect((a.callbacks?.claimed ?? 0) + (b.callbacks?.claimed ?? 0), 'notices claimed in the first round').to.be.at.least(6);
        }
        const seen = receiver.requests.map((r) => `${String(r.body.task_id)}:${String(r.body.task_status)}`);
        expect(seen).to.have.length(12);
        expect(new Set(seen).size).to.equal(12);
        for (const id of ids) expect(seen.filter((s) => s.startsWith(`${id}:`))).to.deep.equal([`${id}:submitted`, `${id}:succeed`]);
        expect((await outbox()).every((r) => r.state === 'delivered' && Number(r.attempts) === 1)).to.equal(true);
      } finally {
        second.close();
      }
    });

    it('refuses loopback, private, link-local, metadata and other inner addresses at connect time, records it, never connects', async () => {
      // 127.0.0.1 is allowed for the receiver; localhost (which resolves to loopback) is not.
      await start();
      const refused = [
        receiver.urlWith('localhost'),
        'http://169.254.169.254/latest/meta-data/',
        receiver.urlWith('[::1]'),
        receiver.urlWith('[::ffff:127.0.0.1]'),
        'http://10.0.0.1/hook',
        'http://192.168.1.1/hook',
        'http://100.64.0.1/hook',
        'http://[fd00:ec2::254]/latest',
        'http://0.0.0.0/hook',
        'http://224.0.0.1/hook',
        // 3232235777 is 192.168.1.1 written as a number; the URL parser normalises it before the check.
        'http://3232235777/hook',
      ];
      for (const url of refused) expect((await submit({ callback_url: url })).status, url).to.equal(200);
      const started = Date.now();
      const pass = await h.relay.reconcile();
      expect(pass.callbacks).to.deep.equal({ claimed: refused.length, delivered: 0, retrying: 0, gaveUp: refused.length });
      expect(Date.now() - started, 'refused without waiting for a timeout').to.be.below(1_900);
      expect(receiver.requests, 'the receiver on 127.0.0.1 was never reached through another name').to.have.length(0);
      const rows = await outbox();
      expect(rows).to.have.length(refused.length);
      for (const row of rows) {
        expect([row.state, Number(row.attempts)], String(row.url)).to.deep.equal(['gave_up', 1]);
        expect(String(row.last_error), String(row.url)).to.match(/refused to connect.*(loopback|private|linkLocal|carrierGradeNat|uniqueLocal|unspecified|multicast)/);
      }
      expect(String(rows[0]?.last_error)).to.match(/localhost.*loopback/);
      expect(String(rows[1]?.last_error)).to.include('169.254.169.254 is a linkLocal address');
      expect(String(rows[7]?.last_error)).to.include('uniqueLocal');
      // Given up for good: later passes do not try again.
      expect((await h.relay.reconcile()).callbacks?.claimed).to.equal(0);
    });

    it('an allowed host name may be loopback', async () => {
      await start({ allowHosts: ['localhost'] });
      const res = await submit({ callback_url: receiver.urlWith('localhost') });
      expect(res.status).to.equal(200);
      expect((await h.relay.reconcile()).callbacks).to.include({ delivered: 1 });
      expect(receiver.statuses()).to.deep.equal(['submitted']);
    });

    it('checks the certificate of an https receiver: an untrusted one is a failed attempt, and nothing is sent', async () => {
      await start();
      const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');
      const tls = await startReceiver({ key: fixture('test-only-receiver-key.pem'), cert: fixture('test-only-receiver-cert.pem') });
      try {
        expect(tls.url).to.match(/^https:\/\/127\.0\.0\.1:\d+\/hook$/);
        expect((await submit({ callback_url: tls.url })).status).to.equal(200);
        expect((await h.relay.reconcile()).callbacks).to.include({ claimed: 1, retrying: 1 });
        const [row] = await outbox();
        expect(String(row?.last_error)).to.match(/self-signed certificate/);
        expect(tls.requests).to.have.length(0);
      } finally {
        await tls.stop();
      }
    });

    it('does not follow a redirect: a 3xx is a failed attempt', async () => {
      await start();
      receiver.answerNext({ status: 302, headers: { location: receiver.urlWith('127.0.0.1', '/elsewhere') } });
      await submitted();
      expect((await h.relay.reconcile()).callbacks).to.include({ retrying: 1, delivered: 0 });
      expect(receiver.requests.map((r) => r.path)).to.deep.equal(['/hook']);
      const [row] = await outbox();
      expect([row?.state, Number(row?.last_http_status), row?.last_error]).to.deep.equal(['pending', 302, 'HTTP 302: redirects are not followed']);
    });

    it('gives up after retryForMs, with a last attempt at the deadline, and tries no more', async () => {
      await start({ retryForMs: 1_500 });
      receiver.answer = 500;
      await submitted();
      const passes = [];
      for (let i = 0; i < 6; i++) {
        passes.push((await h.relay.reconcile()).callbacks);
        const [row] = await outbox();
        if (row?.state !== 'pending') break;
        await sleep(Math.max(0, Number(row.next_attempt_at) - Date.now()) + 50);
      }
      const [row] = await outbox();
      expect(row?.state).to.equal('gave_up');
      expect(Number(row?.gave_up_at) - Number(row?.created_at)).to.be.at.least(1_500);
      expect(Number(row?.attempts)).to.be.at.least(2);
      expect(receiver.requests).to.have.length(Number(row?.attempts));
      expect(passes.at(-1)).to.include({ gaveUp: 1 });
      await sleep(300);
      expect((await h.relay.reconcile()).callbacks?.claimed).to.equal(0);
      expect(receiver.requests).to.have.length(Number(row?.attempts));
    });

    it('gives up an attempt that gets no answer within timeoutMs', async () => {
      await start({ timeoutMs: 300 });
      receiver.answerNext('hang');
      await submitted();
      const started = Date.now();
      expect((await h.relay.reconcile()).callbacks).to.include({ retrying: 1 });
      expect(Date.now() - started).to.be.below(5_000);
      const [row] = await outbox();
      expect(String(row?.last_error)).to.equal('no answer within 300 ms');
    });

    it('slow receivers cannot hold up a pass: no new notice is claimed after reconciler.intervalMs', async () => {
      await start({ timeoutMs: 1_000 }, { reconciler: { intervalMs: 300 } });
      receiver.answer = 'hang';
      for (let i = 0; i < 12; i++) await submitted();
      const started = Date.now();
      const pass = await h.relay.reconcile();
      // Four workers each took one notice; when their attempts timed out the budget was spent.
      expect(pass.callbacks).to.deep.equal({ claimed: 4, delivered: 0, retrying: 4, gaveUp: 0 });
      expect(Date.now() - started).to.be.below(4_000);
      const rows = await outbox();
      expect(rows.filter((r) => Number(r.attempts) === 1)).to.have.length(4);
      expect(rows.filter((r) => Number(r.attempts) === 0 && r.lease_owner === null)).to.have.length(8);
    });

    it('logs every attempt (task, notice, status, attempt, outcome) without the secret, the signature or the URL\'s query', async () => {
      const logger = { error: sinon.spy(), warn: sinon.spy(), info: sinon.spy(), debug: sinon.spy() };
      await start({}, { logger });
      receiver.answerNext(500);
      await submitted({ callback_url: `${receiver.url}?token=client-own-token` });
      await h.relay.reconcile();
      const [row] = await outbox();
      await sleep(Number(row?.next_attempt_at) - Date.now() + 50);
      await h.relay.reconcile();
      const calls = [...logger.info.getCalls(), ...logger.warn.getCalls()].map((c) => ({ message: c.args[0] as string, meta: c.args[1] as Record<string, unknown> }));
      const attempts = calls.filter((c) => c.message.startsWith('client callback'));
      expect(attempts.map((c) => [c.message, c.meta.status, c.meta.attempt, c.meta.outcome, c.meta.httpStatus])).to.deep.equal([
        ['client callback attempt failed', 'submitted', 1, 'retrying', 500],
        ['client callback delivered', 'submitted', 2, 'delivered', 200],
      ]);
      for (const c of attempts) {
        expect(c.meta.taskId).to.equal(Number((await h.tasks())[0]?.id));
        expect(c.meta.noticeId).to.equal(row?.notice_id);
        expect(c.meta.host).to.equal(new URL(receiver.url).host);
      }
      const everything = JSON.stringify([...logger.error.getCalls(), ...logger.warn.getCalls(), ...logger.info.getCalls(), ...logger.debug.getCalls()].map((c) => c.args));
      const signatures = receiver.requests.map((r) => String(r.headers['webhook-signature']).slice(3));
      expect(signatures).to.have.length(2);
      for (const secret of [CLIENT_SECRET, CLIENT_SECRET.slice(6), 'client-own-token', ...signatures]) expect(everything).to.not.include(secret);
    });

    it('sends unsigned notices (with webhook-id) when no secret is configured, and warns about it once, at the first one', async () => {
      const logger = { error: sinon.spy(), warn: sinon.spy(), info: sinon.spy(), debug: sinon.spy() };
      h = await startHarness(database, { relay: { logger, clientCallbacks: { allowHosts: ['127.0.0.1'] } } });
      user = await h.user(10_000_000);
      const unsignedWarnings = () => logger.warn.getCalls().filter((c) => /unsigned.*clientCallbacks\.secret.*KLING_CLIENT_CALLBACK_SECRET/.test(String(c.args[0])));
      expect(unsignedWarnings(), 'no warning before a notice is sent').to.have.length(0);
      await submitted();
      await h.relay.reconcile();
      await submitted();
      await h.relay.reconcile();
      expect(receiver.requests).to.have.length(2);
      expect(unsignedWarnings()).to.have.length(1);
      const [r] = receiver.requests;
      expect(r?.headers['webhook-id']).to.match(/^msg_[0-9a-f]{32}$/);
      expect(r?.headers['webhook-timestamp']).to.match(/^\d+$/);
      expect(r?.headers).to.not.have.property('webhook-signature');
    });

    it('while the relay runs (relay.start()), sends each notice as soon as its change commits, without waiting for a pass', async () => {
      // A reconcile interval far beyond the test: only the prompt delivery can send anything.
      await start({}, { reconciler: { intervalMs: 600_000 } });
      h.relay.start();
      try {
        const until = async (count: number): Promise<void> => {
          for (let i = 0; i < 200 && receiver.requests.length < count; i++) await new Promise((resolve) => setTimeout(resolve, 25));
        };
        const taskId = await submitted();
        await until(1);
        expect(receiver.statuses()).to.deep.equal(['submitted']);
        h.sandbox.complete(taskId, { status: 'succeed' });
        // A client's query refreshes the task from Kling; the success notice follows at once.
        const query = await request(h.url).get(`/kling/v1/videos/text2video/${taskId}`).set('X-User-Id', String(user));
        expect(query.body.data.task_status).to.equal('succeed');
        await until(2);
        expect(receiver.statuses()).to.deep.equal(['submitted', 'succeed']);
      } finally {
        // Waits for the pass in flight, which records the deliveries.
        await h.relay.stop();
      }
      expect((await outbox()).map((n) => n.delivered_at !== null)).to.deep.equal([true, true]);
      // Stopped: a change waits in the outbox for the next pass.
      const later = await submitted();
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(receiver.requests).to.have.length(2);
      expect(later).to.be.a('string');
      expect((await h.relay.reconcile()).callbacks).to.include({ delivered: 1 });
      expect(receiver.statuses()).to.deep.equal(['submitted', 'succeed', 'submitted']);
    });

    it('writes no notice for a task without callback_url, or one Kling refused (the caller got the error)', async () => {
      await start();
      const plain = await submit({});
      expect(plain.status).to.equal(200);
      h.sandbox.failNextCreate({ code: 1301, message: 'content policy' });
      const refused = await submit({ callback_url: receiver.url });
      expect(refused.status).to.equal(400);
      h.sandbox.complete(plain.body.data.task_id as string, { status: 'succeed' });
      await makeDue();
      expect(await h.relay.reconcile()).to.include({ finished: 1 });
      expect(await outbox()).to.deep.equal([]);
      expect(receiver.requests).to.have.length(0);
      expect((await h.tasks()).map((t) => t.state)).to.deep.equal(['succeed', 'failed']);
    });

    it('refuses a bad callback_url with 400/1201 naming the field, leaving nothing behind', async () => {
      await start();
      const bad: [string, RegExp][] = [
        ['http://user:pass@client.example.com/hook', /credentials/],
        ['https://token@client.example.com/hook', /credentials/],
        ['/hook', /absolute http/],
        ['client.example.com/hook', /absolute http/],
        ['ftp://client.example.com/hook', /absolute http/],
        ['javascript:alert(1)', /absolute http/],
        ['http:client.example.com', /absolute http/],
        ['http://client.example.com\\@evil.example.com/', /backslash/],
        ['https://client.example.com/a b', /spaces/],
        [`https://client.example.com/${'a'.repeat(2030)}`, /at most 2048 characters/],
      ];
      for (const [url, message] of bad) {
        const res = await submit({ callback_url: url });
        expect([res.status, res.body.code], url).to.deep.equal([400, 1201]);
        expect(res.body.errors[0].path, url).to.equal('/callback_url');
        expect(res.body.errors[0].message, url).to.match(message);
        expect(res.body.message, url).to.include('/callback_url');
      }
      expect(await h.tasks()).to.deep.equal([]);
      expect(h.creates()).to.deep.equal([]);
      const good = await submit({ callback_url: 'https://client.example.com:8443/hooks/kling?user=7#frag' });
      expect(good.status).to.equal(200);
      expect((await h.tasks())[0]?.client_callback_url).to.equal('https://client.example.com:8443/hooks/kling?user=7#frag');
      expect(JSON.stringify(h.creates()[0]?.body)).to.not.include('client.example.com');
    });
  });
}

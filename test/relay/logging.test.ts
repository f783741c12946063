import { expect } from 'chai';
import request from 'supertest';
import { callbackToken } from '../../lib/completion/token.js';
import { PNG_400x300, VIDEO_URL, dataUrl } from '../fixtures/media.js';
import { testDatabases } from '../support/databases.js';
import { CALLBACK_SECRET, startHarness, type Harness, type HarnessOptions } from '../support/harness.js';
import { recordingLogger, type Line } from '../support/logger.js';


/** A client's own callback URL may carry the client's own secret; it is the client's, not ours to log. */
const CLIENT_HOOK = 'https://client.example.com/hook?token=client-own-secret-4f1c2e';

/** What a log line reads like once written: the message and the meta as JSON. */
function written(line: Line): string {
  return `${line.message} ${JSON.stringify(line.meta)}`;
}

/** A run of base64 characters long enough to be media rather than an id or a hash. */
const BASE64_RUN = /[A-Za-z0-9+/]{200,}/;

for (const database of testDatabases()) {
  describe(`relay logs on ${database.name}`, function () {
    let h: Harness;
    let log: ReturnType<typeof recordingLogger>;
    let user: number;

    async function start(options: HarnessOptions = {}): Promise<void> {
      log = recordingLogger();
      h = await startHarness(database, { ...options, relay: { logger: log, upstreamTimeoutMs: 400, ...options.relay } });
      user = await h.user(10_000_000);
    }
    afterEach(async () => h.close());

    const post = (path: string, body: object) => request(h.url).post(`/kling${path}`).set('X-User-Id', String(user)).send(body);

    /** The lines about one task: the relay's own id is how an operator finds them. */
    const linesOf = (taskId: unknown): Line[] => log.lines.filter((l) => String(l.meta.taskId) === String(taskId));

    /**
     * Every line naming a task also names its caller and the Kling account, and the task's story
     * has a line for each step asked for: submit, the upstream call, then settle or refund.
     */
    function expectIds(task: Record<string, unknown>, steps: RegExp[]): void {
      const lines = linesOf(task.id);
      for (const line of lines) {
        expect(line.meta, line.message).to.include({ userId: String(user), accountId: task.account_id });
      }
      const messages = lines.map((l) => l.message);
      for (const step of steps) expect(messages.some((m) => step.test(m)), `${String(step)} in ${JSON.stringify(messages)}`).to.equal(true);
    }

    /** Nothing that would let a reader of the logs act as the relay, its account or its caller. */
    async function expectNothingSecret(): Promise<void> {
      const secrets: [string, string][] = [['callback secret', CALLBACK_SECRET], ['the client hook token', 'client-own-secret-4f1c2e']];
      for (const [id, keys] of Object.entries(h.keys)) {
        secrets.push([`${id} access key`, keys.accessKey], [`${id} secret key`, keys.secretKey]);
      }
      for (const task of await h.tasks()) {
        secrets.push([`callback token of task ${String(task.id)}`, callbackToken(CALLBACK_SECRET, String(task.external_task_id))]);
      }
      // The JWTs the relay actually presented to Kling, as the sandbox received them.
      for (const r of h.sandbox.requests) {
        const auth = String(r.headers.authorization ?? '');
        const token = auth.replace(/^Bearer\s+/i, '');
        if (token !== '') secrets.push([`JWT sent with ${r.method} ${r.path}`, token]);
      }
      expect(log.lines.length).to.be.greaterThan(0);
      for (const line of log.lines) {
        const text = written(line);
        expect(text, 'Bearer').to.not.include('Bearer');
        for (const [what, secret] of secrets) expect(text.includes(secret), `${what} in "${line.message}"`).to.equal(false);
        expect(BASE64_RUN.test(text), `base64 media in "${line.message}"`).to.equal(false);
      }
    }

    it('logs submit, the upstream call, settle and refund with the task, user and account ids, and nothing secret', async () => {
      await start();
      const image = { prompt: 'wave', callback_url: CLIENT_HOOK };

      // Accepted: a base64 image (and one behind a data: prefix) with the client's own callback.
      const ok = await post('/v1/videos/image2video', { ...image, image: PNG_400x300, external_task_id: 'mine-1' });
      expect(ok.status).to.equal(200);
      const prefixed = await post('/v1/videos/image2video', { ...image, image: dataUrl('image/png', PNG_400x300) });
      expect(prefixed.status).to.equal(200);

      // Refused by Kling: refunded.
      h.sandbox.failNextCreate({ httpStatus: 400, code: 1301, message: 'content security policy triggered' });
      expect((await post('/v1/videos/image2video', { ...image, image: PNG_400x300 })).status).to.equal(400);

      // Kling refuses the account: hidden from the caller, logged as an error, refunded.
      h.sandbox.failNextCreate({ httpStatus: 429, code: 1102, message: 'resource pack depleted' });
      expect((await post('/v1/videos/image2video', { ...image, image: PNG_400x300 })).status).to.equal(503);

      // No answer in time: the hold stays for the reconciler.
      h.sandbox.hangNextCreate();
      expect((await post('/v1/videos/image2video', { ...image, image: PNG_400x300 })).status).to.equal(504);

      // A sync endpoint settles in the request.
      expect((await post('/v1/videos/identify-face', { video_url: VIDEO_URL })).status).to.equal(200);

      const [accepted, accepted2, refused, account, hung, sync] = await h.tasks();
      if (!accepted || !accepted2 || !refused || !account || !hung || !sync) throw new Error('expected six tasks');
      const submitted = /^task submitted$/;
      const upstream = /kling/i;
      expectIds(accepted, [submitted, upstream]);
      expectIds(accepted2, [submitted, upstream]);
      expectIds(refused, [submitted, upstream, /^task refunded$/]);
      expectIds(account, [submitted, /account/i, /^task refunded$/]);
      expectIds(hung, [submitted, /reconciler/]);
      expectIds(sync, [submitted, upstream, /^task settled$/]);

      // A refused account is an operator's problem: an error line naming the account.
      const accountLines = linesOf(account.id).filter((l) => l.level === 'error');
      expect(accountLines).to.have.length(1);
      expect(accountLines[0]?.meta).to.include({ accountId: 'acct-1', klingCode: 1102 });

      // The submit line names the caller's own external_task_id when it sent one, so an operator finds
      // the task a caller asks about.
      const submittedLine = (task: Record<string, unknown>) => linesOf(task.id).find((l) => submitted.test(l.message));
      expect(submittedLine(accepted)?.meta.clientTaskId).to.equal('mine-1');
      expect(submittedLine(accepted2)?.meta).to.not.have.property('clientTaskId');

      // The upstream line of an accepted task names Kling's task id, so Kling's records can be found.
      const answered = linesOf(accepted.id).find((l) => upstream.test(l.message) && l.meta.klingTaskId !== undefined);
      expect(answered?.meta.klingTaskId).to.equal(accepted.kling_task_id);

      // The client's transport lines name the account and Kling's request id; each create's request
      // id also appears on the task's own line, which ties the two together.
      for (const line of log.lines.filter((l) => l.message.startsWith('kling upstream call') && l.meta.method === 'POST')) {
        expect(line.meta.account).to.equal('acct-1');
        if (typeof line.meta.klingRequestId !== 'string') continue;
        const owner = log.lines.find((l) => l !== line && l.meta.klingRequestId === line.meta.klingRequestId && l.meta.taskId !== undefined);
        expect(owner, `task line for Kling request ${line.meta.klingRequestId}`).to.not.equal(undefined);
      }

      await expectNothingSecret();
    });

    it("a Kling error that quotes the request's base64 image: the relay's transport and submit lines cut it", async () => {
      await start();
      h.sandbox.failNextCreate({ httpStatus: 400, code: 1201, message: `image is invalid: ${PNG_400x300}` });
      const res = await post('/v1/videos/image2video', { prompt: 'wave', image: PNG_400x300 });
      expect([res.status, res.body.code]).to.deep.equal([400, 1201]);
      const transport = log.lines.filter((l) => l.message.startsWith('kling upstream call'));
      expect(transport).to.have.length(1);
      expect(String(transport[0]?.meta.error)).to.match(/^Kling answered HTTP 400 code 1201: image is invalid: \[\d+ characters cut\]/);
      expect(log.lines.some((l) => l.message === 'task refunded')).to.equal(true);
      for (const line of log.lines) {
        expect(BASE64_RUN.test(written(line)), `base64 media in "${line.message}"`).to.equal(false);
      }
    });

    it('a key Kling does not accept: an error line with the ids, and neither the key nor the JWT in any line', async () => {
      await start({ accounts: [{ id: 'acct-revoked', secretKey: 'revoked-secret-key-0123456789abcdef0123' }] });
      const res = await post('/v1/videos/image2video', { prompt: 'wave', image: PNG_400x300, callback_url: CLIENT_HOOK });
      expect([res.status, res.body.code, res.body.message]).to.deep.equal([503, 5001, 'upstream account unavailable']);
      const [task] = await h.tasks();
      if (!task) throw new Error('expected a task');
      expect(task.state).to.equal('failed');
      expectIds(task, [/^task submitted$/, /account/i, /^task refunded$/]);
      const errors = log.lines.filter((l) => l.level === 'error');
      expect(errors.map((l) => l.meta.accountId)).to.deep.equal(['acct-revoked']);
      expect(errors[0]?.meta.klingCode).to.equal(1002);
      expect(h.sandbox.requests.some((r) => String(r.headers.authorization).startsWith('Bearer '))).to.equal(true);
      // The key this account signs with is not one the sandbox knows, so check it explicitly.
      for (const line of log.lines) expect(written(line)).to.not.include('revoked-secret-key');
      await expectNothingSecret();
    });

    it("a database error during a submit: the log names the driver's code and the statement, never the SQL's values", async () => {
      await start();
      const secret = 's3cr3t-7d1e9a4b2c';
      const hook = `https://caller.example/hook?secret=${secret}`;
      // The task insert writes this column: without it every database refuses the insert.
      await h.db.schema.alterTable('kling_relay_tasks', (t) => t.renameColumn('client_callback_url', 'client_callback_url_gone'));
      const res = await post('/v1/videos/text2video', { prompt: 'a kite', callback_url: hook });
      expect([res.status, res.body.code]).to.deep.equal([503, 5001]);
      for (const line of log.lines) {
        const text = written(line);
        for (const leak of [secret, 'caller.example', 'a kite']) expect(text.includes(leak), `${leak} in "${line.message}": ${text}`).to.equal(false);
        expect(text).to.not.match(/values\s*\(/i);
      }
      const codes: Record<string, RegExp> = { sqlite: /^SQLITE_ERROR$/, mysql: /^ER_BAD_FIELD_ERROR$/, pg: /^42703$/ };
      const failed = log.lines.filter((l) => l.level === 'error');
      expect(failed.map((l) => l.message)).to.deep.equal(['request failed']);
      const error = failed[0]?.meta.error as Record<string, unknown> | undefined;
      expect(String(error?.code)).to.match(codes[database.name] ?? /^$/);
      expect(error?.statement).to.equal('insert kling_relay_tasks');
    });

    it('an idle reconcile pass logs at debug, a pass with work at info', async () => {
      await start();
      await h.relay.reconcile();
      const idle = log.lines.filter((l) => l.message === 'reconcile pass');
      expect(idle.map((l) => [l.level, l.meta.claimed])).to.deep.equal([['debug', 0]]);
      const res = await post('/v1/videos/text2video', { prompt: 'a kite' });
      expect(res.status).to.equal(200);
      await h.db('kling_relay_tasks').update({ next_check_at: 0 });
      await h.relay.reconcile();
      const busy = log.lines.filter((l) => l.message === 'reconcile pass').slice(1);
      expect(busy.map((l) => [l.level, l.meta.claimed])).to.deep.equal([['info', 1]]);
    });
  });
}

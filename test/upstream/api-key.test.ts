import { expect } from 'chai';
import { inspect } from 'node:util';
import request from 'supertest';
import { testDatabases } from '../support/databases.js';
import { checkAndClose, startHarness, type Harness } from '../support/harness.js';
import { captureLogger, type CapturedLogger } from './support.js';

const QPU = 500_000;

/** A log line as a host would read it once written, nested errors included. */
function written(line: CapturedLogger['lines'][number]): string {
  return `${line.message} ${JSON.stringify(line.meta)} ${inspect(line.meta, { depth: 10 })}`;
}

for (const database of testDatabases()) {
  describe(`API-key Kling accounts through the relay on ${database.name}`, function () {
    this.timeout(60_000);
    let h: Harness;
    let log: CapturedLogger;
    let user: number;

    afterEach(async () => checkAndClose(h));

    const post = (path: string, body: object) => request(h.url).post(`/kling${path}`).set('X-User-Id', String(user)).send(body);
    const get = (path: string) => request(h.url).get(`/kling${path}`).set('X-User-Id', String(user));

    it('submits and queries a task with the API key itself as the Bearer credential, never a JWT', async () => {
      log = captureLogger();
      h = await startHarness(database, { accounts: [{ id: 'keyed', apiKey: true }], relay: { logger: log } });
      user = await h.user(1_000_000);
      const apiKey = h.keys.keyed?.apiKeys?.[0];
      if (apiKey === undefined) throw new Error('the sandbox account has no API key');

      const res = await post('/v1/videos/text2video', { prompt: 'a kite', duration: '5' });
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      const taskId = String(res.body.data.task_id);
      expect(h.sandbox.tasks.getTask(taskId)?.accessKey, "the task is the key's account's at Kling").to.equal('access-keyed');
      h.sandbox.complete(taskId, { status: 'succeed' });
      const queried = await get(`/v1/videos/text2video/${taskId}`);
      expect([queried.status, queried.body.data?.task_status]).to.deep.equal([200, 'succeed']);

      expect(h.sandbox.requests.map((r) => [r.method, r.path, r.headers.authorization, r.accessKey])).to.deep.equal([
        ['POST', '/v1/videos/text2video', `Bearer ${apiKey}`, 'access-keyed'],
        ['GET', `/v1/videos/text2video/${taskId}`, `Bearer ${apiKey}`, 'access-keyed'],
      ]);
      const [task] = await h.tasks();
      expect(task).to.include({ account_id: 'keyed', state: 'succeed' });
      expect((await h.ledger()).map((l) => l.kind)).to.deep.equal(['hold', 'settle']);
      expect(await h.balance(user)).to.equal(1_000_000 - Math.round(0.01 * 5 * QPU));
      expect(log.lines.some((l) => (l.meta as { account?: unknown } | undefined)?.account === 'keyed')).to.equal(true);
      for (const line of log.lines) expect(written(line), line.message).to.not.include(apiKey);
    });

    it('answers 503/5001 for an API key Kling does not know, refunds, and logs an error without the key', async () => {
      const revoked = 'apikey-revoked-0123456789abcdef0123456789';
      log = captureLogger();
      h = await startHarness(database, { accounts: [{ id: 'revoked', apiKey: revoked }], relay: { logger: log } });
      user = await h.user(1_000_000);

      const res = await post('/v1/videos/text2video', { prompt: 'a kite', duration: '5' });
      expect([res.status, res.body.code, res.body.message]).to.deep.equal([503, 5001, 'upstream account unavailable']);
      expect(JSON.stringify(res.body)).to.not.include(revoked);
      expect(h.sandbox.requests.map((r) => [r.method, r.headers.authorization, r.accessKey])).to.deep.equal([['POST', `Bearer ${revoked}`, undefined]]);
      expect(h.sandbox.tasks.all()).to.deep.equal([]);
      expect(await h.balance(user)).to.equal(1_000_000);
      expect((await h.tasks()).map((t) => t.state)).to.deep.equal(['failed']);

      const errors = log.lines.filter((l) => l.level === 'error');
      expect(errors.map((l) => (l.meta as { accountId?: unknown }).accountId)).to.deep.equal(['revoked']);
      expect((errors[0]?.meta as { klingCode?: unknown }).klingCode).to.equal(1002);
      for (const line of log.lines) expect(written(line), line.message).to.not.include(revoked);
    });
  });
}

import { expect } from 'chai';
import { Registry } from 'prom-client';
import request from 'supertest';
import { testDatabases } from '../support/databases.js';
import { checkAndClose, type Harness, startHarness } from '../support/harness.js';
import { recordingLogger } from '../support/logger.js';

/** The relay account of a sandbox access key. */
function accountOf(h: Harness, accessKey: string | undefined): string {
  return Object.entries(h.keys).find(([, k]) => k.accessKey === accessKey)?.[0] ?? '?';
}

/** Each create the sandbox received, as `account made` or `account refused` (no task of that account has its external_task_id). */
function createsSeen(h: Harness): string[] {
  return h.creates().map((r) => {
    const made = h.sandbox.tasks.findByExternalId(r.accessKey ?? '', String((r.body as { external_task_id?: string }).external_task_id));
    return `${accountOf(h, r.accessKey)} ${made ? 'made' : 'refused'}`;
  });
}

for (const database of testDatabases()) {
  describe(`dispatch: failover before Kling accepts on ${database.name}`, function () {
    this.timeout(60_000);
    let h: Harness | undefined;
    let user: number;
    afterEach(async () => checkAndClose(h));

    const submit = (prompt: string) => request(h?.url ?? '').post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ prompt, model_name: 'kling-v2-6' });

    async function hostChannels(): Promise<string[]> {
      return (await h!.rows('videos')).map((row) => String(row.channel_id));
    }

    it('moves a create Kling refuses with 1303 to another account, same task and hold, and learns the lower cap', async () => {
      h = await startHarness(database, {
        accounts: [
          // Nearly every pick lands on a while it seems to have room, so its second task meets the 1303.
          { id: 'a', weight: 1000, concurrency: 3, klingConcurrency: 1 },
          { id: 'b', concurrency: 3, klingConcurrency: 3 },
        ],
      });
      user = await h.user(100_000_000);
      const metrics = await h.relay.metrics(new Registry());
      const failovers: unknown[] = [];
      const refusals: unknown[] = [];
      h.relay.events.on('failover', (e) => failovers.push([e.from, e.to, e.code]));
      h.relay.events.on('concurrencyRefused', (e) => refusals.push([e.accountId, e.model, e.pack, e.inUse]));
      for (let i = 0; i < 4; i++) {
        const res = await submit(`task ${i}`);
        expect(res.status, JSON.stringify(res.body)).to.equal(200);
      }
      const tasks = await h.tasks();
      expect(tasks).to.have.length(4);
      expect(tasks.map((t) => t.account_id).sort()).to.deep.equal(['a', 'b', 'b', 'b']);
      // The host row follows the task to its account.
      expect(await hostChannels()).to.deep.equal(tasks.map((t) => String(t.account_id)));
      // Each task Kling made is the relay's, on the account the relay recorded.
      for (const task of tasks) expect(accountOf(h, h.sandbox.tasks.findByExternalId(h.keys[String(task.account_id)]?.accessKey ?? '', String(task.external_task_id))?.accessKey)).to.equal(task.account_id);
      // One 1303 teaches the relay account a's real cap; then no create is sent there.
      expect(createsSeen(h).filter((c) => c.endsWith('refused'))).to.deep.equal(['a refused']);
      expect(failovers).to.deep.equal([['a', 'b', 1303]]);
      expect(refusals).to.deep.equal([['a', 'kling-v2-6', 'video', 1]]);
      const text = await metrics.metrics();
      expect(text).to.include('kling_relay_failovers_total{from="a",to="b",code="1303"} 1');
      expect(text).to.include('kling_relay_concurrency_refusals_total{account="a",model="kling-v2-6"} 1');
      expect(h.sandbox.slots().every((s) => s.peak <= (accountOf(h!, s.accessKey) === 'a' ? 1 : 3))).to.equal(true);
      // One hold per task, nothing refunded.
      const ledger = await h.ledger();
      expect(ledger.map((l) => l.kind)).to.deep.equal(['hold', 'hold', 'hold', 'hold']);
    });

    it('moves a create from an account Kling refuses (in arrears) and sets that account aside, logged once', async () => {
      const logger = recordingLogger();
      h = await startHarness(database, { accounts: [{ id: 'a' }, { id: 'b' }], relay: { logger } });
      user = await h.user(100_000_000);
      const aside: unknown[] = [];
      h.relay.events.on('accountSetAside', (e) => aside.push([e.accountId, e.code]));
      h.sandbox.failNextCreate({ code: 1101 });
      const first = await submit('first');
      expect(first.status, JSON.stringify(first.body)).to.equal(200);
      const [refusedAt, madeAt] = createsSeen(h);
      expect(refusedAt?.endsWith('refused')).to.equal(true);
      const arrears = refusedAt?.split(' ')[0];
      const healthy = arrears === 'a' ? 'b' : 'a';
      expect(madeAt).to.equal(`${healthy} made`);
      for (let i = 0; i < 6; i++) expect((await submit(`more ${i}`)).status).to.equal(200);
      const tasks = await h.tasks();
      expect(tasks.map((t) => t.account_id)).to.deep.equal(Array(7).fill(healthy));
      expect(createsSeen(h).filter((c) => c.startsWith(`${arrears} `))).to.have.length(1);
      const setAside = logger.lines.filter((l) => l.message.startsWith('Kling refused the account; it takes no new tasks'));
      expect(setAside.map((l) => [l.level, l.meta.accountId, l.meta.klingCode])).to.deep.equal([['error', arrears, 1101]]);
      expect(aside).to.deep.equal([[arrears, 1101]]);
    });

    it('never moves a follow-up naming a resource: it stays with the account that owns it', async () => {
      h = await startHarness(database, { accounts: [{ id: 'a', weight: 1000, klingConcurrency: 1 }, { id: 'b' }] });
      user = await h.user(100_000_000);
      const made = await submit('a kite');
      const owner = accountOf(h, h.creates().at(-1)?.accessKey);
      const done = h.sandbox.complete(String(made.body.data.task_id), { status: 'succeed' });
      const videoId = (done.result?.videos as { id: string }[] | undefined)?.[0]?.id;
      expect((await request(h.url).get(`/kling/v1/videos/text2video/${String(made.body.data.task_id)}`).set('X-User-Id', String(user))).body.data.task_status).to.equal('succeed');
      const extend = () => request(h?.url ?? '').post('/kling/v1/videos/video-extend').set('X-User-Id', String(user)).send({ video_id: videoId });
      expect((await extend()).status).to.equal(200);
      const refused = await extend();
      expect([refused.status, refused.body.code]).to.deep.equal([429, 1303]);
      const extends_ = h.creates().filter((r) => r.path === '/v1/videos/video-extend').map((r) => accountOf(h!, r.accessKey));
      expect(extends_).to.deep.equal([owner, owner]);
    });

    it('answers 429/1303 with Retry-After and refunds the hold only when no account can take the task', async () => {
      h = await startHarness(database, {
        accounts: [
          { id: 'a', klingConcurrency: 1 },
          { id: 'b', klingConcurrency: 1 },
        ],
      });
      user = await h.user(100_000_000);
      for (let i = 0; i < 2; i++) expect((await submit(`fits ${i}`)).status).to.equal(200);
      expect((await h.tasks()).map((t) => t.account_id).sort()).to.deep.equal(['a', 'b']);
      const before = await h.balance(user);
      const over = await submit('over');
      expect(over.status).to.equal(429);
      expect(over.body.code).to.equal(1303);
      expect(over.headers['retry-after']).to.equal('1');
      expect(await h.balance(user)).to.equal(before);
      const last = (await h.tasks()).at(-1);
      expect(last?.state).to.equal('failed');
    });
  });
}

import { expect } from 'chai';
import express from 'express';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { createKlingRelay, type KlingRelay } from '../../lib/index.js';
import { silentLogger } from '../../lib/logger.js';
import type { FetchLike } from '../../lib/upstream/client.js';
import { AUDIO_URL, VIDEO_URL } from '../fixtures/media.js';
import { testDatabases } from '../support/databases.js';
import { CALLBACK_SECRET, startHarness, TEST_PRICING, checkAndClose, type Harness } from '../support/harness.js';

const lipSync = (session: string) => ({
  session_id: session,
  face_choose: [{ face_id: '0', sound_file: AUDIO_URL, sound_start_time: 0, sound_end_time: 5000, sound_insert_time: 0 }],
});

for (const database of testDatabases()) {
  describe(`Kling accounts on ${database.name}`, function () {
    this.timeout(60_000);
    let h: Harness;
    let user: number;

    afterEach(async () => checkAndClose(h));

    const post = (path: string, body: object, url = h.url) => request(url).post(`/kling${path}`).set('X-User-Id', String(user)).send(body);

    /** The relay account whose key signed the latest request the sandbox received. */
    function lastAccount(): string | undefined {
      const key = h.sandbox.requests.at(-1)?.accessKey;
      return Object.entries(h.keys).find(([, k]) => k.accessKey === key)?.[0];
    }

    /** Calls a session-creating sync endpoint until each account has answered once; returns session ids by account. */
    async function sessionsByAccount(path: string, body: object): Promise<Map<string, string>> {
      const sessions = new Map<string, string>();
      for (let i = 0; i < 60 && sessions.size < Object.keys(h.keys).length; i++) {
        const res = await post(path, body);
        expect(res.status, JSON.stringify(res.body)).to.equal(200);
        const session = res.body.data.session_id as unknown;
        expect(session).to.be.a('string');
        const account = lastAccount();
        if (account === undefined) throw new Error('the sandbox did not verify the request');
        if (!sessions.has(account)) sessions.set(account, String(session));
      }
      return sessions;
    }

    describe('two accounts of weight 1', () => {
      beforeEach(async () => {
        h = await startHarness(database, { accounts: [{ id: 'a', weight: 1 }, { id: 'b', weight: 1 }] });
        user = await h.user(100_000_000);
      });

      it('sends every advanced-lip-sync naming a session to the account whose identify-face created it', async () => {
        const sessions = await sessionsByAccount('/v1/videos/identify-face', { video_url: VIDEO_URL });
        expect([...sessions.keys()].sort()).to.deep.equal(['a', 'b']);
        for (const [owner, session] of sessions) {
          for (let i = 0; i < 10; i++) {
            const res = await post('/v1/videos/advanced-lip-sync', lipSync(session));
            expect(res.status).to.equal(200);
            const create = h.creates().at(-1);
            expect(create?.path).to.equal('/v1/videos/advanced-lip-sync');
            expect((create?.body as { session_id?: unknown }).session_id).to.equal(session);
            expect(create?.accessKey, `follow-up ${i} of ${owner}'s session`).to.equal(h.keys[owner]?.accessKey);
          }
        }
        // The relay's own records agree: the task and the host row name the owning account.
        const followUps = (await h.tasks()).filter((t) => t.endpoint === '/v1/videos/advanced-lip-sync');
        expect(followUps).to.have.length(20);
        const rows = new Map((await h.rows('videos')).map((r) => [String(r.id), r]));
        for (const task of followUps) {
          const session = (h.sandbox.tasks.getTask(String(task.kling_task_id))?.body as { session_id?: string } | undefined)?.session_id;
          const owner = [...sessions].find(([, s]) => s === session)?.[0];
          expect(task.account_id).to.equal(owner);
          expect(rows.get(String(task.host_row_id))?.channel_id).to.equal(owner);
        }
      });

      it('keeps a multi-elements session on its account through every selection call and the edit', async () => {
        const sessions = await sessionsByAccount('/v1/videos/multi-elements/init-selection', { video_url: VIDEO_URL });
        expect([...sessions.keys()].sort()).to.deep.equal(['a', 'b']);
        const points = { frame_index: 0, points: [{ x: 0.5, y: 0.5 }] };
        for (const [owner, session] of sessions) {
          const calls: [string, object][] = [
            ['/v1/videos/multi-elements/add-selection', { session_id: session, ...points }],
            ['/v1/videos/multi-elements/delete-selection', { session_id: session, ...points }],
            ['/v1/videos/multi-elements/preview-selection', { session_id: session }],
            ['/v1/videos/multi-elements/clear-selection', { session_id: session }],
            ['/v1/videos/multi-elements', { session_id: session, edit_mode: 'removal', prompt: 'Delete the dog from <<<video_1>>>' }],
          ];
          for (const [path, body] of calls) {
            const res = await post(path, body);
            expect(res.status, `${path}: ${JSON.stringify(res.body)}`).to.equal(200);
            expect(lastAccount(), `${path} for ${owner}'s session`).to.equal(owner);
          }
        }
      });

      it('spreads requests naming an unknown session over both accounts', async () => {
        const seen = { a: 0, b: 0 } as Record<string, number>;
        for (let i = 0; i < 40; i++) {
          const res = await post('/v1/videos/advanced-lip-sync', lipSync(`unknown-session-${i}`));
          expect(res.status).to.equal(200);
          const account = lastAccount();
          if (account === undefined) throw new Error('the sandbox did not verify the request');
          seen[account] = (seen[account] ?? 0) + 1;
        }
        // 1:1 weights: all 40 on one account would happen about once in 5e11 runs.
        expect(seen.a).to.be.greaterThan(0);
        expect(seen.b).to.be.greaterThan(0);
        expect((seen.a ?? 0) + (seen.b ?? 0)).to.equal(40);
      });
    });

    it('spreads unknown ids by weight (3:1)', async () => {
      h = await startHarness(database, { accounts: [{ id: 'a', weight: 3 }, { id: 'b', weight: 1 }] });
      user = await h.user(100_000_000);
      const n = 200;
      await Promise.all(
        Array.from({ length: 4 }, async (_, worker) => {
          for (let i = worker; i < n; i += 4) {
            const res = await post('/v1/videos/advanced-lip-sync', lipSync(`unknown-${i}`));
            expect(res.status).to.equal(200);
          }
        }),
      );
      const onB = h.creates().filter((c) => c.accessKey === h.keys.b?.accessKey).length;
      expect(h.creates()).to.have.length(n);
      // Expected 50 on b (sd about 6.1); 25..80 is over four standard deviations either way.
      expect(onB).to.be.within(25, 80);
    });

    it('a draining account (weight 0) takes no new work but still gets the follow-ups of its sessions', async () => {
      h = await startHarness(database, { accounts: [{ id: 'a', weight: 1 }, { id: 'b', weight: 1 }] });
      user = await h.user(100_000_000);
      const sessions = await sessionsByAccount('/v1/videos/identify-face', { video_url: VIDEO_URL });
      const session = sessions.get('b');
      if (session === undefined) throw new Error('b answered no identify-face');

      // The host redeploys with b draining, on the same database.
      const keys = (id: string) => ({ accessKey: h.keys[id]?.accessKey ?? '', secretKey: h.keys[id]?.secretKey ?? '' });
      const drained: KlingRelay = createKlingRelay({
        db: h.db,
        accounts: [{ id: 'a', ...keys('a'), baseUrl: h.sandbox.url, weight: 1 }, { id: 'b', ...keys('b'), baseUrl: h.sandbox.url, weight: 0 }],
        callbackUrl: 'http://127.0.0.1:9/kling/callback',
        callbackSecret: CALLBACK_SECRET,
        pricing: TEST_PRICING,
        logger: silentLogger,
      });
      const app = express();
      app.use('/kling', (req, res, next) => {
        res.locals.user = { id: Number(req.get('x-user-id')) };
        next();
      }, drained.router);
      const server: Server = await new Promise((resolve) => {
        const s = app.listen(0, '127.0.0.1', () => resolve(s));
      });
      try {
        const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
        for (let i = 0; i < 10; i++) {
          expect((await post('/v1/videos/advanced-lip-sync', lipSync(session), url)).status).to.equal(200);
          expect(lastAccount()).to.equal('b');
          expect((await post('/v1/videos/advanced-lip-sync', lipSync(`unknown-${i}`), url)).status).to.equal(200);
          expect(lastAccount()).to.equal('a');
          expect((await post('/v1/videos/text2video', { prompt: 'x' }, url)).status).to.equal(200);
          expect(lastAccount()).to.equal('a');
        }
      } finally {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        drained.close();
      }
    });

    describe('the fetch option', () => {
      it('globalThis.fetch works end to end: a task, a sync call, a refusal with its refund, and a timeout', async () => {
        const fetch: FetchLike = globalThis.fetch;
        h = await startHarness(database, { relay: { fetch, upstreamTimeoutMs: 400 } });
        user = await h.user(1_000_000);

        const task = await post('/v1/videos/text2video', { prompt: 'a cat surfing', external_task_id: 'mine-1' });
        expect(task.status).to.equal(200);
        expect(task.body.data).to.include({ task_status: 'submitted' });
        expect(task.body.data.task_info).to.deep.equal({ external_task_id: 'mine-1' });
        // undici, not node-fetch, made the call.
        expect(String(h.creates()[0]?.headers['user-agent'])).to.not.match(/node-fetch/);
        expect(h.creates()[0]?.accessKey).to.equal(h.keys['acct-1']?.accessKey);

        const sync = await post('/v1/videos/identify-face', { video_url: VIDEO_URL });
        expect(sync.status).to.equal(200);
        expect(sync.body.data.session_id).to.be.a('string');

        h.sandbox.failNextCreate({ httpStatus: 400, code: 1301, message: 'content security policy triggered' });
        const refused = await post('/v1/videos/text2video', { prompt: 'x' });
        expect([refused.status, refused.body.code, refused.body.message]).to.deep.equal([400, 1301, 'content security policy triggered']);

        h.sandbox.hangNextCreate();
        const started = Date.now();
        const hung = await post('/v1/videos/text2video', { prompt: 'x' });
        expect([hung.status, hung.body.code]).to.deep.equal([504, 5002]);
        expect(Date.now() - started).to.be.lessThan(400 + 1_000);

        expect((await h.tasks()).map((t) => t.state)).to.deep.equal(['submitted', 'succeed', 'failed', 'pending']);
        expect((await h.ledger()).map((l) => l.kind)).to.deep.equal(['hold', 'hold', 'settle', 'hold', 'refund', 'hold']);
        const [text2video, identify, , hold] = (await h.ledger()).map((l) => Number(l.amount));
        expect(await h.balance(user)).to.equal(1_000_000 + (text2video ?? 0) + (identify ?? 0) + (hold ?? 0));
      });
    });
  });
}

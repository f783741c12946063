import { expect } from 'chai';
import request from 'supertest';
import { callbackToken } from '../../lib/completion/token.js';
import { testDatabases } from '../support/databases.js';
import { CALLBACK_SECRET, startHarness, checkAndClose, type Harness } from '../support/harness.js';
import { PNG_400x300, dataUrl } from '../fixtures/media.js';

const QPU = 500_000;

for (const database of testDatabases()) {
  for (const expressVersion of database.name === 'sqlite' ? ([5, 4] as const) : ([5] as const)) {
    describe(`relay submit on ${database.name}, Express ${expressVersion}`, function () {
      let h: Harness;
      let user: number;

      beforeEach(async () => {
        h = await startHarness(database, { expressVersion });
        user = await h.user(1_000_000);
      });
      afterEach(async () => checkAndClose(h));

      const post = (path: string, body: unknown, as: number | null = user) => {
        const r = request(h.url).post(`/kling${path}`);
        if (as !== null) r.set('X-User-Id', String(as));
        return r.send(body as object);
      };

      async function expectNothingLeft(balance = 1_000_000): Promise<void> {
        expect(await h.rows('videos')).to.deep.equal([]);
        expect(await h.rows('images')).to.deep.equal([]);
        expect(await h.tasks()).to.deep.equal([]);
        expect(await h.ledger()).to.deep.equal([]);
        expect(await h.balance(user)).to.equal(balance);
        expect(h.creates()).to.deep.equal([]);
      }

      it('submits text2video: holds the price, records the rows, sends our ids to Kling, answers in Kling shape', async () => {
        const res = await post('/v1/videos/text2video', { prompt: 'a cat surfing', duration: '10', external_task_id: 'mine-1', callback_url: 'https://client.example.com/hook' });
        expect(res.status).to.equal(200);
        expect(res.body).to.include({ code: 0, message: 'SUCCEED' });
        expect(res.body.request_id).to.be.a('string');
        const data = res.body.data as Record<string, unknown>;
        expect(data.task_id).to.be.a('string');
        expect(data.task_status).to.equal('submitted');
        expect(data.task_info).to.deep.equal({ external_task_id: 'mine-1' });

        const price = Math.round(0.01 * 10 * QPU);
        expect(await h.balance(user)).to.equal(1_000_000 - price);
        const [row] = await h.rows('videos');
        expect(row).to.include({ task_id: data.task_id, status: 'submitted', type: 'text2video', model: 'kling-v1', provider: 'kling', mode: 'std', channel_id: 'acct-1' });
        expect(Number(row?.quota)).to.equal(price);
        expect(Number(row?.duration)).to.equal(10);
        const [task] = await h.tasks();
        expect(task).to.include({ client_task_id: 'mine-1', kling_task_id: data.task_id, state: 'submitted', request_type: 'text2video' });
        expect(String(task?.external_task_id)).to.match(/^kr-video-\d+-[0-9a-f]{12}$/);
        const ledger = await h.ledger();
        expect(ledger.map((l) => [l.kind, Number(l.amount)])).to.deep.equal([['hold', -price]]);

        const [create] = h.creates();
        expect(create?.path).to.equal('/v1/videos/text2video');
        const sent = create?.body as Record<string, unknown>;
        expect(sent.external_task_id).to.equal(task?.external_task_id);
        expect(sent.callback_url).to.equal(`http://127.0.0.1:9/kling/callback?task=${String(task?.external_task_id)}&account=acct-1&token=${callbackToken(CALLBACK_SECRET, String(task?.external_task_id))}`);
        expect(sent).to.include({ prompt: 'a cat surfing', duration: '10', model_name: 'kling-v1', mode: 'std' });
        expect(JSON.stringify(sent)).to.not.include('client.example.com');
      });

      it('strips a data: prefix before Kling sees the image', async () => {
        const res = await post('/v1/videos/image2video', { image: dataUrl('image/png', PNG_400x300), prompt: 'wave' });
        expect(res.status).to.equal(200);
        expect((h.creates()[0]?.body as { image: string }).image).to.equal(PNG_400x300);
      });

      it('writes image endpoints to the image table, priced per image', async () => {
        const res = await post('/v1/images/generations', { prompt: 'a red fox', n: 3 });
        expect(res.status).to.equal(200);
        expect(await h.rows('videos')).to.deep.equal([]);
        const [row] = await h.rows('images');
        expect(row).to.include({ type: 'image-generation', status: 'submitted' });
        expect(Number(row?.quota)).to.equal(Math.round(0.02 * 3 * QPU));
      });

      it('settles a sync endpoint at once: identify-face is charged and answered with its data', async () => {
        const res = await post('/v1/videos/identify-face', { video_url: 'https://cdn.example.com/v.mp4' });
        expect(res.status).to.equal(200);
        expect(res.body.data.session_id).to.be.a('string');
        expect(res.body.data.face_data).to.be.an('array');
        const [row] = await h.rows('videos');
        expect(row).to.include({ status: 'succeed', type: 'identify-face' });
        expect((await h.ledger()).map((l) => [l.kind, Number(l.amount)])).to.deep.equal([['hold', -5000], ['settle', 0]]);
        expect(await h.balance(user)).to.equal(1_000_000 - 5000);
      });

      it('refuses a body that fails its schema with 400/1201 and errors[], leaving nothing behind', async () => {
        const res = await post('/v1/videos/text2video', { prompt: 'x', camera_control: { type: 'simple', config: { pan: 1, zoom: 2 } } });
        expect(res.status).to.equal(400);
        expect(res.body.code).to.equal(1201);
        const message = 'exactly one of horizontal, vertical, pan, tilt, roll, zoom must be non-zero; 2 are (pan, zoom)';
        expect(res.body.errors).to.deep.equal([
          { path: '/camera_control/config/zoom', message },
          { path: '/camera_control/config/pan', message },
        ]);
        await expectNothingLeft();
      });

      it('answers 401/1000 without a caller, 415 for non-JSON, 400/1200 for malformed JSON, 413 over the limit', async () => {
        const noCaller = await post('/v1/videos/text2video', { prompt: 'x' }, null);
        expect([noCaller.status, noCaller.body.code]).to.deep.equal([401, 1000]);
        const text = await request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).set('Content-Type', 'text/plain').send('prompt=x');
        expect([text.status, text.body.code]).to.deep.equal([415, 1200]);
        const bad = await request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).set('Content-Type', 'application/json').send('{"prompt": ');
        expect([bad.status, bad.body.code]).to.deep.equal([400, 1200]);
        expect(bad.body.message).to.match(/^malformed JSON/);
        const big = await post('/v1/videos/text2video', { prompt: 'x', negative_prompt: 'y'.repeat(61 * 1024 * 1024) });
        expect([big.status, big.body.code]).to.deep.equal([413, 1200]);
        await expectNothingLeft();
      });

      it('answers 402/1102 when the balance is short, leaving nothing behind', async () => {
        const poor = await h.user(100);
        const res = await post('/v1/videos/text2video', { prompt: 'x' }, poor);
        expect([res.status, res.body.code]).to.deep.equal([402, 1102]);
        expect(await h.balance(poor)).to.equal(100);
        await expectNothingLeft();
      });

      it('answers 503/5001 naming the type and model when no rule prices the request', async () => {
        const res = await post('/v1/videos/omni-video', { prompt: 'x', aspect_ratio: '16:9', model_name: 'kling-video-o1' });
        // The test pricing has a catch-all, so use a relay whose rules do not cover omni-video.
        expect(res.status).to.equal(200);
        await h.close();
        h = await startHarness(database, { expressVersion, relay: { pricing: [{ type: 'text2video', price: 0.01 }] } });
        user = await h.user(1_000_000);
        const refused = await post('/v1/videos/omni-video', { prompt: 'x', aspect_ratio: '16:9' });
        expect([refused.status, refused.body.code]).to.deep.equal([503, 5001]);
        expect(refused.body.message).to.include("type 'omni-video' and model 'kling-video-o1'");
        await expectNothingLeft();
      });

      it('answers 404/1202 for an unknown endpoint and lets other paths through to the host', async () => {
        const res = await post('/v1/videos/text2video-pro', { prompt: 'x' });
        expect([res.status, res.body.code]).to.deep.equal([404, 1202]);
        const other = await request(h.url).get('/kling/health');
        expect(other.status).to.equal(404);
        expect(other.body).to.not.have.property('code');
      });

      it('refunds in the same transaction when Kling refuses the task (400/1301 stays 400, 429 keeps Retry-After)', async () => {
        h.sandbox.failNextCreate({ httpStatus: 400, code: 1301, message: 'content security policy triggered' });
        const res = await post('/v1/videos/text2video', { prompt: 'x' });
        expect([res.status, res.body.code, res.body.message]).to.deep.equal([400, 1301, 'content security policy triggered']);
        h.sandbox.failNextCreate({ httpStatus: 429, code: 1303, message: 'parallel task over resource pack limit' });
        const busy = await post('/v1/videos/text2video', { prompt: 'x' });
        expect([busy.status, busy.body.code]).to.deep.equal([429, 1303]);
        expect(busy.headers['retry-after']).to.equal('1');
        expect(await h.balance(user)).to.equal(1_000_000);
        expect((await h.rows('videos')).map((r) => r.status)).to.deep.equal(['failed', 'failed']);
        expect((await h.tasks()).map((t) => t.state)).to.deep.equal(['failed', 'failed']);
        const ledger = await h.ledger();
        expect(ledger.map((l) => l.kind)).to.deep.equal(['hold', 'refund', 'hold', 'refund']);
        expect(ledger.reduce((sum, l) => sum + Number(l.amount), 0)).to.equal(0);
      });

      it('hides a Kling account problem behind 503/5001 and refunds', async () => {
        h.sandbox.failNextCreate({ httpStatus: 429, code: 1102, message: 'resource pack depleted' });
        const res = await post('/v1/videos/text2video', { prompt: 'x' });
        expect([res.status, res.body.code, res.body.message]).to.deep.equal([503, 5001, 'upstream account unavailable']);
        expect(await h.balance(user)).to.equal(1_000_000);
      });

      it('answers 504 within the deadline when Kling hangs, posts once, and keeps the hold for the reconciler', async () => {
        h.sandbox.hangNextCreate();
        const started = Date.now();
        const res = await post('/v1/videos/text2video', { prompt: 'x' });
        expect([res.status, res.body.code]).to.deep.equal([504, 5002]);
        expect(Date.now() - started).to.be.lessThan(2_000 + 1_000);
        expect(h.creates()).to.have.length(1);
        const [task] = await h.tasks();
        expect(task?.state).to.equal('pending');
        expect(await h.balance(user)).to.equal(1_000_000 - Math.round(0.01 * 5 * QPU));
      });

      if (database.name !== 'sqlite') {
        it('accepts exactly 3 of 10 concurrent submits against a balance for 3, never going negative', async () => {
          const price = Math.round(0.01 * 5 * QPU);
          const poor = await h.user(price * 3);
          const results = await Promise.all(Array.from({ length: 10 }, () => post('/v1/videos/text2video', { prompt: 'x' }, poor)));
          expect(results.filter((r) => r.status === 200)).to.have.length(3);
          expect(results.filter((r) => r.status === 402)).to.have.length(7);
          expect(await h.balance(poor)).to.equal(0);
          expect(h.creates()).to.have.length(3);
        });
      }
    });
  }
}

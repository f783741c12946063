import { expect } from 'chai';
import express from 'express';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { createKlingRelay, type PricingRule } from '../../lib/index.js';
import { silentLogger } from '../../lib/logger.js';
import { AUDIO_URL, IMAGE_URL, JPEG_640x480, VIDEO_URL } from '../fixtures/media.js';
import { testDatabases } from '../support/databases.js';
import { CALLBACK_SECRET, startHarness, checkAndClose, type Harness } from '../support/harness.js';

const QPU = 500_000;
const START = 100_000_000;

/** A distinct per-call price for each new type, so a request priced by another type's rule shows. */
const PRICES: Record<string, number> = {
  'custom-voice': 0.007,
  'preset-voices': 0,
  'delete-voice': 0.0001,
  'advanced-element': 0.02,
  'preset-elements': 0.0002,
  'delete-element': 0.0003,
  'custom-element': 0.01,
  'ai-multi-shot': 0.07,
  text2video: 0.001,
  image2video: 0.002,
  'omni-image': 0.003,
  'image-generation': 0.004,
};
const RULES: PricingRule[] = Object.entries(PRICES).map(([type, price]) => ({ type, price, pricing_type: 'fixed' }));
const quota = (type: string): number => Math.round((PRICES[type] ?? Number.NaN) * QPU);

const num = (value: unknown): number => Number(value);
const ELEMENT_IMAGES = { frontal_image: IMAGE_URL, refer_images: [{ image_url: JPEG_640x480 }] };

interface Mounted {
  url: string;
  close(): Promise<void>;
}

for (const database of testDatabases()) {
  describe(`voices, elements and AI multi-shot through the relay on ${database.name}`, function () {
    this.timeout(60_000);
    let h: Harness;
    let alice: number;
    let bob: number;
    const mounted: Mounted[] = [];

    beforeEach(async () => {
      // New work goes to a: what a creates is a's. The relay at `other()` drains a and sends new work to
      // b, so a follow-up reaching a there went by ownership, not by chance.
      h = await startHarness(database, { accounts: [{ id: 'a', weight: 1 }, { id: 'b', weight: 0 }], relay: { pricing: RULES } });
      alice = await h.user(START);
      bob = await h.user(START);
    });
    afterEach(async () => {
      for (const m of mounted.splice(0)) await m.close();
      await checkAndClose(h);
    });

    /** A second host process on the same database and Kling accounts, with a draining and b taking new work. */
    async function other(): Promise<string> {
      const account = (id: string, weight: number) => ({ id, accessKey: h.keys[id]?.accessKey ?? '', secretKey: h.keys[id]?.secretKey ?? '', baseUrl: h.sandbox.url, weight });
      const relay = createKlingRelay({
        db: h.db,
        accounts: [account('a', 0), account('b', 1)],
        callbackUrl: 'http://127.0.0.1:9/kling/callback',
        callbackSecret: CALLBACK_SECRET,
        pricing: RULES,
        logger: silentLogger,
      });
      const app = express();
      app.use('/kling', (req, res, next) => {
        res.locals.user = { id: Number(req.get('x-user-id')) };
        next();
      }, relay.router);
      const server: Server = await new Promise((resolve) => {
        const s = app.listen(0, '127.0.0.1', () => resolve(s));
      });
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      mounted.push({
        url,
        async close() {
          server.closeAllConnections();
          await new Promise<void>((resolve) => server.close(() => resolve()));
          relay.close();
        },
      });
      return url;
    }

    const post = (user: number, path: string, body: object, url = h.url) => request(url).post(`/kling${path}`).set('X-User-Id', String(user)).send(body);
    const get = (user: number, path: string, url = h.url) => request(url).get(`/kling${path}`).set('X-User-Id', String(user));

    /** The relay account whose key signed the latest request the sandbox received. */
    function lastAccount(): string | undefined {
      const key = h.sandbox.requests.at(-1)?.accessKey;
      return Object.entries(h.keys).find(([, k]) => k.accessKey === key)?.[0];
    }

    /** What the caller's balance, the relay's rows and Kling saw, to show a refusal left nothing behind. */
    async function snapshot(user: number) {
      return { tasks: (await h.tasks()).length, ledger: (await h.ledger()).length, videos: (await h.rows('videos')).length, images: (await h.rows('images')).length, calls: h.sandbox.requests.length, balance: await h.balance(user) };
    }

    /** Creates a voice for `user` through the relay (on account a), completes it at Kling and queries it; returns its id and task id. */
    async function createVoice(user: number): Promise<{ voiceId: string; taskId: string }> {
      const res = await post(user, '/v1/general/custom-voices', { voice_name: 'Narrator', voice_url: AUDIO_URL });
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      const taskId = res.body.data.task_id as string;
      h.sandbox.complete(taskId, { status: 'succeed' });
      const query = await get(user, `/v1/general/custom-voices/${taskId}`);
      expect(query.body.data.task_status).to.equal('succeed');
      return { voiceId: query.body.data.task_result.voices[0].voice_id as string, taskId };
    }

    async function createElement(user: number, body: Record<string, unknown>): Promise<Record<string, unknown>> {
      const res = await post(user, '/v1/general/advanced-custom-elements', body);
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      const taskId = res.body.data.task_id as string;
      h.sandbox.complete(taskId, { status: 'succeed' });
      const query = await get(user, `/v1/general/advanced-custom-elements/${taskId}`);
      expect(query.body.data.task_status).to.equal('succeed');
      return query.body.data.task_result.elements[0] as Record<string, unknown>;
    }

    it('a custom voice: the create Kling received, the task the caller sees, the host row, the ledger, and its query and list', async () => {
      const res = await post(alice, '/v1/general/custom-voices', { voice_name: 'Narrator', voice_url: AUDIO_URL, external_task_id: 'voice-job-1' });
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      expect(res.body.data).to.include({ task_status: 'submitted' });
      expect(res.body.data.task_info).to.deep.equal({ external_task_id: 'voice-job-1' });
      const taskId = res.body.data.task_id as string;

      const sent = h.creates().at(-1);
      expect(sent?.path).to.equal('/v1/general/custom-voices');
      expect(sent?.body).to.include({ voice_name: 'Narrator', voice_url: AUDIO_URL });
      expect((sent?.body as { external_task_id: string }).external_task_id).to.match(/^kr-video-/);
      expect((sent?.body as { callback_url: string }).callback_url).to.match(/^http:\/\/127\.0\.0\.1:9\/kling\/callback\?/);

      const [row] = await h.rows('videos');
      expect(row).to.include({ type: 'custom-voice', model: 'kling-custom-voice', status: 'submitted', task_id: taskId, channel_id: 'a' });
      expect(num(row?.quota)).to.equal(quota('custom-voice'));
      expect((await h.ledger()).map((l) => [l.kind, num(l.amount)])).to.deep.equal([['hold', -quota('custom-voice')]]);

      h.sandbox.complete(taskId, { status: 'succeed' });
      const byExternal = await get(alice, '/v1/general/custom-voices/voice-job-1');
      expect(byExternal.status).to.equal(200);
      const voices = byExternal.body.data.task_result.voices as Record<string, unknown>[];
      expect(voices).to.have.length(1);
      expect(voices[0]).to.include({ voice_name: 'Narrator' });
      expect(voices[0]?.voice_id).to.be.a('string');
      expect(voices[0]?.owned_by).to.not.equal('kling');
      const list = await get(alice, '/v1/general/custom-voices?pageNum=1&pageSize=10');
      expect(list.body.data.map((t: { task_id: string }) => t.task_id)).to.deep.equal([taskId]);
      expect((await get(bob, '/v1/general/custom-voices')).body.data).to.deep.equal([]);
      expect((await get(bob, `/v1/general/custom-voices/${taskId}`)).status).to.equal(404);
      expect((await h.ledger()).map((l) => [l.kind, num(l.amount)])).to.deep.equal([['hold', -quota('custom-voice')], ['settle', 0]]);
      expect(await h.balance(alice)).to.equal(START - quota('custom-voice'));
    });

    it("routes the owner's voice (voice_list, delete) to the account that made it, and refuses another caller's before any hold", async () => {
      const { voiceId } = await createVoice(alice);
      const url = await other();
      const t2v = { model_name: 'kling-v2-6', mode: 'pro', sound: 'on', prompt: 'a sailor sings <<<voice_1>>>', voice_list: [{ voice_id: voiceId }] };

      const before = await snapshot(bob);
      const foreignVideo = await post(bob, '/v1/videos/text2video', t2v, url);
      expect([foreignVideo.status, foreignVideo.body.code, foreignVideo.body.errors]).to.deep.equal([400, 1201, [{ path: '/voice_list/0/voice_id', message: 'is not a resource of yours' }]]);
      const foreignDelete = await post(bob, '/v1/general/delete-voices', { voice_id: voiceId }, url);
      expect([foreignDelete.status, foreignDelete.body.code, foreignDelete.body.errors]).to.deep.equal([400, 1201, [{ path: '/voice_id', message: 'is not a resource of yours' }]]);
      const foreignElement = await post(bob, '/v1/general/advanced-custom-elements', { element_name: 'n', element_description: 'd', reference_type: 'image_refer', element_image_list: ELEMENT_IMAGES, element_voice_id: voiceId }, url);
      expect([foreignElement.status, foreignElement.body.errors?.[0]?.path]).to.deep.equal([400, '/element_voice_id']);
      expect(await snapshot(bob), 'nothing held, no rows, Kling not called').to.deep.equal(before);

      const video = await post(alice, '/v1/videos/text2video', t2v, url);
      expect(video.status, JSON.stringify(video.body)).to.equal(200);
      expect(lastAccount()).to.equal('a');
      const unrelated = await post(alice, '/v1/videos/text2video', { prompt: 'no voice' }, url);
      expect(unrelated.status).to.equal(200);
      expect(lastAccount(), 'new work on the second relay goes to b').to.equal('b');

      const deleted = await post(alice, '/v1/general/delete-voices', { voice_id: voiceId }, url);
      expect(deleted.status, JSON.stringify(deleted.body)).to.equal(200);
      expect(lastAccount()).to.equal('a');
      expect(h.creates().at(-1)?.body).to.deep.equal({ voice_id: voiceId });
      expect(deleted.body.data).to.include({ task_status: 'succeed' });
      const rows = await h.rows('videos');
      expect(rows.at(-1)).to.include({ type: 'delete-voice', status: 'succeed', channel_id: 'a', task_id: deleted.body.data.task_id });
      const ledger = (await h.ledger()).slice(-2).map((l) => [l.kind, num(l.amount)]);
      expect(ledger).to.deep.equal([['hold', -quota('delete-voice')], ['settle', 0]]);

      // Kling no longer has the voice: a second delete is Kling's refusal, refunded.
      const again = await post(alice, '/v1/general/delete-voices', { voice_id: voiceId }, url);
      expect([again.status, again.body.code]).to.deep.equal([400, 1203]);
      expect(lastAccount()).to.equal('a');
      expect((await h.rows('videos')).at(-1)).to.include({ type: 'delete-voice', status: 'failed' });
    });

    it("a voice taken from a video: the caller's own video goes to the account that made it, another caller's is refused", async () => {
      const made = await post(alice, '/v1/videos/text2video', { model_name: 'kling-v2-6', mode: 'pro', sound: 'on', prompt: 'a sailor sings' });
      expect(made.status, JSON.stringify(made.body)).to.equal(200);
      const done = h.sandbox.complete(made.body.data.task_id as string, { status: 'succeed' });
      const videoId = (done.result?.videos as { id: string }[] | undefined)?.[0]?.id;
      expect((await get(alice, `/v1/videos/text2video/${made.body.data.task_id as string}`)).body.data.task_status).to.equal('succeed');
      const url = await other();

      const before = await snapshot(bob);
      const foreign = await post(bob, '/v1/general/custom-voices', { voice_name: 'Sailor', video_id: videoId }, url);
      expect([foreign.status, foreign.body.errors]).to.deep.equal([400, [{ path: '/video_id', message: 'is not a resource of yours' }]]);
      expect(await snapshot(bob)).to.deep.equal(before);
      const own = await post(alice, '/v1/general/custom-voices', { voice_name: 'Sailor', video_id: videoId }, url);
      expect(own.status, JSON.stringify(own.body)).to.equal(200);
      expect(lastAccount()).to.equal('a');
      expect(h.creates().at(-1)?.body).to.include({ voice_name: 'Sailor', video_id: videoId });
    });

    it('an element: its voice routes the create, its id routes image2video, images/generations and both deletes, and another caller is refused', async () => {
      const { voiceId } = await createVoice(alice);
      const url = await other();
      const body = { element_name: 'Captain', element_description: 'a sea captain', reference_type: 'image_refer', element_image_list: ELEMENT_IMAGES, element_voice_id: voiceId, tag_list: [{ tag_id: 'o_102' }] };

      const created = await post(alice, '/v1/general/advanced-custom-elements', body, url);
      expect(created.status, JSON.stringify(created.body)).to.equal(200);
      expect(lastAccount(), 'the element binds a voice of a: it is made on a').to.equal('a');
      const sent = h.creates().at(-1)?.body as Record<string, unknown>;
      expect(sent).to.deep.include({ element_name: 'Captain', reference_type: 'image_refer', element_image_list: ELEMENT_IMAGES, element_voice_id: voiceId, tag_list: [{ tag_id: 'o_102' }] });
      const taskId = created.body.data.task_id as string;
      expect((await h.rows('videos')).at(-1)).to.include({ type: 'advanced-element', model: 'kling-element', status: 'submitted', task_id: taskId });
      h.sandbox.complete(taskId, { status: 'succeed' });
      const query = await get(alice, `/v1/general/advanced-custom-elements/${taskId}`, url);
      const element = query.body.data.task_result.elements[0] as Record<string, unknown>;
      expect(element).to.include({ element_name: 'Captain', reference_type: 'image_refer', status: 'succeed' });
      expect((element.element_voice_info as { voice_id: string }).voice_id).to.equal(voiceId);
      const elementId = String(element.element_id);
      expect(elementId).to.match(/^[0-9]+$/);

      const before = await snapshot(bob);
      const foreignI2v = await post(bob, '/v1/videos/image2video', { image: IMAGE_URL, prompt: 'p', element_list: [{ element_id: elementId }] }, url);
      expect([foreignI2v.status, foreignI2v.body.errors]).to.deep.equal([400, [{ path: '/element_list/0/element_id', message: 'is not a resource of yours' }]]);
      for (const path of ['/v1/general/delete-advanced-elements', '/v1/general/delete-elements']) {
        const foreignDelete = await post(bob, path, { element_id: elementId }, url);
        expect([foreignDelete.status, foreignDelete.body.errors], path).to.deep.equal([400, [{ path: '/element_id', message: 'is not a resource of yours' }]]);
      }
      expect(await snapshot(bob)).to.deep.equal(before);

      expect((await post(alice, '/v1/videos/image2video', { image: IMAGE_URL, prompt: 'p', element_list: [{ element_id: Number(elementId) }] }, url)).status).to.equal(200);
      expect(lastAccount()).to.equal('a');
      expect((await post(alice, '/v1/images/generations', { model_name: 'kling-v3', prompt: 'p', element_list: [{ element_id: elementId }] }, url)).status).to.equal(200);
      expect(lastAccount()).to.equal('a');
      const deleted = await post(alice, '/v1/general/delete-advanced-elements', { element_id: elementId }, url);
      expect(deleted.status, JSON.stringify(deleted.body)).to.equal(200);
      expect(lastAccount()).to.equal('a');
      expect(h.sandbox.requests.at(-1)?.body).to.deep.equal({ element_id: elementId });
      const queried = await get(alice, `/v1/general/advanced-custom-elements/${taskId}`, url);
      expect(queried.body.data.task_result.elements[0].element_id).to.equal(element.element_id);
      const gone = await post(alice, '/v1/general/delete-elements', { element_id: elementId }, url);
      expect([gone.status, gone.body.code]).to.deep.equal([400, 1203]);
      expect(lastAccount()).to.equal('a');
    });

    it("a video element's cloned voice is the caller's: routed for the owner, refused for another caller", async () => {
      const element = await createElement(alice, { element_name: 'Host', element_description: 'a TV host', reference_type: 'video_refer', element_video_list: { refer_videos: [{ video_url: VIDEO_URL }] } });
      const voiceId = (element.element_voice_info as { voice_id?: unknown } | undefined)?.voice_id;
      expect(voiceId).to.be.a('string');
      const url = await other();
      const foreign = await post(bob, '/v1/general/delete-voices', { voice_id: voiceId }, url);
      expect([foreign.status, foreign.body.errors?.[0]?.path]).to.deep.equal([400, '/voice_id']);
      const own = await post(alice, '/v1/general/delete-voices', { voice_id: voiceId }, url);
      expect(own.status, JSON.stringify(own.body)).to.equal(200);
      expect(lastAccount()).to.equal('a');
    });

    it('the preset lists: a GET forwarded with its query, answered as Kling answers, priced per call; preset ids stay free for every caller', async () => {
      const voices = await get(alice, '/v1/general/presets-voices?pageNum=1&pageSize=2&ignored=1');
      expect(voices.status, JSON.stringify(voices.body)).to.equal(200);
      const call = h.sandbox.requests.at(-1);
      expect([call?.method, call?.path, call?.query]).to.deep.equal(['GET', '/v1/general/presets-voices', { pageNum: '1', pageSize: '2' }]);
      const presets = voices.body.data as { task_result: { voices: { voice_id: string; owned_by: string }[] } }[];
      expect(presets).to.have.length(2);
      expect(presets.flatMap((p) => p.task_result.voices.map((v) => v.owned_by))).to.deep.equal(['kling', 'kling']);
      expect((await h.rows('videos')).at(-1)).to.include({ type: 'preset-voices', status: 'succeed' });
      expect((await h.ledger()).map((l) => [l.kind, num(l.amount)])).to.deep.equal([['hold', 0], ['settle', 0]]);

      const elements = await get(alice, '/v1/general/advanced-presets-elements');
      expect(elements.status).to.equal(200);
      expect(h.sandbox.requests.at(-1)?.query).to.deep.equal({});
      const element = (elements.body.data as { task_result: { elements: { element_id: number; owned_by: string }[] } }[])[0]?.task_result.elements[0];
      expect(element?.owned_by).to.equal('kling');
      expect(await h.balance(alice)).to.equal(START - quota('preset-elements'));

      // Presets belong to no caller: bob names the voice alice's listing showed, and the element.
      const presetVoice = presets[0]?.task_result.voices[0]?.voice_id;
      const t2v = await post(bob, '/v1/videos/text2video', { model_name: 'kling-v2-6', mode: 'pro', sound: 'on', prompt: '<<<voice_1>>> sings', voice_list: [{ voice_id: presetVoice }] });
      expect(t2v.status, JSON.stringify(t2v.body)).to.equal(200);
      const omni = await post(bob, '/v1/images/omni-image', { prompt: 'p', element_list: [{ element_id: element?.element_id }] });
      expect(omni.status, JSON.stringify(omni.body)).to.equal(200);
    });

    it('a bad page is refused with its path and leaves nothing behind; a POST to a preset list is unknown', async () => {
      const before = await snapshot(alice);
      const bad = await get(alice, '/v1/general/advanced-presets-elements?pageSize=501');
      expect([bad.status, bad.body.code, bad.body.errors]).to.deep.equal([400, 1201, [{ path: '/pageSize', message: 'must be an integer from 1 to 500' }]]);
      const posted = await post(alice, '/v1/general/presets-voices', {});
      expect([posted.status, posted.body.code]).to.deep.equal([404, 1202]);
      expect(await snapshot(alice)).to.deep.equal(before);
    });

    it('AI multi-shot: an image task whose result is three sets of views', async () => {
      const res = await post(alice, '/v1/general/ai-multi-shot', { element_frontal_image: IMAGE_URL });
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      expect(h.creates().at(-1)?.body).to.include({ element_frontal_image: IMAGE_URL });
      const taskId = res.body.data.task_id as string;
      expect(await h.rows('videos')).to.deep.equal([]);
      expect((await h.rows('images'))[0]).to.include({ type: 'ai-multi-shot', model: 'kling-ai-multi-shot', task_id: taskId, status: 'submitted' });
      h.sandbox.complete(taskId, { status: 'succeed' });
      const query = await get(alice, `/v1/general/ai-multi-shot/${taskId}`);
      const images = query.body.data.task_result.images as Record<string, unknown>[];
      expect(images.map((i) => i.index)).to.deep.equal([0, 1, 2]);
      for (const image of images) expect(Object.keys(image).sort()).to.deep.equal(['index', 'url_1', 'url_2', 'url_3']);
      expect((await h.rows('images'))[0]).to.include({ status: 'succeed' });
      expect(await h.balance(alice)).to.equal(START - quota('ai-multi-shot'));
    });

    it('images/generations: the default model kling-v3 is sent and recorded; a field the model does not take is refused, nothing left behind', async () => {
      const res = await post(alice, '/v1/images/generations', { prompt: 'a red fox', image: IMAGE_URL });
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      const sent = h.creates().at(-1)?.body as Record<string, unknown>;
      expect(sent).to.include({ model_name: 'kling-v3', resolution: '1k', n: 1 });
      expect(sent).to.not.have.property('image_fidelity');
      expect((await h.rows('images'))[0]).to.include({ type: 'image-generation', model: 'kling-v3' });

      const before = await snapshot(alice);
      const refused = await post(alice, '/v1/images/generations', { prompt: 'a red fox', image: IMAGE_URL, image_reference: 'face' });
      const message = "'image_reference' is only for model_name 'kling-v2-1' or 'kling-v1-5' (an absent model_name is kling-v3)";
      expect([refused.status, refused.body.code, refused.body.errors]).to.deep.equal([400, 1201, [{ path: '/image_reference', message }, { path: '/model_name', message }]]);
      const fidelity = await post(alice, '/v1/images/multi-image2image', { subject_image_list: [{ subject_image: IMAGE_URL }], image_fidelity: 0.5, scene_image: 'not an image' });
      expect([fidelity.status, fidelity.body.errors?.[0]?.path]).to.deep.equal([400, '/scene_image']);
      expect(await snapshot(alice)).to.deep.equal(before);

      const v21 = await post(alice, '/v1/images/generations', { model_name: 'kling-v2-1', prompt: 'a red fox', image: IMAGE_URL, image_reference: 'subject', image_fidelity: 0.4, human_fidelity: 0.6 });
      expect(v21.status, JSON.stringify(v21.body)).to.equal(200);
      expect(h.creates().at(-1)?.body).to.include({ model_name: 'kling-v2-1', image_reference: 'subject', image_fidelity: 0.4, human_fidelity: 0.6 });
    });

    it("the first element API answers the element at once; it is the caller's", async () => {
      const res = await post(alice, '/v1/general/custom-elements', { element_name: 'Cup', element_description: 'a red mug', element_frontal_image: IMAGE_URL, element_refer_list: [{ image_url: JPEG_640x480 }] });
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      const element = res.body.data.task_result.elements[0] as Record<string, unknown>;
      expect(element).to.include({ element_name: 'Cup' });
      expect((await h.rows('videos'))[0]).to.include({ type: 'custom-element', status: 'succeed' });
      expect(await h.balance(alice)).to.equal(START - quota('custom-element'));
      const url = await other();
      const foreign = await post(bob, '/v1/images/omni-image', { prompt: 'p', element_list: [{ element_id: element.element_id }] }, url);
      expect([foreign.status, foreign.body.errors?.[0]?.path]).to.deep.equal([400, '/element_list/0/element_id']);
      expect((await post(alice, '/v1/images/omni-image', { prompt: 'p', element_list: [{ element_id: element.element_id }] }, url)).status).to.equal(200);
      expect(lastAccount()).to.equal('a');
    });
  });
}

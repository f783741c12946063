import { expect } from 'chai';
import request from 'supertest';
import type { PricingRule } from '../../lib/index.js';
import { loadRegistry } from '../../lib/registry/load.js';
import type { RegistryEntry } from '../../lib/registry/types.js';
import { AUDIO_URL, IMAGE_URL, JPEG_640x480, PNG_400x300, VIDEO_URL } from '../fixtures/media.js';
import { testDatabases } from '../support/databases.js';
import { startHarness, checkAndClose, type Harness } from '../support/harness.js';

const QPU = 500_000;
const START = 100_000_000;

/**
 * One minimal valid body per built-in path, and the units the price counts for it, worked out by
 * hand from the registry entry (not by the relay's own quote): seconds for per_second (the body's
 * duration or the entry's default_seconds), images for per_image, 1 for fixed.
 */
interface Case {
  body: Record<string, unknown>;
  units: number;
  /** Makes at Kling what the request names (a voice or element to delete) and returns the body to send. */
  prepare?: (h: Harness) => Promise<Record<string, unknown>>;
}

/** A voice or element made at Kling directly, on the relay's only account, as another tool of the account's owner would. */
async function madeAtKling(h: Harness, path: string, body: object, id: (result: Record<string, unknown>) => unknown): Promise<string> {
  const res = await request(h.sandbox.url).post(path).set('Authorization', `Bearer ${await h.sandbox.token()}`).send(body);
  const task = h.sandbox.complete(String(res.body.data.task_id), { status: 'succeed' });
  return String(id(task.result ?? {}));
}

const madeVoice = (h: Harness) => madeAtKling(h, '/v1/general/custom-voices', { voice_name: 'v', voice_url: AUDIO_URL }, (r) => (r.voices as { voice_id: string }[])[0]?.voice_id);
const madeElement = (h: Harness) =>
  madeAtKling(h, '/v1/general/advanced-custom-elements', { element_name: 'e', element_description: 'd', reference_type: 'image_refer', element_image_list: { frontal_image: IMAGE_URL, refer_images: [{ image_url: IMAGE_URL }] } }, (r) => (r.elements as { element_id: number }[])[0]?.element_id);

const CASES: Record<string, Case> = {
  '/v1/videos/text2video': { body: { prompt: 'a cat surfing', duration: '10' }, units: 10 },
  '/v1/videos/image2video': { body: { image: IMAGE_URL, prompt: 'wave', duration: '5' }, units: 5 },
  '/v1/videos/omni-video': { body: { prompt: 'a lighthouse', aspect_ratio: '16:9', duration: '7' }, units: 7 },
  '/v1/videos/multi-image2video': { body: { image_list: [{ image: IMAGE_URL }, { image: JPEG_640x480 }], prompt: 'two cats', duration: '10' }, units: 10 },
  // No duration in the request: the registry's default_seconds (30).
  '/v1/videos/motion-control': { body: { image_url: IMAGE_URL, video_url: VIDEO_URL, character_orientation: 'video', mode: 'std' }, units: 30 },
  '/v1/videos/video-extend': { body: { video_id: 'video-1' }, units: 5 },
  '/v1/videos/identify-face': { body: { video_url: VIDEO_URL }, units: 1 },
  '/v1/videos/advanced-lip-sync': {
    body: { session_id: 'session-1', face_choose: [{ face_id: '0', sound_file: AUDIO_URL, sound_start_time: 0, sound_end_time: 5000, sound_insert_time: 0 }] },
    units: 60,
  },
  '/v1/videos/lip-sync': { body: { input: { mode: 'text2video', video_id: 'video-1', text: 'Hello there', voice_id: 'oversea_male1' } }, units: 10 },
  '/v1/videos/multi-elements/init-selection': { body: { video_url: VIDEO_URL }, units: 1 },
  '/v1/videos/multi-elements/add-selection': { body: { session_id: 'session-1', frame_index: 0, points: [{ x: 0.5, y: 0.25 }] }, units: 1 },
  '/v1/videos/multi-elements/delete-selection': { body: { session_id: 'session-1', frame_index: 0, points: [{ x: 0.5, y: 0.25 }] }, units: 1 },
  '/v1/videos/multi-elements/clear-selection': { body: { session_id: 'session-1' }, units: 1 },
  '/v1/videos/multi-elements/preview-selection': { body: { session_id: 'session-1' }, units: 1 },
  '/v1/videos/multi-elements': { body: { session_id: 'session-1', edit_mode: 'removal', prompt: 'Delete the dog from <<<video_1>>>', duration: '10' }, units: 10 },
  '/v1/videos/avatar/image2video': { body: { image: IMAGE_URL, audio_id: 'audio-1' }, units: 300 },
  '/v1/videos/effects': { body: { effect_scene: 'bloombloom', input: { image: IMAGE_URL, duration: '5' } }, units: 1 },
  '/v1/videos/image-recognize': { body: { image: PNG_400x300 }, units: 1 },
  '/v1/audio/text-to-audio': { body: { prompt: 'rain on a roof', duration: 7 }, units: 7 },
  '/v1/audio/video-to-audio': { body: { video_url: VIDEO_URL }, units: 1 },
  '/v1/audio/tts': { body: { text: 'Hello from the relay test', voice_id: 'oversea_male1' }, units: 300 },
  // Priced per image by an override rule below: n = 3.
  '/v1/images/generations': { body: { prompt: 'a red fox', n: 3 }, units: 3 },
  // Priced per image by an override rule below: a series of 3 counts series_amount, not n.
  '/v1/images/omni-image': { body: { prompt: 'a lighthouse at dusk', model_name: 'kling-v3-omni', result_type: 'series', series_amount: 3 }, units: 3 },
  '/v1/images/multi-image2image': { body: { prompt: 'p', subject_image_list: [{ subject_image: IMAGE_URL }, { subject_image: PNG_400x300 }], n: 2 }, units: 1 },
  '/v1/images/editing/expand': { body: { image: IMAGE_URL, up_expansion_ratio: 0.5, down_expansion_ratio: 0, left_expansion_ratio: 0, right_expansion_ratio: 0 }, units: 1 },
  '/v1/images/kolors-virtual-try-on': { body: { human_image: IMAGE_URL, cloth_image: JPEG_640x480 }, units: 1 },
  '/v1/general/custom-voices': { body: { voice_name: 'Narrator', voice_url: AUDIO_URL }, units: 1 },
  // A GET: the body is the query string.
  '/v1/general/presets-voices': { body: { pageNum: '1', pageSize: '10' }, units: 1 },
  '/v1/general/delete-voices': { body: {}, units: 1, prepare: async (h) => ({ voice_id: await madeVoice(h) }) },
  '/v1/general/advanced-custom-elements': {
    body: { element_name: 'Captain', element_description: 'a sea captain', reference_type: 'video_refer', element_video_list: { refer_videos: [{ video_url: VIDEO_URL }] } },
    units: 1,
  },
  '/v1/general/advanced-presets-elements': { body: {}, units: 1 },
  '/v1/general/delete-advanced-elements': { body: {}, units: 1, prepare: async (h) => ({ element_id: await madeElement(h) }) },
  '/v1/general/delete-elements': { body: {}, units: 1, prepare: async (h) => ({ element_id: await madeElement(h) }) },
  '/v1/general/custom-elements': { body: { element_name: 'Cup', element_description: 'a red mug', element_frontal_image: IMAGE_URL, element_refer_list: [{ image_url: JPEG_640x480 }] }, units: 1 },
  '/v1/general/ai-multi-shot': { body: { element_frontal_image: PNG_400x300 }, units: 1 },
};

/** Types whose rule overrides the registry's pricing type, so per_image is exercised too. */
const PER_IMAGE = new Set(['image-generation', 'omni-image']);

// The router relays the v1 family; the standard family's entries are validated only (test/schemas/standard-family.test.ts).
const entries = loadRegistry(undefined).entries.filter((entry) => entry.family === 'v1');

/**
 * A distinct price per type (no wildcard on type, no catch-all), so a request matched against
 * another type's rule, or against none, shows up as a wrong quota or a 503.
 */
const prices = new Map(entries.map((entry, index) => [entry.type, Number((0.0003 * (index + 1)).toFixed(4))]));
const RULES: PricingRule[] = [...prices].map(([type, price]) => ({ type, price, ...(PER_IMAGE.has(type) ? { pricing_type: 'per_image' as const } : {}) }));

function expectedHold(entry: RegistryEntry): number {
  const price = prices.get(entry.type);
  const units = CASES[entry.path]?.units;
  if (price === undefined || units === undefined) throw new Error(`no price or case for ${entry.path}`);
  return Math.round(price * units * QPU);
}

const num = (value: unknown): number => Number(value);

describe('the built-in registry has a submit case for every entry', () => {
  it('covers exactly the registry paths, with distinct prices per type', () => {
    expect(Object.keys(CASES).sort()).to.deep.equal(entries.map((e) => e.path).sort());
    expect(new Set(prices.values()).size).to.equal(prices.size);
  });
});

for (const database of testDatabases()) {
  describe(`every built-in endpoint submits on ${database.name}`, function () {
    let h: Harness;
    let user: number;

    beforeEach(async () => {
      h = await startHarness(database, { relay: { pricing: RULES } });
      user = await h.user(START);
    });
    afterEach(async () => checkAndClose(h));

    for (const entry of entries) {
      it(`${entry.path} (${entry.kind}, ${entry.type})`, async () => {
        const testCase = CASES[entry.path];
        if (!testCase) throw new Error(`no body for ${entry.path}`);
        const hold = expectedHold(entry);
        const body = testCase.prepare ? await testCase.prepare(h) : testCase.body;
        const seen = h.sandbox.requests.length;
        const res =
          entry.method === 'GET'
            ? await request(h.url).get(`/kling${entry.path}`).query(body).set('X-User-Id', String(user))
            : await request(h.url).post(`/kling${entry.path}`).set('X-User-Id', String(user)).send(body);
        expect(res.status, JSON.stringify(res.body)).to.equal(200);
        expect(res.body).to.include({ code: 0, message: 'SUCCEED' });

        const calls = h.sandbox.requests.slice(seen);
        expect(calls.map((c) => [c.method, c.path])).to.deep.equal([[entry.method, entry.path]]);
        // What was asked reached Kling: a GET's query string as sent, a POST's fields (with Kling's defaults filled in).
        if (entry.method === 'GET') expect(calls[0]?.query).to.deep.equal(body);
        else expect(Object.keys(calls[0]?.body as object)).to.include.members(Object.keys(body));
        expect(calls[0]?.accessKey).to.equal(h.sandbox.accounts[0]?.accessKey);

        const hostTable = entry.table === 'image' ? 'images' : 'videos';
        const otherTable = entry.table === 'image' ? 'videos' : 'images';
        expect(entry.table).to.equal(entry.path.startsWith('/v1/images/') || entry.path === '/v1/general/ai-multi-shot' ? 'image' : 'video');
        expect(await h.rows(otherTable)).to.deep.equal([]);
        const rows = await h.rows(hostTable);
        expect(rows).to.have.length(1);
        const row = rows[0] ?? {};
        expect(row).to.include({ type: entry.type, provider: 'kling', channel_id: 'acct-1' });
        expect(String(row.user_id)).to.equal(String(user));

        const tasks = await h.tasks();
        expect(tasks).to.have.length(1);
        const task = tasks[0] ?? {};
        expect(task).to.include({ request_type: entry.type, endpoint: entry.path, table_kind: entry.table, account_id: 'acct-1' });
        expect(num(task.hold_quota)).to.equal(hold);
        expect(String(task.host_row_id)).to.equal(String(row.id));
        const ledger = (await h.ledger()).map((l) => [l.kind, num(l.amount)]);

        if (entry.kind === 'task') {
          expect(res.body.data.task_id).to.be.a('string');
          expect(task.state).to.equal('submitted');
          expect(task.kling_task_id).to.equal(res.body.data.task_id);
          expect(row).to.include({ status: 'submitted', task_id: res.body.data.task_id });
          expect(num(row.quota)).to.equal(hold);
          expect(ledger).to.deep.equal([['hold', -hold]]);
          expect(await h.balance(user)).to.equal(START - hold);
          return;
        }

        // A sync answer is the result: the task settles in the same request, charged from the
        // result where it says how much was delivered (tts: its audio's seconds, fractions too), capped at
        // the hold, the rest credited back by the settle row.
        let charge = hold;
        if (entry.path === '/v1/audio/tts') {
          const seconds = Number.parseFloat(String(res.body.data.task_result.audios[0].duration));
          charge = Math.min(hold, Math.round((prices.get(entry.type) ?? 0) * seconds * QPU));
          expect(charge).to.be.lessThan(hold);
        }
        expect(task.state).to.equal('succeed');
        expect(num(task.charge_quota)).to.equal(charge);
        expect(row.status).to.equal('succeed');
        expect(num(row.quota)).to.equal(charge);
        expect(ledger).to.deep.equal([['hold', -hold], ['settle', hold - charge]]);
        expect(await h.balance(user)).to.equal(START - charge);
      });
    }
  });
}

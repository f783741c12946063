import { expect } from 'chai';
import { fileURLToPath } from 'node:url';
import request from 'supertest';
import { loadRegistry } from '../../lib/registry/load.js';
import { testDatabases } from '../support/databases.js';
import { checkAndClose, startHarness, type Harness } from '../support/harness.js';

const EXAMPLE_PRICES = fileURLToPath(new URL('../../examples/pricing.json', import.meta.url));
const START = 100_000_000;
const QPU = 500_000;
const MARGIN = 1.25;

const FRAME = { type: 'first_frame', url: 'https://cdn.example.com/images/cat.png' };
const LAST = { type: 'last_frame', url: 'https://cdn.example.com/images/dog.png' };
const FEATURE = { type: 'feature_video', url: 'https://cdn.example.com/videos/dance.mp4', id: 'video_1' };
const BASE = { type: 'base_video', url: 'https://cdn.example.com/videos/street.mp4', id: 'video_1' };
const PROMPT = (text: string) => ({ type: 'prompt', text });
const VOICE = { type: 'voice', voice_id: 'voice-1', id: 'v1' };
const MOTION = [PROMPT('dance'), { type: 'image', url: 'https://cdn.example.com/images/cat.png' }, { type: 'video', url: 'https://cdn.example.com/videos/dance.mp4' }];

interface Case {
  what: string;
  path: string;
  body: Record<string, unknown>;
  /** Kling's list USD per second for this request (before the example list's margin). */
  usdPerSecond: number;
  seconds: number;
}

/**
 * Every standard path, each condition Kling's price list tells apart: resolution, native audio, a
 * reference video, voice control. Units rules (kling-2.5-turbo) are written as their USD a second.
 */
const CASES: Case[] = [
  { what: '3.0 Turbo 720p (the default)', path: '/text-to-video/kling-3.0-turbo', body: { prompt: 'a kite' }, usdPerSecond: 0.112, seconds: 5 },
  { what: '3.0 Turbo 1080p', path: '/text-to-video/kling-3.0-turbo', body: { prompt: 'a kite', settings: { resolution: '1080p', duration: 10 } }, usdPerSecond: 0.14, seconds: 10 },
  { what: '3.0 Turbo i2v 1080p', path: '/image-to-video/kling-3.0-turbo', body: { contents: [PROMPT('a kite'), FRAME], settings: { resolution: '1080p' } }, usdPerSecond: 0.14, seconds: 5 },
  { what: '3.0 720p silent', path: '/text-to-video/kling-3.0', body: { prompt: 'a kite', settings: { duration: 8 } }, usdPerSecond: 0.084, seconds: 8 },
  { what: '3.0 720p native audio', path: '/text-to-video/kling-3.0', body: { prompt: 'a kite', settings: { audio: 'native', duration: 8 } }, usdPerSecond: 0.126, seconds: 8 },
  { what: '3.0 1080p silent', path: '/text-to-video/kling-3.0', body: { prompt: 'a kite', settings: { resolution: '1080p', audio: 'off' } }, usdPerSecond: 0.112, seconds: 5 },
  { what: '3.0 1080p native audio', path: '/text-to-video/kling-3.0', body: { prompt: 'a kite', settings: { resolution: '1080p', audio: 'native' } }, usdPerSecond: 0.168, seconds: 5 },
  { what: '3.0 4k native audio', path: '/text-to-video/kling-3.0', body: { prompt: 'a kite', settings: { resolution: '4k', audio: 'native' } }, usdPerSecond: 0.42, seconds: 5 },
  { what: '3.0 i2v 720p silent', path: '/image-to-video/kling-3.0', body: { contents: [PROMPT('a kite'), FRAME] }, usdPerSecond: 0.084, seconds: 5 },
  { what: '3.0 i2v 1080p native audio', path: '/image-to-video/kling-3.0', body: { contents: [PROMPT('a kite'), FRAME], settings: { resolution: '1080p', audio: 'native' } }, usdPerSecond: 0.168, seconds: 5 },
  { what: '3.0 i2v 4k silent', path: '/image-to-video/kling-3.0', body: { contents: [PROMPT('a kite'), FRAME], settings: { resolution: '4k', duration: 3 } }, usdPerSecond: 0.42, seconds: 3 },
  { what: '3.0 Omni 720p silent, no video', path: '/omni-video/kling-3.0-omni', body: { contents: [PROMPT('a kite')], settings: { aspect_ratio: '16:9' } }, usdPerSecond: 0.084, seconds: 5 },
  { what: '3.0 Omni 720p native audio', path: '/omni-video/kling-3.0-omni', body: { contents: [PROMPT('a kite')], settings: { aspect_ratio: '16:9', audio: 'native' } }, usdPerSecond: 0.112, seconds: 5 },
  { what: '3.0 Omni 1080p native audio', path: '/omni-video/kling-3.0-omni', body: { contents: [PROMPT('a kite'), FRAME], settings: { resolution: '1080p', audio: 'native' } }, usdPerSecond: 0.14, seconds: 5 },
  { what: '3.0 Omni 720p feature video', path: '/omni-video/kling-3.0-omni', body: { contents: [PROMPT('move like @video_1'), FEATURE], settings: { duration: 8 } }, usdPerSecond: 0.126, seconds: 8 },
  { what: '3.0 Omni 1080p base video, original sound', path: '/omni-video/kling-3.0-omni', body: { contents: [PROMPT('make @video_1 snowy'), BASE], settings: { resolution: '1080p', audio: 'original' } }, usdPerSecond: 0.168, seconds: 5 },
  { what: '3.0 Omni 4k feature video', path: '/omni-video/kling-3.0-omni', body: { contents: [PROMPT('move like @video_1'), FEATURE], settings: { resolution: '4k' } }, usdPerSecond: 0.42, seconds: 5 },
  { what: 'O1 720p, no video', path: '/omni-video/kling-o1', body: { contents: [PROMPT('a kite'), FRAME], settings: { duration: 10 } }, usdPerSecond: 0.084, seconds: 10 },
  { what: 'O1 1080p base video', path: '/omni-video/kling-o1', body: { contents: [PROMPT('make @video_1 snowy'), BASE], settings: { resolution: '1080p', audio: 'original' } }, usdPerSecond: 0.168, seconds: 5 },
  { what: 'O1 720p feature video', path: '/omni-video/kling-o1', body: { contents: [PROMPT('move like @video_1'), FEATURE] }, usdPerSecond: 0.126, seconds: 5 },
  { what: '2.6 720p silent', path: '/text-to-video/kling-2.6', body: { prompt: 'a kite' }, usdPerSecond: 0.042, seconds: 5 },
  { what: '2.6 1080p silent', path: '/text-to-video/kling-2.6', body: { prompt: 'a kite', settings: { resolution: '1080p', duration: 10 } }, usdPerSecond: 0.07, seconds: 10 },
  { what: '2.6 1080p native audio', path: '/text-to-video/kling-2.6', body: { prompt: 'a kite', settings: { resolution: '1080p', audio: 'native' } }, usdPerSecond: 0.14, seconds: 5 },
  { what: '2.6 i2v 720p silent', path: '/image-to-video/kling-2.6', body: { contents: [PROMPT('a kite'), FRAME] }, usdPerSecond: 0.042, seconds: 5 },
  { what: '2.6 i2v 1080p native audio', path: '/image-to-video/kling-2.6', body: { contents: [PROMPT('a kite'), FRAME], settings: { resolution: '1080p', audio: 'native' } }, usdPerSecond: 0.14, seconds: 5 },
  { what: '2.6 i2v 1080p native audio, voice control', path: '/image-to-video/kling-2.6', body: { contents: [PROMPT('@v1 says hello'), FRAME, VOICE], settings: { resolution: '1080p', audio: 'native', duration: 10 } }, usdPerSecond: 0.168, seconds: 10 },
  { what: '2.5 Turbo 720p', path: '/text-to-video/kling-2.5-turbo', body: { prompt: 'a kite' }, usdPerSecond: 0.042, seconds: 5 },
  { what: '2.5 Turbo i2v 1080p, first and last frame', path: '/image-to-video/kling-2.5-turbo', body: { contents: [PROMPT('a kite'), FRAME, LAST], settings: { resolution: '1080p', duration: 10 } }, usdPerSecond: 0.07, seconds: 10 },
  // Motion control has no duration: the registry's 30 s are held.
  { what: 'motion control 3.0 720p', path: '/motion-control/kling-3.0', body: { contents: MOTION, settings: { character_orientation: 'video' } }, usdPerSecond: 0.126, seconds: 30 },
  { what: 'motion control 3.0 1080p', path: '/motion-control/kling-3.0', body: { contents: MOTION, settings: { character_orientation: 'image', resolution: '1080p' } }, usdPerSecond: 0.168, seconds: 30 },
  { what: 'motion control 2.6 720p', path: '/motion-control/kling-2.6', body: { contents: MOTION, settings: { character_orientation: 'video', audio: 'off' } }, usdPerSecond: 0.07, seconds: 30 },
  { what: 'motion control 2.6 1080p', path: '/motion-control/kling-2.6', body: { contents: MOTION, settings: { character_orientation: 'video', resolution: '1080p' } }, usdPerSecond: 0.112, seconds: 30 },
];

describe("examples/pricing.json prices the standard family's requests", () => {
  it('covers every standard path of the built-in registry', () => {
    const standard = loadRegistry(undefined).entries.filter((e) => e.family === 'standard').map((e) => e.path);
    expect([...new Set(CASES.map((c) => c.path))].sort()).to.deep.equal(standard.sort());
  });
});

for (const database of testDatabases()) {
  describe(`the standard family priced by examples/pricing.json, through the relay on ${database.name}`, function () {
    let h: Harness;
    before(async () => {
      h = await startHarness(database, { accounts: [{ id: 'keyed', apiKey: true }], relay: { pricing: EXAMPLE_PRICES } });
    });
    after(async () => checkAndClose(h));

    for (const c of CASES) {
      const hold = Math.round(Number((c.usdPerSecond * MARGIN * c.seconds * QPU).toPrecision(12)));
      it(`${c.what}: holds ${c.seconds} s x $${c.usdPerSecond} x ${MARGIN} = ${hold}`, async () => {
        const user = await h.user(START);
        const res = await request(h.url).post(`/kling${c.path}`).set('X-User-Id', String(user)).send(c.body);
        expect(res.status, JSON.stringify(res.body)).to.equal(200);
        expect(START - (await h.balance(user))).to.equal(hold);
        const [row] = (await h.rows('videos')).filter((r) => r.task_id === res.body.data.id);
        expect(Number(row?.quota), 'host row quota').to.equal(hold);
      });
    }
  });
}

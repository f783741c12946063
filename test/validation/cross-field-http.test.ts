import { expect } from 'chai';
import request from 'supertest';
import { testDatabases } from '../support/databases.js';
import { startHarness, checkAndClose, type Harness } from '../support/harness.js';
import { IMAGE_URL } from '../fixtures/media.js';

for (const database of testDatabases()) {
  describe(`cross-field errors over HTTP on ${database.name}`, () => {
    let h: Harness;
    afterEach(async () => checkAndClose(h));

    it('answers 400/1201 with an error at each field a rule spans, and records nothing', async () => {
      h = await startHarness(database);
      const user = await h.user(1_000_000);
      const post = (path: string, body: object) => request(h.url).post(`/kling${path}`).set('X-User-Id', String(user)).send(body);

      const together = await post('/v1/videos/image2video', { image: IMAGE_URL, prompt: 'x', static_mask: IMAGE_URL, camera_control: { type: 'forward_up' } });
      expect([together.status, together.body.code]).to.deep.equal([400, 1201]);
      const message = "'static_mask' and 'camera_control' cannot be used together";
      expect(together.body.errors).to.deep.equal([
        { path: '/camera_control', message },
        { path: '/static_mask', message },
      ]);

      const neither = await post('/v1/videos/avatar/image2video', { image: IMAGE_URL });
      expect([neither.status, neither.body.code]).to.deep.equal([400, 1201]);
      expect(neither.body.errors.map((e: { path: string }) => e.path)).to.deep.equal(['/audio_id', '/sound_file']);

      expect(await h.rows('videos')).to.deep.equal([]);
      expect(await h.tasks()).to.deep.equal([]);
      expect(await h.ledger()).to.deep.equal([]);
      expect(await h.balance(user)).to.equal(1_000_000);
      expect(h.creates()).to.deep.equal([]);
    });
  });
}

import { expect } from 'chai';
import request from 'supertest';
import type { PricingRule } from '../../lib/index.js';
import { testDatabases } from '../support/databases.js';
import { TEST_PRICING, startHarness, checkAndClose, type Harness } from '../support/harness.js';

const QPU = 500_000;
const START = 1_000_000;
const RULES: PricingRule[] = [...TEST_PRICING, { model: 'kling-v1-6', type: 'multi-elements-video', mode: '*', duration: '*', pricing_type: 'per_second', price: 0.02, currency: 'USD' }];

for (const database of testDatabases()) {
  describe(`multi-elements without model_name on ${database.name}`, function () {
    let h: Harness;
    let user: number;

    beforeEach(async () => {
      h = await startHarness(database, { relay: { pricing: RULES } });
      user = await h.user(START);
    });
    afterEach(async () => checkAndClose(h));

    it('sends Kling no model_name, and records and prices the task as kling-v1-6', async () => {
      const body = { session_id: 'session-1', edit_mode: 'removal', prompt: 'Delete the dog from <<<video_1>>>', duration: '10' };
      const res = await request(h.url).post('/kling/v1/videos/multi-elements').set('X-User-Id', String(user)).send(body);
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      expect(h.creates()[0]?.body).to.not.have.property('model_name');
      const hold = Math.round(0.02 * 10 * QPU);
      expect(await h.balance(user)).to.equal(START - hold);
      const [task] = await h.tasks();
      expect(task?.model).to.equal('kling-v1-6');
    });
  });
}

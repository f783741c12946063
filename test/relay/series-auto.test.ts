import { expect } from 'chai';
import request from 'supertest';
import type { PricingRule } from '../../lib/index.js';
import { testDatabases } from '../support/databases.js';
import { TEST_PRICING, startHarness, checkAndClose, type Harness } from '../support/harness.js';

const QPU = 500_000;
const START = 1_000_000;
const PER_IMAGE: PricingRule[] = [...TEST_PRICING, { model: '*', type: 'omni-image', mode: '*', duration: '*', pricing_type: 'per_image', price: 0.01, currency: 'USD' }];

for (const database of testDatabases()) {
  describe(`omni-image series_amount auto on ${database.name}`, function () {
    let h: Harness;
    let user: number;

    beforeEach(async () => {
      h = await startHarness(database, { relay: { pricing: PER_IMAGE } });
      user = await h.user(START);
    });
    afterEach(async () => checkAndClose(h));

    it('holds 9 images, forwards auto to Kling, and charges the images the series delivered', async () => {
      const body = { prompt: 'a lighthouse, four seasons', model_name: 'kling-v3-omni', result_type: 'series', series_amount: 'auto' };
      const res = await request(h.url).post('/kling/v1/images/omni-image').set('X-User-Id', String(user)).send(body);
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      const hold = Math.round(0.01 * 9 * QPU);
      expect(await h.balance(user)).to.equal(START - hold);
      expect((h.creates()[0]?.body as Record<string, unknown>).series_amount).to.equal('auto');

      const taskId = res.body.data.task_id as string;
      h.sandbox.complete(taskId, { status: 'succeed' });
      const done = await request(h.url).get(`/kling/v1/images/omni-image/${taskId}`).set('X-User-Id', String(user));
      expect(done.body.data.task_status).to.equal('succeed');
      const delivered = (done.body.data.task_result.series_images as unknown[]).length;
      expect(delivered).to.be.within(2, 8);
      const charge = Math.round(0.01 * delivered * QPU);
      expect(await h.balance(user)).to.equal(START - charge);
      expect((await h.ledger()).map((l) => [l.kind, Number(l.amount)])).to.deep.equal([['hold', -hold], ['settle', hold - charge]]);
    });
  });
}

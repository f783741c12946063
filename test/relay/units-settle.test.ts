import { expect } from 'chai';
import request from 'supertest';
import type { PricingRule } from '../../lib/index.js';
import type { SandboxDeductions } from '../../lib/sandbox/index.js';
import { testDatabases } from '../support/databases.js';
import { checkAndClose, startHarness, type Harness } from '../support/harness.js';

const START = 10_000_000;
// 0.175 USD per Kling unit, kling-v2-5-turbo pro at 0.5 units a second; Kling lists a unit at 0.14 USD.
const UNITS: PricingRule[] = [{ type: 'text2video', model: 'kling-v2-5-turbo', mode: 'pro', pricing_type: 'units', kling_units: 0.5, unit_list_price: 0.14, price: 0.175 }];
const BODY = { prompt: 'a kite over the sea', model_name: 'kling-v2-5-turbo', mode: 'pro', duration: '10' };
// 10 s x 0.5 units x 0.175 USD x 500000.
const HOLD = 437_500;

for (const database of testDatabases()) {
  describe(`units pricing settles on what Kling reports it deducted, on ${database.name}`, function () {
    let h: Harness;
    before(async () => {
      h = await startHarness(database, { relay: { pricing: UNITS } });
    });
    after(async () => checkAndClose(h));

    /** Submits, ends the task with 7.2 s of video and these deductions, and answers the user's charge. */
    async function chargeWhenKlingReports(deductions: SandboxDeductions | null): Promise<number> {
      const user = await h.user(START);
      const res = await request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send(BODY);
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      expect(START - (await h.balance(user))).to.equal(HOLD);
      const taskId = res.body.data.task_id as string;
      h.sandbox.complete(taskId, { status: 'succeed', duration: '7.2', deductions });
      const done = await request(h.url).get(`/kling/v1/videos/text2video/${taskId}`).set('X-User-Id', String(user));
      expect(done.body.data.task_status).to.equal('succeed');
      const charge = START - (await h.balance(user));
      const [row] = (await h.rows('videos')).filter((r) => r.task_id === taskId);
      expect(Number(row?.quota), 'host row quota').to.equal(charge);
      return charge;
    }

    it('charges the units Kling took from a resource pack, not the seconds delivered', async () => {
      // 4 units x 0.175 USD; the 7.2 s delivered would have been 3.6 units.
      expect(await chargeWhenKlingReports({ unit: '4', balance: { quota: '0', list_price: '0' } })).to.equal(350_000);
    });

    it("charges a balance deduction as its list price over Kling's price per unit", async () => {
      // 0.42 USD at 0.14 USD a unit: 3 units x 0.175 USD.
      expect(await chargeWhenKlingReports({ unit: '0', balance: { quota: '0.35', list_price: '0.42' } })).to.equal(262_500);
    });

    it('never charges more than the hold, whatever Kling reports', async () => {
      expect(await chargeWhenKlingReports({ unit: '9', balance: { quota: '0', list_price: '0' } })).to.equal(HOLD);
    });

    it('charges the estimate for the 7.2 s delivered when Kling reports no deduction', async () => {
      expect(await chargeWhenKlingReports(null)).to.equal(315_000);
    });
  });
}

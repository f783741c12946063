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

// Kling 2.5 Turbo at 1080p on the standard family: 0.5 units a second, 0.175 USD a unit.
const STANDARD_UNITS: PricingRule[] = [{ type: 'text-to-video', model: 'kling-2.5-turbo', mode: '1080p', pricing_type: 'units', kling_units: 0.5, unit_list_price: 0.14, price: 0.175 }];
const STANDARD_PATH = '/text-to-video/kling-2.5-turbo';
const STANDARD_BODY = { prompt: 'a kite over the sea', settings: { resolution: '1080p', duration: 10 } };

for (const database of testDatabases()) {
  describe(`units pricing settles on the billing[] Kling reports for a standard-family task, on ${database.name}`, function () {
    let h: Harness;
    before(async () => {
      h = await startHarness(database, { accounts: [{ id: 'keyed', apiKey: true }], relay: { pricing: STANDARD_UNITS } });
    });
    after(async () => checkAndClose(h));

    /**
     * Submits, ends the task with 7.2 s of video and these deductions (which the sandbox reports as
     * billing[]), and answers the user's charge and the billing[] the caller's query shows.
     */
    async function settle(deductions: SandboxDeductions | null): Promise<{ charge: number; billing: unknown }> {
      const user = await h.user(START);
      const res = await request(h.url).post(`/kling${STANDARD_PATH}`).set('X-User-Id', String(user)).send(STANDARD_BODY);
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      expect(START - (await h.balance(user))).to.equal(HOLD);
      const id = res.body.data.id as string;
      h.sandbox.complete(id, { status: 'succeed', duration: '7.2', deductions });
      const done = await request(h.url).get(`/kling/tasks?task_ids=${id}`).set('X-User-Id', String(user));
      expect(done.status, JSON.stringify(done.body)).to.equal(200);
      const [task] = done.body.data as Record<string, unknown>[];
      expect(task?.status).to.equal('succeeded');
      const charge = START - (await h.balance(user));
      const [row] = (await h.rows('videos')).filter((r) => r.task_id === id);
      expect(Number(row?.quota), 'host row quota').to.equal(charge);
      const [stored] = (await h.tasks()).filter((t) => t.kling_task_id === id);
      const ledger = (await h.ledger()).filter((l) => Number(l.task_id) === Number(stored?.id)).map((l) => [l.kind, Number(l.amount)]);
      expect(ledger).to.deep.equal([['hold', -HOLD], ['settle', HOLD - charge]]);
      return { charge, billing: task?.billing };
    }

    it('charges the units of a unit entry, and shows the entry to the caller', async () => {
      const { charge, billing } = await settle({ unit: '4', balance: { quota: '0', list_price: '0' } });
      expect(charge).to.equal(350_000);
      expect(billing).to.deep.equal([{ charge_type: 'unit', amount: '4', package_type: 'video' }]);
    });

    it("charges a cash entry as its list price over Kling's price per unit, and shows its currency and cash type", async () => {
      const { charge, billing } = await settle({ unit: '0', balance: { quota: '0.35', list_price: '0.42' } });
      // 0.42 USD at 0.14 USD a unit: 3 units x 0.175 USD.
      expect(charge).to.equal(262_500);
      expect(billing).to.deep.equal([{ charge_type: 'cash', cash_type: 'balance', amount: '0.35', currency: 'USD', list_price: '0.42' }]);
    });

    it('adds a unit entry and a cash entry of one task', async () => {
      // 2 units from a pack and 0.14 USD (1 unit) from the balance: 3 units x 0.175 USD.
      const { charge, billing } = await settle({ unit: '2', balance: { quota: '0.12', list_price: '0.14' } });
      expect(charge).to.equal(262_500);
      expect(billing).to.deep.equal([
        { charge_type: 'unit', amount: '2', package_type: 'video' },
        { charge_type: 'cash', cash_type: 'balance', amount: '0.12', currency: 'USD', list_price: '0.14' },
      ]);
    });

    it('does not read a list price in another currency as USD: the estimate stands', async () => {
      const { charge, billing } = await settle({ unit: '0', balance: { quota: '2.5', list_price: '3', currency: 'CNY' } });
      // 3 CNY is not 3 USD (21 units): the 7.2 s delivered, 3.6 units x 0.175 USD.
      expect(charge).to.equal(315_000);
      expect(billing).to.deep.equal([{ charge_type: 'cash', cash_type: 'balance', amount: '2.5', currency: 'CNY', list_price: '3' }]);
    });

    it('never charges more than the hold, and charges the estimate when Kling reports no billing', async () => {
      expect((await settle({ unit: '9', balance: { quota: '0', list_price: '0' } })).charge).to.equal(HOLD);
      const none = await settle(null);
      expect(none.charge).to.equal(315_000);
      expect(none.billing).to.deep.equal([]);
    });
  });
}

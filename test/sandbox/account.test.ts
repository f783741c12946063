import { expect } from 'chai';
import { type KlingSandbox, startKlingSandbox } from '../../lib/sandbox/index.js';
import { SANDBOX_BALANCE_USD, SANDBOX_PACK_UNITS } from '../../lib/sandbox/account.js';
import { call } from './helpers.js';

const DAY = 86_400_000;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Creates a task and ends it now with this outcome; resolves to Kling's task id. */
async function finished(sandbox: KlingSandbox, path: string, body: Record<string, unknown>, outcome: Parameters<KlingSandbox['complete']>[1]): Promise<string> {
  const created = await call(sandbox, 'POST', path, { body });
  const taskId = created.json.data.task_id as string;
  sandbox.complete(taskId, outcome);
  return taskId;
}

function range(): { start_time: number; end_time: number } {
  return { start_time: Date.now() - DAY, end_time: Date.now() + DAY };
}

describe('kling sandbox: account and billing endpoints', () => {
  let sandbox: KlingSandbox;
  beforeEach(async () => {
    sandbox = await startKlingSandbox({ schedule: 'manual' });
  });
  afterEach(() => sandbox.close());

  it('GET /account/costs lists the packs, their remaining units falling as tasks deduct them', async () => {
    const q = `start_time=${Date.now() - DAY}&end_time=${Date.now() + DAY}`;
    const before = await call(sandbox, 'GET', `/account/costs?${q}`);
    expect(before.status).to.equal(200);
    expect(before.json.code).to.equal(0);
    expect(before.json.data).to.include({ code: 0, msg: 'success' });
    const packs = before.json.data.resource_pack_subscribe_infos as Record<string, unknown>[];
    const video = packs.find((p) => String(p.resource_pack_name).includes('video'));
    expect(video).to.include({ total_quantity: SANDBOX_PACK_UNITS.video, remaining_quantity: SANDBOX_PACK_UNITS.video, status: 'online', resource_pack_type: 'decreasing_total' });

    await finished(sandbox, '/v1/videos/text2video', { prompt: 'a', duration: '10' }, { status: 'succeed' });
    await finished(sandbox, '/v1/videos/text2video', { prompt: 'b' }, { status: 'failed', message: 'moderation' });
    await finished(sandbox, '/v1/images/generations', { prompt: 'c', n: 3 }, { status: 'succeed' });
    await sleep(1_000);
    const after = await call(sandbox, 'GET', `/account/costs?${q}`);
    const left = Object.fromEntries((after.json.data.resource_pack_subscribe_infos as Record<string, unknown>[]).map((p) => [String(p.resource_pack_name), p.remaining_quantity]));
    expect(left).to.deep.equal({
      'Sandbox video pack': SANDBOX_PACK_UNITS.video - 2,
      'Sandbox image pack': SANDBOX_PACK_UNITS.image - 3,
      'Sandbox try-on pack': SANDBOX_PACK_UNITS['try-on'],
    });
  });

  it('GET /account/costs refuses a second request within a second with 429/1302, and a missing time with 1201', async () => {
    const q = `start_time=${Date.now() - DAY}&end_time=${Date.now() + DAY}`;
    expect((await call(sandbox, 'GET', `/account/costs?${q}`)).status).to.equal(200);
    const fast = await call(sandbox, 'GET', `/account/costs?${q}`);
    expect([fast.status, fast.json.code]).to.deep.equal([429, 1302]);
    await sleep(1_000);
    const missing = await call(sandbox, 'GET', '/account/costs?start_time=1');
    expect([missing.status, missing.json.code]).to.deep.equal([400, 1201]);
    const unsigned = await call(sandbox, 'GET', `/account/costs?${q}`, { authorization: null });
    expect([unsigned.status, unsigned.json.code]).to.deep.equal([401, 1001]);
  });

  it("POST /account/billing/package lists each task's final_unit_deduction, paged with a cursor", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await finished(sandbox, '/v1/videos/text2video', { prompt: `p${i}`, mode: 'pro' }, { status: 'succeed' }));
    const failed = await finished(sandbox, '/v1/videos/text2video', { prompt: 'x' }, { status: 'failed', message: 'no' });
    const odd = await finished(sandbox, '/v1/videos/text2video', { prompt: 'y' }, { status: 'succeed', deductions: { unit: '2.5', balance: { quota: '0', list_price: '0' } } });

    const seen: Record<string, unknown>[] = [];
    let page = await call(sandbox, 'POST', '/account/billing/package', { body: { ...range(), limit: 2 } });
    for (;;) {
      expect(page.json.code, page.text).to.equal(0);
      seen.push(...(page.json.data.result.detail as Record<string, unknown>[]));
      expect(page.json.data.result.count).to.equal(page.json.data.result.detail.length);
      if (!page.json.data.has_more) break;
      page = await call(sandbox, 'POST', '/account/billing/package', { body: { cursor: page.json.data.next_cursor } });
    }
    expect(seen.map((row) => row.task_id)).to.deep.equal([...ids, odd]);
    expect(seen.map((row) => row.task_id)).to.not.include(failed);
    expect(seen[0]).to.include({ product_type: 'video', resolution: '1080p', deduction_amount: 1, unit_before_deduction: SANDBOX_PACK_UNITS.video, unit_after_deduction: SANDBOX_PACK_UNITS.video - 1 });
    expect(seen[5]).to.include({ deduction_amount: 2.5, unit_after_deduction: SANDBOX_PACK_UNITS.video - 7.5 });
    expect(sandbox.tasks.getTask(odd)?.finalUnitDeduction).to.equal('2.5');

    const images = await call(sandbox, 'POST', '/account/billing/package', { body: { ...range(), filters: [{ key: 'product_type', values: ['image'] }] } });
    expect(images.json.data.result.detail).to.deep.equal([]);
    // A synchronous call that names a task is billed under it, as its answer says.
    const recognized = await call(sandbox, 'POST', '/v1/videos/image-recognize', { body: { image: 'https://cdn.example.com/a.png' } });
    const sync = await call(sandbox, 'POST', '/account/billing/package', { body: range() });
    expect(sync.json.data.result.detail.at(-1)).to.include({ task_id: recognized.json.data.task_id, deduction_amount: Number(recognized.json.data.final_unit_deduction) });
    const past = await call(sandbox, 'POST', '/account/billing/package', { body: { start_time: Date.now() - 2 * DAY, end_time: Date.now() - DAY } });
    expect(past.json.data).to.deep.equal({ result: { detail: [], count: 0 }, next_cursor: '', has_more: false });
  });

  it('POST /account/billing/balance lists final_balance_deduction amounts with the balance before and after', async () => {
    const paid = await finished(sandbox, '/v1/videos/text2video', { prompt: 'a' }, { status: 'succeed', deductions: { unit: '0', balance: { quota: '0.35', list_price: '0.7' } } });
    await finished(sandbox, '/v1/videos/text2video', { prompt: 'b' }, { status: 'succeed' });
    const answer = await call(sandbox, 'POST', '/account/billing/balance', { body: range() });
    expect(answer.json.data.result.detail).to.have.length(1);
    expect(answer.json.data.result.detail[0]).to.include({
      task_id: paid,
      deduction_amount: 0.35,
      list_price: 0.7,
      balance_before_deduction: SANDBOX_BALANCE_USD,
      balance_after_deduction: SANDBOX_BALANCE_USD - 0.35,
      currency: 'USD',
      cash_type: 'balance',
    });
  });

  it('refuses bad billing requests with Kling codes', async () => {
    const cases: [unknown, number][] = [
      [{}, 1201],
      [{ start_time: 10, end_time: 5 }, 1201],
      [{ ...range(), limit: 501 }, 1201],
      [{ ...range(), filters: [{ key: 'package_name', values: ['a'] }, { key: 'package_id', values: ['b'] }] }, 1201],
      [{ cursor: 'not-a-cursor' }, 1201],
      [[1], 1200],
    ];
    for (const [body, code] of cases) {
      const answer = await call(sandbox, 'POST', '/account/billing/package', { body });
      expect([answer.status, answer.json.code], JSON.stringify(body)).to.deep.equal([400, code]);
    }
    const balanceFilter = await call(sandbox, 'POST', '/account/billing/balance', { body: { ...range(), filters: [{ key: 'product_type', values: ['video'] }] } });
    expect(balanceFilter.json.code).to.equal(1201);
    const wrongMethod = await call(sandbox, 'GET', '/account/billing/package');
    expect([wrongMethod.status, wrongMethod.json.code]).to.deep.equal([404, 1202]);
  });
});

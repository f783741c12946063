import { expect } from 'chai';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KlingRelayConfigError } from '../../lib/errors.js';
import { PriceBook, actualCharge, loadPricingRules, quote, type PricingRule } from '../../lib/pricing/index.js';
import { loadRegistry } from '../../lib/registry/load.js';

const registry = loadRegistry(undefined);
const QPU = 500_000;

function priced(path: string, body: Record<string, unknown>, rules: PricingRule[]) {
  const entry = registry.byPath.get(path);
  if (!entry) throw new Error(path);
  const r = quote(entry, body, new PriceBook(rules), QPU);
  if (!r.ok) throw new Error(r.reason);
  return r.quote;
}

const VIDEO: PricingRule[] = [
  { type: 'text2video', model: 'kling-v3', mode: 'pro', sound: 'off', pricing_type: 'per_second', price: 0.112 },
  { type: 'text2video', model: 'kling-v3', mode: 'pro', sound: 'on', pricing_type: 'per_second', price: 0.168 },
  { type: 'text2video', model: 'kling-v2-6', mode: 'pro', sound: 'on', pricing_type: 'per_second', price: 0.14 },
  { type: 'text2video', model: 'kling-v2-6', mode: 'pro', sound: 'on', voice: 'on', pricing_type: 'per_second', price: 0.168 },
  { type: 'omni-video', model: 'kling-v3-omni', mode: 'std', video_input: 'off', pricing_type: 'per_second', price: 0.084 },
  { type: 'omni-video', model: 'kling-v3-omni', mode: 'std', video_input: 'on', pricing_type: 'per_second', price: 0.126 },
  { type: 'image-generation', model: 'kling-v2-1', image_input: 'off', pricing_type: 'per_image', price: 0.014 },
  { type: 'image-generation', model: 'kling-v2-1', image_input: 'on', pricing_type: 'per_image', price: 0.028 },
  { type: 'omni-image', model: 'kling-v3-omni', pricing_type: 'per_image', price: 0.028 },
  { type: 'omni-image', model: 'kling-v3-omni', resolution: '4k', pricing_type: 'per_image', price: 0.056 },
];

describe("pricing by Kling's price list", () => {
  it('matches sound, voice control, a reference video or image and the resolution, read through the registry', () => {
    const t2v = (body: Record<string, unknown>) => priced('/v1/videos/text2video', { prompt: 'x', duration: '5', ...body }, VIDEO).unitPrice;
    expect(t2v({ model_name: 'kling-v3', mode: 'pro' })).to.equal(0.112);
    expect(t2v({ model_name: 'kling-v3', mode: 'pro', sound: 'off' })).to.equal(0.112);
    expect(t2v({ model_name: 'kling-v3', mode: 'pro', sound: 'on' })).to.equal(0.168);
    expect(t2v({ model_name: 'kling-v2-6', mode: 'pro', sound: 'on' })).to.equal(0.14);
    expect(t2v({ model_name: 'kling-v2-6', mode: 'pro', sound: 'on', voice_list: [{ voice_id: 'v1' }] })).to.equal(0.168);
    expect(t2v({ model_name: 'kling-v2-6', mode: 'pro', sound: 'on', voice_list: [] })).to.equal(0.14);
    const omni = (body: Record<string, unknown>) => priced('/v1/videos/omni-video', { prompt: 'x', model_name: 'kling-v3-omni', mode: 'std', duration: '8', ...body }, VIDEO);
    expect(omni({}).unitPrice).to.equal(0.084);
    expect(omni({ video_list: [{ video_url: 'https://x.test/a.mp4', refer_type: 'feature' }] })).to.include({ unitPrice: 0.126, units: 8 });
    const image = (body: Record<string, unknown>) => priced('/v1/images/generations', { prompt: 'x', model_name: 'kling-v2-1', n: 2, ...body }, VIDEO);
    expect(image({})).to.include({ unitPrice: 0.014, units: 2 });
    expect(image({ image: 'https://x.test/a.png' })).to.include({ unitPrice: 0.028, units: 2 });
    const omniImage = (resolution: string) => priced('/v1/images/omni-image', { prompt: 'x', model_name: 'kling-v3-omni', n: 4, resolution }, VIDEO);
    expect(omniImage('2k').unitPrice).to.equal(0.028);
    expect(omniImage('4k')).to.include({ unitPrice: 0.056, units: 4, quota: 112_000 });
  });

  it('reads a switch as the values that mean on at a path, items of a list included', () => {
    const custom = { ...registry.byPath.get('/v1/videos/text2video')!, type: 'custom', fields: { sound: { path: 'settings.audio', on: ['native', true] }, video_input: { path: 'refs[].kind', on: ['video'] } } };
    const rules: PricingRule[] = [
      { type: 'custom', sound: 'off', video_input: 'off', pricing_type: 'fixed', price: 1 },
      { type: 'custom', sound: 'on', video_input: 'off', pricing_type: 'fixed', price: 2 },
      { type: 'custom', video_input: 'on', pricing_type: 'fixed', price: 3 },
    ];
    const price = (body: Record<string, unknown>) => {
      const r = quote(custom, body, new PriceBook(rules), QPU);
      if (!r.ok) throw new Error(r.reason);
      return r.quote.unitPrice;
    };
    expect(price({})).to.equal(1);
    expect(price({ settings: { audio: 'off' } })).to.equal(1);
    expect(price({ settings: { audio: 'original' } })).to.equal(1);
    expect(price({ settings: { audio: 'native' } })).to.equal(2);
    expect(price({ settings: { audio: true } })).to.equal(2);
    expect(price({ refs: [{ kind: 'image' }] })).to.equal(1);
    expect(price({ refs: [{ kind: 'image' }, { kind: 'video' }] })).to.equal(3);
    expect(price({ refs: { kind: 'video' } })).to.equal(1);
  });

  it('prices per block of seconds, a started block counting whole, at the hold and at the settle', () => {
    const rules: PricingRule[] = [{ type: 'advanced-lip-sync', pricing_type: 'per_block', block_seconds: 5, price: 0.07 }];
    const lipSync = priced('/v1/videos/advanced-lip-sync', { session_id: 's', face_choose: [{ face_id: '0', sound_file: 'https://x.test/a.mp3', sound_start_time: 0, sound_end_time: 12000, sound_insert_time: 0 }] }, rules);
    // Held for the registry's 60 s: 12 blocks.
    expect(lipSync).to.include({ pricingType: 'per_block', units: 12, quota: Math.round(12 * 0.07 * QPU) });
    expect(actualCharge(lipSync.quota, lipSync.terms, { videos: [{ duration: '12' }] }, QPU)).to.deep.equal({ charge: 105_000, units: 3 });
    expect(actualCharge(lipSync.quota, lipSync.terms, { videos: [{ duration: '15.0' }] }, QPU).units).to.equal(3);
    expect(actualCharge(lipSync.quota, lipSync.terms, { videos: [{ duration: '15.1' }] }, QPU).units).to.equal(4);
  });

  it('rounds motion-control seconds to the nearest whole second when the rule says so', () => {
    const rules: PricingRule[] = [{ type: 'motion-control', model: 'kling-v2-6', mode: 'std', pricing_type: 'per_second', rounding: 'nearest', price: 0.07 }];
    const motion = priced('/v1/videos/motion-control', { model_name: 'kling-v2-6', mode: 'std' }, rules);
    expect(motion).to.include({ units: 30, quota: Math.round(30 * 0.07 * QPU) });
    expect(actualCharge(motion.quota, motion.terms, { videos: [{ duration: '9.6' }] }, QPU)).to.deep.equal({ charge: 350_000, units: 10 });
    expect(actualCharge(motion.quota, motion.terms, { videos: [{ duration: '9.4' }] }, QPU)).to.deep.equal({ charge: 315_000, units: 9 });
  });

  it('multiplies every price by the list margin, from an object or a file; a bare array keeps its prices', () => {
    const rules: PricingRule[] = [{ type: 'tts', pricing_type: 'fixed', price: 0.007 }];
    expect(loadPricingRules(rules)).to.deep.equal(rules);
    const [withMargin] = loadPricingRules({ margin: 1.5, rules });
    expect(withMargin?.price).to.be.closeTo(0.0105, 1e-12);
    const dir = mkdtempSync(join(tmpdir(), 'kling-price-list-'));
    const file = join(dir, 'list.json');
    writeFileSync(file, JSON.stringify({ margin: 2, rules }));
    expect(loadPricingRules(file)[0]?.price).to.equal(0.014);
  });

  it('refuses a list whose margin, block or units are missing or wrong, naming the place', () => {
    const bad = (value: unknown) => () => loadPricingRules(value);
    expect(bad({ margin: 0, rules: [] })).to.throw(KlingRelayConfigError, /options\.pricing at \/margin/).with.property('code', 'ERR_KLING_RELAY_PRICING_INVALID');
    expect(bad({ margin: 1.2 })).to.throw(KlingRelayConfigError, /must have required property 'rules'/);
    expect(bad([{ type: 'advanced-lip-sync', pricing_type: 'per_block', price: 0.07 }])).to.throw(KlingRelayConfigError, /at \/0: must have required property 'block_seconds'/);
    expect(bad([{ type: 'text2video', pricing_type: 'units', price: 0.14 }])).to.throw(KlingRelayConfigError, /at \/0: must have required property 'kling_units'/);
    expect(bad([{ type: 'text2video', sound: 'yes', price: 0.14 }])).to.throw(KlingRelayConfigError, /at \/0\/sound/);
    expect(bad({ margin: 1.2, rules: [{ type: 'tts', price: 1, cost: 2 }] })).to.throw(KlingRelayConfigError, /at \/rules\/0: unknown field 'cost'/);
  });
});

describe('the units pricing type', () => {
  // 0.168 USD per Kling unit; kling-v3 pro with sound costs 1.2 units a second on Kling's list.
  const UNITS: PricingRule[] = [{ type: 'text2video', model: 'kling-v3', pricing_type: 'units', kling_units: 1.2, unit_list_price: 0.14, price: 0.168 }];
  const t2v = () => priced('/v1/videos/text2video', { prompt: 'x', model_name: 'kling-v3', mode: 'pro', sound: 'on', duration: '5' }, UNITS);

  it("holds the Kling units the price list gives for the request, at the price per unit", () => {
    const q = t2v();
    expect(q).to.include({ pricingType: 'units', units: 6, quota: Math.round(6 * 0.168 * QPU) });
    expect(q.terms).to.deep.equal({ type: 'units', unit: 0.168, klingUnits: 1.2, per: 'per_second', listPrice: 0.14 });
  });

  it('settles on the units Kling reports it deducted, capped at the hold', () => {
    const q = t2v();
    const video = { videos: [{ duration: '5.1' }] };
    expect(actualCharge(q.quota, q.terms, video, QPU, { final_unit_deduction: '4.8', final_balance_deduction: { quota: '0', list_price: '0' } })).to.deep.equal({ charge: 403_200, units: 4.8 });
    expect(actualCharge(q.quota, q.terms, video, QPU, { final_unit_deduction: '9' }).charge).to.equal(q.quota);
  });

  it("reads a balance deduction as its list price over Kling's price per unit", () => {
    const q = t2v();
    // 0.7 USD at 0.14 USD a unit: 5 units.
    const paidFromBalance = { final_unit_deduction: '0', final_balance_deduction: { quota: '0.588', list_price: '0.7' } };
    expect(actualCharge(q.quota, q.terms, { videos: [{ duration: '5' }] }, QPU, paidFromBalance)).to.deep.equal({ charge: 420_000, units: 5 });
  });

  it('settles at the estimate for what was delivered when Kling reports no deduction', () => {
    const q = t2v();
    expect(actualCharge(q.quota, q.terms, { videos: [{ duration: '5.0' }] }, QPU, undefined)).to.deep.equal({ charge: q.quota, units: 6 });
    expect(actualCharge(q.quota, q.terms, { videos: [{ duration: '4.0' }] }, QPU, { final_unit_deduction: '0', final_balance_deduction: { quota: '0', list_price: '0' } }).charge).to.equal(Math.round(4.8 * 0.168 * QPU));
    expect(actualCharge(q.quota, q.terms, { other: true }, QPU, undefined)).to.deep.equal({ charge: q.quota, units: undefined });
  });
});
